"""``metanmt report``: tables and the BLEU-vs-size figure from all evaluations under a runs directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", required=True, metavar="DIR",
                        help="directory searched recursively for result JSONs written by `metanmt evaluate`")
    parser.add_argument("--output-dir", required=True, metavar="OUT", help="where the report files go")
    parser.add_argument("--train-runs", nargs="+", metavar="RUN_DIR",
                        help="training run directories (run.json + train_log.jsonl, e.g. OUT/metanmt "
                             "OUT/multinmt): adds their validation BLEU and source gap against target tokens")
    parser.add_argument("--bootstrap-samples", type=int, default=1000,
                        help="resamples of the paired bootstrap test (MetaNMT vs MultiNMT)")


def run(args: argparse.Namespace) -> int:
    from metanmt.errors import MetaNMTError
    from metanmt.eval.report import write_report

    if args.bootstrap_samples < 1:
        raise MetaNMTError(f"--bootstrap-samples must be at least 1, got {args.bootstrap_samples}")
    report = write_report(args.runs, args.output_dir, n_bootstrap=args.bootstrap_samples,
                          train_runs=args.train_runs)
    out = Path(args.output_dir)
    written = [out / "report.md", out / "report.json"] + ([out / report["plot"]] if report["plot"] else [])
    print(f"{report['num_evaluations']} evaluations, {len(report['tables'])} tables -> "
          + ", ".join(map(str, written)))
    for warning in report["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    return 0
