"""Mini-ImageNet with the Ravi & Larochelle (2017) split: 100 ImageNet classes, 600 images each, 84x84 RGB,
64 classes for meta-training, 16 for validation, 20 for testing.

The data cannot be downloaded by this package (ImageNet's licence); a user fetches one of these layouts and
passes its folder as the root:

- ``images/`` holding all 60,000 JPEGs plus ``train.csv``, ``val.csv``, ``test.csv`` (columns
  ``filename,label``), as made by Ravi & Larochelle's ``mini-imagenet-tools``;
- ``train/``, ``val/``, ``test/`` folders with one sub-folder of images per class (MAML's ``proc_images.py``);
- the pickles ``mini-imagenet-cache-{train,val,test}.pkl`` (keys ``image_data`` ``[N, 84, 84, 3]`` uint8 and
  ``class_dict`` {class: indices}, as used by learn2learn), or MetaOptNet's
  ``miniImageNet_category_split_{train_phase_train,val,test}.pickle`` (keys ``data`` and ``labels``).

Images in folders are decoded once (RGB, Lanczos resize to 84x84, as Ravi & Larochelle did) and cached per
split as uint8 ``[N, 3, 84, 84]``.
"""

from __future__ import annotations

import csv
import os
import pickle
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from metanmt.errors import MetaNMTError
from metanmt.progress import progress_bar
from metanmt.tasks.images.cache import cached, fingerprint, folder_fingerprint, resolve_cache_dir
from metanmt.tasks.images.sampler import ClassPool

SPLITS = ("train", "val", "test")
IMAGE_SIZE = 84
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".JPEG", ".JPG", ".PNG"}
_METAOPTNET = {"train": "miniImageNet_category_split_train_phase_train.pickle",
               "val": "miniImageNet_category_split_val.pickle",
               "test": "miniImageNet_category_split_test.pickle"}


def _decode(path: str) -> np.ndarray:
    with Image.open(path) as image:
        image = image.convert("RGB")
        if image.size != (IMAGE_SIZE, IMAGE_SIZE):
            image = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
        return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


def _pool_from_files(files_by_class: dict[str, list[Path]], what: str, num_workers: int) -> dict[str, object]:
    names = sorted(files_by_class)
    files = [str(f) for name in names for f in sorted(files_by_class[name])]
    counts = [len(files_by_class[name]) for name in names]
    images = np.empty((len(files), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    bar = progress_bar(total=len(files), desc=f"decoding {what}", unit="img")
    if num_workers > 1:
        with ProcessPoolExecutor(num_workers) as pool:
            for i, array in enumerate(pool.map(_decode, files, chunksize=64)):
                images[i] = array
                bar.update()
    else:
        for i, path in enumerate(files):
            images[i] = _decode(path)
            bar.update()
    bar.close()
    offsets = torch.tensor([0] + counts).cumsum(0)
    return {"images": torch.from_numpy(images), "offsets": offsets, "names": names}


def _csv_classes(root: Path, split: str) -> dict[str, list[Path]]:
    path = root / f"{split}.csv"
    by_class: dict[str, list[Path]] = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"filename", "label"} <= set(reader.fieldnames):
            raise MetaNMTError(f"{path} must have a header with columns filename,label "
                               f"(got {reader.fieldnames})")
        for row in reader:
            image = root / "images" / row["filename"]
            if not image.is_file():
                raise MetaNMTError(f"{path} lists {row['filename']}, which is not in {root / 'images'}")
            by_class.setdefault(row["label"], []).append(image)
    return by_class


def _folder_classes(folder: Path) -> dict[str, list[Path]]:
    by_class = {d.name: [f for f in d.iterdir() if f.suffix in _IMAGE_SUFFIXES]
                for d in folder.iterdir() if d.is_dir()}
    empty = [name for name, files in by_class.items() if not files]
    if not by_class or empty:
        raise MetaNMTError(f"{folder} must hold one non-empty folder of images per class "
                           f"({'empty: ' + ', '.join(sorted(empty)) if empty else 'found none'})")
    return by_class


def _pool_from_pickle(path: Path) -> ClassPool:
    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh, encoding="latin1")
    except (OSError, pickle.UnpicklingError, EOFError) as err:
        raise MetaNMTError(f"cannot read the Mini-ImageNet pickle {path}: {err}") from err
    if "image_data" in data and "class_dict" in data:
        images, class_dict = np.asarray(data["image_data"]), data["class_dict"]
        names = sorted(class_dict)
        index = np.concatenate([np.asarray(class_dict[n], dtype=np.int64) for n in names])
        counts = [len(class_dict[n]) for n in names]
    elif "data" in data and "labels" in data:
        images, labels = np.asarray(data["data"]), np.asarray(data["labels"])
        names_int = sorted(set(labels.tolist()))
        index = np.argsort(labels, kind="stable")
        counts = [int((labels == n).sum()) for n in names_int]
        names = [str(n) for n in names_int]
    else:
        raise MetaNMTError(f"{path} has keys {sorted(data)}; expected image_data+class_dict or data+labels")
    if images.ndim != 4 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3) or images.dtype != np.uint8:
        raise MetaNMTError(f"{path}: expected uint8 images [N, {IMAGE_SIZE}, {IMAGE_SIZE}, 3], "
                           f"got {images.dtype} {images.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(images[index].transpose(0, 3, 1, 2)))
    return ClassPool(tensor, torch.tensor([0] + counts).cumsum(0), tuple(names))


def load_miniimagenet(root: str | os.PathLike, splits: Sequence[str] = SPLITS,
                      cache_dir: str | os.PathLike | None = None, num_workers: int | None = None
                      ) -> dict[str, ClassPool]:
    """``{split: ClassPool}`` from whichever supported layout ``root`` holds (see the module docstring)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise MetaNMTError(f"Mini-ImageNet root {root} is not a directory")
    workers = num_workers if num_workers is not None else min(8, os.cpu_count() or 1)
    pools = {}
    for split in splits:
        if split not in SPLITS:
            raise MetaNMTError(f"unknown Mini-ImageNet split {split!r}; choose from {', '.join(SPLITS)}")
        if (root / f"mini-imagenet-cache-{split}.pkl").is_file():
            pools[split] = _pool_from_pickle(root / f"mini-imagenet-cache-{split}.pkl")
            continue
        if (root / _METAOPTNET[split]).is_file():
            pools[split] = _pool_from_pickle(root / _METAOPTNET[split])
            continue
        if (root / f"{split}.csv").is_file() and (root / "images").is_dir():
            files = _csv_classes(root, split)
            key = fingerprint(["csv", split, folder_fingerprint(root, f"{split}.csv"),
                               sorted((str(f.relative_to(root)), f.stat().st_size)
                                      for fs in files.values() for f in fs)])
        elif (root / split).is_dir():
            files = _folder_classes(root / split)
            key = fingerprint(["folders", split, folder_fingerprint(root / split, "*")])
        else:
            raise MetaNMTError(
                f"Mini-ImageNet root {root} has no {split!r} split: expected {split}.csv + images/, "
                f"a {split}/ folder of class folders, mini-imagenet-cache-{split}.pkl "
                f"or {_METAOPTNET[split]}")
        path = resolve_cache_dir(cache_dir) / "images" / f"miniimagenet-{split}-{key}.pt"
        data = cached(path, lambda files=files, split=split: _pool_from_files(
            files, f"Mini-ImageNet {split}", workers))
        pools[split] = ClassPool(data["images"], data["offsets"], tuple(data["names"]))
    return pools
