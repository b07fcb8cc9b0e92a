"""Translation tasks: episodes, token-budget batches, temperature task sampling, multilingual batches.

Each X->English language pair is one task. Batches are HF seq2seq dicts (``input_ids``,
``attention_mask``, ``labels`` padded with -100), so ``MarianMTModel(**batch).loss`` works.

Two budgets, two meanings:

* :func:`batches_by_tokens` (baseline and fine-tuning batches, evaluation loss) bounds the *padded*
  size, ``batch size x longest sequence`` over source and target, so memory per batch is bounded.
* :meth:`TranslationTask.episode` (meta-learning) bounds the *target (English) tokens* of the support
  and of the query set, EOS included, padding excluded, as Gu et al. (2018) count episode sizes; it
  draws its sentences from a window of similar lengths so that padding stays small.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from metanmt.data.prepared import EncodedPairs
from metanmt.data.sampling import temperature_probabilities
from metanmt.errors import MetaNMTError

if TYPE_CHECKING:
    import torch

    from metanmt.meta.episode import Episode

IGNORE_INDEX = -100  # label padding ignored by the cross-entropy of HF models


def target_tokens(batch: Mapping[str, torch.Tensor]) -> int:
    """Target tokens of a batch, label padding excluded: the unit of every budget and loss average."""
    return int((batch["labels"] != IGNORE_INDEX).sum())


def seq2seq_loss(forward, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The loss the core differentiates: HF seq2seq cross-entropy (labels padded with IGNORE_INDEX)."""
    return forward(**batch).loss


def collate(pairs: EncodedPairs, indices: Sequence[int] | np.ndarray,
            pad_id: int = 0) -> dict[str, torch.Tensor]:
    """The pairs at ``indices`` as a padded batch: ``input_ids``/``attention_mask`` [B, S], labels [B, T]."""
    import torch

    index = [int(i) for i in indices]
    if not index:
        raise MetaNMTError(f"{pairs.name or 'pairs'}: cannot collate an empty batch")
    src_len = int(max(pairs.src_lengths[i] for i in index))
    tgt_len = int(max(pairs.tgt_lengths[i] for i in index))
    input_ids = np.full((len(index), src_len), pad_id, dtype=np.int64)
    attention = np.zeros((len(index), src_len), dtype=np.int64)
    labels = np.full((len(index), tgt_len), IGNORE_INDEX, dtype=np.int64)
    for row, i in enumerate(index):
        src, tgt = pairs.src(i), pairs.tgt(i)
        input_ids[row, :len(src)] = src
        attention[row, :len(src)] = 1
        labels[row, :len(tgt)] = tgt
    return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention),
            "labels": torch.from_numpy(labels)}


def token_batches(lengths: np.ndarray, max_tokens: int, rng: np.random.Generator | None = None,
                  max_sentences: int | None = None) -> list[np.ndarray]:
    """Index groups whose padded size ``len(group) * max(lengths[group])`` is at most ``max_tokens``.

    Examples are sorted by length (ties broken at random when ``rng`` is given) and cut greedily, so each
    batch holds similar lengths. An example longer than ``max_tokens`` alone forms a batch of one (it is
    never dropped). With ``rng`` the batch order is shuffled.
    """
    if max_tokens < 1:
        raise MetaNMTError(f"max_tokens must be positive, not {max_tokens}")
    n = len(lengths)
    tie = rng.random(n) if rng is not None else np.arange(n)
    order = np.lexsort((tie, lengths))
    batches: list[np.ndarray] = []
    start, longest = 0, 0
    for pos in range(n):
        length = int(lengths[order[pos]])
        size = pos - start + 1
        if pos > start and (size * max(longest, length) > max_tokens
                            or (max_sentences is not None and size > max_sentences)):
            batches.append(order[start:pos])
            start, longest = pos, 0
        longest = max(longest, length)
    if start < n:
        batches.append(order[start:])
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def batches_by_tokens(pairs: EncodedPairs, max_tokens: int, rng: np.random.Generator | None = None,
                      pad_id: int = 0, max_sentences: int | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """One pass over ``pairs`` in length-bucketed batches within ``max_tokens`` padded tokens.

    The padded size of a batch is ``B * max(longest source, longest target)``. Every example appears
    exactly once; the order is deterministic without ``rng`` and shuffled with it.
    """
    lengths = np.maximum(pairs.src_lengths, pairs.tgt_lengths)
    for index in token_batches(lengths, max_tokens, rng, max_sentences):
        yield collate(pairs, index, pad_id)


class TranslationTask:
    """One language pair as a meta-learning task: episodes of a support and a query batch."""

    def __init__(self, name: str, pairs: EncodedPairs, pad_id: int = 0) -> None:
        if len(pairs) < 2:
            raise MetaNMTError(f"task {name!r} needs at least 2 pairs for disjoint support and query sets, "
                               f"it has {len(pairs)}")
        self.name = name
        self.pairs = pairs
        self.pad_id = pad_id
        # The pairs ordered by the longer side (what padding costs), with their cumulative target tokens:
        # episode windows are cut from this order.
        self._order = np.argsort(np.maximum(pairs.src_lengths, pairs.tgt_lengths), kind="stable")
        self._cumulative = np.concatenate([[0], np.cumsum(pairs.tgt_lengths[self._order])])

    def __repr__(self) -> str:
        return f"TranslationTask({self.name!r}, {len(self.pairs)} pairs)"

    def episode(self, rng: np.random.Generator, support_tokens: int, query_tokens: int) -> Episode:
        """A support and a query batch of disjoint sentences, each within its target-token budget.

        Budgets count target (English) tokens including EOS, not padding. The sentences come, in random order,
        from a window of the data ordered by the longer side of each pair, holding the two budgets' target
        tokens, so both batches have similar source and target lengths and little padding. The window starts
        at a uniformly random token of ``(-budgets, tokens)`` and is cut at both ends of the order, so every
        sentence is in a window equally often per token, the shortest and longest included; windows cut at
        an end hold fewer tokens (and the batches then take all of them, where a full window loses the
        sentences past the budgets). A ring that wrapped around put the longest pairs beside the shortest; a
        ring rising then falling halved the density of lengths, and its episodes cost 1.18x the padded
        positions (``benchmarks/episode_padding.py``). Each batch has at least one sentence, even if that
        sentence alone exceeds the budget.
        """
        from metanmt.meta.episode import Episode  # imported here: metanmt.meta loads torch

        if support_tokens < 1 or query_tokens < 1:
            raise MetaNMTError(f"episode budgets must be positive, got support={support_tokens}, "
                               f"query={query_tokens}")
        window = self._window(rng, support_tokens + query_tokens)
        window = window[rng.permutation(len(window))]
        lengths = self.pairs.tgt_lengths
        support, used = _prefix_within_budget(window, lengths, support_tokens)
        query, _ = _prefix_within_budget(window[used:], lengths, query_tokens)
        if not len(query):
            support, query = support[:-1], support[-1:]
        return Episode(support=collate(self.pairs, support, self.pad_id),
                       query=collate(self.pairs, query, self.pad_id), task=self.name)

    def _window(self, rng: np.random.Generator, need: int) -> np.ndarray:
        """The pairs holding the tokens ``[start, start + need)`` of the length order (at least two)."""
        n, cumulative = len(self.pairs), self._cumulative
        total = int(cumulative[n])
        if need >= total:
            return self._order
        start = int(rng.integers(1 - need, total))  # every window holds at least one token
        first = int(np.searchsorted(cumulative, max(start, 0), side="right")) - 1
        end = int(np.searchsorted(cumulative, min(start + need, total), side="left"))
        end = min(max(end, first + 2), n)
        return self._order[min(first, end - 2):end]


def _prefix_within_budget(candidates: np.ndarray, lengths: np.ndarray, budget: int) -> tuple[np.ndarray, int]:
    """The longest prefix of ``candidates`` within ``budget`` tokens (at least one), and its size."""
    if not len(candidates):
        return candidates, 0
    cumulative = np.cumsum(lengths[candidates])
    take = max(1, int(np.searchsorted(cumulative, budget, side="right")))
    return candidates[:take], take


class TaskSampler:
    """Draws task names with probability ∝ size^(1/temperature)."""

    def __init__(self, sizes: Mapping[str, int], temperature: float) -> None:
        self.probabilities = temperature_probabilities(sizes, temperature)
        self._names = list(self.probabilities)
        self._p = np.array([self.probabilities[name] for name in self._names])

    def sample(self, rng: np.random.Generator, k: int, replace: bool = True) -> list[str]:
        """``k`` task names. With replacement (the default) every draw follows :attr:`probabilities`
        exactly; without, ``k`` distinct tasks (at most as many as there are)."""
        if not replace and k > len(self._names):
            raise MetaNMTError(f"cannot draw {k} distinct tasks from {len(self._names)}")
        return [self._names[i] for i in rng.choice(len(self._names), size=k, replace=replace, p=self._p)]


def multilingual_batches(tasks: Mapping[str, EncodedPairs], temperature: float, max_tokens: int,
                         rng: np.random.Generator, pad_id: int = 0
                         ) -> Iterator[tuple[str, dict[str, torch.Tensor]]]:
    """Endless ``(language, batch)``: a language drawn by :class:`TaskSampler`, then its next batch.

    Each language walks through shuffled passes of :func:`batches_by_tokens`, so all its data is seen
    before any example repeats.
    """
    sampler = TaskSampler({lang: len(pairs) for lang, pairs in tasks.items()}, temperature)
    streams = {lang: _endless(pairs, max_tokens, rng, pad_id) for lang, pairs in tasks.items()}
    while True:
        (lang,) = sampler.sample(rng, 1)
        yield lang, next(streams[lang])


def _endless(pairs: EncodedPairs, max_tokens: int, rng: np.random.Generator, pad_id: int
             ) -> Iterator[dict[str, torch.Tensor]]:
    while True:
        yield from batches_by_tokens(pairs, max_tokens, rng, pad_id)

