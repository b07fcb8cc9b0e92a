"""Micro-batches: a support or query batch cut into pieces along its first dimension, so that only one
piece's activations (and, for second-order MAML, one piece's double-backward graph) are alive at a time.

A loss that averages over some unit (examples, target tokens) is the weighted sum of its pieces' losses,
each weighted by its share of that unit: ``weight(piece) / weight(batch)``. The gradient, and every
Hessian-vector product of it, splits the same way, so the meta-gradient is the unsplit one up to rounding.
The learner is told the unit (``batch_weight``); by default it is the rows of the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from metanmt.errors import MetaNMTError

BatchWeight = Callable[[Any], float]


def rows(batch: Any) -> int:
    """The size of the first dimension of the batch's first tensor: the default unit of a loss average."""
    first = first_tensor(batch)
    if first is None or first.dim() == 0:
        raise MetaNMTError("a micro-batched batch needs a tensor with a batch dimension")
    return int(first.shape[0])


def split_batch(batch: Any, pieces: int, weight: BatchWeight = rows) -> list[tuple[Any, float]]:
    """``batch`` in at most ``pieces`` consecutive pieces along dimension 0 (fewer when it has fewer rows),
    each with its share of ``weight``; pieces without weight (e.g. all padding) are left out."""
    n = rows(batch)
    bounds = torch.tensor_split(torch.arange(n), min(pieces, n))
    parts = [_take(batch, n, int(idx[0]), int(idx[-1]) + 1) for idx in bounds]
    weights = [float(weight(p)) for p in parts]
    total = sum(weights)
    if total <= 0:
        raise MetaNMTError(f"the batch has no weight to average over "
                           f"({getattr(weight, '__name__', 'batch_weight')} = {total})")
    return [(p, w / total) for p, w in zip(parts, weights) if w > 0]


def _take(batch: Any, n: int, start: int, stop: int) -> Any:
    """Rows ``start:stop`` of every tensor in ``batch`` whose first dimension is the batch's (``n``)."""
    if isinstance(batch, torch.Tensor):
        return batch[start:stop] if batch.dim() > 0 and batch.shape[0] == n else batch
    if isinstance(batch, dict):
        return type(batch)({k: _take(v, n, start, stop) for k, v in batch.items()})
    if isinstance(batch, (list, tuple)):
        return type(batch)(_take(v, n, start, stop) for v in batch)
    return batch


def first_tensor(batch: Any) -> torch.Tensor | None:
    """The first tensor found in ``batch`` (a tensor, or dicts/lists/tuples of them), depth first."""
    if isinstance(batch, torch.Tensor):
        return batch
    values = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else []
    for v in values:
        found = first_tensor(v)
        if found is not None:
            return found
    return None
