"""Atomic writes of files and folders: a crash or a concurrent reader never sees a half-written result.

Every writer of results, caches and checkpoints goes through this module: a temporary sibling (same
filesystem, so the final rename is atomic) that takes the target's place only once it is complete.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _sibling(path: Path, kind: str) -> Path:
    """A unique hidden name beside ``path``; the writer creates it with the usual umask permissions
    (unlike mkstemp's 0600)."""
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}.{uuid.uuid4().hex[:8]}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    On error the temporary file is removed and ``path`` keeps its previous content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, "tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_lines_atomic(path: str | Path, lines: list[str]) -> Path:
    """Write one line per item (newline-terminated) atomically; items must not contain newlines."""
    return write_text_atomic(path, "".join(f"{line}\n" for line in lines))


def save_torch_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save`` atomically: a reader never loads a truncated checkpoint or cache."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on success it takes the place of ``path``.

    The old folder is moved aside and deleted only once the new one is in place (and put back if the
    rename fails); on error the temporary folder is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, "tmp")
    tmp.mkdir()
    try:
        yield tmp
        _replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace_dir(tmp: Path, path: Path) -> None:
    old = _sibling(path, "old")
    if path.exists():
        os.replace(path, old)
    try:
        os.replace(tmp, path)
    except OSError:
        if old.exists():
            os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)
