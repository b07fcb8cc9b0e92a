"""The download scripts in data_scripts/, run offline on small local archives of the published layouts."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from data_scripts import europarl, flores, hf_download, korean_news, tatoeba
from metanmt.data.readers import make_corpus


def make_tar(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz" if path.name.endswith("gz") else "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_europarl(tmp_path):
    make_tar(tmp_path / "dl" / "ro-en.tgz", {"europarl-v7.ro-en.ro": b"Bun venit.\nMultumesc.\n",
                                              "europarl-v7.ro-en.en": b"Welcome.\nThank you.\n",
                                              "README": b"ignored"})
    assert europarl.main(["--out", str(tmp_path / "data"), "--langs", "ro",
                          "--source", str(tmp_path / "dl" / "{lang}-en.tgz")]) == 0
    corpus = make_corpus("text", {"src": "europarl/europarl-v7.{lang}-en.{lang}",
                                  "tgt": "europarl/europarl-v7.{lang}-en.en"}, tmp_path / "data")
    assert corpus.read("ro").tgt == ["Welcome.", "Thank you."]
    assert not (tmp_path / "data" / "europarl" / "README").exists()


def test_europarl_refuses_misaligned_archive(tmp_path):
    make_tar(tmp_path / "ro-en.tgz", {"europarl-v7.ro-en.ro": b"a\nb\n", "europarl-v7.ro-en.en": b"a\n"})
    with pytest.raises(SystemExit, match="europarl-v7.ro-en.ro has 2 lines but .*europarl-v7.ro-en.en has 1"):
        europarl.main(["--out", str(tmp_path / "data"), "--langs", "ro", "--source",
                       str(tmp_path / "ro-en.tgz")])


def test_flores(tmp_path):
    members = {f"flores200_dataset/{split}/{code}.{split}": f"{code} {split}\n".encode()
               for split in ("dev", "devtest") for code in ("ron_Latn", "eng_Latn")}
    members["flores200_dataset/metadata_dev.tsv"] = b"x"
    archive = make_tar(tmp_path / "flores200_dataset.tar.gz", members)
    assert flores.main(["--out", str(tmp_path / "data"), "--source", str(archive)]) == 0
    text = make_corpus("flores200", {"split": "dev"}, tmp_path / "data").read("ro")
    assert (text.src, text.tgt) == (["ron_Latn dev"], ["eng_Latn dev"])
    assert make_corpus("flores200", {}, tmp_path / "data").read("ro").src == ["ron_Latn devtest"]


def test_korean_news(tmp_path):
    for split in ("train", "dev", "test"):
        make_tar(tmp_path / f"korean-english-park.{split}.tar.gz",
                 {f"korean-english-park.{split}.ko": "안녕하세요.\n".encode(),
                  f"korean-english-park.{split}.en": f"Hello {split}.\n".encode()})
    source = str(tmp_path / "korean-english-park.{split}.tar.gz")
    assert korean_news.main(["--out", str(tmp_path / "data"), "--source", source]) == 0
    assert make_corpus("korean_news", {"split": "train"},
                       tmp_path / "data").read("ko").tgt == ["Hello train."]


def test_tatoeba_challenge_train(tmp_path):
    folder = "data/release/v2021-08-07/eng-ron"
    archive = make_tar(tmp_path / "eng-ron.tar", {
        # src = eng (first in the pair name)
        f"{folder}/train.src.gz": gzip.compress(b"One.\nTwo.\nThree.\n"),
        f"{folder}/train.trg.gz": gzip.compress(b"Unu.\nDoi.\nTrei.\n"),
        f"{folder}/test.src": b"Yes.\n", f"{folder}/test.trg": b"Da.\n",
        f"{folder}/train.id.gz": gzip.compress(b"x")})
    assert tatoeba.main(["--out", str(tmp_path / "data"), "--langs", "ro", "--max-pairs", "2",
                         "--source", str(archive)]) == 0
    train = make_corpus("tatoeba_challenge", {"prefix": "tatoeba-train-v2021-08-07"},
                        tmp_path / "data").read("ro")
    assert (train.src, train.tgt) == (["Unu.", "Doi."], ["One.", "Two."])
    assert make_corpus("tatoeba_challenge", {"prefix": "tatoeba-test-v2021-08-07"},
                       tmp_path / "data").read("ro").src == ["Da."]
    with pytest.raises(SystemExit, match="no code for 'sk'"):
        tatoeba.main(["--out", str(tmp_path / "data"), "--langs", "sk", "--source", str(archive)])


def test_hf_download_to_disk(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"translation": {"tr": "Merhaba.", "en": "Hello."}}) + "\n", encoding="utf-8")
    assert hf_download.main(["--dataset", "json", "--data-files", str(rows), "--out",
                             str(tmp_path / "data" / "hf" / "tr-en")]) == 0
    text = make_corpus("hf_disk", {"path": "hf/{lang}-en"}, tmp_path / "data").read("tr")
    assert (text.src, text.tgt) == (["Merhaba."], ["Hello."])


def test_unknown_source_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match="neither a local file nor an http"):
        flores.main(["--out", str(tmp_path), "--source", str(tmp_path / "missing.tar.gz")])
