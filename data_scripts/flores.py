"""FLORES-200 dev and devtest (NLLB Team 2022), multi-way parallel evaluation sets.

Source: https://dl.fbaipublicfiles.com/nllb/flores200_dataset.tar.gz
Licence: CC BY-SA 4.0.

Writes ``<out>/flores200/{dev,devtest}/<code>.<split>``, the layout of the ``flores200`` reader
(``{corpus: flores200, split: dev}`` reads the dev split).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence

from data_scripts._common import extract, fetch, parser

URL = "https://dl.fbaipublicfiles.com/nllb/flores200_dataset.tar.gz"
_MEMBER = re.compile(r"(?:^|/)(dev|devtest)/([a-z]{3}_[A-Za-z]{4})\.(dev|devtest)$")


def target(name: str) -> str | None:
    match = _MEMBER.search(name)
    if match is None or match.group(1) != match.group(3):
        return None
    return f"flores200/{match.group(1)}/{match.group(2)}.{match.group(1)}"


def main(argv: Sequence[str] | None = None) -> int:
    args = parser(__doc__.splitlines()[0], f"URL or local archive (default {URL})").parse_args(argv)
    written = extract(fetch(args.source or URL, args.out / ".downloads"), target, args.out)
    print(f"{len(written)} files under {args.out / 'flores200'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
