"""``python -m metanmt``: the command line, as the ``metanmt`` script runs it."""

from metanmt.cli import entry

raise SystemExit(entry())
