"""End-to-end ``metanmt prepare`` on small synthetic corpora: splits, leakage, cache, subsets, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from metanmt.cli import main
from metanmt.data import PreparedData
from metanmt.data.prepare import english_token_counts, leak_key, prepare
from metanmt.errors import MetaNMTError

TRAIN = ("de", "fr", "es")


def _sentence(rng: np.random.Generator, words: int) -> str:
    letters = list("abcdefghijklmnoprstuvw")
    return " ".join("".join(rng.choice(letters,
                                       size=rng.integers(2, 7))) for _ in range(words)).capitalize() + "."


def _translate(english: str, lang: str) -> str:
    """A fake but consistent 'translation': words reversed and tagged, about as long as the English."""
    return " ".join(w[::-1] + lang[0] for w in english.rstrip(".").split()) + "."


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _pairs(rng: np.random.Generator, lang: str, n: int) -> tuple[list[str], list[str]]:
    english = [_sentence(rng, int(rng.integers(3, 9))) for _ in range(n)]
    return [_translate(e, lang) for e in english], english


def make_tree(root: Path) -> dict[str, list[str]]:
    """Corpora for de/fr/es (train), ro (valid), fi (test); returns the sentences the tests refer to."""
    rng = np.random.default_rng(0)
    fi_tatoeba = _pairs(rng, "fi", 30)
    for lang in (*TRAIN, "ro", "fi"):
        src, tgt = _pairs(rng, lang, 80)
        if lang == "de":
            # cleaning cases: an empty pair, an overlong pair, a length-ratio outlier, a duplicate,
            # whitespace to normalise, and two pairs leaking fi test sentences (English side)
            src += ["", " ".join(["lang"] * 40) + ".", "Ok.", src[0], "  Spaced\tout   text .",
                    _translate(fi_tatoeba[1][0], lang), _translate(fi_tatoeba[1][1], lang)]
            tgt += ["Empty source.", " ".join(["long"] * 40) + ".",
                    ("This English sentence is far far far far far far far far far far longer than its "
                     "source."),
                    tgt[0], "Spaced out text.", fi_tatoeba[1][0].upper(), fi_tatoeba[1][1] + "!!"]
        if lang == "fi":
            src.append(fi_tatoeba[0][2])  # source-side leak of a fi test sentence, other English
            tgt.append(_sentence(rng, len(fi_tatoeba[0][2].split())))
        _write(root / lang / f"main.{lang}", src)
        _write(root / lang / "main.en", tgt)
    for lang, pairs in (("fi", fi_tatoeba), ("ro", _pairs(rng, "ro", 30))):
        _write(root / lang / f"tatoeba.{lang}", pairs[0])
        _write(root / lang / "tatoeba.en", pairs[1])
        ood_src, ood_tgt = _pairs(rng, lang, 12)
        _write(root / lang / "ood.tsv", [f"{s}\t{t}" for s, t in zip(ood_src, ood_tgt)])
    return {"fi_test_en": fi_tatoeba[1], "fi_test_src": fi_tatoeba[0]}


def make_config(**changes: object) -> dict:
    main_corpus = {"corpus": "text", "label": "main", "src": "{lang}/main.{lang}", "tgt": "{lang}/main.en"}
    tatoeba = {"corpus": "text", "label": "tatoeba", "src": "{lang}/tatoeba.{lang}",
               "tgt": "{lang}/tatoeba.en"}
    held_out = {"corpora": [tatoeba, main_corpus], "test_pairs": 30, "test_from": "tatoeba", "dev_pairs": 10,
                "eval_sets": {"test_ood": {"corpus": "tsv", "path": "{lang}/ood.tsv"}}}
    data = {
        "seed": 3, "tasks": {"train": {"languages": list(TRAIN), "corpora": [main_corpus], "dev_pairs": 8,
                            "max_pairs": 70},
                  "valid": {"languages": ["ro"], **held_out},
                  "test": {"languages": ["fi"], **held_out}},
        "clean": {"max_words": 30, "max_chars": 300, "max_ratio": 2.5},
        "spm": {"vocab_size": 400, "sentences": 2000, "temperature": 2.0, "threads": 1},
        "finetune": {"tokens": [0, 60, 200], "draws": 2},
    }
    data.update(changes)
    return {"data": data, "model": {"preset": "tiny"}, "train": {"steps": 5}}  # other sections are ignored


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, list[str]]]:
    root = tmp_path_factory.mktemp("corpora")
    refs = make_tree(root)
    out = prepare(make_config(), root, tmp_path_factory.mktemp("runs") / "prepared", progress=False)
    return root, out, refs


def test_splits_counts_and_manifest(built):
    _, out, _ = built
    data = PreparedData.load(out)
    assert data.train_langs == list(TRAIN) and data.valid_langs == ["ro"] and data.test_langs == ["fi"]
    manifest = data.manifest
    de = manifest["tasks"]["de"]
    # 87 read: 1 empty, 1 overlong, 1 ratio outlier, 1 duplicate -> 83 kept; 2 leak fi test English
    assert de["cleaning"]["main"] == {"read": 87, "empty": 1, "overlong": 1, "ratio": 1, "duplicate": 1,
                                      "kept": 83}
    assert de["leak_removed"] == 2
    assert de["splits"]["dev"]["pairs"] == 8 and de["splits"]["train"]["pairs"] == 70  # max_pairs cap
    assert "Spaced out text ." in data.pairs("de", "train").src_text + data.pairs("de", "dev").src_text
    fi = manifest["tasks"]["fi"]
    assert fi["splits"]["test"]["pairs"] == 30 and fi["splits"]["test"]["origins"] == {"tatoeba": 30}
    assert data.eval_splits("fi") == ["test", "test_ood"] and len(data.pairs("fi", "test_ood")) == 12
    assert fi["cleaning"]["main"]["kept"] == 81 and fi["cleaning"]["tatoeba"]["kept"] == 30
    assert fi["leak_removed"] == 1  # the pool pair whose source is a fi test sentence
    assert fi["splits"]["train"]["pairs"] == 80 - 10  # main corpus minus the dev split
    for lang in data.languages:
        for split in data.splits(lang):
            entry = manifest["tasks"][lang]["splits"][split]
            pairs = data.pairs(lang, split)
            assert len(pairs) == entry["pairs"]
            assert entry["tgt_tokens"] == pairs.num_tgt_tokens == int(pairs.tgt_lengths.sum())
    assert {s["kind"] for s in manifest["sources"]} == {"text", "tsv"}
    assert all(len(f["sha256"]) == 64 for s in manifest["sources"] for f in s["files"])
    assert (out / "summary.md").read_text().count("| fi | test |") == 1


def test_no_overlap_between_splits_or_with_any_test_set(built):
    _, out, refs = built
    data = PreparedData.load(out)
    test_en = {leak_key(t) for lang in data.languages for split in data.eval_splits(lang)
               for t in data.pairs(lang, split).tgt_text}
    assert {leak_key(t) for t in refs["fi_test_en"]} <= test_en
    for lang in data.languages:
        test_src = {leak_key(s) for split in data.eval_splits(lang) for s in data.pairs(lang, split).src_text}
        train, dev = data.pairs(lang, "train"), data.pairs(lang, "dev")
        assert not {leak_key(t) for t in train.tgt_text + dev.tgt_text} & test_en, lang
        assert not {leak_key(s) for s in train.src_text + dev.src_text} & test_src, lang
        assert not set(zip(train.src_text, train.tgt_text)) & set(zip(dev.src_text, dev.tgt_text))


def test_encoding_ids_and_spm(built):
    _, out, _ = built
    data = PreparedData.load(out)
    sp = data.tokenizer()
    assert (sp.pad_id(), sp.eos_id(), sp.unk_id(), sp.bos_id()) == (0, 1, 2, -1)
    assert data.vocab_size == sp.get_piece_size() == data.manifest["spm"]["vocab_size"]
    pairs = data.pairs("ro", "train")
    for i in range(len(pairs)):
        assert pairs.src(i)[-1] == 1 and pairs.tgt(i)[-1] == 1 and 0 not in pairs.tgt(i)
        assert pairs.src(i).dtype == np.int32
    assert sp.decode(pairs.tgt(0)[:-1].tolist()) == pairs.tgt_text[0]
    sub = pairs.subset([3, 1])
    assert sub.src_text == [pairs.src_text[3], pairs.src_text[1]]
    assert np.array_equal(sub.tgt(0), pairs.tgt(3)) and np.array_equal(sub.src(1), pairs.src(1))


def test_finetune_subsets_respect_budgets_and_nest(built):
    _, out, _ = built
    data = PreparedData.load(out)
    assert data.finetune_sizes == [0, 60, 200] and data.num_draws == 2
    train = data.pairs("fi", "train")
    assert len(data.finetune_subset("fi", 0, 1)) == 0
    for draw in range(2):
        small, big = data.finetune_subset("fi", 60, draw), data.finetune_subset("fi", 200, draw)
        for subset, budget in ((small, 60), (big, 200)):
            tokens = int(english_token_counts(subset.tgt_text).sum())
            assert budget - 12 < tokens <= budget  # a sentence has at most ~10 English tokens here
        assert set(small.tgt_text) <= set(big.tgt_text) <= set(train.tgt_text)
    assert data.finetune_subset("fi", 200, 0).tgt_text != data.finetune_subset("fi", 200, 1).tgt_text
    with pytest.raises(MetaNMTError, match="sizes: \\[0, 60, 200\\]"):
        data.finetune_subset("fi", 100, 0)
    with pytest.raises(MetaNMTError, match="draws are 0..1"):
        data.finetune_subset("fi", 60, 2)
    with pytest.raises(MetaNMTError, match="languages with subsets: ro, fi"):
        data.finetune_subset("de", 60, 0)


def test_prepared_data_errors(built, tmp_path):
    _, out, _ = built
    data = PreparedData.load(out)
    with pytest.raises(MetaNMTError, match="no language 'xx'.*de, fr, es, ro, fi"):
        data.pairs("xx", "train")
    with pytest.raises(MetaNMTError, match="no split 'test_wmt'.*train, dev, test, test_ood"):
        data.pairs("fi", "test_wmt")
    with pytest.raises(MetaNMTError, match=str(tmp_path)):
        PreparedData.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(MetaNMTError, match="not a readable manifest"):
        PreparedData.load(tmp_path)


def test_rerun_reuses_cache_and_is_deterministic(built, tmp_path, capsys):
    root, out, _ = built
    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert prepare(make_config(), root, out) == out
    assert (out / "manifest.json").stat().st_mtime_ns == stamp
    assert "up to date" in capsys.readouterr().err
    again = prepare(make_config(), root, tmp_path / "again", progress=False)
    assert (again / "spm.model").read_bytes() == (out / "spm.model").read_bytes()
    for lang in ("de", "fi"):
        a, b = PreparedData.load(out).pairs(lang, "train"), PreparedData.load(again).pairs(lang, "train")
        assert a.src_text == b.src_text and np.array_equal(a.tgt_lengths, b.tgt_lengths)
    first, second = (json.loads((d / "manifest.json").read_text()) for d in (out, again))
    assert first["cache_key"] == second["cache_key"] and first["finetune"] == second["finetune"]


def test_changed_source_rebuilds_changed_config_needs_overwrite(tmp_path):
    root = tmp_path / "corpora"
    make_tree(root)
    out = prepare(make_config(), root, tmp_path / "out", progress=False)
    key = json.loads((out / "manifest.json").read_text())["cache_key"]
    with (root / "de" / "main.de").open("a", encoding="utf-8") as handle, \
            (root / "de" / "main.en").open("a", encoding="utf-8") as english:
        handle.write("Neuu satzz hierr.\n")
        english.write("A new sentence here.\n")
    prepare(make_config(), root, out, progress=False)
    assert json.loads((out / "manifest.json").read_text())["cache_key"] != key
    changed = make_config(seed=4)
    with pytest.raises(MetaNMTError, match="different config.*--overwrite"):
        prepare(changed, root, out, progress=False)
    prepare(changed, root, out, overwrite=True, progress=False)
    assert PreparedData.load(out).manifest["seed"] == 4


def test_failed_run_leaves_previous_output_intact(tmp_path):
    root = tmp_path / "corpora"
    make_tree(root)
    out = prepare(make_config(), root, tmp_path / "out", progress=False)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (root / "fr" / "main.en").write_text("only one line\n", encoding="utf-8")  # now misaligned
    with pytest.raises(MetaNMTError, match=r"main\.fr has 80 lines but .*main\.en has 1 lines"):
        prepare(make_config(seed=9), root, out, overwrite=True, progress=False)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpora", "out"]  # no temp folder left


def test_refuses_foreign_output_dir(tmp_path):
    root = tmp_path / "corpora"
    make_tree(root)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(MetaNMTError, match="not empty and holds no prepared data"):
        prepare(make_config(), root, tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(("change", "message"), [
    ({"finetune": {"tokens": [0, 10**6], "draws": 1}},
     (r"ro: fine-tuning subset size\(s\) \[1000000\] English tokens exceed its training data: \d+ English "
      r"tokens in 70 pairs")),
    ({"tasks": {"train": {"languages": ["de", "ko"], "corpora": [
        {"corpus": "text", "src": "{lang}/main.{lang}", "tgt": "{lang}/main.en"}]}}},
     r"no data for language 'ko' \(Korean\).*ko/main\.ko"),
    ({"tasks": {"train": {"languages": ["de", "xx"], "corpora": ["flores200"]}}},
     "unknown language code 'xx'; known ISO 639-1 codes: .*bg, .*ko"),
    ({"tasks": {"train": {"languages": ["de"], "corpora": ["flores200"], "dev_pairs": 10**5}}},
     "de: dev_pairs is 100000 but only"),
])
def test_bad_input(tmp_path, change, message):
    root = tmp_path / "corpora"
    make_tree(root)
    (root / "flores200" / "devtest").mkdir(parents=True)
    for code in ("deu_Latn", "eng_Latn"):
        _write(root / "flores200" / "devtest" / f"{code}.devtest", [f"Sentence {i} here." for i in range(30)])
    with pytest.raises(MetaNMTError, match=message):
        prepare(make_config(**change), root, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_non_utf8_source_is_reported_with_file_and_line(tmp_path):
    root = tmp_path / "corpora"
    make_tree(root)
    path = root / "es" / "main.es"
    lines = path.read_bytes().split(b"\n")
    lines[4] = b"caf\xe9 con leche"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(MetaNMTError, match=r"main\.es: line 5 is not valid UTF-8"):
        prepare(make_config(), root, tmp_path / "out", progress=False)


def test_cli_prepare_and_errors(tmp_path, capsys, monkeypatch):
    import yaml

    root = tmp_path / "corpora"
    make_tree(root)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(make_config()), encoding="utf-8")
    monkeypatch.delenv("METANMT_DATA_ROOT", raising=False)
    args = ["prepare", "--config", str(config), "--output-dir", str(tmp_path / "out"), "--quiet"]
    assert main([*args, "--data-root", str(root)]) == 0
    assert "| **all** |" in capsys.readouterr().out
    assert main(args) == 2  # relative corpus paths without a data root
    assert "pass --data-root" in capsys.readouterr().err
    monkeypatch.setenv("METANMT_DATA_ROOT", os.fspath(root))
    assert main(args) == 0  # the data root comes from the environment; the cache is reused
