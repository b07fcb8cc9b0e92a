"""The ``metanmt`` command line: one sub-command per module in :mod:`metanmt.commands`.

Each command module defines ``add_arguments(parser)``, ``run(args) -> int`` and, optionally, ``DETAILS``:
what its ``--help`` says after the command's one-line summary in :data:`COMMANDS`. Modules are imported
only when their command runs, so ``metanmt --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from collections.abc import Sequence
from types import ModuleType

from metanmt import __version__
from metanmt.errors import MetaNMTError
from metanmt.memory import restart_with_allocator

# The registry of commands: name -> one-line summary (``metanmt --help``, and the first sentence of
# ``metanmt COMMAND --help``). Command ``a-b`` lives in ``metanmt.commands.a_b``: add a line and that module.
COMMANDS: dict[str, str] = {
    "quickstart": "The main job end to end on the embedded demo corpus.",
    "experiment": "Prepare, train the systems (MetaNMT, MultiNMT, MultiNMT+MetaNMT), fine-tune, evaluate, "
                  "report.",
    "prepare": "Clean, split, train the shared SentencePiece model and encode the corpora of a config.",
    "meta-train": "Meta-train the translation model over the training languages (FOMAML by default; MAML, "
                  "Reptile).",
    "pretrain": "Train the multilingual baseline (MultiNMT) at the same budget.",
    "finetune": "Fine-tune a checkpoint on a few thousand tokens of a language (prepared or your files).",
    "fewshot": "Meta-train and evaluate on an image few-shot benchmark (Omniglot, Mini-ImageNet).",
    "fewshot-report": "Render few-shot results beside the published MAML/ProtoNet numbers.",
    "evaluate": "Translate a test split or your own files with beam search; score with sacrebleu.",
    "translate": "Translate stdin (one sentence per line) to English with a checkpoint.",
    "report": "Collect evaluations into report.json/report.md and the BLEU-vs-size plot.",
}


ENVIRONMENT = """environment:
  METANMT_ALLOCATOR   memory allocator the command restarts with: tcmalloc (default, where installed),
                      jemalloc or system (glibc's malloc); see metanmt/memory.py
  METANMT_DATA_ROOT   the default of prepare's --data-root (where relative corpus paths are read from)
  METANMT_CACHE       cache of decoded few-shot images (default ~/.cache/metanmt)"""


def command_module(name: str) -> ModuleType:
    """The module of command ``name``, imported now."""
    return importlib.import_module(f"metanmt.commands.{name.replace('-', '_')}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metanmt",
        description="Meta-learning (MAML, FOMAML, Reptile) for few-shot neural machine translation.",
        epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"metanmt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, summary in COMMANDS.items():
        sub.add_parser(name, help=summary)  # its arguments are added in main, when it runs
    return parser


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of command ``name``, built only when that command runs (its module's imports are heavy)."""
    module = command_module(name)
    parser = argparse.ArgumentParser(
        prog=f"metanmt {name}",
        description=" ".join([COMMANDS[name], *getattr(module, "DETAILS", "").split()]),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    module.add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # handles --help, --version and unknown commands
        parser.print_help()
        return 0
    module = command_module(argv[0])
    args = command_parser(argv[0]).parse_args(argv[1:])
    args._command_line = shlex.join(["metanmt", *argv])  # recorded by commands that write checkpoints
    try:
        return int(module.run(args) or 0)
    except MetaNMTError as err:
        print(f"metanmt {argv[0]}: error: {err}", file=sys.stderr)
        return 2


def entry() -> int:
    """The ``metanmt`` script and ``python -m metanmt``: :func:`main` in a process restarted with the memory
    allocator of ``METANMT_ALLOCATOR`` (tcmalloc where installed; :mod:`metanmt.memory`)."""
    try:
        restart_with_allocator()
    except MetaNMTError as err:
        print(f"metanmt: error: {err}", file=sys.stderr)
        return 2
    return main()


if __name__ == "__main__":
    raise SystemExit(entry())
