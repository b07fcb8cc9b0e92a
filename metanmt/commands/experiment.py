"""``metanmt experiment``: the whole MetaNMT vs MultiNMT experiment of a config, resumable."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from metanmt.train.config import SYSTEMS

DETAILS = ("Fine-tuning covers sizes x draws on the test languages. Completed steps are skipped, so "
           "re-running continues.")


def add_arguments(parser: argparse.ArgumentParser, default_config: str | None = None,
                  default_output: str | None = None, default_systems: Sequence[str] = tuple(SYSTEMS),
                  default_jobs: int = 1) -> None:
    parser.add_argument("--config", required=default_config is None, default=default_config,
                        help="experiment YAML (data/model/meta/train/finetune/eval sections)")
    parser.add_argument("--output-dir", required=default_output is None, default=default_output,
                        help="where everything is written")
    parser.add_argument("--data-root", help="root of the local corpora the config names")
    parser.add_argument("--data", help="use this directory written by 'metanmt prepare' as it is (no corpora "
                                       "needed; e.g. data prepared on another machine) instead of preparing")
    parser.add_argument("--langs", nargs="+", help="languages to fine-tune on (None: the test languages)")
    parser.add_argument("--validation", action="store_true",
                        help="also fine-tune and evaluate the validation languages, at the same sizes; the "
                             "report shows them apart and keeps them out of its verdict")
    parser.add_argument("--sizes", nargs="+", type=int,
                        help="fine-tuning sizes in tokens (None: the config's)")
    parser.add_argument("--draws", type=int, help="random draws per size (None: the config's)")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(default_systems),
                        help="the systems to train and evaluate, in this order (multimeta after multinmt: it "
                             "starts from a MultiNMT checkpoint); processes can split the work")
    parser.add_argument("--jobs", type=int, default=default_jobs,
                        help="processes that train, fine-tune and evaluate the systems side by side, the CPU "
                             "threads shared out among them; logs in OUTPUT_DIR/logs (multimeta runs in "
                             "multinmt's process, after it) (default: %(default)s)")
    parser.add_argument("--max-eval-sentences", type=int, help="decode only the first N test sentences")
    parser.add_argument("--splits", nargs="+", help="evaluate only these splits, e.g. test (None: every "
                                                      "evaluation split of each language)")
    parser.add_argument("--checkpoint", choices=["best", "last"], default="best",
                        help="which checkpoint of each training run is fine-tuned and evaluated: the best "
                             "validation chrF (default) or the final one")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from metanmt.train.pipeline import ExperimentPlan, run_experiment

    plan = ExperimentPlan(systems=args.systems, langs=args.langs, validation=args.validation,
                          sizes=args.sizes, draws=args.draws, checkpoint=args.checkpoint, splits=args.splits,
                          max_eval_sentences=args.max_eval_sentences, progress=not args.no_progress,
                          jobs=args.jobs)
    run_experiment(args.config, args.output_dir, plan, data_root=args.data_root, data_dir=args.data)
    return 0
