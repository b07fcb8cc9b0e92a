"""``metanmt quickstart``: the whole MetaNMT vs MultiNMT experiment on the embedded demo corpus."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("Run the main job end to end on the embedded offline demo corpus (Django's translation catalogs): "
        "prepare -> meta-train -> pretrain -> fine-tune -> evaluate -> report. Re-running continues.")

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", default="runs/quickstart", help="where everything is written")
    parser.add_argument("--config", default=str(DEMO_CONFIG), help="experiment config")
    parser.add_argument("--data-root", help="root of local corpora the config refers to (not needed for the demo)")
    parser.add_argument("--langs", nargs="+", help="test languages to fine-tune on (default: the config's)")
    parser.add_argument("--sizes", nargs="+", type=int, help="fine-tuning sizes in tokens (default: config's)")
    parser.add_argument("--draws", type=int, help="random draws per size (default: the config's)")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from metanmt.train.pipeline import run_experiment

    run_experiment(args.config, args.output_dir, data_root=args.data_root, langs=args.langs, sizes=args.sizes,
                   draws=args.draws, progress=not args.no_progress)
    return 0
