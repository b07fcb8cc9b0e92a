"""Mini-ImageNet loader on small self-made fixtures of each supported layout (no real copy is available)."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metanmt.errors import MetaNMTError
from metanmt.tasks.images import miniimagenet as mini_module
from metanmt.tasks.images.miniimagenet import load_miniimagenet

# split -> {class: number of images}; colours encode (class index, image index)
CLASSES = {"train": {"n01": 3, "n02": 4, "n03": 3}, "val": {"n04": 2, "n05": 2}, "test": {"n06": 3, "n07": 2}}


def colour(class_index: int, image_index: int) -> tuple[int, int, int]:
    return (30 * class_index, 30 * image_index, 200)


def make_csv_layout(root: Path, suffix: str = ".png") -> Path:
    """Ravi & Larochelle's layout: images/ with every file, {split}.csv listing filename,label."""
    (root / "images").mkdir(parents=True)
    k = 0
    for split, classes in CLASSES.items():
        with open(root / f"{split}.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["filename", "label"])
            for name, count in classes.items():
                k += 1
                for i in range(count):
                    filename = f"{name}{i:08d}{suffix}"
                    Image.new("RGB", (100 + 7 * i, 80), colour(k, i)).save(root / "images" / filename)
                    writer.writerow([filename, name])
    return root


def make_folder_layout(root: Path) -> Path:
    """MAML's proc_images.py layout: {split}/{class}/*.jpg."""
    k = 0
    for split, classes in CLASSES.items():
        for name, count in classes.items():
            k += 1
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (90, 120), colour(k, i)).save(root / split / name / f"{i}.jpg", quality=95)
    return root


def check_pools(pools, exact: bool) -> None:
    k = 0
    for split, classes in CLASSES.items():
        pool = pools[split]
        assert pool.names == tuple(sorted(classes))
        assert pool.counts.tolist() == [classes[n] for n in sorted(classes)]
        assert pool.images.shape == (sum(classes.values()), 3, 84, 84) and pool.images.dtype == torch.uint8
        for c, name in enumerate(pool.names):
            k += 1
            for i in range(classes[name]):
                pixel = pool.images[pool.offsets[c] + i, :, 42, 42].tolist()
                want = list(colour(k, i))
                error = max(abs(a - b) for a, b in zip(pixel, want))
                assert error == 0 if exact else error <= 3, (pixel, want)


def test_csv_layout_resizes_to_84_and_keeps_colours(tmp_path):
    root = make_csv_layout(tmp_path / "mini")
    check_pools(load_miniimagenet(root, cache_dir=tmp_path / "cache", num_workers=1), exact=True)


def test_class_folder_layout_with_jpegs_and_worker_processes(tmp_path):
    root = make_folder_layout(tmp_path / "mini")
    check_pools(load_miniimagenet(root, cache_dir=tmp_path / "cache", num_workers=2), exact=False)


def test_pickle_layouts(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 84, 84, 3), dtype=np.uint8)
    root = tmp_path / "pkl"
    root.mkdir()
    for split in ("train", "val", "test"):  # learn2learn / Ren et al. format
        with open(root / f"mini-imagenet-cache-{split}.pkl", "wb") as fh:
            pickle.dump({"image_data": images, "class_dict": {"nB": [1, 3], "nA": [4, 0, 2]}}, fh)
    pools = load_miniimagenet(root, cache_dir=tmp_path / "cache")
    pool = pools["val"]
    assert pool.names == ("nA", "nB") and pool.counts.tolist() == [3, 2]
    assert torch.equal(pool.images[0], torch.from_numpy(images[4]).permute(2, 0, 1))
    assert torch.equal(pool.images[4], torch.from_numpy(images[3]).permute(2, 0, 1))

    meta = tmp_path / "metaoptnet"  # MetaOptNet format: data + integer labels, pickled under Python 2
    meta.mkdir()
    for split, name in mini_module._METAOPTNET.items():
        with open(meta / name, "wb") as fh:
            pickle.dump({"data": images, "labels": [7, 3, 7, 3, 3]}, fh, protocol=2)
    pool = load_miniimagenet(meta, splits=("test",), cache_dir=tmp_path / "cache")["test"]
    assert pool.names == ("3", "7") and pool.counts.tolist() == [3, 2]
    assert torch.equal(pool.images[3], torch.from_numpy(images[0]).permute(2, 0, 1))


def test_decoded_split_is_cached_and_not_decoded_again(tmp_path, monkeypatch):
    root = make_csv_layout(tmp_path / "mini")
    first = load_miniimagenet(root, splits=("train",), cache_dir=tmp_path / "cache", num_workers=1)
    assert len(list((tmp_path / "cache" / "images").glob("miniimagenet-train-*.pt"))) == 1

    def no_decode(*_args, **_kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(mini_module, "_pool_from_files", no_decode)
    again = load_miniimagenet(root, splits=("train",), cache_dir=tmp_path / "cache")
    assert torch.equal(first["train"].images, again["train"].images)


def test_missing_split_and_missing_file_are_clear_errors(tmp_path):
    root = make_csv_layout(tmp_path / "mini")
    (root / "test.csv").unlink()
    with pytest.raises(MetaNMTError, match="no 'test' split: expected test.csv"):
        load_miniimagenet(root, cache_dir=tmp_path / "cache", num_workers=1)
    next((root / "images").glob("n04*")).unlink()
    with pytest.raises(MetaNMTError, match=r"val.csv lists n04\d+.png, which is not in"):
        load_miniimagenet(root, splits=("val",), cache_dir=tmp_path / "cache")
    bad = tmp_path / "bad.pkl"
    with pytest.raises(MetaNMTError, match="not a directory"):
        load_miniimagenet(bad)
    (tmp_path / "weird").mkdir()
    with open(tmp_path / "weird" / "mini-imagenet-cache-train.pkl", "wb") as fh:
        pickle.dump({"x": 1}, fh)
    with pytest.raises(MetaNMTError, match="expected image_data"):
        load_miniimagenet(tmp_path / "weird", splits=("train",))
