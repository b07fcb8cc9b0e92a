"""``metanmt finetune``: adapt a checkpoint to a language, on a prepared fine-tuning subset or your files."""

from __future__ import annotations

import argparse
from pathlib import Path

from metanmt.data.user_pairs import DEV_SHARE, PairSource, UserDataRequest
from metanmt.errors import MetaNMTError
from metanmt.models.device import DEVICE_HELP, PRECISIONS
from metanmt.models.seq2seq import PARAM_GROUPS
from metanmt.train.config import FinetuneSection, TrainConfig

DETAILS = ("Prepared: N target tokens (draw I) of a prepared language; yours: pairs of any language "
           "(--train-src/--train-tgt, --train-tsv or --train-hf). Early stopping on a dev set; --tokens 0 "
           "saves the model unchanged for zero-shot evaluation.")
PREPARED_ONLY = ("tokens", "draw", "data")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="checkpoint directory (e.g. RUN/best)")
    parser.add_argument("--lang", required=True,
                        help="language to adapt to: a prepared language's code, or for your own data any ISO "
                             "639-1/639-3 code or BCP-47 tag (recorded in the checkpoint)")
    parser.add_argument("--output-dir", required=True, help="where to save the fine-tuned checkpoint")
    parser.add_argument("--params", choices=list(PARAM_GROUPS),
                        help="parameters to fine-tune (lora: LoRA adapters, the checkpoint's own or fresh "
                             "ones)")
    parser.add_argument("--config", help="YAML config whose 'finetune' section sets lr, steps, patience (and "
                                         "whose train.mixed_precision is the default of --mixed-precision)")
    parser.add_argument("--lr", type=float, help="learning rate (overrides the config's finetune.lr)")
    parser.add_argument("--max-steps", type=int, help="most training steps (overrides finetune.max_steps)")
    parser.add_argument("--seed", type=int, default=1,
                        help="seeds the fine-tuning (batch order, dropout; plus --draw on prepared data) and "
                             "the dev pairs and --max-tokens subset drawn from your own data")
    parser.add_argument("--device", help=DEVICE_HELP)
    parser.add_argument("--mixed-precision", choices=list(PRECISIONS),
                        help="autocast the training steps (fp16 needs CUDA; unset: the config's "
                             "train.mixed_precision, else no)")
    hub = parser.add_argument_group("sharing")
    hub.add_argument("--push-to-hub", metavar="REPO",
                     help="after saving, upload the checkpoint to this Hugging Face Hub model repo "
                          "(USER/NAME)")
    hub.add_argument("--hub-private", action="store_true", help="create the hub repo as private")
    _add_data_arguments(parser)


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the training pairs come from: a prepared language, or the user's own files or dataset."""
    prepared = parser.add_argument_group("prepared data (a language of 'metanmt prepare')")
    prepared.add_argument("--tokens", type=int, help="fine-tuning subset size in English tokens")
    prepared.add_argument("--draw", type=int, help="which random draw of that size (unset: draw 0)")
    prepared.add_argument("--data", help="prepared data directory (default: the one the model records)")
    own = parser.add_argument_group(
        "your own data",
        "training pairs as two line-aligned files, a TSV (source<TAB>English) or a Hugging Face "
        "dataset (hub id, save_to_disk directory or json/jsonl/csv/parquet file); dev pairs the same way, "
        f"else {DEV_SHARE:.0%} of the training pairs (at least 1) are held out with --seed")
    for role in ("train", "dev"):
        own.add_argument(f"--{role}-src", metavar="FILE", help=f"{role} source sentences, one per line")
        own.add_argument(f"--{role}-tgt", metavar="FILE",
                         help=f"{role} English sentences, aligned with --{role}-src")
        own.add_argument(f"--{role}-tsv", metavar="FILE", help=f"{role} pairs as source<TAB>English lines")
        own.add_argument(f"--{role}-hf", metavar="PATH_OR_ID",
                         help=f"{role} pairs from a Hugging Face dataset")
    own.add_argument("--hf-config", help="dataset configuration name (load_dataset's name)")
    own.add_argument("--hf-split", default="train", help="split of --train-hf")
    own.add_argument("--dev-hf-split", help="split of --dev-hf (default: --hf-split)")
    own.add_argument("--src-field", help="dotted field of the source sentence (default: translation.LANG)")
    own.add_argument("--tgt-field", default="translation.en", help="dotted field of the English sentence")
    own.add_argument("--max-tokens", type=int,
                     help="train on a random subset of about N English tokens (sacrebleu 13a), drawn with "
                          "--seed")


def _sources(args: argparse.Namespace) -> tuple[PairSource, PairSource]:
    """The training and dev :class:`PairSource` of the command line."""
    hf = {"hf_config": args.hf_config, "src_field": args.src_field, "tgt_field": args.tgt_field}
    return tuple(PairSource(role, src=getattr(args, f"{role}_src"), tgt=getattr(args, f"{role}_tgt"),
                            tsv=getattr(args, f"{role}_tsv"), hf=getattr(args, f"{role}_hf"),
                            hf_split=split, **hf)
                 for role, split in (("train", args.hf_split), ("dev", args.dev_hf_split or args.hf_split)))


def _config(args: argparse.Namespace) -> TrainConfig:
    """The config file (or the defaults) with the command line's --params, --lr and --max-steps on top."""
    if args.lr is not None and not args.lr > 0:
        raise MetaNMTError(f"--lr must be positive, got {args.lr}")
    if args.max_steps is not None and args.max_steps < 1:
        raise MetaNMTError(f"--max-steps must be at least 1, got {args.max_steps}")
    given = {"params": args.params, "lr": args.lr, "max_steps": args.max_steps}
    overrides = {"finetune": {k: v for k, v in given.items() if v is not None}}  # unset: the config's
    if args.config:
        return TrainConfig.load(args.config, overrides)
    return TrainConfig.from_dict(overrides, source="the command line")


def run(args: argparse.Namespace) -> int:
    from metanmt.train.hub import check_hub_repo, push_checkpoint

    config = _config(args)
    precision = args.mixed_precision or config.train.mixed_precision
    if args.push_to_hub:
        check_hub_repo(args.push_to_hub)  # before training, not after
    train, dev = _sources(args)
    if train.given or dev.given:
        out = _run_user_data(args, train, dev, config.finetune, precision)
    else:
        out = _run_prepared(args, config.finetune, precision)
    print(f"saved {out}")
    if args.push_to_hub:
        print(f"pushed to {push_checkpoint(out, args.push_to_hub, private=args.hub_private)}")
    return 0


def _run_prepared(args: argparse.Namespace, cfg: FinetuneSection, precision: str) -> Path:
    from metanmt.train.finetune import finetune_checkpoint

    if args.tokens is None:
        raise MetaNMTError("give --tokens N (a prepared language) or your own training data (--train-src and "
                           "--train-tgt, --train-tsv or --train-hf)")
    if args.max_tokens is not None:
        raise MetaNMTError("--max-tokens draws from your own data; for prepared data use --tokens and --draw")
    return finetune_checkpoint(args.model, args.lang, args.tokens, args.draw or 0, args.output_dir, cfg,
                               data_dir=args.data, seed=args.seed, device=args.device,
                               mixed_precision=precision)


def _run_user_data(args: argparse.Namespace, train: PairSource, dev: PairSource, cfg: FinetuneSection,
                   precision: str) -> Path:
    from metanmt.data.languages import language_tag
    from metanmt.train.finetune import finetune_user_data

    mixed = [f"--{name}" for name in PREPARED_ONLY if getattr(args, name) is not None]
    if mixed:
        raise MetaNMTError(f"{', '.join(mixed)} select prepared data; with your own data use --max-tokens "
                           "and --seed")
    if not train.given:
        raise MetaNMTError("dev data was given but no training data: add --train-src/--train-tgt, "
                           "--train-tsv or --train-hf")
    request = UserDataRequest(language_tag(args.lang), train, dev, args.max_tokens, args.seed)
    return finetune_user_data(args.model, request, args.output_dir, cfg,
                              command=getattr(args, "_command_line", ""),
                              device=args.device, mixed_precision=precision)
