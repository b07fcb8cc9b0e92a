"""The *source gap*, which says whether a model has learned to translate: held-out loss with each target
paired with another sentence's source, minus the loss with its own source (nats per target token).

A model that ignores its source (a language model of English) scores the same either way, gap ~0;
a model that translates is far more surprised by the wrong source. Below :data:`MIN_GAP` nats a
model has not learned to translate, whatever its BLEU says.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from metanmt.data.prepared import EncodedPairs
from metanmt.tasks.translation import batches_by_tokens, target_tokens

MIN_GAP = 0.5  # nats per target token: below it, a model has not learned to use its source


def _mismatched(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch with its sources rolled by one row, so every target meets another sentence's source."""
    rolled = {k: torch.roll(batch[k], 1, dims=0) for k in ("input_ids", "attention_mask")}
    return {**batch, **rolled}


@torch.no_grad()
def source_gap(model, pairs: EncodedPairs | Sequence[EncodedPairs],
               max_tokens: int = 2000) -> dict[str, float]:
    """``{"loss", "shuffled_loss", "gap"}``: token-weighted cross-entropy of ``pairs`` with the true and
    with mismatched sources, and their difference. Deterministic; batches of one sentence are skipped
    (nothing to mismatch)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sums = np.zeros(2)
    count = 0
    for part in ([pairs] if isinstance(pairs, EncodedPairs) else pairs):
        for batch in batches_by_tokens(part, max_tokens, rng=None):
            if len(batch["labels"]) < 2:
                continue
            batch = {k: v.to(device) for k, v in batch.items()}
            n = target_tokens(batch)
            for i, b in enumerate((batch, _mismatched(batch))):
                sums[i] += float(model(**b).loss) * n
            count += n
    model.train(was_training)
    loss, shuffled = sums / max(count, 1)
    return {"loss": round(float(loss), 4), "shuffled_loss": round(float(shuffled), 4),
            "gap": round(float(shuffled - loss), 4)}


def held_out_sample(data, split: str = "dev", per_language: int = 50) -> list[EncodedPairs]:
    """The first ``per_language`` pairs of ``split`` of every training language (the gap's held-out set)."""
    sample = []
    for lang in data.train_langs:
        pairs = data.pairs(lang, split)  # read once
        sample.append(pairs.subset(np.arange(min(per_language, len(pairs)))))
    return sample


def verdict_line(system: str, gap: float | None) -> str:
    """One sentence a reader sees before any table."""
    if gap is None:
        return f"{system}: no source-gap measurement."
    if gap < MIN_GAP:
        return (f"{system} has NOT learned to translate: source gap {gap:.2f} nats < {MIN_GAP} "
                f"(its outputs barely depend on the source; its BLEU is noise).")
    return f"{system} uses its source: source gap {gap:.2f} nats (>= {MIN_GAP})."
