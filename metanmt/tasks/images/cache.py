"""Decoded-image cache: datasets are decoded once into compact uint8 tensors so a later run starts in seconds.

The cache lives in a user cache directory, never in the data root (often read-only) or the repository.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from metanmt.atomic import save_torch_atomic
from metanmt.errors import MetaNMTError

CACHE_FORMAT = 1  # bump when the decoded layout changes, so stale files are not reused


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$METANMT_CACHE``, else ``$XDG_CACHE_HOME/metanmt``, else ``~/.cache/metanmt``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("METANMT_CACHE"):
        return Path(os.environ["METANMT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "metanmt"


def fingerprint(parts: Iterable[object]) -> str:
    """A short stable hash of the source description (names, sizes, checksums) and the cache format."""
    digest = hashlib.sha256(f"format={CACHE_FORMAT}".encode())
    for part in parts:
        digest.update(b"\0" + repr(part).encode())
    return digest.hexdigest()[:16]


def folder_fingerprint(folder: Path, pattern: str) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime) of the files in ``folder`` matching ``pattern``: changes with the data."""
    entries = []
    for path in sorted(folder.rglob(pattern)):
        stat = path.stat()
        entries.append((path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns))
    return entries


def cached(path: Path, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Load the dict at ``path``, or ``build()`` it and save it there first."""
    if path.exists():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:  # corrupt: rebuild it
            warnings.warn(f"ignoring unreadable cache file {path} ({err}); rebuilding it", stacklevel=2)
    data = build()
    try:
        save_torch_atomic(data, path)
    except OSError as err:
        raise MetaNMTError(f"cannot write the image cache {path}: {err} "
                           "(choose another place with --cache-dir or METANMT_CACHE)") from err
    return data
