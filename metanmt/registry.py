"""The one registry idiom: a literal dict, name -> what that name makes, read through :func:`lookup`.

Commands (:data:`metanmt.cli.COMMANDS`), corpus readers (:data:`metanmt.data.readers.READERS`), inner
optimizers (:data:`metanmt.meta.inner_optim.INNER_UPDATES`), few-shot algorithms
(:data:`metanmt.fewshot.ALGORITHMS`) and training systems (:data:`metanmt.train.steps.STEPS`) are such
dicts: adding an entry is adding a line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from metanmt.errors import MetaNMTError

T = TypeVar("T")


def lookup(table: Mapping[str, T], name: str, what: str) -> T:
    """``table[name]``; an unknown name is an error that lists the known ones."""
    try:
        return table[name]
    except KeyError:
        raise MetaNMTError(f"unknown {what} {name!r}; known: {', '.join(sorted(table))}") from None
