"""``metanmt fewshot``: meta-train and evaluate on Omniglot or Mini-ImageNet, writing ``OUT/results.json``."""

from __future__ import annotations

import argparse
import json

HELP = "Meta-train and evaluate on an image few-shot benchmark (Omniglot, Mini-ImageNet)."
_PUBLISHED = "unset: the published setting for the dataset, algorithm and ways"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from metanmt.fewshot import ALGORITHMS, DATASETS

    add = parser.add_argument
    add("--dataset", required=True, choices=DATASETS)
    add("--data-root", required=True, metavar="DIR",
        help="Omniglot: folder with images_{background,evaluation}(.zip) or omniglot-py/; Mini-ImageNet: "
             "folder with images/ + {train,val,test}.csv, per-class folders or the pickles")
    add("--output-dir", required=True, metavar="OUT", help="checkpoints and results.json go here")
    add("--algorithm", default="maml", choices=ALGORITHMS)
    add("--ways", type=int, default=5, help="classes per test episode (N)")
    add("--shots", type=int, default=1, help="support images per class (K)")
    add("--protocol", default=None, choices=("maml", "lake", "ravi"),
        help="omniglot: maml (Vinyals split, 1200 training characters, rotations, the default) or lake "
             "(background/evaluation); miniimagenet: ravi")
    add("--meta-steps", type=int, default=60000, help="outer updates")
    add("--eval-episodes", type=int, default=600, help="test episodes (E)")
    add("--val-episodes", type=int, default=100, help="episodes per validation")
    add("--eval-every", type=int, default=500, help="validate and checkpoint every this many meta-steps")
    add("--meta-batch", type=int, default=None, help=f"episodes per meta-step; {_PUBLISHED}")
    add("--meta-lr", type=float, default=None, help=f"Adam lr, or Reptile's outer step size; {_PUBLISHED}")
    add("--lr-schedule", default=None, choices=("constant", "step", "linear"),
        help=f"step: halve every --lr-step-every steps; linear: anneal to 0; {_PUBLISHED}")
    add("--lr-step-every", type=int, default=2000)
    add("--inner-steps", type=int, default=None, help=f"adaptation steps in training; {_PUBLISHED}")
    add("--eval-inner-steps", type=int, default=None, help=f"adaptation steps at test; {_PUBLISHED}")
    add("--inner-lr", type=float, default=None, help=f"inner-loop step size; {_PUBLISHED}")
    add("--inner-optimizer", default=None, choices=("sgd", "adam"), help=_PUBLISHED)
    add("--bn-eval", default="transductive", choices=("transductive", "support"),
        help="BatchNorm statistics of adapted MAML/Reptile models at test")
    add("--train-ways", type=int, default=None, help=f"classes per training episode; {_PUBLISHED}")
    add("--train-shots", type=int, default=None, help=f"support images per class in training; {_PUBLISHED}")
    add("--queries", type=int, default=None, help=f"query images per class in training; {_PUBLISHED}")
    add("--eval-queries", type=int, default=15, help="query images per class at validation and test")
    add("--hidden", type=int, default=None, help=f"Conv-4 filters; {_PUBLISHED}")
    add("--seed", type=int, default=0)
    add("--threads", type=int, default=None,
        help="torch CPU threads (default: torch's choice; 1 is fastest on a busy machine)")
    add("--cache-dir", default=None, metavar="DIR",
        help="decoded-image cache (default: $METANMT_CACHE or ~/.cache/metanmt)")
    add("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    add("--init-from", default=None, metavar="FILE",
        help="start from the weights in a best.pt or checkpoint.pt (with --meta-steps 0: only test them)")


def run(args: argparse.Namespace) -> int:
    from metanmt.fewshot import FewShotConfig, run_fewshot

    options = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    command = ["metanmt", "fewshot"]  # the explicit options, so results.json says how to rerun it
    for key, value in options.items():
        if value is True:
            command.append(f"--{key.replace('_', '-')}")
        elif value is not None and value is not False:  # 0 is a real value (--meta-steps 0)
            command += [f"--{key.replace('_', '-')}", str(value)]
    results = run_fewshot(FewShotConfig(**options, command=command))
    summary = {k: results[k] for k in ("dataset", "protocol", "algorithm", "ways", "shots", "meta_steps",
                                       "eval_episodes", "accuracy", "ci95")}
    print(json.dumps(summary))
    return 0
