"""Omniglot loader on small self-made fixtures (zips, folders, omniglot-py) and, when given, the real data."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metanmt.errors import MetaNMTError
from metanmt.tasks.images import omniglot as omniglot_module
from metanmt.tasks.images.omniglot import load_omniglot, omniglot_splits

# (set, alphabet, characters): global ids run in this order, as in the real data
LAYOUT = [("background", "Alpha", 3), ("background", "Beta", 2), ("background", "Gamma", 2),
          ("evaluation", "Delta", 2), ("evaluation", "Epsilon", 1)]


def _drawing(char_id: int, drawer: int) -> Image.Image:
    """A 105x105 mode-"1" image, white background, with a black block whose place encodes id and drawer."""
    pixels = np.ones((105, 105), dtype=bool)
    row, col = 5 * (char_id % 20), 5 * (drawer % 20)
    pixels[row:row + 10, col:col + 10] = False
    return Image.fromarray(pixels).convert("1")


def make_omniglot(root: Path, layout=LAYOUT, drawers: int = 20) -> Path:
    """Extracted-folder layout ``root/images_{set}/<Alphabet>/characterNN/IIII_DD.png``."""
    char_id = 0
    for set_name, alphabet, count in layout:
        for c in range(1, count + 1):
            char_id += 1
            folder = root / f"images_{set_name}" / alphabet / f"character{c:02d}"
            folder.mkdir(parents=True)
            for d in range(1, drawers + 1):
                _drawing(char_id, d).save(folder / f"{char_id:04d}_{d:02d}.png")
    return root


def zip_sets(folders: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for set_name in ("background", "evaluation"):
        with zipfile.ZipFile(target / f"images_{set_name}.zip", "w") as zf:
            for path in sorted((folders / f"images_{set_name}").rglob("*.png")):
                zf.write(path, path.relative_to(folders).as_posix())
    return target


@pytest.fixture
def folders(tmp_path):
    return make_omniglot(tmp_path / "folders")


def test_zip_folder_and_torchvision_layouts_decode_identically(folders, tmp_path):
    zips = zip_sets(folders, tmp_path / "zips")
    tv = tmp_path / "tv"
    shutil.copytree(folders, tv / "omniglot-py")
    a = load_omniglot(folders, cache_dir=tmp_path / "c1")
    b = load_omniglot(zips, cache_dir=tmp_path / "c2")
    c = load_omniglot(tv, cache_dir=tmp_path / "c3")
    assert a.images.shape == (10, 20, 28, 28) and a.images.dtype == torch.uint8
    assert torch.equal(a.images, b.images) and torch.equal(a.images, c.images)
    assert a.characters == b.characters == c.characters
    assert a.characters[:4] == ("Alpha/character01", "Alpha/character02", "Alpha/character03",
                                "Beta/character01")
    assert a.sets == ("background",) * 7 + ("evaluation",) * 3
    assert a.alphabets[-1] == "Epsilon"


def test_strokes_are_bright_and_resized_with_antialiasing(folders, tmp_path):
    data = load_omniglot(folders, image_size=21, cache_dir=tmp_path / "c")  # 105 / 21 = 5: blocks stay exact
    img = data.images[0, 0].numpy()  # character 1, drawer 1: black block at rows 5..14, cols 5..14
    assert img[1:3, 1:3].min() > 200 and img[0, 0] < 50 and img[10:, 10:].max() == 0
    # every drawing differs (the block position encodes character and drawer)
    assert len(torch.unique(data.images.reshape(-1, 21 * 21), dim=0)) == 10 * 20


def test_cache_is_reused_outside_the_data_root_and_renewed_when_data_changes(folders, tmp_path, monkeypatch):
    zips = zip_sets(folders, tmp_path / "zips")
    before = sorted(p.name for p in zips.iterdir())
    monkeypatch.setenv("METANMT_CACHE", str(tmp_path / "cache"))
    first = load_omniglot(zips)
    cache_files = list((tmp_path / "cache" / "images").glob("omniglot-28px-*.pt"))
    assert len(cache_files) == 1
    assert sorted(p.name for p in zips.iterdir()) == before  # nothing written into the data root

    def no_decode(*_args, **_kwargs):
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(omniglot_module, "_decode_all", no_decode)
    again = load_omniglot(zips)
    assert torch.equal(first.images, again.images) and first.characters == again.characters

    # other data under the same path: a new key, so it is decoded again (and the check above fires)
    shutil.rmtree(zips)
    zip_sets(make_omniglot(tmp_path / "other", LAYOUT[:-1] + [("evaluation", "Zeta", 2)]), zips)
    with pytest.raises(AssertionError, match="decoded again"):
        load_omniglot(zips)


def test_missing_set_and_incomplete_character_are_clear_errors(folders, tmp_path):
    shutil.rmtree(folders / "images_evaluation")
    with pytest.raises(MetaNMTError, match="images_evaluation.zip or images_evaluation/"):
        load_omniglot(folders, cache_dir=tmp_path / "c")
    broken = make_omniglot(tmp_path / "broken")
    next((broken / "images_background" / "Beta" / "character02").glob("*_07.png")).unlink()
    with pytest.raises(MetaNMTError, match="Beta/character02.*expected 1..20"):
        load_omniglot(broken, cache_dir=tmp_path / "c")


def test_maml_protocol_splits_characters_and_rotates_every_split(folders, tmp_path):
    data = load_omniglot(folders, cache_dir=tmp_path / "c")
    pools = omniglot_splits(data, "maml", num_train=5, num_val=2)
    assert {k: p.num_classes for k, p in pools.items()} == {"train": 20, "val": 8, "test": 12}
    bases = {k: {n.split("@")[0] for n in p.names} for k, p in pools.items()}
    assert bases["train"].isdisjoint(bases["val"]) and bases["train"].isdisjoint(bases["test"])
    assert bases["val"].isdisjoint(bases["test"])
    assert set().union(*bases.values()) == set(data.characters)
    assert omniglot_splits(data, "maml", 5, 2)["test"].names == pools["test"].names  # fixed split
    with pytest.raises(MetaNMTError, match="more than 10 characters"):
        omniglot_splits(data, "maml", num_train=8, num_val=2)


def test_lake_protocol_is_background_versus_evaluation_without_rotations(folders, tmp_path):
    data = load_omniglot(folders, cache_dir=tmp_path / "c")
    pools = omniglot_splits(data, "lake", lake_val_alphabets=1)
    assert pools["test"].names == ("Delta/character01", "Delta/character02", "Epsilon/character01")
    train_alphabets = {n.split("/")[0] for n in pools["train"].names}
    val_alphabets = {n.split("/")[0] for n in pools["val"].names}
    assert len(val_alphabets) == 1 and train_alphabets | val_alphabets == {"Alpha", "Beta", "Gamma"}
    assert train_alphabets.isdisjoint(val_alphabets)
    assert pools["train"].num_classes + pools["val"].num_classes == 7
    assert torch.equal(pools["test"].images[:20, 0], data.images[7])  # unrotated, in id order
    with pytest.raises(MetaNMTError, match="unknown Omniglot protocol 'vinyals'"):
        omniglot_splits(data, "vinyals")


def test_real_omniglot_counts_and_protocol_sizes(tmp_path_factory):
    root = os.environ.get("METANMT_DATA_ROOT")
    if not root:
        pytest.skip("METANMT_DATA_ROOT not set: the real Omniglot (shared/data/omniglot) is not available")
    # the user's cache if set, else one decode shared by this session's tests
    cache = os.environ.get("METANMT_CACHE") or tmp_path_factory.getbasetemp() / "metanmt-cache"
    data = load_omniglot(Path(root) / "omniglot", cache_dir=cache)
    assert data.images.shape == (1623, 20, 28, 28)
    assert data.sets.count("background") == 964 and len(set(data.alphabets)) == 50
    maml = omniglot_splits(data, "maml")
    assert {k: p.num_classes for k, p in maml.items()} == {"train": 4400, "val": 400, "test": 1692}
    lake = omniglot_splits(data, "lake")
    assert lake["train"].num_classes + lake["val"].num_classes == 964 and lake["test"].num_classes == 659
    # strokes are a minority of bright pixels on a dark background
    assert 0.05 < float((data.images > 127).float().mean()) < 0.3
