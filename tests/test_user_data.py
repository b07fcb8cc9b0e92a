"""Bring your own language: fine-tune and evaluate from the user's files, on a language the registry and the
prepared data never saw (Asturian, 'ast'), with a tiny checkpoint.

Every bad input is a clear error (exit 2, the file or value named) that leaves the output directory alone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import sentencepiece as spm
import torch
import yaml

from metanmt.cli import main
from metanmt.data.languages import language_tag
from metanmt.data.prepare import english_token_counts
from metanmt.data.user_pairs import (
    DEV_SHARE,
    PairSource,
    UserDataRequest,
    count_overlap,
    draw_subset,
    encode_pairs,
    hold_out,
    load_user_data,
    pairs_sha256,
)
from metanmt.errors import MetaNMTError
from metanmt.models.seq2seq import EOS_ID, load_checkpoint, save_checkpoint

AST = ["el gatu ta na casa", "el perru corre nel parque", "bonos díes", "¿ónde ta la estación?",
       "güei fai bon tiempu", "tengo fame", "la casa ye grande", "vamos pa casa", "el neñu llee un llibru",
       "la muyer canta", "el gatu durme", "el perru come", "ye tarde", "graces", "hai agua", "el mar ye azul",
       "la ciudá ye grande", "el llibru ye nuevu", "la neña xuega", "el sol brilla", "llueve muncho",
       "el pan ye bonu", "el tren llega", "la puerta ta abierta"]
EN = ["the cat is in the house", "the dog runs in the park", "good morning", "where is the station?",
      "the weather is nice today", "I am hungry", "the house is big", "we are going home",
      "the boy reads a book", "the woman sings", "the cat sleeps", "the dog eats", "it is late", "thanks",
      "there is water", "the sea is blue", "the city is big", "the book is new", "the girl plays",
      "the sun shines", "it rains a lot", "the bread is good", "the train arrives", "the door is open"]
DEV = [0, 5, 23]  # dev pairs taken from the training data: an overlap of 3
FAST = {"finetune": {"max_steps": 40, "eval_every": 10, "patience": 2, "lr": 3e-3, "batch_tokens": 200}}


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_marian) -> dict[str, Path]:
    """A base checkpoint whose tokenizer never saw these sentences' language, and the user's files."""
    root = tmp_path_factory.mktemp("ast")
    model, tokenizer = tiny_marian(root, (AST + EN) * 5, 120)
    base = save_checkpoint(model, tokenizer, root / "base",
                           {"system": "metanmt", "data_dir": "/nonexistent/prepared"})
    (root / "fast.yaml").write_text(yaml.safe_dump(FAST), encoding="utf-8")
    return {"root": root, "base": base, "config": root / "fast.yaml",
            "src": write(root / "train.ast", AST), "tgt": write(root / "train.en", EN),
            "dev_src": write(root / "dev.ast", [AST[i] for i in DEV]),
            "dev_tgt": write(root / "dev.en", [EN[i] for i in DEV]),
            "tsv": write(root / "train.tsv", [f"{s}\t{t}" for s, t in zip(AST, EN)])}


def finetune(files, out: Path, *extra: str) -> int:
    return main(["finetune", "--model", str(files["base"]), "--lang", "ast", "--output-dir", str(out),
                 "--config", str(files["config"]), *extra])


def from_files(files) -> tuple[str, ...]:
    return "--train-src", str(files["src"]), "--train-tgt", str(files["tgt"])


@pytest.fixture(scope="module")
def tuned(files) -> Path:
    """Fine-tuned on all 24 training pairs with the given dev files."""
    out = files["root"] / "tuned"
    assert finetune(files, out, *from_files(files), "--dev-src", str(files["dev_src"]),
                    "--dev-tgt", str(files["dev_tgt"])) == 0
    return out


# ---------------------------------------------------------------- reading, splitting, drawing, encoding

def test_every_form_reads_the_same_pairs(files, tmp_path):
    import datasets

    rows = [{"translation": {"ast": s, "en": t}} for s, t in zip(AST, EN)]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "disk"))
    write(tmp_path / "pairs.jsonl",
          [json.dumps({"a": s, "b": t}, ensure_ascii=False) for s, t in zip(AST, EN)])
    forms = [PairSource("train", src=str(files["src"]), tgt=str(files["tgt"])),
             PairSource("train", tsv=str(files["tsv"])),
             PairSource("train", hf=str(tmp_path / "disk")),
             PairSource("train", hf=str(tmp_path / "pairs.jsonl"), src_field="a", tgt_field="b")]
    for source in forms:
        text = source.read("ast")
        assert (text.src, text.tgt) == (AST, EN), source.describe()
    assert forms[2].describe() == f"hf:{tmp_path / 'disk'},split=train"
    with pytest.raises(MetaNMTError, match="has no split 'test'"):
        PairSource("train", hf=str(tmp_path / "disk"), hf_split="test").read("ast")
    with pytest.raises(MetaNMTError, match="field 'translation.qu' not found"):
        PairSource("train", hf=str(tmp_path / "disk")).read("qu")
    with pytest.raises(MetaNMTError, match="not a dataset file .*use --train-tsv"):
        PairSource("train", hf=str(files["tsv"])).read("ast")
    with pytest.raises(MetaNMTError, match="--dev-src and --dev-tgt go together"):
        PairSource("dev", src=str(files["src"])).read("ast")
    with pytest.raises(MetaNMTError, match="not as --train-src/--train-tgt and --train-tsv"):
        PairSource("train", src=str(files["src"]), tgt=str(files["tgt"]), tsv=str(files["tsv"])).read("ast")


def test_hugging_face_datasets_on_the_command_line(files, tmp_path, capsys):
    import datasets

    def row(i: int) -> dict:
        return {"id": i, "translation": {"ast": AST[i], "en": EN[i]}}

    write(tmp_path / "train.jsonl", [json.dumps(row(i), ensure_ascii=False) for i in range(24)])
    datasets.DatasetDict({"validation": datasets.Dataset.from_list([row(i) for i in DEV])}).save_to_disk(
        str(tmp_path / "dev"))
    hf = ("--train-hf", str(tmp_path / "train.jsonl"), "--dev-hf", str(tmp_path / "dev"))
    assert finetune(files, tmp_path / "o", *hf, "--dev-hf-split", "validation") == 0
    data = json.loads((tmp_path / "o" / "metanmt.json").read_text())["data"]
    assert data["train"] == f"hf:{tmp_path / 'train.jsonl'},split=train" and data["pairs"] == 24
    assert data["dev"] == f"hf:{tmp_path / 'dev'},split=validation" and data["dev_pairs"] == 3
    capsys.readouterr()
    assert finetune(files, tmp_path / "x", *hf, "--dev-hf-split", "validation", "--src-field", "id") == 2
    assert f"{tmp_path / 'train.jsonl'} row 0: field 'id' is int, not a string" in capsys.readouterr().err
    assert finetune(files, tmp_path / "x", *hf) == 2
    assert f"{tmp_path / 'dev'} has no split 'train'; it has ['validation']" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_checkpoints_of_other_kinds_are_refused(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(tmp_path / "gpt2")
    with pytest.raises(MetaNMTError, match="holds a 'gpt2' model, not a sequence-to-sequence"):
        load_checkpoint(tmp_path / "gpt2")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(MetaNMTError, match="cannot load checkpoint .*broken: config.json is unreadable"):
        load_checkpoint(tmp_path / "broken")


def test_hold_out_is_a_seeded_tenth_and_at_least_one_pair():
    train, dev = hold_out(24, seed=3, origin="x")
    assert len(dev) == 2 == round(DEV_SHARE * 24) and len(train) == 22
    assert sorted([*train, *dev]) == list(range(24))
    assert np.array_equal(hold_out(24, 3, "x")[1], dev) and not np.array_equal(hold_out(24, 4, "x")[1], dev)
    assert [len(part) for part in hold_out(3, 1, "x")] == [2, 1]  # 10% of 3 rounds to 0: still one
    with pytest.raises(MetaNMTError,
                       match="x: 1 pair cannot be split into training and dev data; give dev data"):
        hold_out(1, 1, "x")


def test_subsets_count_english_tokens_as_prepare_does():
    counts = english_token_counts(EN)
    assert counts[3] == 5  # "where is the station?": 13a splits the question mark off
    chosen = draw_subset("ast", EN, 30, seed=1)
    assert 30 - counts.max() < counts[chosen].sum() <= 30  # the longest prefix within the budget
    assert np.array_equal(draw_subset("ast", EN, 30, seed=1), chosen)  # reproducible
    assert not np.array_equal(draw_subset("ast", EN, 30, seed=2), chosen)
    total = int(counts.sum())
    assert total == 89
    with pytest.raises(MetaNMTError, match=rf"\[500\] English tokens exceed .*: {total} English tokens in 24 "
                                           r"pairs \(--max-tokens\)"):
        draw_subset("ast", EN, 500, seed=1)
    with pytest.raises(MetaNMTError, match="--max-tokens must be at least 1, got 0"):
        draw_subset("ast", EN, 0, seed=1)
    with pytest.raises(MetaNMTError, match="--max-tokens 1 drew no pair with seed 1"):
        draw_subset("ast", EN, 1, seed=1)  # the shortest sentence has 1 token, but is not drawn first


def test_pairs_are_encoded_by_the_checkpoints_tokenizer_with_eos(files):
    _, tokenizer, _ = load_checkpoint(files["base"])
    pairs = encode_pairs(tokenizer, AST[:3], EN[:3], max_length=256, name="ast-en/train")
    sp = spm.SentencePieceProcessor(model_file=str(files["root"] / "sp.model"))
    for i in range(3):
        assert pairs.src(i).tolist() == sp.encode(AST[i]) + [EOS_ID]
        assert pairs.tgt(i).tolist() == sp.encode(EN[i]) + [EOS_ID]
    assert pairs.src_text == AST[:3] and pairs.tgt_text == EN[:3]
    assert len(encode_pairs(tokenizer, [" ".join(AST)], ["x"], max_length=8, name="x").src(0)) == 8


def test_overlap_and_hash():
    assert count_overlap(["El gatu ta na casa!", "nuevu"], AST) == 1  # case and punctuation ignored
    assert pairs_sha256(["a", "b"], ["x", "y"]) == hashlib.sha256(b"a\tx\nb\ty\n").hexdigest()


def test_load_user_data_holds_out_draws_and_says_so(files):
    _, tokenizer, _ = load_checkpoint(files["base"])
    notes: list[str] = []
    request = UserDataRequest("ast", PairSource("train", tsv=str(files["tsv"])), max_tokens=40, seed=1)
    data = load_user_data(tokenizer, request, 256, notes.append)
    assert notes == [("no dev data given: held out 2 of 24 training pairs (10%, at least 1; seed 1) for "
                      "early "
                     "stopping")]
    assert len(data.dev) == data.held_out == 2 and data.overlap == 0
    assert data.en_tokens == english_token_counts(data.train.tgt_text).sum() and 35 <= data.en_tokens <= 40
    assert data.sha256 == pairs_sha256(data.train.src_text, data.train.tgt_text)
    assert not set(data.dev.src_text) & set(data.train.src_text)
    again = load_user_data(tokenizer, request, 256, notes.append)
    assert again.train.src_text == data.train.src_text and again.dev.src_text == data.dev.src_text


@pytest.mark.parametrize("tag", ["ast", "qu", "gsw-CH", "zh-Hant-TW", "fi"])
def test_any_language_tag_is_accepted(tag):
    assert language_tag(tag) == tag


@pytest.mark.parametrize("tag,message", [("a", "not a language tag"), ("ast_ES", "not a language tag"),
                                         ("en", "English is the target"), ("eng", "English is the target")])
def test_malformed_tags_and_english_are_refused(tag, message):
    with pytest.raises(MetaNMTError, match=message):
        language_tag(tag)


# ---------------------------------------------------------------- the fine-tuned checkpoint

def test_checkpoint_records_language_and_data(files, tuned):
    info = json.loads((tuned / "metanmt.json").read_text())
    sha = hashlib.sha256("".join(f"{s}\t{t}\n" for s, t in zip(AST, EN)).encode()).hexdigest()
    dev_sha = hashlib.sha256("".join(f"{AST[i]}\t{EN[i]}\n" for i in DEV).encode()).hexdigest()
    assert info["lang"] == "ast" and info["base_model"] == str(files["base"].resolve())
    assert info["data"] == {"train": f"{files['src']} | {files['tgt']}", "dev": f"{files['dev_src']} | "
                            f"{files['dev_tgt']}", "pairs": 24, "en_tokens": 89, "sha256": sha,
                            "dev_pairs": 3,
                            "dev_sha256": dev_sha, "dev_overlap": 3, "max_tokens": None, "seed": 1}
    assert info["tokens"] == 89 and info["params"] == "all" and info["system"] == "metanmt"
    assert "data_dir" not in info  # the base model's prepared data is not this model's data
    assert info["finetune"]["steps"] > 0 and info["finetune_config"]["max_steps"] == 40
    assert info["command"].startswith(f"metanmt finetune --model {files['base']} --lang ast")


def test_generation_config_carries_the_decoding(tuned):
    from transformers import AutoModelForSeq2SeqLM

    model = AutoModelForSeq2SeqLM.from_pretrained(tuned)
    config = model.generation_config
    assert (config.num_beams, config.length_penalty, config.do_sample) == (4, 0.6, False)
    assert config.max_length == model.config.max_position_embeddings == 256
    saved = json.loads((tuned / "generation_config.json").read_text())
    assert saved["num_beams"] == 4 and saved["length_penalty"] == 0.6 and saved["max_length"] == 256


def test_model_card(files, tuned):
    card = (tuned / "README.md").read_text()
    sha = json.loads((tuned / "metanmt.json").read_text())["data"]["sha256"]
    assert card.startswith("---\nlanguage: [ast, en]\npipeline_tag: translation\n")
    assert f"| base model | `{files['base'].resolve()}` |" in card
    assert "| source language | `ast` (target: English) |" in card
    assert "| training data | 24 pairs, 89 English tokens (sacrebleu 13a), from " in card
    assert f"| training data sha256 | `{sha}` (lines `source<TAB>English`, UTF-8) |" in card
    assert f"| dev data | 3 pairs: {files['dev_src']} \\| {files['dev_tgt']} |" in card  # escaped in a table
    assert f"from `{files['src']} \\| {files['tgt']}` |" in card
    assert "| subset | all pairs |" in card
    assert f"## Made by\n\n```\nmetanmt finetune --model {files['base']} --lang ast --output-dir" in card


def test_dev_overlap_is_a_warning_with_the_count(files, tmp_path, capsys):
    assert finetune(files, tmp_path / "o", *from_files(files), "--dev-src", str(files["dev_src"]),
                    "--dev-tgt", str(files["dev_tgt"]), "--max-tokens", "60") == 0
    err = capsys.readouterr().err
    overlap = json.loads((tmp_path / "o" / "metanmt.json").read_text())["data"]["dev_overlap"]
    assert 0 < overlap <= 3
    assert (f"warning: {overlap} of 3 dev pairs have a source sentence that is also in the training data"
            in err)


def test_the_same_command_may_rerun_another_may_not(files, tmp_path, capsys):
    out = tmp_path / "run"
    args = (*from_files(files), "--max-tokens", "50")
    assert finetune(files, out, *args) == 0
    first = (out / "metanmt.json").read_text()
    assert finetune(files, out, *args) == 0  # the same inputs: replaced by an identical run
    assert (out / "metanmt.json").read_text() == first
    capsys.readouterr()
    assert finetune(files, out, *args[:-1], "60") == 2
    err = capsys.readouterr().err
    assert f"error: --output-dir {out} holds another run (made by: metanmt finetune" in err and "50" in err
    assert (out / "metanmt.json").read_text() == first
    (tmp_path / "other").mkdir()
    write(tmp_path / "other" / "notes.txt", ["mine"])
    assert finetune(files, tmp_path / "other", *args) == 2
    assert "holds another run (made by: unknown)" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "other").iterdir()] == ["notes.txt"]
    write(tmp_path / "file", ["mine"])
    assert finetune(files, tmp_path / "file", *args) == 2
    assert f"--output-dir {tmp_path / 'file'} exists and is not a directory" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "mine\n"


# ---------------------------------------------------------------- bad input: an error, nothing written

def bad_inputs(files, tmp: Path) -> list[tuple[list[str], str]]:
    """(arguments, expected error) for each bad input."""
    (tmp / "bad.ast").write_bytes("bonos díes\n".encode() + b"bon d\xeda\n")
    (tmp / "bert").mkdir()
    (tmp / "bert" / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    src, tsv = str(files["src"]), str(files["tsv"])
    return [
        (["--train-src", src, "--train-tgt", str(write(tmp / "short.en", EN[:20]))],
         f"misaligned parallel files: {src} has 24 lines but {tmp / 'short.en'} has 20 lines"),
        (["--train-src", str(write(tmp / "e.ast", [])), "--train-tgt", str(write(tmp / "e.en", []))],
         f"{tmp / 'e.ast'} | {tmp / 'e.en'}: no sentence pairs (0 read, 0 with an empty side)"),
        (["--train-src", str(write(tmp / "b.ast", ["", " "])), "--train-tgt",
          str(write(tmp / "b.en", ["a", ""]))],
         "no sentence pairs (2 read, 2 with an empty side)"),
        (["--train-tsv", str(write(tmp / "one.tsv", ["a\tb", "c\td", "only one column"]))],
         f"{tmp / 'one.tsv'}: line 3 has 1 tab-separated column(s), expected at least 2"),
        (["--train-src", str(tmp / "bad.ast"), "--train-tgt", str(write(tmp / "two.en", EN[:2]))],
         f"{tmp / 'bad.ast'}: line 2 is not valid UTF-8"),
        (["--train-tsv", tsv, "--max-tokens", "1000"],
         (r"ast: fine-tuning subset size(s) [1000] English tokens exceed its training data: 79 English "
          r"tokens "
         "in 22 pairs (--max-tokens)")),
        (["--train-tsv", tsv, "--dev-src", src], "--dev-src and --dev-tgt go together"),
        (["--dev-tsv", tsv], "dev data was given but no training data"),
        (["--train-tsv", tsv, "--tokens", "4000", "--draw", "1"],
         "--tokens, --draw select prepared data; with your own data use --max-tokens and --seed"),
        (["--train-tsv", tsv, "--model", str(tmp / "bert")],
         (f"{tmp / 'bert'} holds a 'bert' model, not a sequence-to-sequence (encoder-decoder) translation "
          "model")),
        (["--train-tsv", tsv, "--lang", "english!"], "--lang 'english!' is not a language tag"),
        (["--train-tsv", str(tmp / "missing.tsv")], f"cannot read {tmp / 'missing.tsv'}"),
        (["--train-tsv", tsv, "--lr", "0"], "--lr must be positive, got 0.0"),
        (["--train-tsv", tsv, "--max-steps", "0"], "--max-steps must be at least 1, got 0"),
        (["--train-tsv", tsv, "--device", "gpu0"], "--device 'gpu0' is not a torch device"),
        (["--train-tsv", tsv, "--device", "cpu", "--mixed-precision", "fp16"],
         "mixed precision fp16 needs a CUDA device, this run is on cpu: use bf16 or no"),
        (["--train-tsv", tsv, "--push-to-hub", "me/two words"],
         "--push-to-hub 'me/two words' is not a Hugging Face"),
    ]


def test_bad_input_is_a_clear_error_and_writes_nothing(files, tmp_path, capsys):
    out = tmp_path / "out"
    for args, message in bad_inputs(files, tmp_path):
        assert finetune(files, out, *args) == 2, args
        err = capsys.readouterr().err
        assert "metanmt finetune: error: " in err and message in err, (args, err)
        assert not out.exists() and not list(tmp_path.glob(".out*")), args


def test_prepared_form_is_unchanged(files, tmp_path, monkeypatch, capsys):
    import metanmt.train.finetune as finetune_mod

    calls = []
    monkeypatch.setattr(finetune_mod, "finetune_checkpoint", lambda *a,
                        **k: calls.append((a, k)) or Path("x"))
    assert main(["finetune", "--model", "M", "--lang", "fi", "--tokens", "4000", "--output-dir", "O"]) == 0
    (model, lang, tokens, draw, out, cfg), kwargs = calls[0]
    assert (model, lang, tokens, draw, out, cfg.params, cfg.lr) == ("M", "fi", 4000, 0, "O", "all", 3e-4)
    assert kwargs == {"data_dir": None, "seed": 1, "device": None, "mixed_precision": "no"}
    assert main(["finetune", "--model", "M", "--lang", "fi", "--tokens", "4000", "--output-dir", "O", "--lr",
                 "1e-4", "--max-steps", "7", "--device", "cpu", "--mixed-precision", "bf16"]) == 0
    (*_, cfg), kwargs = calls[1]
    assert (cfg.lr, cfg.max_steps, kwargs["device"], kwargs["mixed_precision"]) == (1e-4, 7, "cpu", "bf16")
    assert main(["finetune", "--model", "M", "--lang", "fi", "--output-dir", "O"]) == 2
    assert "give --tokens N (a prepared language) or your own training data" in capsys.readouterr().err
    assert main(["finetune", "--model", "M", "--lang", "fi", "--tokens", "0", "--max-tokens", "5",
                 "--output-dir", "O"]) == 2
    assert "--max-tokens draws from your own data" in capsys.readouterr().err


# ---------------------------------------------------------------- evaluation from files, end to end

def evaluate(model: Path, out: Path, *extra: str) -> int:
    return main(["evaluate", "--model", str(model), "--output", str(out), "--beam", "2", *extra])


def test_whole_path_on_a_new_language_from_plain_files(files, tuned, tmp_path, monkeypatch, capsys):
    """Fine-tune on Asturian files, evaluate from files with two references, translate, generate."""
    refs2 = write(tmp_path / "refs2.en", [e.replace("the ", "a ", 1) for e in EN])
    args = ["--src", str(files["src"]), "--ref", str(files["tgt"])]
    assert evaluate(files["base"], tmp_path / "base.json", *args, "--lang", "ast") == 0
    assert evaluate(tuned, tmp_path / "tuned.json", *args, "--ref", str(refs2)) == 0
    out = capsys.readouterr().out
    base, result = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("base", "tuned"))
    assert result["lang"] == "ast" and result["split"] == "files" and result["num_sentences"] == 24
    assert base["bleu"] < 5 and base["chrf"] < 20  # untrained: ~0 BLEU, ~3 chrF
    # it learnt its data (100 on the machine it was written on)
    assert result["bleu"] > 80 and result["chrf"] > 80
    assert result["ter"] < base["ter"] and result["chrfpp"] > base["chrfpp"]
    assert "nrefs:2" in result["bleu_signature"] and "nrefs:1" in base["bleu_signature"]
    assert "nw:2" in result["chrfpp_signature"] and result["ter_signature"].startswith("nrefs:2|case:lc")
    assert f"chrF++ = {result['chrfpp']:.2f}  TER = {result['ter']:.2f}" in out and "TER signature: " in out
    hyps = (tmp_path / result["hypotheses"]).read_text().splitlines()
    assert (tmp_path / result["sources"]).read_text().splitlines() == AST
    assert (tmp_path / "tuned.ref.txt").read_text().splitlines() == EN
    assert result["more_references"] == ["tuned.ref2.txt"]
    assert (tmp_path / "tuned.ref2.txt").read_text() == refs2.read_text()
    assert result["source_file"] == str(files["src"]) and result["model"] == str(tuned)
    assert result["comet"] is None and result["comet_absent"].startswith("no COMET model given")
    assert "COMET: absent, no COMET model given" in out
    assert_generate_matches_translate(tuned, hyps, translate_cli(tuned, AST, monkeypatch, capsys))


def translate_cli(model: Path, lines: list[str], monkeypatch, capsys, *extra: str) -> list[str]:
    """``metanmt translate --model MODEL --lang ast < lines``, its output lines."""
    import io
    import sys

    stdin = "".join(f"{line}\n" for line in lines).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    capsys.readouterr()
    assert main(["translate", "--model", str(model), "--lang", "ast", *extra]) == 0
    return capsys.readouterr().out.splitlines()


def assert_generate_matches_translate(tuned: Path, hyps: list[str], translated: list[str]) -> None:
    """A plain from_pretrained + generate (settings from generation_config.json) gives `metanmt translate`'s
    output, line for line."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    model, tokenizer = AutoModelForSeq2SeqLM.from_pretrained(tuned), AutoTokenizer.from_pretrained(tuned)
    assert len(translated) == len(AST)
    for sentence, expected in zip(AST, translated):
        inputs = tokenizer([sentence], return_tensors="pt")
        budget = int(1.5 * inputs["input_ids"].shape[1] + 10)  # translate's per-sentence output budget
        output = model.generate(**inputs, max_length=budget + 1)
        assert tokenizer.decode(output[0], skip_special_tokens=True) == expected
    assert sum(h == e for h, e in zip(hyps, EN)) >= 18  # beam 2 reproduces most of its training data


def test_evaluate_from_files_bad_input(files, tuned, tmp_path, capsys):
    out = tmp_path / "r.json"
    cases = [(["--src", str(files["src"]), "--ref", str(write(tmp_path / "s.en", EN[:3]))],
              f"misaligned parallel files: {files['src']} has 24 lines but {tmp_path / 's.en'} has 3 lines"),
             (["--src", str(files["src"])], "--src and --ref go together"),
             (["--src", str(files["src"]), "--ref", str(files["tgt"]), "--split", "test"],
              "--split select prepared data"),
             (["--src", str(write(tmp_path / "e.ast", [])), "--ref", str(write(tmp_path / "e.en", []))],
              "e.ast is empty: nothing to evaluate"),
             ([], "give --lang XX (a split of the prepared data) or your own files")]
    for args, message in cases:
        assert evaluate(tuned, out, *args) == 2
        err = capsys.readouterr().err
        assert "metanmt evaluate: error: " in err and message in err, (args, err)
        assert list(tmp_path.glob("r.*")) == []


def readme_commands() -> list[list[str]]:
    """The commands of the README's "Adapt to your own language" section, as argument lists."""
    import re
    import shlex

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Adapt to your own language", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1).replace("\\\n", " ")
    return [shlex.split(line)[1:] for line in block.splitlines() if line.startswith("metanmt ")]


def test_readme_commands_run_as_printed(files, tmp_path, monkeypatch, capsysbinary):
    import io
    import sys

    monkeypatch.chdir(tmp_path)
    for name, lines in (("train.ast", AST), ("train.en", EN), ("dev.ast", AST[:4]), ("dev.en", EN[:4]),
                        ("test.ast", AST[4:8]), ("test.en", EN[4:8])):
        write(tmp_path / name, lines)
    (tmp_path / "RUN").mkdir()
    (tmp_path / "RUN" / "best").symlink_to(files["base"])
    finetune_args, evaluate_args, translate_args = readme_commands()
    assert main([*finetune_args, "--config", str(files["config"])]) == 0
    assert main(evaluate_args) == 0
    assert json.loads((tmp_path / "ast-model" / "test.json").read_text())["num_sentences"] == 4
    assert translate_args[-4:] == ["<", "new.ast", ">", "new.en"]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"bonos d\xc3\xades\n"), encoding="utf-8"))
    capsysbinary.readouterr()
    assert main(translate_args[:-4]) == 0
    assert len(capsysbinary.readouterr().out.decode().splitlines()) == 1


# ---------------------------------------------------------------- learning rate, device, precision

def info_of(checkpoint: Path) -> dict:
    return json.loads((checkpoint / "metanmt.json").read_text())


def test_lr_and_max_steps_override_the_config(files, tmp_path):
    assert finetune(files, tmp_path / "o", "--train-tsv", str(files["tsv"]), "--lr", "1e-3", "--max-steps",
                    "3") == 0
    info = info_of(tmp_path / "o")
    assert (info["finetune_config"]["lr"], info["finetune_config"]["max_steps"]) == (1e-3, 3)
    assert info["finetune_config"]["patience"] == FAST["finetune"]["patience"]  # the rest is the config's
    assert info["finetune"]["lr"] == 1e-3 and info["finetune"]["steps"] == 3
    assert "| fine-tuning | parameters `all`, 3 steps" in (tmp_path / "o" / "README.md").read_text()


def test_bf16_autocast_trains_on_the_cpu(files):
    from metanmt.models.device import pick_device
    from metanmt.tasks.translation import batches_by_tokens
    from metanmt.train.config import FinetuneSection
    from metanmt.train.finetune import _Update

    model, tokenizer, _ = load_checkpoint(files["base"])
    pairs = encode_pairs(tokenizer, AST, EN, 256, "ast-en/train")
    batch = next(iter(batches_by_tokens(pairs, 200, rng=None)))
    dtypes = []
    model.lm_head.register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    before = model.model.shared.weight.detach().clone()
    update = _Update.build(model, FinetuneSection(lr=1e-3), pick_device("cpu"), "bf16")
    losses = [update(batch).item() for _ in range(3)]
    assert dtypes == [torch.bfloat16] * 3  # the forward pass ran in bf16...
    assert model.model.shared.weight.dtype == torch.float32  # ...on float32 weights, which changed
    assert not torch.equal(model.model.shared.weight, before)
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_mixed_precision_comes_from_the_flag_or_the_config(files, tmp_path):
    (tmp_path / "bf16.yaml").write_text(yaml.safe_dump({**FAST, "train": {"mixed_precision": "bf16"}}))
    args = ("--train-tsv", str(files["tsv"]), "--max-steps", "2", "--device", "cpu")
    assert main(["finetune", "--model", str(files["base"]), "--lang", "ast", "--output-dir",
                 str(tmp_path / "c"), "--config", str(tmp_path / "bf16.yaml"), *args]) == 0
    assert finetune(files, tmp_path / "f", *args, "--mixed-precision", "bf16") == 0
    assert finetune(files, tmp_path / "n", *args) == 0
    for name, precision in (("c", "bf16"), ("f", "bf16"), ("n", "no")):
        tuned = info_of(tmp_path / name)["finetune"]
        assert (tuned["mixed_precision"], tuned["device"], tuned["steps"]) == (precision, "cpu", 2), name


@pytest.mark.parametrize("device", ["cpu", "cuda", "mps"])
def test_finetune_evaluate_translate_on_a_device(files, device, tmp_path, monkeypatch, capsys):
    """The three commands with --device; cuda and mps run wherever such a device is present."""
    from metanmt.models.device import is_available

    if not is_available(device):
        pytest.skip(f"no {device} device on this machine: --device {device} is exercised where there is one")
    precision = "fp16" if device == "cuda" else "no"
    assert finetune(files, tmp_path / "m", *from_files(files), "--dev-src", str(files["dev_src"]),
                    "--dev-tgt",
                    str(files["dev_tgt"]), "--device", device, "--mixed-precision", precision) == 0
    assert info_of(tmp_path / "m")["finetune"]["device"].startswith(device)
    assert evaluate(tmp_path / "m", tmp_path / "r.json", "--src", str(files["src"]), "--ref",
                    str(files["tgt"]), "--device", device) == 0
    hyps = (tmp_path / "r.hyp.txt").read_text().splitlines()
    assert len(translate_cli(tmp_path / "m", AST, monkeypatch, capsys, "--device", device)) == len(AST)
    assert sum(h == e for h, e in zip(hyps, EN)) >= 12, hyps  # trained on the device, it learnt its data


def test_an_absent_device_is_an_error(files, tuned, tmp_path, monkeypatch, capsys):
    import io

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert evaluate(tuned, tmp_path / "r.json", "--src", str(files["src"]), "--ref", str(files["tgt"]),
                    "--device", "cuda") == 2
    assert "--device cuda: no cuda device is available on this machine" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr("sys.stdin", io.StringIO("bonos díes\n"))
    assert main(["translate", "--model", str(tuned), "--lang", "ast", "--device", "cuda"]) == 2
    assert "--device cuda: no cuda device" in capsys.readouterr().err


# ---------------------------------------------------------------- sharing on the hub (mocked: no network)

class FakeHub:
    """Stands in for ``huggingface_hub.HfApi``: records the calls; ``fail`` makes the upload fail."""

    calls: ClassVar[list[tuple[str, tuple, dict]]] = []
    fail: ClassVar[Exception | None] = None

    def __init__(self):
        self.calls.append(("HfApi", (), {}))

    def create_repo(self, *args, **kwargs):
        self.calls.append(("create_repo", args, kwargs))
        return f"https://huggingface.co/{args[0]}"

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", (), kwargs))
        if self.fail:
            raise self.fail


@pytest.fixture
def hub(monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(FakeHub, "calls", [])
    monkeypatch.setattr(FakeHub, "fail", None)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test")
    return FakeHub


def test_push_to_hub_uploads_the_saved_checkpoint(files, tmp_path, hub, capsys):
    args = ("--train-tsv", str(files["tsv"]), "--max-steps", "2")
    assert finetune(files, tmp_path / "o", *args) == 0
    assert hub.calls == []  # nothing without the flag
    assert finetune(files, tmp_path / "p", *args, "--push-to-hub", "me/ast-en", "--hub-private") == 0
    assert hub.calls == [
        ("HfApi", (), {}),
        ("create_repo", ("me/ast-en",), {"repo_type": "model", "private": True, "exist_ok": True}),
        ("upload_folder", (), {"repo_id": "me/ast-en", "repo_type": "model",
                               "folder_path": str(tmp_path / "p"),
                               "commit_message": "Upload p, fine-tuned with metanmt"})]
    assert capsys.readouterr().out.splitlines()[-2:] == [f"saved {tmp_path / 'p'}",
                                                         "pushed to https://huggingface.co/me/ast-en"]
    assert (tmp_path / "p" / "README.md").is_file()  # the model card goes up with the weights


def test_a_failed_push_keeps_the_checkpoint_and_says_where(files, tmp_path, hub, monkeypatch, capsys):
    import huggingface_hub

    hub.fail = OSError("Connection refused")
    out = tmp_path / "p"
    assert finetune(files, out, "--train-tsv", str(files["tsv"]), "--max-steps", "2", "--push-to-hub",
                    "me/m") == 2
    err = capsys.readouterr().err
    assert "could not push to the Hugging Face Hub repo me/m (OSError: Connection refused)" in err
    assert f"The checkpoint is saved locally in {out}; upload it later with `hf upload me/m {out}`" in err
    assert (out / "config.json").is_file() and (out / "metanmt.json").is_file()
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    hub.calls.clear()
    assert finetune(files, tmp_path / "q", "--train-tsv", str(files["tsv"]), "--push-to-hub", "me/m") == 2
    assert "--push-to-hub needs a Hugging Face token" in capsys.readouterr().err
    assert not (tmp_path / "q").exists() and hub.calls == []  # refused before training


# ---------------------------------------------------------------- COMET (the package is faked: never
# installed)

def fake_comet(monkeypatch, loaded: list) -> None:
    """A ``comet`` module whose model scores each hypothesis 1 if it equals its reference, else 0."""
    import sys
    import types
    from types import SimpleNamespace

    class Model:
        def predict(self, samples, gpus, progress_bar):
            loaded.append(("predict", samples, gpus, progress_bar))
            scores = [float(s["mt"] == s["ref"]) for s in samples]
            return SimpleNamespace(scores=scores, system_score=sum(scores) / len(scores))

    def load_from_checkpoint(path):
        if path.endswith("broken.ckpt"):
            raise RuntimeError("PytorchStreamReader failed")
        loaded.append(("load", path))
        return Model()

    monkeypatch.setitem(sys.modules, "comet",
                        types.SimpleNamespace(load_from_checkpoint=load_from_checkpoint))


def test_comet_is_added_when_installed_and_given(files, tuned, tmp_path, monkeypatch, capsys):
    loaded: list = []
    fake_comet(monkeypatch, loaded)
    (tmp_path / "wmt22" / "checkpoints").mkdir(parents=True)
    ckpt = tmp_path / "wmt22" / "checkpoints" / "model.ckpt"
    ckpt.write_bytes(b"weights")
    args = ["--src", str(files["src"]), "--ref", str(files["tgt"])]
    for given in (ckpt, tmp_path / "wmt22"):  # the checkpoint file, or the model's directory
        loaded.clear()
        assert evaluate(tuned, tmp_path / "r.json", *args, "--comet-model", str(given)) == 0
        result = json.loads((tmp_path / "r.json").read_text())
        hyps = (tmp_path / "r.hyp.txt").read_text().splitlines()
        assert loaded[0] == ("load", str(ckpt))
        assert loaded[1] == ("predict", [{"src": s, "mt": h, "ref": r} for s, h, r in zip(AST, hyps, EN)], 0,
                             False)
        assert result["comet"] == sum(h == e for h,
                                      e in zip(hyps, EN)) / 24 and result["comet_model"] == str(ckpt)
        assert "comet_absent" not in result
        assert f"COMET = {result['comet']:.4f} ({ckpt})" in capsys.readouterr().out


def test_comet_absent_or_misconfigured(files, tuned, tmp_path, monkeypatch, capsys):
    import sys

    args = ["--src", str(files["src"]), "--ref", str(files["tgt"])]
    (tmp_path / "model.ckpt").write_bytes(b"weights")
    monkeypatch.setitem(sys.modules, "comet", None)  # import comet fails: not installed
    assert evaluate(tuned, tmp_path / "r.json", *args, "--comet-model", str(tmp_path / "model.ckpt")) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["comet"] is None and "unbabel-comet package is not installed" in result["comet_absent"]
    assert "COMET: absent, the unbabel-comet package is not installed" in capsys.readouterr().out
    fake_comet(monkeypatch, [])
    (tmp_path / "broken.ckpt").write_bytes(b"")
    for path, message in ((tmp_path / "missing.ckpt",
                           f"--comet-model {tmp_path / 'missing.ckpt'}: no such file"),
                          (tmp_path / "broken.ckpt",
                           f"cannot load COMET model {tmp_path / 'broken.ckpt'}: Runtime")):
        assert evaluate(tuned, tmp_path / "x.json", *args, "--comet-model", str(path)) == 2
        assert message in capsys.readouterr().err
        assert not list(tmp_path.glob("x.*"))  # checked before decoding: nothing written


# ---------------------------------------------------------------- the recipe: both systems on your language

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "adapt_your_language.sh"


def run_recipe(root: Path, *args: str, **env: str):
    """``recipes/adapt_your_language.sh ARGS`` with this checkout's metanmt (a ``metanmt`` shim on the
    PATH)."""
    import os
    import subprocess
    import sys

    bin_dir = root / "bin"
    bin_dir.mkdir(exist_ok=True)
    write(bin_dir / "metanmt", ["#!/bin/sh", f'exec "{sys.executable}" -m metanmt "$@"']).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHON": sys.executable,
           "PYTHONPATH": str(RECIPE.parents[1]), "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(["bash", str(RECIPE), *args], env=env, capture_output=True, text=True, timeout=300,
                          check=False)


@pytest.fixture(scope="module")
def experiment(files) -> Path:
    """A finished experiment's two systems (untrained here), with the fine-tuning settings it ran with."""
    exp = files["root"] / "experiment"
    for system in ("metanmt", "multinmt"):
        model, tokenizer, info = load_checkpoint(files["base"])
        save_checkpoint(model, tokenizer, exp / system / "best", {**info, "system": system})
        (exp / system / "run.json").write_text(json.dumps({"system": system, "config": FAST}))
    (exp / "eval" / "multinmt").mkdir(parents=True)
    (exp / "eval" / "multinmt" / "finetune_lr.json").write_text(json.dumps({"lr": 1e-5}))  # the rate it chose
    return exp


@pytest.mark.slow
def test_recipe_compares_both_systems_on_your_language(files, experiment, tmp_path):
    out = tmp_path / "out"
    done = run_recipe(tmp_path, str(files["src"]), str(files["tgt"]), "ast", str(out), str(experiment),
                      SIZES="30 1000", DRAWS="2")
    assert done.returncode == 0, done.stderr
    assert ("ast: 20 training pairs (74 English tokens), 2 dev and 2 test pairs (the last lines)"
            in done.stdout)
    assert "note: skipping 1000 tokens: the training part has only 74 English tokens" in done.stderr
    data = out / "data"
    assert [(data / f"{part}.src").read_text().splitlines() for part in ("train", "dev", "test")] == [
        AST[:20], AST[20:22], AST[22:]]
    assert (data / "test.en").read_text().splitlines() == EN[22:]
    for system, lr in (("metanmt", FAST["finetune"]["lr"]), ("multinmt", 1e-5)):
        for draw in (1, 2):
            info = info_of(out / "models" / system / f"30_draw{draw}")
            assert (info["system"], info["tokens"], info["draw"],
                    info["finetune"]["lr"]) == (system, 30, draw, lr)
            assert info["data"]["train"] == f"{data / 'train.src'} | {data / 'train.en'}"
    report = json.loads((out / "report" / "report.json").read_text())
    (table,) = report["tables"]
    assert (table["lang"], table["split"], table["tokens"], table["systems"]) == ("ast", "files", [0, 30],
                                                                                  ["metanmt", "multinmt"])
    assert {(c["system"], c["tokens"]): c["draws"] for c in table["cells"]} == {
        ("metanmt", 0): [None], ("metanmt", 30): [1, 2], ("multinmt", 0): [None], ("multinmt", 30): [1, 2]}
    assert {t["tokens"]: [d["draw"] for d in t["draws"]] for t in table["tests"]} == {0: [None], 30: [1, 2]}
    assert (out / "report" / "bleu_vs_size.png").stat().st_size > 0
    assert (out / "report" / "report.md").is_file()

    results = sorted((out / "eval").rglob("*.json"))
    stamps = [p.stat().st_mtime_ns for p in results]
    again = run_recipe(tmp_path, str(files["src"]), str(files["tgt"]), "ast", str(out), str(experiment),
                       SIZES="30", DRAWS="2")
    assert again.returncode == 0, again.stderr
    assert [p.stat().st_mtime_ns for p in results] == stamps  # re-running continues: nothing redone


def test_recipe_usage_and_bad_input(files, tmp_path):
    assert "SRC_FILE EN_FILE LANG OUT [EXPERIMENT_DIR]" in run_recipe(tmp_path, "--help").stdout
    wrong = run_recipe(tmp_path, "a.ast", "a.en")
    assert wrong.returncode == 2 and wrong.stderr.startswith("usage: ")
    short = write(tmp_path / "short.en", EN[:20])
    cases = [((str(files["src"]), str(short), "ast", str(tmp_path / "o"), str(files["root"])),
              f"{files['root']}/metanmt/best is not a checkpoint"),
             ((str(files["src"]), str(tmp_path / "none.en"), "ast", str(tmp_path / "o")),
              f"{tmp_path / 'none.en'}: no such file")]
    for args, message in cases:
        done = run_recipe(tmp_path, *args)
        assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (tmp_path / "o").exists()
