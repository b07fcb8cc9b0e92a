"""Choosing the fast (adapted) parameters by name pattern."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase

import torch

from metanmt.errors import MetaNMTError


def select_fast_names(named: Iterable[tuple[str, torch.Tensor]], patterns: Sequence[str]) -> list[str]:
    """Names of trainable parameters matching any of the glob ``patterns`` (e.g. ``"model.encoder.*"``).

    Every pattern must match at least one trainable parameter: a typo would otherwise silently freeze
    the whole model in the inner loop.
    """
    if isinstance(patterns, str):
        patterns = (patterns,)
    if not patterns:
        raise MetaNMTError("fast_params is empty: give at least one parameter name pattern (e.g. '*')")
    trainable = [name for name, p in named if p.requires_grad]
    selected = [name for name in trainable if any(fnmatchcase(name, pat) for pat in patterns)]
    for pat in patterns:
        if not any(fnmatchcase(name, pat) for name in trainable):
            sample = ", ".join(trainable[:8]) + (", ..." if len(trainable) > 8 else "")
            raise MetaNMTError(f"fast-parameter pattern {pat!r} matches no trainable parameter (have: "
                               f"{sample})")
    return selected


def check_names(given: Iterable[str], known: Iterable[str], what: str = "parameters") -> None:
    """Raise if ``given`` holds names the model does not have (a checkpoint of another model, say)."""
    unknown = sorted(set(given) - set(known))
    if unknown:
        shown = ", ".join(unknown[:8]) + (", ..." if len(unknown) > 8 else "")
        raise MetaNMTError(f"{len(unknown)} {what} not in the model: {shown}")
