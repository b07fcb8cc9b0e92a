"""Choosing the fast (adapted) parameters by name pattern; what to swap into the module to run with them."""

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


def tensors_to_swap(module: torch.nn.Module, params: dict[str, torch.Tensor],
                    buffers: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What ``functional_call(module, ..., tie_weights=False)`` must swap in to run ``module`` with
    ``params`` and ``buffers`` (keyed by the names ``named_parameters()`` / ``named_buffers()`` give): each
    tensor that is not the module's own, under every name the module holds it by (tied weights such as shared
    embeddings).

    One walk over the module instead of the walk and checks of ``tie_weights=True`` and a swap of every
    tensor: together ~3% of a FOMAML meta-step on a small transformer, where the inner loop's first support
    pass runs with the module's own parameters and swaps none of them."""
    swap: dict[str, torch.Tensor] = {}
    for named, given in ((module.named_parameters(remove_duplicate=False), params),
                         (module.named_buffers(remove_duplicate=False), buffers)):
        first_name: dict[int, str] = {}
        for name, own in named:
            value = given.get(first_name.setdefault(id(own), name))
            if value is not None and value is not own:
                swap[name] = value
    return swap
