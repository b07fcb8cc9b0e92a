"""``metanmt prepare``: clean, split, train the shared SentencePiece model and encode a config's corpora."""

from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML config; its top-level 'data:' section is used")
    parser.add_argument("--data-root", default=os.environ.get("METANMT_DATA_ROOT"),
                        help="folder that relative corpus paths are read from (default: $METANMT_DATA_ROOT); "
                             "not needed for the Django demo corpus")
    parser.add_argument("--output-dir", required=True, help="where the prepared data goes")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an output folder that holds a different config or other files")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def run(args: argparse.Namespace) -> int:
    from metanmt.data.prepare import prepare

    prepare(args.config, args.data_root, args.output_dir, overwrite=args.overwrite, progress=not args.quiet,
            on_summary=print)
    return 0
