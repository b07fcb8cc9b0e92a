"""Shared by the download scripts: fetch a URL or take a local file, extract chosen archive members."""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import shutil
import sys
import tarfile
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO


def fetch(source: str, downloads: Path) -> Path:
    """``source`` itself when it is a local file; an http(s) URL is downloaded once into ``downloads``."""
    local = Path(source).expanduser()
    if local.is_file():
        return local
    if not source.startswith(("http://", "https://")):
        raise SystemExit(f"error: {source} is neither a local file nor an http(s) URL")
    downloads.mkdir(parents=True, exist_ok=True)
    target = downloads / source.rstrip("/").rsplit("/", 1)[-1]
    if target.is_file():
        return target
    partial = target.with_name(target.name + ".part")
    print(f"downloading {source}", file=sys.stderr)
    from tqdm.auto import tqdm

    with urllib.request.urlopen(source) as response, partial.open("wb") as handle:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, file=sys.stderr) as bar:
            for block in iter(lambda: response.read(1 << 20), b""):
                handle.write(block)
                bar.update(len(block))
    os.replace(partial, target)
    return target


def _copy(stream: IO[bytes], target: Path, gunzip: bool, max_lines: int | None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    with (gzip.open(stream) if gunzip else contextlib.nullcontext(stream)) as source, \
            partial.open("wb") as handle:
        if max_lines is None:
            shutil.copyfileobj(source, handle, 1 << 20)
        else:
            for number, line in enumerate(source):
                if number >= max_lines:
                    break
                handle.write(line)
    os.replace(partial, target)


def extract(archive: Path, plan: Callable[[str], str | None], out: Path,
            max_lines: int | None = None) -> list[Path]:
    """Write each member for which ``plan(member_name)`` returns a path (relative to ``out``).

    A ``.gz`` member is decompressed unless its target also ends in ``.gz``; ``max_lines`` keeps only the
    first lines of each file (parallel files stay aligned). An archive with no wanted member is an error.
    """
    written: list[Path] = []
    with tarfile.open(archive) as tar:
        for member in tar:
            relative = plan(member.name) if member.isfile() else None
            if relative is None:
                continue
            stream = tar.extractfile(member)
            gunzip = member.name.endswith(".gz") and not relative.endswith(".gz")
            _copy(stream, out / relative, gunzip, max_lines)
            written.append(out / relative)
    if not written:
        raise SystemExit(f"error: {archive} holds none of the expected files")
    return written


def by_basename(wanted: set[str], folder: str) -> Callable[[str], str | None]:
    """An :func:`extract` plan: members whose file name is in ``wanted`` go to ``folder/<file name>``."""
    def plan(name: str) -> str | None:
        base = name.rsplit("/", 1)[-1]
        return f"{folder}/{base}" if base in wanted else None

    return plan


def check_aligned(src: Path, tgt: Path) -> int:
    """The number of lines of two parallel files; different counts end the script with both numbers."""
    counts = [sum(1 for _ in path.open("rb")) for path in (src, tgt)]
    if counts[0] != counts[1]:
        raise SystemExit(f"error: {src} has {counts[0]} lines but {tgt} has {counts[1]}")
    return counts[0]


def parser(description: str, source_help: str) -> argparse.ArgumentParser:
    """The common arguments: ``--out`` (the data root) and ``--source`` (URL template or local file)."""
    result = argparse.ArgumentParser(description=description)
    result.add_argument("--out", required=True, type=Path, help="data root to write into (the --data-root of "
                                                                   "'metanmt prepare')")
    result.add_argument("--source", help=source_help)
    return result
