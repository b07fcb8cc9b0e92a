"""Tatoeba Translation Challenge v2021-08-07 training data (Tiedemann 2020), X-English pairs.

Source: https://object.pouta.csc.fi/Tatoeba-Challenge-v2021-08-07/<pair>.tar, where <pair> is the two
ISO 639-3 codes in alphabetical order (``deu-eng``, ``eng-fin``). Each archive holds
``data/release/v2021-08-07/<pair>/{train.src.gz,train.trg.gz,dev.src,dev.trg,test.src,test.trg}``
(src is the first language of the pair name). Licence: the OPUS sources of each pair (see the
release's README); the dev/test parts are Tatoeba, CC BY 2.0 FR.

Writes ``<out>/tatoeba_challenge/v2021-08-07/<pair>/tatoeba-<split>-v2021-08-07.{<xxx>,eng}``; read the
training part with ``{corpus: tatoeba_challenge, label: tatoeba_train, prefix: tatoeba-train-v2021-08-07}``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence

from data_scripts._common import check_aligned, extract, fetch, parser
from metanmt.data.languages import corpus_code

URL = "https://object.pouta.csc.fi/Tatoeba-Challenge-v2021-08-07/{pair}.tar"
RELEASE = "v2021-08-07"
_MEMBER = re.compile(r"(?:^|/)(train|dev|test)\.(src|trg)(?:\.gz)?$")


def main(argv: Sequence[str] | None = None) -> int:
    args_parser = parser(__doc__.splitlines()[0],
                         f"URL or local archive, '{{pair}}' filled in (default {URL})")
    args_parser.add_argument("--langs", nargs="+", required=True, metavar="XX", help="ISO 639-1 codes")
    args_parser.add_argument("--max-pairs", type=int, default=None,
                             help="keep the first N pairs of each file")
    args = args_parser.parse_args(argv)
    for lang in args.langs:
        code = corpus_code(lang, "tatoeba_challenge")
        if code is None:
            raise SystemExit(f"error: the Tatoeba Challenge has no code for {lang!r} in metanmt's registry")
        pair = f"{code}-eng" if code < "eng" else f"eng-{code}"
        side = {"src": code, "trg": "eng"} if code < "eng" else {"src": "eng", "trg": code}
        folder = f"tatoeba_challenge/{RELEASE}/{pair}"

        def target(name: str, folder: str = folder, side: dict[str, str] = side) -> str | None:
            match = _MEMBER.search(name)
            if match is None:
                return None
            return f"{folder}/tatoeba-{match.group(1)}-{RELEASE}.{side[match.group(2)]}"

        archive = fetch((args.source or URL).format(pair=pair), args.out / ".downloads")
        written = extract(archive, target, args.out, max_lines=args.max_pairs)
        for split in sorted({p.name.split("-")[1] for p in written}):
            stem = args.out / folder / f"tatoeba-{split}-{RELEASE}"
            pairs = check_aligned(stem.with_name(f"{stem.name}.{code}"), stem.with_name(f"{stem.name}.eng"))
            print(f"{pair} {split}: {pairs} pairs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
