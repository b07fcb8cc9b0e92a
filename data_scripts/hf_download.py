"""Save a Hugging Face dataset split to disk for the ``hf_disk`` reader (WMT16/17, OPUS-100, FLORES, ...).

Examples (the WMT data of Gu et al. 2018; licences on each dataset card: WMT data is for research use,
OPUS-100 inherits its OPUS sources' licences, FLORES+ is CC BY-SA 4.0 and gated)::

    python -m data_scripts.hf_download --dataset wmt/wmt16 --name ro-en --split train \
        --out DATA/hf/wmt16-ro-en
    python -m data_scripts.hf_download --dataset wmt/wmt17 --name fi-en --split test \
        --out DATA/hf/wmt17-fi-en-test
    python -m data_scripts.hf_download --dataset Helsinki-NLP/opus-100 --name en-ko --split train \
        --out DATA/hf/opus-ko

and read them with ``{corpus: hf_disk, path: "hf/wmt16-{lang}-en"}`` (the ``translation`` column is the
default). Offline, ``--dataset json --data-files FILE`` converts local JSON lines the same way.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    args_parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args_parser.add_argument("--dataset", required=True, help="hub id (wmt/wmt16) or builder (json, csv)")
    args_parser.add_argument("--name", default=None, help="configuration (ro-en)")
    args_parser.add_argument("--split", default="train")
    args_parser.add_argument("--data-files", nargs="+", default=None, help="local files for json/csv/text")
    args_parser.add_argument("--revision", default=None)
    args_parser.add_argument("--out", required=True, type=Path, help="folder to save_to_disk into")
    args = args_parser.parse_args(argv)
    import datasets

    kwargs = {"name": args.name, "split": args.split, "data_files": args.data_files,
              "revision": args.revision}
    dataset = datasets.load_dataset(args.dataset, **{k: v for k, v in kwargs.items() if v is not None})
    dataset.save_to_disk(str(args.out))
    print(f"{args.dataset} {args.name or ''} {args.split}: {len(dataset)} rows -> {args.out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
