"""Translation data: corpus readers, the ``prepare`` pipeline and the reader of its output.

``from metanmt.data import PreparedData, EncodedPairs`` is light (numpy only); :func:`prepare` is imported
on first use.
"""

from __future__ import annotations

from typing import Any

from metanmt.data.prepared import EncodedPairs, PreparedData

__all__ = ["EncodedPairs", "PreparedData", "prepare"]


def __getattr__(name: str) -> Any:
    if name == "prepare":
        from metanmt.data.prepare import prepare

        return prepare
    raise AttributeError(f"module 'metanmt.data' has no attribute {name!r}")
