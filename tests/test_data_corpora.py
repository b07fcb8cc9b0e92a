"""Corpus readers on small fixtures (plain text, TSV, the shared/data layouts, Hugging Face datasets),
the language registry, and, when METANMT_DATA_ROOT is set, the real corpora."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from metanmt.data.corpora import read_aligned, read_lines, read_tsv
from metanmt.data.languages import (
    LANGUAGES,
    META_TRAIN_DEFAULT,
    TEST_DEFAULT,
    VALID_DEFAULT,
    corpus_code,
    language,
    source_language,
    template_fields,
)
from metanmt.data.readers import make_corpus
from metanmt.errors import MetaNMTError


def write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


# ---------------------------------------------------------------- registry


def test_registry_codes_and_errors():
    assert corpus_code("lv", "flores") == "lvs_Latn" and corpus_code("lv", "ntrex") == "lav"
    assert corpus_code("lv", "tatoeba_laser") == "lvs" and corpus_code("lv", "tatoeba_challenge") == "lav"
    assert corpus_code("sk", "tatoeba_challenge") is None
    assert template_fields("ro")["pair"] == "en-ro" and template_fields("de")["pair"] == "de-en"
    assert "tatoeba_laser" not in template_fields("mt")
    with pytest.raises(MetaNMTError, match="unknown language code 'xx'; known ISO 639-1 codes: af, ar, be"):
        language("xx")
    with pytest.raises(MetaNMTError, match="English is the target side"):
        source_language("en")
    with pytest.raises(MetaNMTError, match="unknown code system"):
        corpus_code("de", "wmt")
    paper = META_TRAIN_DEFAULT + VALID_DEFAULT + TEST_DEFAULT
    assert len(paper) == 23 and all(LANGUAGES[code].django for code in paper)


# ---------------------------------------------------------------- plain readers


def test_read_lines_splits_on_newline_only(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes("\ufeffone\u2028still one\r\ntwo\x85too\nthree".encode())
    assert read_lines(path) == ["one\u2028still one", "two\x85too", "three"]


def test_misaligned_files_name_both_files_and_counts(tmp_path):
    src = write(tmp_path / "x.de", ["a", "b", "c"])
    tgt = write(tmp_path / "x.en", ["a", "b"])
    with pytest.raises(MetaNMTError, match=rf"misaligned.*{src} has 3 lines but {tgt} has 2 lines"):
        read_aligned(src, tgt)


def test_non_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "bad.de"
    path.write_bytes(b"ok\nalso ok\n\xff\xfe broken\n")
    with pytest.raises(MetaNMTError, match=rf"{path}: line 3 is not valid UTF-8"):
        read_lines(path)


def test_tsv_reader(tmp_path):
    path = write(tmp_path / "p.tsv", ["src\ttgt\tnote", "Hallo\tHello\tx", "", "Welt\tWorld\ty"])
    text = read_tsv(path, header=True)
    assert (text.src, text.tgt) == (["Hallo", "Welt"], ["Hello", "World"])
    assert read_tsv(path, src_column=1, tgt_column=0, header=True).src == ["Hello", "World"]
    write(tmp_path / "short.tsv", ["a\tb", "only one column"])
    with pytest.raises(MetaNMTError, match="short.tsv: line 2 has 1 tab-separated column"):
        read_tsv(tmp_path / "short.tsv")


def test_text_and_tsv_corpora_with_templates(tmp_path):
    write(tmp_path / "eu" / "de-en.de", ["Hallo"])
    write(tmp_path / "eu" / "de-en.en", ["Hello"])
    corpus = make_corpus("text", {"src": "eu/{pair}.{lang}", "tgt": "eu/{pair}.en"}, tmp_path)
    assert corpus.covers("de") and not corpus.covers("fr")
    assert corpus.read("de").src == ["Hallo"] and corpus.files("de")[0] == tmp_path / "eu" / "de-en.de"
    with pytest.raises(MetaNMTError, match="has no fr-en data.*eu/en-fr.fr"):
        corpus.read("fr")
    with pytest.raises(MetaNMTError, match=r"unknown field\(s\) \['iso'\]"):
        make_corpus("text", {"src": "{iso}.txt", "tgt": "x"}, tmp_path).covers("de")
    with pytest.raises(MetaNMTError, match=r"corpus 'tsv': unknown option\(s\) \['colum'\]"):
        make_corpus("tsv", {"path": "x.tsv", "colum": 1}, tmp_path)
    with pytest.raises(MetaNMTError, match="unknown corpus 'europarl'; known: django, flores200"):
        make_corpus("europarl", {}, tmp_path)
    with pytest.raises(MetaNMTError, match="relative path.*pass --data-root"):
        make_corpus("text", {"src": "a", "tgt": "b"}, None).covers("de")


# ---------------------------------------------------------------- shared/data layouts on a miniature tree


def make_layouts(root: Path) -> None:
    write(root / "flores200/devtest/ron_Latn.devtest", ["Salut.", "Da."])
    write(root / "flores200/devtest/eng_Latn.devtest", ["Hi.", "Yes."])
    write(root / "ntrex128/NTREX-128/newstest2019-ref.lav.txt", ["Sveiki."])
    write(root / "ntrex128/NTREX-128/newstest2019-src.eng.txt", ["Hello."])
    write(root / "tatoeba_laser/v1/tatoeba.lvs-eng.lvs", ["Jā."])
    write(root / "tatoeba_laser/v1/tatoeba.lvs-eng.eng", ["Yes."])
    write(root / "tatoeba_challenge/v2021-08-07/eng-lav/tatoeba-test-v2021-08-07.lav", ["Nē.", "Jā."])
    write(root / "tatoeba_challenge/v2021-08-07/eng-lav/tatoeba-test-v2021-08-07.eng", ["No.", "Yes."])
    write(root / "tatoeba_challenge/v2021-08-07/deu-eng/tatoeba-test-v2021-08-07.deu", ["Ja."])
    write(root / "tatoeba_challenge/v2021-08-07/deu-eng/tatoeba-test-v2021-08-07.eng", ["Yes."])
    write(root / "wmt_newstest/2017/lv-en/newstest2017.lv", ["Ziņas."])
    write(root / "wmt_newstest/2017/lv-en/newstest2017.en", ["News."])
    write(root / "wmt_newstest/2016/lv-en/newstest2016.lv", ["Vecas ziņas."])
    write(root / "wmt_newstest/2016/lv-en/newstest2016.en", ["Old news."])
    write(root / "korean_parallel/korean-english-news-v1/korean-english-park.test.ko", ["안녕."])
    write(root / "korean_parallel/korean-english-news-v1/korean-english-park.test.en", ["Hi."])


@pytest.mark.parametrize(("kind", "options", "lang", "expected"), [
    ("flores200", {}, "ro", (["Salut.", "Da."], ["Hi.", "Yes."])),
    ("ntrex128", {}, "lv", (["Sveiki."], ["Hello."])),
    ("tatoeba_laser", {}, "lv", (["Jā."], ["Yes."])),
    ("tatoeba_challenge", {}, "lv", (["Nē.", "Jā."], ["No.", "Yes."])),
    ("tatoeba_challenge", {}, "de", (["Ja."], ["Yes."])),
    ("wmt_newstest", {}, "lv", (["Ziņas."], ["News."])),
    ("wmt_newstest", {"year": 2016}, "lv", (["Vecas ziņas."], ["Old news."])),
    ("wmt_newstest", {"year": {"lv": 2016}}, "lv", (["Vecas ziņas."], ["Old news."])),
    ("korean_news", {}, "ko", (["안녕."], ["Hi."])),
])
def test_shared_layout_readers(tmp_path, kind, options, lang, expected):
    make_layouts(tmp_path)
    corpus = make_corpus(kind, options, tmp_path)
    assert corpus.covers(lang)
    text = corpus.read(lang)
    assert (text.src, text.tgt) == expected
    assert all(p.is_file() for p in corpus.files(lang))


def test_layout_readers_report_languages_they_lack(tmp_path):
    make_layouts(tmp_path)
    assert not make_corpus("tatoeba_challenge", {}, tmp_path).covers("sk")  # no code: not in the release
    assert not make_corpus("korean_news", {}, tmp_path).covers("lv")
    assert not make_corpus("wmt_newstest", {}, tmp_path).covers("de")
    with pytest.raises(MetaNMTError, match="flores200.*no fi-en data.*fin_Latn.devtest"):
        make_corpus("flores200", {}, tmp_path).read("fi")


# ---------------------------------------------------------------- Hugging Face datasets, offline


def test_hf_load_dataset_on_local_json(tmp_path):
    rows = [{"translation": {"ro": "Bună ziua.", "en": "Good day."}}, {"translation": {"ro": "Mulțumesc.",
                                                                                      "en": "Thank you."}}]
    path = tmp_path / "hf" / "en-ro.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    corpus = make_corpus("hf", {"path": "json", "data_files": "hf/{pair}.jsonl"}, tmp_path)
    assert corpus.covers("ro") and not corpus.covers("fi")
    text = corpus.read("ro")
    assert (text.src, text.tgt) == (["Bună ziua.", "Mulțumesc."], ["Good day.", "Thank you."])
    assert corpus.files("ro") == [path]
    flat = tmp_path / "hf" / "flores.jsonl"
    flat.write_text(json.dumps({"sentence_ron_Latn": "Da.", "sentence_eng_Latn": "Yes."}) + "\n")
    flores = make_corpus("hf", {"path": "json", "data_files": "hf/flores.jsonl",
                                "src_field": "sentence_{flores}", "tgt_field": "sentence_eng_Latn"}, tmp_path)
    assert flores.read("ro").src == ["Da."]
    missing = make_corpus("hf", {"path": "json", "data_files": "hf/flores.jsonl"}, tmp_path)
    with pytest.raises(MetaNMTError, match="row 0: field 'translation.ro' not found"):
        missing.read("ro")


def test_hf_load_from_disk(tmp_path):
    import datasets

    dataset = datasets.Dataset.from_dict({"translation": [{"fi": "Kiitos.", "en": "Thanks."},
                                                          {"fi": "Hei.", "en": "Hi."}]})
    datasets.DatasetDict({"train": dataset,
                          "test": dataset.select([1])}).save_to_disk(str(tmp_path / "fi-en"))
    corpus = make_corpus("hf_disk", {"path": "{lang}-en"}, tmp_path)
    assert corpus.covers("fi") and not corpus.covers("tr")
    assert corpus.read("fi").tgt == ["Thanks.", "Hi."]
    assert make_corpus("hf_disk", {"path": "{lang}-en", "split": "test"}, tmp_path).read("fi").src == ["Hei."]
    assert any(p.suffix == ".arrow" for p in corpus.files("fi"))
    with pytest.raises(MetaNMTError, match=r"has no split 'dev'; it has \['test', 'train'\]"):
        make_corpus("hf_disk", {"path": "{lang}-en", "split": "dev"}, tmp_path).read("fi")


# ---------------------------------------------------------------- the real corpora (METANMT_DATA_ROOT)


def data_root() -> Path:
    root = os.environ.get("METANMT_DATA_ROOT")
    if not root:
        pytest.skip("METANMT_DATA_ROOT not set: the real-data checks need the shared corpora")
    return Path(root)


def test_registry_matches_the_real_files():
    root = data_root()
    kinds = {"flores": "flores200", "ntrex": "ntrex128", "tatoeba_laser": "tatoeba_laser",
             "tatoeba_challenge": "tatoeba_challenge"}
    for code, lang in LANGUAGES.items():
        if code == "en":
            continue
        for system, kind in kinds.items():
            corpus = make_corpus(kind, {}, root)
            assert corpus.covers(code) == (getattr(lang, system) is not None), (code, kind)


@pytest.mark.parametrize(("kind", "lang", "pairs"), [
    ("tatoeba_challenge", "ro", 5508), ("tatoeba_challenge", "lv", 1631), ("tatoeba_laser", "sk", 1000),
    ("ntrex128", "ko", 1997), ("flores200", "tr", 1012), ("wmt_newstest", "ro", 1999),
    ("wmt_newstest", "fi", 3002), ("korean_news", "ko", 2000),
])
def test_real_corpora_line_counts(kind, lang, pairs):
    text = make_corpus(kind, {}, data_root()).read(lang)
    assert len(text.src) == len(text.tgt) == pairs
