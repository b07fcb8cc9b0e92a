"""``metanmt fewshot-report``: our few-shot results beside the published MAML and ProtoNet numbers."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", metavar="PATH",
                        help="results.json files, or folders searched recursively for them")
    parser.add_argument("--output", default=None, metavar="FILE",
                        help="write the markdown table here (default: stdout)")


def run(args: argparse.Namespace) -> int:
    from metanmt.atomic import write_text_atomic
    from metanmt.fewshot.report import find_results, render

    text = render(find_results(args.results))
    if args.output is None:
        print(text, end="")
    else:
        write_text_atomic(args.output, text)
    return 0
