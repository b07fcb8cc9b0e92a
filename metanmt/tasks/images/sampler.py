"""N-way K-shot episodes from a pool of labelled images, by tensor indexing (no per-image Python work).

A :class:`ClassPool` holds one split's images grouped by class; an :class:`EpisodeSampler` draws episodes
from it as :class:`~metanmt.meta.episode.Episode` objects whose support and query are ``(x, y)`` pairs with
float images in [0, 1] and labels remapped to ``0..N-1``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from metanmt.errors import MetaNMTError
from metanmt.meta.episode import Episode


@dataclass(frozen=True)
class ClassPool:
    """The images of one split, grouped by class: class ``c`` owns ``images[offsets[c]:offsets[c + 1]]``.

    ``images`` is uint8 ``[M, C, H, W]``; keeping the pool in uint8 is what makes a cached dataset compact.
    """

    images: torch.Tensor
    offsets: torch.Tensor
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 [M, C, H, W], got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        if self.offsets.dim() != 1 or len(self.offsets) != len(self.names) + 1:
            raise ValueError(f"offsets must have one entry per class plus one ({len(self.names) + 1}), "
                             f"got shape {tuple(self.offsets.shape)}")
        if int(self.offsets[0]) != 0 or int(self.offsets[-1]) != len(self.images) or bool(
                (self.offsets[1:] < self.offsets[:-1]).any()):
            raise ValueError("offsets must rise from 0 to the number of images")

    @classmethod
    def from_grouped(cls, images: torch.Tensor, names: list[str] | tuple[str, ...]) -> ClassPool:
        """A pool from ``[classes, per_class, C, H, W]`` (every class with the same number of images)."""
        num_classes, per_class = images.shape[:2]
        offsets = torch.arange(num_classes + 1, dtype=torch.long) * per_class
        return cls(images.reshape(num_classes * per_class, *images.shape[2:]), offsets, tuple(names))

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def counts(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    def with_rotations(self) -> ClassPool:
        """Four times the classes: each class rotated by 0, 90, 180 and 270 degrees is a class of its own.

        This is the Omniglot augmentation of Santoro et al. / Vinyals et al. / Finn et al. The rotations are
        stacked once here so that sampling stays pure indexing.
        """
        if self.images.shape[-1] != self.images.shape[-2]:
            raise ValueError(f"rotated classes need square images, got {tuple(self.images.shape[-2:])}")
        total = len(self.images)
        images = torch.cat([torch.rot90(self.images, k, dims=(-2, -1)) for k in range(4)])
        offsets = torch.cat([self.offsets[:-1] + k * total for k in range(4)] + [self.offsets[-1:] * 4])
        names = tuple(f"{name}@rot{90 * k}" for k in range(4) for name in self.names)
        return ClassPool(images, offsets, names)


class EpisodeSampler:
    """Draws N-way K-shot episodes with Q queries per class, deterministic under ``seed``.

    Each episode picks ``ways`` distinct classes and, per class, ``shots + queries`` distinct images; the
    first ``shots`` form the support set and the rest the query set, so support and query never overlap.
    Labels are the class's position in the episode (``0..ways-1``), in the order the classes were drawn.
    """

    def __init__(self, pool: ClassPool, ways: int, shots: int, queries: int, seed: int = 0,
                 split: str = "") -> None:
        if ways < 1 or shots < 1 or queries < 0:
            raise MetaNMTError(f"need ways >= 1, shots >= 1, queries >= 0; got ways={ways}, shots={shots}, "
                               f"queries={queries}")
        if ways > pool.num_classes:
            raise MetaNMTError(f"{ways}-way episodes need {ways} classes but split {split or '?'!r} has only "
                               f"{pool.num_classes}")
        need = shots + queries
        counts = pool.counts
        smallest = int(counts.argmin())
        if need > int(counts[smallest]):
            raise MetaNMTError(
                f"{shots} shots + {queries} queries = {need} images per class, but class "
                f"{pool.names[smallest]!r} of split {split or '?'!r} has only {int(counts[smallest])}")
        self.pool, self.ways, self.shots, self.queries, self.split = pool, ways, shots, queries, split
        self._uniform = bool((counts == counts[0]).all())
        self._max_count = int(counts.max())
        self.generator = torch.Generator().manual_seed(seed)
        self._support_y = torch.arange(ways).repeat_interleave(shots)
        self._query_y = torch.arange(ways).repeat_interleave(queries)

    def sample(self) -> Episode:
        """One episode: support ``(x [N*K, C, H, W], y [N*K])`` and query ``(x [N*Q, ...], y [N*Q])``."""
        pool, g, need = self.pool, self.generator, self.shots + self.queries
        classes = torch.randperm(pool.num_classes, generator=g)[: self.ways]
        # A random key per image; sorting the keys gives a uniform random subset of each class's images.
        keys = torch.rand(self.ways, self._max_count, generator=g)
        if not self._uniform:
            keys[torch.arange(self._max_count) >= pool.counts[classes].unsqueeze(1)] = 2.0  # never picked
        picks = keys.argsort(dim=1)[:, :need]
        x = pool.images[pool.offsets[classes].unsqueeze(1) + picks].float().div_(255)  # [N, K+Q, C, H, W]
        support = x[:, : self.shots].reshape(-1, *x.shape[2:])
        query = x[:, self.shots:].reshape(-1, *x.shape[2:])
        task = f"{self.split}:" + ",".join(pool.names[c] for c in classes.tolist())
        return Episode(support=(support, self._support_y.clone()), query=(query, self._query_y.clone()),
                       task=task)

    def sample_batch(self, size: int) -> list[Episode]:
        return [self.sample() for _ in range(size)]

    def __iter__(self) -> Iterator[Episode]:
        while True:
            yield self.sample()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The random state, so a resumed run draws the episodes an uninterrupted run would have drawn."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])
