"""Arguments and entry shared by ``metanmt meta-train`` and ``metanmt pretrain`` (same loop, same budget)."""

from __future__ import annotations

import argparse

from metanmt.models.device import PRECISIONS
from metanmt.models.seq2seq import PRESETS
from metanmt.train.config import TrainConfig


def add_training_arguments(parser: argparse.ArgumentParser, meta: bool) -> None:
    parser.add_argument("--config", required=True, help="YAML config (sections data/model/meta/train/...)")
    parser.add_argument("--data", required=True, help="directory written by 'metanmt prepare'")
    parser.add_argument("--output-dir", required=True, help="run directory: best/, last/, train_log.jsonl")
    parser.add_argument("--steps", type=int, help="override train.steps (the token budget of every system)")
    parser.add_argument("--seed", type=int, help="override train.seed")
    parser.add_argument("--preset", choices=PRESETS, help="override model.preset")
    parser.add_argument("--init-from",
                        help="start from this HF checkpoint directory instead of random weights")
    parser.add_argument("--mixed-precision", choices=PRECISIONS,
                        help="override train.mixed_precision")
    if meta:
        from metanmt.meta import ALGORITHMS  # loads torch: only for meta-train

        parser.add_argument("--algorithm", choices=ALGORITHMS, help="override meta.algorithm")
        parser.add_argument("--inner-steps", type=int, help="override meta.inner_steps")
        parser.add_argument("--inner-lr", type=float, help="override meta.inner_lr")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_training(args: argparse.Namespace, system: str) -> int:
    from metanmt.train.trainer import train

    overrides = {
        "train": {"steps": args.steps, "seed": args.seed, "mixed_precision": args.mixed_precision},
        "model": {"preset": args.preset, "init_from": args.init_from},
        "meta": {"algorithm": getattr(args, "algorithm", None),
                 "inner_steps": getattr(args, "inner_steps", None),
                 "inner_lr": getattr(args, "inner_lr", None)},
    }
    config = TrainConfig.load(args.config, overrides)
    best = train(config, args.data, args.output_dir, system=system, progress=not args.no_progress)
    print(f"best checkpoint: {best}")
    return 0
