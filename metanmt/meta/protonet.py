"""Prototypical Networks (Snell et al. 2017): the non-parametric episodic learner.

Each class's prototype is the mean embedding of its support examples; a query is classified by a softmax
over negative squared Euclidean distances to the prototypes. Nothing is adapted per episode, so there is no
inner loop: the embedding model is trained directly on the query loss. The functions here only see an
embedding function and ``(x, y)`` pairs, whatever ``x`` is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F


def prototypes(embeddings: torch.Tensor, labels: torch.Tensor, ways: int) -> torch.Tensor:
    """``[ways, D]`` class means of ``[B, D]`` support embeddings with labels in ``0..ways-1``."""
    if labels.min() < 0 or labels.max() >= ways:
        raise ValueError(f"support labels must lie in 0..{ways - 1}, got {labels.min()}..{labels.max()}")
    counts = torch.bincount(labels, minlength=ways)
    if bool((counts == 0).any()):
        missing = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"every class needs a support example; classes {missing} have none")
    sums = embeddings.new_zeros(ways, embeddings.shape[1]).index_add_(0, labels, embeddings)
    return sums / counts.unsqueeze(1).to(embeddings.dtype)


def prototype_logits(support_emb: torch.Tensor, support_y: torch.Tensor, query_emb: torch.Tensor,
                     ways: int | None = None) -> torch.Tensor:
    """``[Q, ways]`` logits: negative squared Euclidean distance of each query to each prototype."""
    ways = int(support_y.max()) + 1 if ways is None else ways
    protos = prototypes(support_emb, support_y, ways)
    return -(query_emb.unsqueeze(1) - protos.unsqueeze(0)).pow(2).sum(dim=2)


def protonet_loss(embed: Callable[[Any], torch.Tensor], support: tuple[Any, torch.Tensor],
                  query: tuple[Any, torch.Tensor], ways: int | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean query cross-entropy, query accuracy in [0, 1]) for one episode.

    When the inputs are tensors, support and query go through ``embed`` as one batch, so that layers which
    depend on the batch (BatchNorm without running statistics) see the whole episode, as in Snell's code.
    """
    (sx, sy), (qx, qy) = support, query
    if isinstance(sx, torch.Tensor) and isinstance(qx, torch.Tensor):
        emb = embed(torch.cat([sx, qx]))
        support_emb, query_emb = emb[: len(sx)], emb[len(sx):]
    else:
        support_emb, query_emb = embed(sx), embed(qx)
    logits = prototype_logits(support_emb, sy, query_emb, ways)
    loss = F.cross_entropy(logits, qy)
    accuracy = (logits.argmax(dim=1) == qy).float().mean()
    return loss, accuracy.detach()
