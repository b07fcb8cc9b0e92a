"""Batched beam-search translation of a list of sentences with a seq2seq model and its tokenizer.

Sentences are sorted by length so each batch pads little, translated in batches capped by a sentence
count and (optionally) a padded-token budget, and returned in the caller's order. Each sentence's output
budget grows with its own source (``max_len_a * source_tokens + max_len_b``, as in fairseq) and is
enforced per sentence, so a translation does not depend on which sentences share its batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import LogitsProcessor

from metanmt.errors import MetaNMTError
from metanmt.models import families
from metanmt.progress import progress_bar


def length_sorted_batches(
    lengths: Sequence[int], batch_size: int, max_tokens: int | None = None
) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (an out-of-memory shows at once).

    A batch holds at most ``batch_size`` sentences and, when ``max_tokens`` is given, at most
    ``max_tokens`` padded tokens (sentences x longest length); a sentence longer than ``max_tokens``
    still gets a batch of its own.
    """
    if batch_size < 1:
        raise MetaNMTError(f"batch size must be at least 1, got {batch_size}")
    if max_tokens is not None and max_tokens < 1:
        raise MetaNMTError(f"max tokens per batch must be at least 1, got {max_tokens}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    for i in order:
        if batches:
            batch = batches[-1]
            longest = lengths[batch[0]]  # descending order: the first is the longest
            fits_tokens = max_tokens is None or longest * (len(batch) + 1) <= max_tokens
            if len(batch) < batch_size and fits_tokens:
                batch.append(i)
                continue
        batches.append([i])
    return batches


class PerSentenceBudget(LogitsProcessor):
    """Force EOS when a sentence's hypotheses reach that sentence's own output budget.

    ``generate`` knows one ``max_new_tokens`` per batch (the largest budget); this ends each sentence the
    way HF's ``forced_eos_token_id`` ends a sentence translated alone with its budget as the limit.
    """

    def __init__(self, budgets: Sequence[int], num_beams: int, eos_id: int) -> None:
        # beam search lays rows out sentence-major: sentence i owns rows i*num_beams to (i+1)*num_beams-1
        self.budgets = torch.tensor(list(budgets)).repeat_interleave(num_beams)
        self.eos_id = eos_id

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.budgets.device != scores.device:
            self.budgets = self.budgets.to(scores.device)  # once, not at every step
        generated = input_ids.shape[-1] - 1  # the decoder start token is not output
        last = (self.budgets - 1) == generated
        if last.any():
            scores = scores.clone()
            scores[last] = float("-inf")
            scores[last, self.eos_id] = 0.0
        return scores


def translate(model, tokenizer, sentences: Sequence[str], *, lang: str | None = None, num_beams: int = 4,
              length_penalty: float = 0.6, batch_size: int = 64, max_tokens: int | None = None,
              max_len_a: float = 1.5, max_len_b: int = 10, progress: bool | None = True,
              desc: str = "translate") -> list[str]:
    """Translate ``sentences`` (in language ``lang``) with beam search; detokenised strings in input order.

    ``lang`` tags the sources for families that need it (mBART-50, M2M-100, NLLB, T5:
    metanmt.models.families); Marian models translate without it.
    ``length_penalty`` is HF's exponent on the hypothesis length (scores are divided by length**alpha).
    Outputs are single lines with single spaces. Empty or whitespace-only inputs translate to ``""``
    without touching the model. Runs on the model's device under ``torch.inference_mode`` and puts the
    model back in its previous train/eval mode. ``progress=None`` shows the bar only on a terminal.
    """
    if num_beams < 1:
        raise MetaNMTError(f"beam size must be at least 1, got {num_beams}")
    results = [""] * len(sentences)
    todo = [i for i, s in enumerate(sentences) if s.strip()]
    if not todo:
        return results
    search = _BeamSearch(model, tokenizer, num_beams, length_penalty, max_len_a, max_len_b)
    encoded, _ = families.encode(tokenizer, lang, [sentences[i] for i in todo],
                                 max_length=search.max_positions)
    was_training = model.training
    model.eval()
    try:
        bar = progress_bar(total=len(todo), desc=desc, unit="sent",
                           disable=None if progress is None else not progress)
        with torch.inference_mode(), bar:
            texts = _search_in_batches(search, encoded, batch_size, max_tokens, bar)
    finally:
        model.train(was_training)
    for i, text in zip(todo, texts, strict=True):
        results[i] = text
    return results


def _search_in_batches(search: _BeamSearch, encoded: list[list[int]], batch_size: int,
                       max_tokens: int | None, bar) -> list[str]:
    """The outputs of ``search`` for every encoded source, in their order, run over length-sorted batches."""
    texts = [""] * len(encoded)
    for batch in length_sorted_batches([len(ids) for ids in encoded], batch_size, max_tokens):
        for j, text in zip(batch, search([encoded[j] for j in batch]), strict=True):
            texts[j] = text
        bar.update(len(batch))
    return texts


class _BeamSearch:
    """``generate`` on one batch of encoded sources, each with its own output budget; single-line outputs."""

    def __init__(self, model, tokenizer, num_beams: int, length_penalty: float, max_len_a: float,
                 max_len_b: int) -> None:
        self.model, self.tokenizer, self.num_beams = model, tokenizer, num_beams
        self.max_len_a, self.max_len_b = max_len_a, max_len_b
        self.max_positions = families.max_positions(model.config)
        # beam-only options make HF warn under greedy search (num_beams=1). No early_stopping=True: it ends
        # the search once num_beams hypotheses are finished, so short low-scoring ones can beat the best beam
        # still running (tests/test_generate.py); HF's default stops only when no running beam can win.
        self.beam_kwargs = ({"num_beams": num_beams, "length_penalty": length_penalty} if num_beams > 1
                            else {"num_beams": 1})

    def __call__(self, encoded: list[list[int]]) -> list[str]:
        model = self.model
        device = next(model.parameters()).device
        inputs = self.tokenizer.pad({"input_ids": encoded}, return_tensors="pt")
        # the decoder start token takes position 0, so at most max_positions - 1 new tokens
        budgets = [max(1, min(int(self.max_len_a * len(ids) + self.max_len_b), self.max_positions - 1))
                   for ids in encoded]
        out = model.generate(
            input_ids=inputs["input_ids"].to(device), attention_mask=inputs["attention_mask"].to(device),
            # as max_length (the decoder start token + the budget): HF warns when a max_new_tokens meets
            # the max_length a checkpoint's generation_config.json carries
            max_length=max(budgets) + 1,
            logits_processor=[PerSentenceBudget(budgets, self.num_beams, model.config.eos_token_id)],
            do_sample=False, **self.beam_kwargs)
        return [" ".join(text.split()) for text in self.tokenizer.batch_decode(out, skip_special_tokens=True)]
