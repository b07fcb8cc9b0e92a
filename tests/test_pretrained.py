"""Starting from pretrained checkpoints of every family (Marian, mBART-50, M2M-100, NLLB-200, T5): tiny
*random* models with tokenizers trained here on synthetic text, saved with ``save_pretrained`` as a hub
checkpoint would be; prepare with the model's tokenizer, meta-train and pretrain from it, then fine-tune,
evaluate, translate. Nothing touches the network."""

from __future__ import annotations

import io
import json
import random
import sys
from pathlib import Path

import pytest
import torch
import yaml

from metanmt.cli import main
from metanmt.errors import MetaNMTError
from metanmt.models import families

WORDS = ("the", "cat", "dog", "house", "bird", "sees", "a", "small", "big", "red", "blue", "runs", "eats",
         "sleeps", "near", "old")
LANGS = {"train": ["de", "fr"], "valid": ["ro"], "test": ["fi"]}
TINY = {"d_model": 32, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
        "decoder_attention_heads": 2, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64,
        "max_position_embeddings": 64}
TRAIN = {"meta": {"meta_batch": 2, "support_tokens": 60, "query_tokens": 60},
         "train": {"steps": 1, "eval_every": 1, "save_every": 1, "warmup_steps": 1},
         "finetune": {"valid_steps": 1, "max_steps": 2, "eval_every": 1, "batch_tokens": 200},
         "eval": {"valid_sentences": 4, "valid_beam": 1, "beam": 1}}


def synthetic_pairs(lang: str, n: int = 60) -> list[tuple[str, str]]:
    """Sentences of a word-for-word cipher of English: a source a model could learn to translate."""
    rng = random.Random(lang)
    lexicon = {w: f"{w[::-1]}{lang}" for w in WORDS}
    pairs = []
    for _ in range(n):
        words = rng.choices(WORDS, k=rng.randint(3, 6))
        pairs.append((" ".join(lexicon[w] for w in words), " ".join(words).capitalize() + "."))
    return pairs


def all_text() -> list[str]:
    return [s for group in LANGS.values() for lang in group for pair in synthetic_pairs(lang) for s in pair]


def train_spm(folder: Path, **ids) -> Path:
    import sentencepiece as spm

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(all_text()), model_writer=buffer, vocab_size=150,
                                   hard_vocab_limit=False, minloglevel=2, **ids)
    (folder / "sp.model").write_bytes(buffer.getvalue())
    return folder / "sp.model"


FAIRSEQ_IDS = {"bos_id": 0, "pad_id": 1, "eos_id": 2, "unk_id": 3}


def spm_vocab(path: Path) -> list[tuple[str, float]]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(path))
    return [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]


def marian(folder: Path):
    from metanmt.models.seq2seq import build_model, build_tokenizer

    tokenizer = build_tokenizer(train_spm(folder, pad_id=0, eos_id=1, unk_id=2, bos_id=-1), folder / "tok")
    return build_model("tiny", len(tokenizer), dropout=0.0), tokenizer


def mbart50(folder: Path):
    from transformers import MBart50Tokenizer, MBartConfig, MBartForConditionalGeneration

    tokenizer = MBart50Tokenizer(vocab=spm_vocab(train_spm(folder, **FAIRSEQ_IDS)))
    config = MBartConfig(vocab_size=families.tokenizer_size(tokenizer), pad_token_id=1, eos_token_id=2,
                         bos_token_id=0, decoder_start_token_id=2, forced_eos_token_id=2, **TINY)
    return MBartForConditionalGeneration(config), tokenizer


def m2m100(folder: Path):
    from transformers import M2M100ForConditionalGeneration, M2M100Tokenizer

    spm_path = train_spm(folder, **FAIRSEQ_IDS)
    (folder / "vocab.json").write_text(json.dumps({p: i for i, (p, _) in enumerate(spm_vocab(spm_path))}))
    tokenizer = M2M100Tokenizer(vocab_file=str(folder / "vocab.json"), spm_file=str(spm_path))
    return M2M100ForConditionalGeneration(m2m_config(tokenizer)), tokenizer


def m2m_config(tokenizer):
    from transformers import M2M100Config

    return M2M100Config(vocab_size=families.tokenizer_size(tokenizer), pad_token_id=1, eos_token_id=2,
                        bos_token_id=0, decoder_start_token_id=2, **TINY)


def nllb(folder: Path):
    """NLLB-200 is an M2M-100 model whose tokenizer (BPE) tags sources with FLORES-200 codes."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import M2M100ForConditionalGeneration, NllbTokenizer

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace()
    bpe.train_from_iterator(all_text(), trainers.BpeTrainer(vocab_size=200,
                                                            special_tokens=["<s>", "<pad>", "</s>", "<unk>"]))
    saved = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split()) if isinstance(m, str) else tuple(m) for m in saved["merges"]]
    tokenizer = NllbTokenizer(vocab=saved["vocab"], merges=merges)
    return M2M100ForConditionalGeneration(m2m_config(tokenizer)), tokenizer


def t5(folder: Path):
    from transformers import T5Config, T5ForConditionalGeneration, T5Tokenizer

    tokenizer = T5Tokenizer(vocab=spm_vocab(train_spm(folder, pad_id=0, eos_id=1, unk_id=2, bos_id=-1)),
                            extra_ids=0)
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=16, d_ff=64, num_layers=1, num_heads=2,
                      pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return T5ForConditionalGeneration(config), tokenizer


BUILDERS = {"marian": marian, "mbart50": mbart50, "m2m100": m2m100, "nllb": nllb, "t5": t5}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    for group in LANGS.values():
        for lang in group:
            lines = [f"{s}\t{t}" for s, t in synthetic_pairs(lang)]
            (folder / f"{lang}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def pretrained(name: str, folder: Path) -> Path:
    """A tiny random checkpoint of family ``name`` saved as a downloaded hub model would be."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model, tokenizer = BUILDERS[name](folder)
    model.save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    return folder / "model"


def write_config(path: Path, corpus: Path, checkpoint: Path, **sections) -> Path:
    tsv = [{"corpus": "tsv", "path": str(corpus / "{lang}.tsv")}]
    tasks = {group: {"languages": langs, "corpora": tsv, "dev_pairs": 8,
                     **({"test_pairs": 8} if group != "train" else {})}
             for group, langs in LANGS.items()}
    raw = {"data": {"seed": 1, "tasks": tasks, "tokenizer": {"from_pretrained": str(checkpoint)},
                    "finetune": {"tokens": [0, 100], "draws": 1}},
           "model": {"init_from": str(checkpoint)}, **TRAIN}
    for section, values in sections.items():
        raw[section] = {**raw.get(section, {}), **values}
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def run(*argv: str) -> None:
    assert main([str(a) for a in argv]) == 0


@pytest.mark.parametrize("family", list(BUILDERS))
def test_every_family_trains_finetunes_evaluates_and_translates(family, corpus, tmp_path, monkeypatch,
                                                                capsys):
    checkpoint = pretrained(family, tmp_path / family)
    config = write_config(tmp_path / "cfg.yaml", corpus, checkpoint)
    run("prepare", "--config", config, "--output-dir", tmp_path / "data")
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert manifest["tokenizer"]["family"] == family and "spm" not in manifest
    for command, out in (("meta-train", "meta"), ("pretrain", "multi")):
        run(command, "--config", config, "--data", tmp_path / "data", "--output-dir", tmp_path / out,
            "--init-from", checkpoint, "--no-progress")
    run("finetune", "--model", tmp_path / "meta" / "best", "--lang", "fi", "--tokens", 100,
        "--config", config, "--output-dir", tmp_path / "ft")
    run("evaluate", "--model", tmp_path / "ft", "--lang", "fi", "--split", "test", "--output",
        tmp_path / "ft" / "test.json", "--beam", 1)
    assert json.loads((tmp_path / "ft" / "test.json").read_text())["num_sentences"] == 8
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"eht tacfi\n\n")))
    run("translate", "--model", tmp_path / "ft", "--lang", "fi", "--beam", 1)
    assert len(capsys.readouterr().out.split("\n")) == 3  # two lines and the final newline


TAGS = {"marian": (None, None), "mbart50": ("fi_FI", "en_XX"), "m2m100": ("__fi__", "__en__"),
        "nllb": ("fin_Latn", "eng_Latn"), "t5": (None, None)}


@pytest.mark.parametrize("family", list(BUILDERS))
def test_sources_are_tagged_and_generation_starts_in_english(family, tmp_path):
    from metanmt.models.seq2seq import load_checkpoint

    model, tokenizer, _ = load_checkpoint(pretrained(family, tmp_path))
    (src,), (tgt,) = families.encode(tokenizer, "fi", ["eht tacfi"], ["The cat."])
    source_tag, english = TAGS[family]
    pieces = tokenizer.convert_ids_to_tokens(src)
    assert pieces[-1] == tokenizer.eos_token and tgt[-1] == tokenizer.eos_token_id
    if source_tag is None:
        assert model.generation_config.forced_bos_token_id is None
    else:
        assert pieces[0] == source_tag and tokenizer.convert_ids_to_tokens(tgt)[0] == english
        assert model.generation_config.forced_bos_token_id == tokenizer.convert_tokens_to_ids(english)
    if family == "t5":
        assert src == tokenizer("translate Finnish to English: eht tacfi")["input_ids"]


def test_language_without_a_code_and_untagged_call_are_clear_errors(tmp_path):
    from metanmt.models.seq2seq import load_checkpoint

    _, tokenizer, _ = load_checkpoint(pretrained("nllb", tmp_path))
    with pytest.raises(MetaNMTError, match="the nllb tokenizer has no code for language 'xq'"):
        families.encode(tokenizer, "xq", ["a"])
    with pytest.raises(MetaNMTError, match="must be told the source language"):
        families.encode(tokenizer, None, ["a"])


def test_init_from_another_tokenizer_than_the_prepared_one_is_refused(corpus, tmp_path):
    from metanmt.train.config import TrainConfig
    from metanmt.train.trainer import train

    config = write_config(tmp_path / "cfg.yaml", corpus, pretrained("m2m100", tmp_path / "a"))
    run("prepare", "--config", config, "--output-dir", tmp_path / "data")
    other = pretrained("nllb", tmp_path / "b")
    cfg = TrainConfig.from_dict({**TRAIN, "model": {"init_from": str(other)}})
    with pytest.raises(MetaNMTError, match=r"its tokenizer \(identity [0-9a-f]{16}\) is not the one"):
        train(cfg, tmp_path / "data", tmp_path / "run", progress=False)
    with pytest.raises(MetaNMTError, match="set model.init_from"):
        train(TrainConfig.from_dict(TRAIN), tmp_path / "data", tmp_path / "run2", progress=False)
