"""Episode sampler invariants: labels 0..N-1, disjoint support/query, determinism, rotations, clear errors."""

from __future__ import annotations

import pytest
import torch

from metanmt.errors import MetaNMTError
from metanmt.meta.episode import Episode
from metanmt.tasks.images.sampler import ClassPool, EpisodeSampler


def id_pool(counts: list[int]) -> tuple[ClassPool, torch.Tensor]:
    """A pool whose image ``i`` is filled with the value ``i``, and the class of every image."""
    total = sum(counts)
    assert total <= 256
    images = torch.arange(total, dtype=torch.uint8).view(-1, 1, 1, 1).expand(total, 1, 3, 3).contiguous()
    offsets = torch.tensor([0] + counts).cumsum(0)
    owner = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    return ClassPool(images, offsets, tuple(f"class{i}" for i in range(len(counts)))), owner


def item_ids(x: torch.Tensor) -> torch.Tensor:
    return (x[:, 0, 0, 0] * 255).round().long()


@pytest.mark.parametrize("counts", [[10] * 12, [6, 9, 7, 12, 8, 6, 10, 11, 7, 9, 6, 8]])
def test_episodes_have_remapped_labels_one_class_each_and_no_overlap(counts):
    pool, owner = id_pool(counts)
    sampler = EpisodeSampler(pool, ways=5, shots=2, queries=3, seed=3, split="train")
    seen_classes = set()
    for _ in range(200):
        ep = sampler.sample()
        assert isinstance(ep, Episode) and ep.task.startswith("train:class")
        (sx, sy), (qx, qy) = ep.support, ep.query
        assert sx.shape == (10, 1, 3, 3) and qx.shape == (15, 1, 3, 3) and sx.dtype == torch.float32
        assert torch.equal(sy, torch.arange(5).repeat_interleave(2))
        assert torch.equal(qy, torch.arange(5).repeat_interleave(3))
        s_items, q_items = item_ids(sx), item_ids(qx)
        assert len(set(s_items.tolist() + q_items.tolist())) == 25  # no repeats, no support/query overlap
        classes = [int(owner[s_items[sy == j][0]]) for j in range(5)]
        assert len(set(classes)) == 5  # five distinct classes
        for j, c in enumerate(classes):  # every image of label j belongs to class c
            assert (owner[s_items[sy == j]] == c).all() and (owner[q_items[qy == j]] == c).all()
        assert ep.task == "train:" + ",".join(f"class{c}" for c in classes)
        seen_classes.update(classes)
    assert seen_classes == set(range(12))


def test_uneven_classes_sample_all_their_images_uniformly():
    pool, _owner = id_pool([3, 40])
    sampler = EpisodeSampler(pool, ways=2, shots=1, queries=2, seed=0)
    hits = torch.zeros(43)
    for _ in range(600):
        ep = sampler.sample()
        for x in (ep.support[0], ep.query[0]):
            hits[item_ids(x)] += 1
    assert (hits[:3] == 600).all()  # the small class gives all 3 images every time
    big = hits[3:]
    assert big.min() > 0 and big.sum() == 1800 and big.max() / big.min() < 3  # ~45 each


def test_same_seed_same_episodes_and_state_dict_resumes():
    pool, _ = id_pool([10] * 12)
    a, b = EpisodeSampler(pool, 4, 1, 2, seed=7), EpisodeSampler(pool, 4, 1, 2, seed=7)
    for _ in range(5):
        ea, eb = a.sample(), b.sample()
        assert torch.equal(ea.support[0], eb.support[0]) and torch.equal(ea.query[0], eb.query[0])
    other = EpisodeSampler(pool, 4, 1, 2, seed=8)
    a2 = EpisodeSampler(pool, 4, 1, 2, seed=7)
    assert any(not torch.equal(a2.sample().support[0], other.sample().support[0]) for _ in range(5))
    state = a.state_dict()
    expected = a.sample_batch(3)
    resumed = EpisodeSampler(pool, 4, 1, 2, seed=999)
    resumed.load_state_dict(state)
    for e, r in zip(expected, resumed.sample_batch(3)):
        assert torch.equal(e.support[0], r.support[0]) and e.task == r.task


def test_rotations_are_distinct_classes():
    images = torch.randint(0, 256, (2, 3, 1, 5, 5), dtype=torch.uint8)  # 2 classes, 3 images each
    pool = ClassPool.from_grouped(images, ["a", "b"]).with_rotations()
    assert pool.num_classes == 8 and len(set(pool.names)) == 8
    assert pool.names[:4] == ("a@rot0", "b@rot0", "a@rot90", "b@rot90")
    for k in range(4):
        for c in range(2):
            cls = k * 2 + c
            got = pool.images[pool.offsets[cls]:pool.offsets[cls + 1]]
            assert torch.equal(got, torch.rot90(images[c], k, dims=(-2, -1)))
    # the four rotations of one character can fill a 4-way episode, with four different labels
    single = ClassPool.from_grouped(images[:1], ["a"]).with_rotations()
    ep = EpisodeSampler(single, ways=4, shots=1, queries=1, seed=0).sample()
    sx, sy = ep.support
    assert sorted(ep.task.split(":")[1].split(",")) == ["a@rot0", "a@rot180", "a@rot270", "a@rot90"]
    assert len(torch.unique(sx.reshape(4, -1), dim=0)) == 4 and torch.equal(sy, torch.arange(4))
    with pytest.raises(ValueError, match="square"):
        ClassPool.from_grouped(torch.zeros(1, 2, 1, 4, 5, dtype=torch.uint8), ["x"]).with_rotations()


def test_impossible_episodes_are_clear_errors():
    pool, _ = id_pool([10, 10, 4, 10])
    with pytest.raises(MetaNMTError, match="5-way episodes need 5 classes but split 'test' has only 4"):
        EpisodeSampler(pool, ways=5, shots=1, queries=1, split="test")
    too_many = r"2 shots \+ 3 queries = 5 images per class, but class 'class2' of split 'val' has only 4"
    with pytest.raises(MetaNMTError, match=too_many):
        EpisodeSampler(pool, ways=2, shots=2, queries=3, split="val")
    with pytest.raises(MetaNMTError, match="shots >= 1"):
        EpisodeSampler(pool, ways=2, shots=0, queries=3)


def test_pool_validates_its_layout():
    with pytest.raises(ValueError, match="uint8"):
        ClassPool(torch.zeros(4, 1, 2, 2), torch.tensor([0, 4]), ("a",))
    with pytest.raises(ValueError, match="offsets must rise"):
        ClassPool(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 3]), ("a",))
    with pytest.raises(ValueError, match="one entry per class"):
        ClassPool(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 2, 4]), ("a",))
