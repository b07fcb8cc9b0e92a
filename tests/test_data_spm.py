"""The shared SentencePiece model: temperature sampling of its training text, fixed ids, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from metanmt.data.config import SpmConfig
from metanmt.data.sampling import temperature_probabilities
from metanmt.data.spm import encode, sample_training_text, train_spm


def corpus(seed: int, n: int, alphabet: str) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join("".join(rng.choice(list(alphabet), size=rng.integers(2, 8))) for _ in range(6))
            for _ in range(n)]


def test_temperature_sampling_of_training_text():
    texts = {"de": corpus(0, 4000, "abcdefgh"), "lv": corpus(1, 250, "āčēģīķļ"),
             "en": corpus(2, 1000, "xyzw")}
    for temperature in (1.0, 5.0):
        sample, counts = sample_training_text(texts, 9000, temperature, seed=1)
        p = temperature_probabilities({k: len(v) for k, v in texts.items()}, temperature)
        assert counts == {k: round(9000 * p[k]) for k in texts}
        assert len(sample) == sum(counts.values())
    # T=5 gives lv (250 sentences) more than its size: every sentence repeated, then a random rest
    sample, counts = sample_training_text(texts, 9000, 5.0, seed=1)
    lv = set(texts["lv"])
    drawn = [s for s in sample if s in lv]
    assert counts["lv"] > 250 and len(drawn) == counts["lv"] and set(drawn) == lv
    assert sample == sample_training_text(texts, 9000, 5.0, seed=1)[0]
    assert sample != sample_training_text(texts, 9000, 5.0, seed=2)[0]


def test_spm_ids_and_byte_identical_retraining(tmp_path):
    sentences = corpus(0, 1500, "abcdefghijklmnop") + corpus(1, 500, "абвгдежз")
    cfg = SpmConfig(vocab_size=400, threads=2)
    first = train_spm(sentences, cfg, 1, tmp_path / "a.model")
    second = train_spm(sentences, cfg, 1, tmp_path / "b.model")
    assert first.read_bytes() == second.read_bytes()
    assert (tmp_path / "a.vocab").read_text(encoding="utf-8").splitlines()[:3] == ["<pad>\t0", "</s>\t0",
                                                                                   "<unk>\t0"]
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(first))
    assert (sp.pad_id(), sp.eos_id(), sp.unk_id(), sp.bos_id()) == (0, 1, 2, -1)
    ids, offsets = encode(sp, ["abc def", "где", "漢字"])  # unseen characters fall back to bytes
    assert ids.dtype == np.int32 and offsets.tolist()[0] == 0 and len(offsets) == 4
    rows = [ids[offsets[i]:offsets[i + 1]] for i in range(3)]
    assert all(row[-1] == 1 for row in rows) and 2 not in ids
    assert sp.decode(rows[2][:-1].tolist()) == "漢字"


def test_spm_failure_is_a_clear_error(tmp_path):
    from metanmt.errors import MetaNMTError

    with pytest.raises(MetaNMTError, match="SentencePiece training failed \\(data.spm: vocab_size 50"):
        train_spm(corpus(0, 200, "abcdefghijklmnop"), SpmConfig(vocab_size=50), 1, tmp_path / "x.model")
