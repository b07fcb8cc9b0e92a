"""Korean-English news parallel corpus v1 (Park, Hong and Cha 2016), the Ko-En data of Gu et al. (2018).

Source: https://github.com/jungyeul/korean-parallel-corpora (korean-english-news-v1/korean-english-park.
<split>.tar.gz, for split in train, dev, test). Licence: CC BY-SA 3.0 Unported.

Writes ``<out>/korean_parallel/korean-english-news-v1/korean-english-park.<split>.{ko,en}``, the layout of
the ``korean_news`` reader (``{corpus: korean_news, split: train}`` reads the training split).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from data_scripts._common import by_basename, check_aligned, extract, fetch, parser

URL = ("https://github.com/jungyeul/korean-parallel-corpora/raw/master/korean-english-news-v1/"
       "korean-english-park.{split}.tar.gz")
FOLDER = "korean_parallel/korean-english-news-v1"


def main(argv: Sequence[str] | None = None) -> int:
    args_parser = parser(__doc__.splitlines()[0],
                         f"URL or local archive, '{{split}}' filled in (default {URL})")
    args_parser.add_argument("--splits", nargs="+", default=["train", "dev", "test"],
                             choices=["train", "dev", "test"])
    args = args_parser.parse_args(argv)
    for split in args.splits:
        archive = fetch((args.source or URL).format(split=split), args.out / ".downloads")
        extract(archive,
                by_basename({f"korean-english-park.{split}.ko", f"korean-english-park.{split}.en"}, FOLDER),
                args.out)
        folder = args.out / FOLDER
        pairs = check_aligned(folder / f"korean-english-park.{split}.ko",
                              folder / f"korean-english-park.{split}.en")
        print(f"{split}: {pairs} pairs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
