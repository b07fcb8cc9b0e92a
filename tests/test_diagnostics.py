"""The source-gap diagnostic: zero for a model that cannot see its source, clearly positive once a model
learns a task where the source determines the target (a future change that cuts the encoder off fails)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metanmt.data.prepared import EncodedPairs
from metanmt.eval.diagnostics import MIN_GAP, held_out_sample, source_gap, verdict_line
from metanmt.models.seq2seq import EOS_ID, build_model
from metanmt.tasks.translation import batches_by_tokens

VOCAB = 40


def _mapping_pairs(n: int, seed: int) -> EncodedPairs:
    """Target = a fixed token-by-token mapping of the source: only the source tells which target."""
    rng = np.random.default_rng(seed)
    src = [list(rng.integers(3, 3 + 16, size=rng.integers(3, 7))) for _ in range(n)]
    tgt = [[t + 16 for t in s] + [EOS_ID] for s in src]
    return EncodedPairs.from_sequences([s + [EOS_ID] for s in src], tgt)


def _train(model, pairs: EncodedPairs, epochs: int) -> None:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    for _ in range(epochs):
        for batch in batches_by_tokens(pairs, 200, rng=rng):
            loss = model(**batch).loss
            opt.zero_grad()
            loss.backward()
            opt.step()


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_gap_grows_when_the_source_determines_the_target(norm):
    torch.manual_seed(0)
    model = build_model("tiny", VOCAB, dropout=0.0, norm=norm)
    held_out = _mapping_pairs(64, seed=1)
    before = source_gap(model, held_out)
    _train(model, _mapping_pairs(512, seed=0), epochs=6)
    after = source_gap(model, held_out)
    assert abs(before["gap"]) < 0.1  # an untrained model barely reacts to its source
    assert after["gap"] > 1.0, after  # a trained one is far more surprised by the wrong source
    assert after["gap"] == pytest.approx(after["shuffled_loss"] - after["loss"], abs=2e-4)


def test_gap_is_zero_when_the_encoder_is_cut_off():
    """Zeroed cross-attention outputs: the decoder cannot see the source, whatever it learned."""
    torch.manual_seed(0)
    model = build_model("tiny", VOCAB, dropout=0.0)
    _train(model, _mapping_pairs(256, seed=0), epochs=2)
    for layer in model.model.decoder.layers:
        torch.nn.init.zeros_(layer.encoder_attn.out_proj.weight)
        torch.nn.init.zeros_(layer.encoder_attn.out_proj.bias)
    assert abs(source_gap(model, _mapping_pairs(64, seed=1))["gap"]) < 1e-4


def test_gap_is_deterministic_and_restores_training_mode():
    model = build_model("tiny", VOCAB, dropout=0.1)
    model.train()
    pairs = _mapping_pairs(32, seed=2)
    assert source_gap(model, pairs) == source_gap(model, [pairs])
    assert model.training


def test_held_out_sample_takes_the_first_pairs_of_every_training_language():
    class Data:
        train_langs = ("de", "fr")

        def pairs(self, lang, split):
            return _mapping_pairs(10 if lang == "de" else 3, seed=0)

    sample = held_out_sample(Data(), per_language=5)
    assert [len(p) for p in sample] == [5, 3]


def test_verdict_names_the_threshold():
    assert "NOT learned" in verdict_line("MultiNMT", MIN_GAP - 0.01)
    assert "uses its source" in verdict_line("MultiNMT", MIN_GAP + 0.01)
