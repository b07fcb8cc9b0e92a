"""``metanmt finetune``: adapt a checkpoint to a new language on a prepared fine-tuning subset."""

from __future__ import annotations

import argparse

from metanmt.train.config import TrainConfig

HELP = ("Fine-tune a checkpoint on N target tokens (draw I) of a language, with early stopping on its dev "
        "set; --tokens 0 saves the model unchanged for zero-shot evaluation.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="checkpoint directory (e.g. RUN/best)")
    parser.add_argument("--lang", required=True, help="ISO 639-1 code of the language to adapt to")
    parser.add_argument("--tokens", type=int, required=True, help="fine-tuning subset size in English tokens")
    parser.add_argument("--draw", type=int, default=0, help="which random draw of that size")
    parser.add_argument("--params", choices=["all", "emb_enc", "emb"], help="parameters to fine-tune")
    parser.add_argument("--output-dir", required=True, help="where to save the fine-tuned checkpoint")
    parser.add_argument("--config", help="YAML config whose 'finetune' section sets lr, steps, patience")
    parser.add_argument("--data", help="prepared data directory (default: the one the model records)")
    parser.add_argument("--seed", type=int, default=1)


def run(args: argparse.Namespace) -> int:
    from metanmt.train.finetune import finetune_checkpoint

    overrides = {"finetune": {"params": args.params}}
    cfg = (TrainConfig.load(args.config, overrides) if args.config
           else TrainConfig.from_dict(overrides, source="--params")).finetune
    out = finetune_checkpoint(args.model, args.lang, args.tokens, args.draw, args.output_dir, cfg,
                              data_dir=args.data, seed=args.seed)
    print(f"saved {out}")
    return 0
