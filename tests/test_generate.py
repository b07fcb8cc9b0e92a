"""Beam-search translation, `evaluate_model` and the evaluate/translate commands on a tiny untrained model.

An untrained model translates badly, so these tests check mechanics (order, batching, lengths, files,
determinism), never quality.
"""

from __future__ import annotations

import io
import json
import sys

import pytest
import torch

from metanmt.cli import main
from metanmt.errors import MetaNMTError
from metanmt.eval import evaluate as evaluate_mod
from metanmt.eval.evaluate import RESULT_KEYS, Decoding, companion_paths, evaluate_model
from metanmt.eval.generate import length_sorted_batches, translate
from metanmt.eval.metrics import corpus_scores
from metanmt.models.seq2seq import save_checkpoint

CORPUS = [
    "the cat sat on the mat", "a dog runs in the park", "hello world", "ein Hund läuft im Park",
    "die Katze sitzt auf der Matte", "good morning to you", "guten Morgen", "where is the station",
    "wo ist der Bahnhof", "the weather is nice today", "das Wetter ist heute schön",
]
SOURCES = ["hello world", "", "die Katze sitzt auf der Matte und schläft", "a dog", "  ",
           "wo ist der Bahnhof", "guten Morgen", "Hund läuft im Park"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_marian):
    """A tiny MarianMT with weights drawn at std 1, so that (unlike the default init) its output depends on
    the input, and dropout on, so that a forgotten ``model.eval()`` would show as non-determinism."""
    model, tokenizer = tiny_marian(tmp_path_factory.mktemp("tiny"), CORPUS * 5, 40, dropout=0.1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1 and "embed_positions" not in name:  # positions are sinusoidal, rebuilt on load
                p.normal_(0.0, 1.0)
    return model, tokenizer


def test_length_sorted_batches_cover_every_index_once_within_limits():
    lengths = [3, 10, 1, 7, 7, 2, 30]
    batches = length_sorted_batches(lengths, batch_size=2)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert [i for b in batches for i in b] == [6, 1, 3, 4, 0, 5, 2]  # longest first, ties by index
    assert all(len(b) <= 2 for b in batches)
    batches = length_sorted_batches(lengths, batch_size=100, max_tokens=14)
    assert batches[0] == [6]  # longer than the budget: alone
    assert all(len(b) * lengths[b[0]] <= 14 for b in batches[1:])
    assert batches[1:] == [[1], [3, 4], [0, 5, 2]]
    with pytest.raises(MetaNMTError, match="batch size"):
        length_sorted_batches(lengths, batch_size=0)


def test_translate_restores_order_whatever_the_batching(tiny):
    model, tokenizer = tiny
    model.train()
    alone = [translate(model, tokenizer, [s], progress=False)[0] for s in SOURCES]
    # each sentence keeps its own output budget, so sharing a batch with longer sentences changes nothing
    assert translate(model, tokenizer, SOURCES, batch_size=3, progress=False) == alone
    assert translate(model, tokenizer, SOURCES, batch_size=64, max_tokens=25, progress=False) == alone
    assert alone[1] == "" and alone[4] == ""
    non_empty = [t for s, t in zip(SOURCES, alone, strict=True) if s.strip()]
    assert all("\n" not in t and "  " not in t and t == t.strip() for t in non_empty)
    assert len(set(non_empty)) >= 4  # outputs really depend on the input, so order is tested
    assert model.training  # the caller's mode is restored
    # dropout is on in train mode: equal outputs mean translate switched to eval
    greedy = translate(model, tokenizer, SOURCES, num_beams=1, progress=False)
    assert greedy == translate(model, tokenizer, SOURCES, num_beams=1, batch_size=2, progress=False)


def test_output_budget_follows_each_source_length_and_the_model_limit(tiny, monkeypatch):
    model, tokenizer = tiny
    calls = []
    original = model.generate

    def spy(**kwargs):
        out = original(**kwargs)
        (budget,) = kwargs["logits_processor"]
        # max_length counts the decoder start token: the budget of new tokens is one less
        calls.append((tuple(kwargs["input_ids"].shape), kwargs["max_length"] - 1, budget.budgets.tolist(),
                      out.tolist()))
        return out

    monkeypatch.setattr(model, "generate", spy)
    long = " ".join(["hello world"] * 80)  # more pieces than the model has positions
    translate(model, tokenizer, ["guten Morgen", long], num_beams=2, max_len_a=1.5, max_len_b=3,
              progress=False)
    n_short = len(tokenizer(["guten Morgen"])["input_ids"][0])
    max_positions = model.config.max_position_embeddings
    ((shape, max_new, budgets, out),) = calls
    assert shape == (2, max_positions)  # truncated to the model's positions, longest first
    short_budget = int(1.5 * n_short + 3)
    assert max_new == max_positions - 1 and budgets == [max_positions - 1] * 2 + [short_budget] * 2
    short = out[1][1:]  # after the decoder start token; finished beams are padded with EOS
    assert tokenizer.eos_token_id in short and short.index(tokenizer.eos_token_id) + 1 <= short_budget
    with pytest.raises(MetaNMTError, match="beam size"):
        translate(model, tokenizer, ["a"], num_beams=0)


@pytest.fixture(scope="module")
def checkpoint(tiny, tmp_path_factory):
    model, tokenizer = tiny
    info = {"system": "metanmt", "lang": "fi", "tokens": 4000, "draw": 1, "data_dir": "/nonexistent/data"}
    return save_checkpoint(model, tokenizer, tmp_path_factory.mktemp("ckpt") / "model", info)


REFS = ["hello world", "the cat sleeps on the mat", "a dog", "where is the station", "good morning",
        "a dog runs in the park"]
SRCS = ["hello world", "die Katze schläft auf der Matte", "ein Hund", "wo ist der Bahnhof", "guten Morgen",
        "ein Hund läuft im Park"]


@pytest.fixture
def fake_split(monkeypatch):
    """Serve SRCS/REFS as the data of fi/test and record which data directory was asked for."""
    asked = []

    def load_split(data_dir, lang, split, max_sentences=None):
        from metanmt.data.prepared import EncodedPairs

        asked.append((str(data_dir), lang, split))
        n = len(SRCS) if max_sentences is None else min(max_sentences, len(SRCS))
        ids = [[3 + i, 4, 1] for i in range(n)]  # the source-gap diagnostic scores these ids
        return EncodedPairs.from_sequences(ids, ids, list(SRCS[:n]), list(REFS[:n])), "test"

    monkeypatch.setattr(evaluate_mod, "load_split", load_split)
    return asked


def test_evaluate_model_writes_result_hypotheses_and_references(checkpoint, tmp_path, fake_split):
    out = tmp_path / "eval" / "fi.test.json"
    result = evaluate_model(checkpoint, "fi", "test", out, decoding=Decoding(2, 1.0, batch_size=4),
                            progress=False)
    assert fake_split == [("/nonexistent/data", "fi", "test")]  # data_dir from metanmt.json
    assert json.loads(out.read_text()) == result
    assert set(RESULT_KEYS) <= set(result)
    hyp_path, ref_path = companion_paths(out)
    assert (result["hypotheses"], result["references"]) == ("fi.test.hyp.txt", "fi.test.ref.txt")
    hyps = hyp_path.read_text(encoding="utf-8").splitlines()
    assert ref_path.read_text(encoding="utf-8").splitlines() == REFS
    assert len(hyps) == result["num_sentences"] == len(SRCS)
    scores = corpus_scores(hyps, REFS)
    assert (result["bleu"], result["chrf"], result["chrfpp"], result["ter"]) == (
        scores.bleu, scores.chrf, scores.chrfpp, scores.ter)
    assert result["bleu_signature"] == scores.bleu_signature
    assert result["ter_signature"] == scores.ter_signature
    assert result["chrfpp_signature"] == scores.chrfpp_signature and "more_references" not in result
    assert (result["beam"], result["length_penalty"], result["split"]) == (2, 1.0, "test")
    assert result["model_info"]["draw"] == 1 and result["seconds"] > 0
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "fi.test.hyp.txt", "fi.test.json", "fi.test.ref.txt", "fi.test.src.txt"]  # no temporary files left
    assert (out.parent / result["sources"]).read_text(encoding="utf-8").splitlines() == SRCS
    assert result["source_gap"]["gap"] == pytest.approx(
        result["source_gap"]["shuffled_loss"] - result["source_gap"]["loss"], abs=2e-4)

    again = evaluate_model(checkpoint, "fi", "test", tmp_path / "b.json", data_dir=tmp_path,
                           decoding=Decoding(2, 1.0), max_sentences=3, progress=False)
    assert fake_split[-1] == (str(tmp_path), "fi", "test")
    assert again["num_sentences"] == 3
    assert (tmp_path / "b.hyp.txt").read_text(encoding="utf-8").splitlines() == hyps[:3]  # deterministic


def test_evaluate_model_needs_a_data_dir(tiny, tmp_path, fake_split):
    model, tokenizer = tiny
    ckpt = save_checkpoint(model, tokenizer, tmp_path / "nodata", {"system": "multinmt", "tokens": 0})
    with pytest.raises(MetaNMTError, match="records no data_dir"):
        evaluate_model(ckpt, "fi", "test", tmp_path / "x.json", progress=False)
    assert not (tmp_path / "x.json").exists() and fake_split == []


def test_evaluate_model_reports_a_missing_data_dir(checkpoint, tmp_path):
    with pytest.raises(MetaNMTError, match="holds no prepared data"):
        evaluate_model(checkpoint, "fi", "test", tmp_path / "x.json", data_dir=tmp_path / "nope",
                       progress=False)
    assert list(tmp_path.iterdir()) == []


def test_evaluate_command(checkpoint, tmp_path, fake_split, capsys):
    out = tmp_path / "r.json"
    assert main(["evaluate", "--model", str(checkpoint), "--lang", "fi", "--output", str(out), "--beam", "1",
                 "--max-sentences", "2"]) == 0
    result = json.loads(out.read_text())
    assert (result["beam"], result["num_sentences"]) == (1, 2)
    assert f"BLEU = {result['bleu']:.2f}" in capsys.readouterr().out
    assert main(["evaluate", "--model", str(tmp_path / "missing"), "--lang", "fi", "--output", str(out)]) == 2
    assert "not a metanmt/HF checkpoint" in capsys.readouterr().err


def run_translate(monkeypatch, capsysbinary, stdin: bytes, *args: str) -> tuple[int, bytes, bytes]:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    code = main(["translate", *args])
    captured = capsysbinary.readouterr()
    return code, captured.out, captured.err


def test_translate_command_keeps_lines_aligned(checkpoint, tiny, monkeypatch, capsysbinary):
    model, tokenizer = tiny
    lines = ["hello world", "", "wo ist der Bahnhof", "guten Morgen\r"]
    code, out, err = run_translate(monkeypatch, capsysbinary, "\n".join(lines).encode() + b"\n",
                                   "--model", str(checkpoint), "--lang", "de", "--beam", "2")
    assert code == 0
    got = out.decode("utf-8").split("\n")
    assert got[-1] == "" and len(got) == len(lines) + 1
    expected = translate(model, tokenizer, [s.rstrip("\r") for s in lines], num_beams=2, progress=False)
    assert got[:-1] == expected and got[1] == ""
    assert b"fine-tuned on 'fi'" in err  # informational: the model was fine-tuned on another language

    model_args = ("--model", str(checkpoint))
    code, _, err = run_translate(monkeypatch, capsysbinary, b"x\n", *model_args, "--lang", "x1!")
    assert code == 2 and b"--lang 'x1!' is not a language tag" in err
    code, _, err = run_translate(monkeypatch, capsysbinary, b"x\n", *model_args, "--lang", "en")
    assert code == 2 and b"English is the target side" in err
    code, out, _ = run_translate(monkeypatch, capsysbinary, b"hello world\n", *model_args, "--lang", "ast",
                                 "--beam", "2")
    assert code == 0 and out.decode() == expected[0] + "\n"  # any language tag: the model does not look it up
    code, _, err = run_translate(monkeypatch, capsysbinary, b"\xff\n", *model_args, "--lang", "fi")
    assert code == 2 and b"not UTF-8" in err


def test_a_model_trained_on_a_few_pairs_translates_them_exactly(tmp_path, tiny_marian):
    """Decoder start, EOS handling and detokenisation are right: a memorised set comes back verbatim."""
    src = ["die Katze sitzt auf der Matte", "ein Hund läuft im Park", "guten Morgen", "wo ist der Bahnhof",
           "das Wetter ist heute schön", "ich habe Hunger", "das Haus ist groß", "wir gehen nach Hause"]
    tgt = ["the cat sits on the mat", "a dog runs in the park", "good morning", "where is the station",
           "the weather is nice today", "I am hungry", "the house is big", "we are going home"]
    model, tokenizer = tiny_marian(tmp_path, (src + tgt) * 5, 70)
    batch = tokenizer(src, text_target=tgt, padding=True, return_tensors="pt")
    batch["labels"][batch["labels"] == tokenizer.pad_token_id] = -100
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    for beam in (1, 4):
        hyps = translate(model, tokenizer, src, num_beams=beam, batch_size=3, progress=False)
        assert hyps == tgt
        assert corpus_scores(hyps, tgt).bleu == pytest.approx(100.0)
