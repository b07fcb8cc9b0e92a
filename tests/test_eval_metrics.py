"""sacrebleu scores and the paired bootstrap test as metanmt wraps them."""

from __future__ import annotations

import math
import random

import pytest

from metanmt.eval.metrics import corpus_scores, paired_bootstrap

WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "in", "park", "mat", "house", "big", "small", "red",
         "green", "blue", "old", "new"]


def noisy(refs: list[str], rate: float, seed: int) -> list[str]:
    """Replace each word with probability ``rate`` by a random one: a system of controlled quality."""
    rng = random.Random(seed)
    return [" ".join(w if rng.random() >= rate else rng.choice(WORDS) for w in r.split()) for r in refs]


@pytest.fixture(scope="module")
def refs() -> list[str]:
    rng = random.Random(0)
    return [" ".join(rng.choices(WORDS, k=rng.randint(5, 12))) for _ in range(150)]


def test_perfect_output_scores_100_with_signatures(refs):
    scores = corpus_scores(refs, refs)
    assert scores.bleu == pytest.approx(100.0)
    assert scores.chrf == pytest.approx(100.0)
    assert "nrefs:1" in scores.bleu_signature and "tok:13a" in scores.bleu_signature
    assert "smooth:exp" in scores.bleu_signature
    assert "nc:6" in scores.chrf_signature and "nw:0" in scores.chrf_signature


def test_bleu_matches_hand_computation():
    # every n-gram precision is 1; only the brevity penalty exp(1 - 7/6) applies
    scores = corpus_scores(["the cat sat on the mat"], ["the cat sat on the mat today"])
    assert scores.bleu == pytest.approx(100 * math.exp(1 - 7 / 6), abs=1e-6)
    assert 0 < scores.chrf < 100


def test_worse_output_scores_lower(refs):
    good, bad = corpus_scores(noisy(refs, 0.1, 1), refs), corpus_scores(noisy(refs, 0.5, 1), refs)
    assert 0 < bad.bleu < good.bleu < 100
    assert 0 < bad.chrf < good.chrf < 100


def test_chrfpp_and_ter_with_signatures(refs):
    perfect = corpus_scores(refs, refs)
    assert (perfect.chrfpp, perfect.ter) == (pytest.approx(100.0), 0.0)
    assert "nw:2" in perfect.chrfpp_signature and "nrefs:1" in perfect.ter_signature
    assert "tok:tercom" in perfect.ter_signature
    # one substitution in six words: TER 1/6; chrF++ also counts word uni- and bigrams, so it differs from
    # chrF
    one_off = corpus_scores(["the cat sat on a mat"], ["the cat sat on the mat"])
    assert one_off.ter == pytest.approx(100 / 6)
    assert one_off.chrf == pytest.approx(65.9797,
                                         abs=1e-4) and one_off.chrfpp == pytest.approx(67.4444, abs=1e-4)
    good, bad = corpus_scores(noisy(refs, 0.1, 1), refs), corpus_scores(noisy(refs, 0.5, 1), refs)
    assert 0 < good.ter < bad.ter and bad.chrfpp < good.chrfpp


def test_multiple_references_take_the_best_match():
    hyps = ["a dog runs in the park", "good morning"]
    first, second = ["the dog runs in a park", "hello"], ["a dog runs in the park", "good morning"]
    both = corpus_scores(hyps, first, [second])
    assert (both.bleu, both.chrf, both.ter) == (pytest.approx(100.0), pytest.approx(100.0), 0.0)
    assert corpus_scores(hyps, first).bleu < 50
    assert all("nrefs:2" in s for s in (both.bleu_signature, both.chrf_signature, both.chrfpp_signature,
                                         both.ter_signature))
    with pytest.raises(ValueError, match="reference set 2 has 1 lines but there are 2 references"):
        corpus_scores(hyps, first, [second[:1]])


@pytest.mark.parametrize("hyps,refs_,message", [
    (["a"], ["a", "b"], "hypotheses has 1 lines but there are 2 references"),
    ([], [], "no references"),
])
def test_length_mismatch_and_empty_corpus_are_errors(hyps, refs_, message):
    with pytest.raises(ValueError, match=message):
        corpus_scores(hyps, refs_)


def test_paired_bootstrap_detects_a_clearly_better_system(refs, monkeypatch):
    monkeypatch.delenv("SACREBLEU_SEED", raising=False)
    baseline, system = noisy(refs, 0.4, 1), noisy(refs, 0.05, 2)
    test = paired_bootstrap(baseline, system, refs)
    assert test.system_bleu > test.baseline_bleu + 20
    assert test.bleu_p < 0.01 and test.chrf_p < 0.01
    assert test.system_bleu == pytest.approx(corpus_scores(system, refs).bleu)
    assert test.baseline_chrf == pytest.approx(corpus_scores(baseline, refs).chrf)
    assert test.n_samples == 1000
    assert "bs:1000" in test.signature and "seed:12345" in test.signature


def test_paired_bootstrap_similar_systems_not_significant_and_reproducible(refs, monkeypatch):
    monkeypatch.delenv("SACREBLEU_SEED", raising=False)
    a, b = noisy(refs, 0.3, 1), noisy(refs, 0.3, 2)
    first = paired_bootstrap(a, b, refs, n_samples=300)
    assert first.bleu_p > 0.05 and first.chrf_p > 0.05
    assert paired_bootstrap(a, b, refs, n_samples=300) == first
    assert first.n_samples == 300 and "bs:300" in first.signature


def test_identical_outputs_have_p_value_one(refs):
    a = noisy(refs, 0.3, 1)
    test = paired_bootstrap(a, list(a), refs, n_samples=100)
    assert test.bleu_p == 1.0 and test.chrf_p == 1.0
    assert test.system_bleu == test.baseline_bleu


def test_paired_bootstrap_rejects_misaligned_outputs(refs):
    with pytest.raises(ValueError, match="system has 149 lines"):
        paired_bootstrap(refs, refs[:-1], refs)
