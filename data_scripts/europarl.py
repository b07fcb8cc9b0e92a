"""Europarl v7 X-English bitexts (Koehn 2005), the meta-training corpus of Gu et al. (2018).

Source: https://www.statmt.org/europarl/v7/<lang>-en.tgz (one archive per language).
Licence: "We are not aware of any copyright restrictions of the material" (statmt.org/europarl);
the European Parliament's reuse policy applies to the proceedings.

Writes ``<out>/europarl/europarl-v7.<lang>-en.{<lang>,en}``; use it with::

    corpora: [{corpus: text, label: europarl, src: "europarl/europarl-v7.{lang}-en.{lang}",
               tgt: "europarl/europarl-v7.{lang}-en.en"}]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from data_scripts._common import by_basename, check_aligned, extract, fetch, parser

URL = "https://www.statmt.org/europarl/v7/{lang}-en.tgz"
LANGUAGES = ("bg", "cs", "da", "de", "el", "es", "et", "fi", "fr", "hu", "it", "lt", "lv", "nl", "pl", "pt",
             "ro", "sk", "sl", "sv")


def main(argv: Sequence[str] | None = None) -> int:
    args_parser = parser(__doc__.splitlines()[0],
                         f"URL or local archive, '{{lang}}' filled in (default {URL})")
    args_parser.add_argument("--langs", nargs="+", default=list(LANGUAGES), choices=LANGUAGES, metavar="XX")
    args = args_parser.parse_args(argv)
    for lang in args.langs:
        archive = fetch((args.source or URL).format(lang=lang), args.out / ".downloads")
        stem = f"europarl-v7.{lang}-en"
        extract(archive, by_basename({f"{stem}.{lang}", f"{stem}.en"}, "europarl"), args.out)
        pairs = check_aligned(args.out / "europarl" / f"{stem}.{lang}", args.out / "europarl" / f"{stem}.en")
        print(f"{lang}-en: {pairs} lines", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
