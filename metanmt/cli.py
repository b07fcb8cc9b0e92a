"""The ``metanmt`` command line: one sub-command per module in :mod:`metanmt.commands`.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
Modules are imported only when their command runs, so ``metanmt --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from collections.abc import Sequence

from metanmt import __version__
from metanmt.errors import MetaNMTError

# command name -> (module, one-line help). Add a command by adding a line here.
COMMANDS: dict[str, tuple[str, str]] = {
    "quickstart": ("metanmt.commands.quickstart", "The main job end to end on the embedded demo corpus."),
    "experiment": ("metanmt.commands.experiment", "Prepare, train both systems, fine-tune, evaluate, report."),
    "prepare": ("metanmt.commands.prepare", "Clean, split, train the shared SentencePiece model and encode the corpora of a config."),
    "meta-train": ("metanmt.commands.meta_train", "Meta-train (FOMAML/MAML/Reptile) over the training languages."),
    "pretrain": ("metanmt.commands.pretrain", "Train the multilingual baseline at the same budget."),
    "finetune": ("metanmt.commands.finetune", "Fine-tune a checkpoint on a few thousand tokens of a language (prepared or your own files)."),
    "fewshot": ("metanmt.commands.fewshot", "Meta-train and evaluate on an image few-shot benchmark (Omniglot, Mini-ImageNet)."),
    "fewshot-report": ("metanmt.commands.fewshot_report", "Render few-shot results beside the published MAML/ProtoNet numbers."),
    "evaluate": ("metanmt.commands.evaluate", "Translate a test split or your own files with beam search; score with sacrebleu (BLEU, chrF, TER)."),
    "translate": ("metanmt.commands.translate", "Translate stdin (one sentence per line) to English with a checkpoint."),
    "report": ("metanmt.commands.report", "Collect evaluations into report.json/report.md and the BLEU-vs-size plot."),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metanmt",
        description="Meta-learning (MAML, FOMAML, Reptile) for few-shot neural machine translation.",
    )
    parser.add_argument("--version", action="version", version=f"metanmt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.set_defaults(_module=module)  # its arguments are added in main, when it runs
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # handles --help, --version and unknown commands
        parser.print_help()
        return 0
    module = importlib.import_module(COMMANDS[argv[0]][0])
    cmd_parser = argparse.ArgumentParser(
        prog=f"metanmt {argv[0]}",
        description=module.HELP,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    module.add_arguments(cmd_parser)
    args = cmd_parser.parse_args(argv[1:])
    args._command_line = shlex.join(["metanmt", *argv])  # recorded by commands that write checkpoints
    try:
        return int(module.run(args) or 0)
    except MetaNMTError as err:
        print(f"metanmt {argv[0]}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
