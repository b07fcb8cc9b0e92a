"""An episode: what one task contributes to one meta-step."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch


@dataclass
class Episode:
    """A support batch to adapt on and a query batch to evaluate the adapted parameters on.

    Batches are opaque to the core: a dict of tensors for seq2seq, an ``(x, y)`` pair for images.
    The loss function given to :class:`~metanmt.meta.MetaLearner` is what interprets them.
    """

    support: Any
    query: Any
    task: str = ""

    def to(self, device: torch.device) -> Episode:
        """The same episode with its tensors on ``device``."""
        return replace(self, support=move_batch(self.support, device), query=move_batch(self.query, device))


def move_batch(batch: Any, device: torch.device) -> Any:
    """``batch`` (a tensor, or dicts/lists/tuples of them) with every tensor on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return type(batch)({k: move_batch(v, device) for k, v in batch.items()})
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_batch(v, device) for v in batch)
    return batch
