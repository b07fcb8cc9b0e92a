"""Temperature-based sampling over languages, shared by the SentencePiece corpus and the task sampler."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from metanmt.errors import MetaNMTError


def temperature_probabilities(sizes: Mapping[str, int], temperature: float) -> dict[str, float]:
    """p_i ∝ n_i^(1/T): T=1 is proportional to data size, large T tends to uniform, T<1 sharpens."""
    if temperature <= 0:
        raise MetaNMTError(f"sampling temperature must be positive, not {temperature}")
    if not sizes or any(n <= 0 for n in sizes.values()):
        raise MetaNMTError(f"sampling needs a positive size for every task, got {dict(sizes)}")
    logs = np.log(np.array(list(sizes.values()), dtype=np.float64)) / temperature
    weights = np.exp(logs - logs.max())
    return dict(zip(sizes, (weights / weights.sum()).tolist()))
