"""Omniglot (Lake et al. 2015): 1623 handwritten characters from 50 alphabets, 20 drawings each.

The root may hold the two official zips (``images_background.zip``, ``images_evaluation.zip``), their
extracted folders, or torchvision's ``omniglot-py/`` folder with either. All 32,460 PNGs are decoded once,
resized (Lanczos) and inverted so that strokes are 255 and the background 0, and cached as one uint8 tensor
``[1623, 20, S, S]``. Both protocols are splits of that one tensor, so they share the cache file:

- ``"maml"`` (Vinyals et al. 2016, Finn et al. 2017): all 1623 characters pooled and shuffled with a fixed
  seed; 1200 for meta-training (the first 1100 train, the last 100 validation) and the other 423 for
  testing; every split is augmented with 90-degree rotations (each rotation is a class of its own).
- ``"lake"``: Lake's split, the 30 background alphabets for meta-training (5 of them, fixed, held out for
  validation) and the 20 evaluation alphabets for testing, no rotations.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from metanmt.errors import MetaNMTError
from metanmt.progress import progress_bar
from metanmt.tasks.images.cache import cached, fingerprint, folder_fingerprint, resolve_cache_dir
from metanmt.tasks.images.sampler import ClassPool

SETS = ("background", "evaluation")
PROTOCOLS = ("maml", "lake")
DRAWINGS = 20
SPLIT_SEED = 0  # fixes the protocol splits: every run and every algorithm is tested on the same classes
_PNG = re.compile(r"(?:^|/)images_(background|evaluation)/([^/]+)/(character\d+)/(\d+)_(\d+)\.png$")


@dataclass(frozen=True)
class Omniglot:
    """All characters, ordered by their global id (0001..1623)."""

    images: torch.Tensor  # uint8 [characters, 20, S, S], 255 = stroke
    alphabets: tuple[str, ...]  # per character
    characters: tuple[str, ...]  # per character, "Alphabet/characterNN"
    sets: tuple[str, ...]  # per character, "background" or "evaluation"


def _locate(root: Path) -> dict[str, Path]:
    """The zip or folder holding each set in ``root`` or ``root/omniglot-py``; a folder wins over a zip."""
    found: dict[str, Path] = {}
    for base in (root, root / "omniglot-py"):
        for name in SETS:
            folder, archive = base / f"images_{name}", base / f"images_{name}.zip"
            if name not in found and folder.is_dir():
                found[name] = folder
            elif name not in found and archive.is_file():
                found[name] = archive
    missing = [name for name in SETS if name not in found]
    if missing:
        want = ", ".join(f"images_{n}.zip or images_{n}/" for n in missing)
        raise MetaNMTError(f"Omniglot root {root} lacks {want} (looked in it and in {root / 'omniglot-py'})")
    return found


def _list_pngs(source: Path) -> list[tuple[str, str, int, int, str]]:
    """(alphabet, character, global id, drawer, member) for every drawing in a zip or folder."""
    if source.suffix == ".zip":
        with zipfile.ZipFile(source) as zf:
            members = zf.namelist()
    else:
        members = [p.relative_to(source.parent).as_posix() for p in source.rglob("*.png")]
    rows = []
    for member in members:
        match = _PNG.search(member)
        if match:
            _, alphabet, character, char_id, drawer = match.groups()
            rows.append((alphabet, character, int(char_id), int(drawer), member))
    if not rows:
        raise MetaNMTError(f"no Omniglot drawings (images_*/<Alphabet>/characterNN/IIII_DD.png) in {source}")
    return rows


def _source_fingerprint(source: Path) -> object:
    if source.suffix == ".zip":
        with zipfile.ZipFile(source) as zf:
            return sorted((i.filename, i.file_size, i.CRC) for i in zf.infolist())
    return folder_fingerprint(source, "*.png")


def _decode(image_bytes: bytes, size: int) -> np.ndarray:
    # Mode "1" would resize with nearest neighbour only: convert to 8-bit first for a Lanczos resize.
    image = Image.open(io.BytesIO(image_bytes)).convert("L")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    return 255 - np.asarray(image, dtype=np.uint8)


def _decode_all(sources: dict[str, Path], size: int) -> dict[str, object]:
    chars: dict[int, dict] = {}
    for name, source in sources.items():
        for alphabet, character, char_id, drawer, member in _list_pngs(source):
            entry = chars.setdefault(char_id, {"alphabet": alphabet, "character": f"{alphabet}/{character}",
                                               "set": name, "source": source, "members": {}})
            entry["members"][drawer] = member
    bad = [c for c, e in chars.items() if sorted(e["members"]) != list(range(1, DRAWINGS + 1))]
    if bad:
        e = chars[bad[0]]
        raise MetaNMTError(f"Omniglot character {e['character']} ({e['source']}) has drawings "
                           f"{sorted(e['members'])}, expected 1..{DRAWINGS}")
    order = sorted(chars)
    images = np.empty((len(order), DRAWINGS, size, size), dtype=np.uint8)
    archives = {s: zipfile.ZipFile(s) for s in sources.values() if s.suffix == ".zip"}
    try:
        bar = progress_bar(order, desc=f"decoding Omniglot ({size}x{size})", unit="char")
        for i, char_id in enumerate(bar):
            entry = chars[char_id]
            source = entry["source"]
            for d in range(DRAWINGS):
                member = entry["members"][d + 1]
                data = (archives[source].read(member) if source in archives
                        else (source.parent / member).read_bytes())
                images[i, d] = _decode(data, size)
    finally:
        for archive in archives.values():
            archive.close()
    return {
        "images": torch.from_numpy(images),
        "alphabets": [chars[c]["alphabet"] for c in order],
        "characters": [chars[c]["character"] for c in order],
        "sets": [chars[c]["set"] for c in order],
    }


def load_omniglot(root: str | os.PathLike, image_size: int = 28,
                  cache_dir: str | os.PathLike | None = None) -> Omniglot:
    """All of Omniglot at ``image_size``, decoded on the first call and read from the cache afterwards.

    The cache key covers the image size and the source files (zip member checksums, or file sizes and
    times for folders), so changed data is decoded again rather than silently reused.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise MetaNMTError(f"Omniglot root {root} is not a directory")
    sources = _locate(root)
    described = [(name, s.name, _source_fingerprint(s)) for name, s in sorted(sources.items())]
    key = fingerprint([image_size, *described])
    path = resolve_cache_dir(cache_dir) / "images" / f"omniglot-{image_size}px-{key}.pt"
    data = cached(path, lambda: _decode_all(sources, image_size))
    return Omniglot(data["images"], tuple(data["alphabets"]), tuple(data["characters"]), tuple(data["sets"]))


def omniglot_splits(data: Omniglot, protocol: str = "maml", num_train: int = 1100, num_val: int = 100,
                    lake_val_alphabets: int = 5) -> dict[str, ClassPool]:
    """``{"train", "val", "test"}`` class pools for a protocol (see the module docstring).

    ``num_train``/``num_val`` (maml) and ``lake_val_alphabets`` (lake) default to the published split sizes;
    they are parameters so small fixtures can exercise the same code.
    """
    rng = np.random.default_rng(SPLIT_SEED)
    if protocol == "maml":
        split_ids, rotate = _maml_split_ids(len(data.characters), rng, num_train, num_val), True
    elif protocol == "lake":
        split_ids, rotate = _lake_split_ids(data, rng, lake_val_alphabets), False
    else:
        raise MetaNMTError(f"unknown Omniglot protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    pools = {}
    for split, ids in split_ids.items():
        index = torch.as_tensor(np.sort(np.asarray(ids, dtype=np.int64)))
        images = data.images[index].unsqueeze(2)  # [classes, 20, 1, S, S]
        pool = ClassPool.from_grouped(images, [data.characters[i] for i in index.tolist()])
        pools[split] = pool.with_rotations() if rotate else pool
    return pools


def _maml_split_ids(num_chars: int, rng: np.random.Generator, num_train: int, num_val: int) -> dict:
    """Finn et al.'s split: a random permutation of all characters, cut into train / val / test."""
    if num_train + num_val >= num_chars:
        raise MetaNMTError(f"the maml protocol needs more than {num_train + num_val} characters "
                           f"({num_train} train + {num_val} validation), this Omniglot has {num_chars}")
    order = rng.permutation(num_chars)
    return {"train": order[:num_train], "val": order[num_train:num_train + num_val],
            "test": order[num_train + num_val:]}


def _lake_split_ids(data: Omniglot, rng: np.random.Generator, lake_val_alphabets: int) -> dict:
    """Lake et al.'s split: background alphabets train (a few validate), evaluation alphabets test."""
    background = sorted({a for a, s in zip(data.alphabets, data.sets) if s == "background"})
    if len(background) <= lake_val_alphabets:
        raise MetaNMTError(f"the lake protocol holds out {lake_val_alphabets} background alphabets for "
                           f"validation, this Omniglot has only {len(background)}")
    val_alphabets = {background[i] for i in rng.permutation(len(background))[:lake_val_alphabets]}
    return {
        "train": [i for i, (a, s) in enumerate(zip(data.alphabets, data.sets))
                  if s == "background" and a not in val_alphabets],
        "val": [i for i, a in enumerate(data.alphabets) if a in val_alphabets],
        "test": [i for i, s in enumerate(data.sets) if s == "evaluation"],
    }
