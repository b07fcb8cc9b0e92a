"""An episode: what one task contributes to one meta-step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Episode:
    """A support batch to adapt on and a query batch to evaluate the adapted parameters on.

    Batches are opaque to the core: a dict of tensors for seq2seq, an ``(x, y)`` pair for images.
    The loss function given to :class:`~metanmt.meta.MetaLearner` is what interprets them.
    """

    support: Any
    query: Any
    task: str = ""
