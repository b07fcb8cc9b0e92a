"""``prepare`` on the real corpora (METANMT_DATA_ROOT): a reduced offline_tatoeba config, end to end."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from metanmt.data import PreparedData
from metanmt.data.prepare import leak_key, prepare

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "configs" / "offline_tatoeba.yaml"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> PreparedData:
    root = os.environ.get("METANMT_DATA_ROOT")
    if not root:
        pytest.skip("METANMT_DATA_ROOT not set: the real-data checks need the shared corpora")
    config = yaml.safe_load(RECIPE.read_text(encoding="utf-8"))
    tasks = config["data"]["tasks"]
    tasks["train"]["languages"] = ["de", "sk"]
    tasks["train"]["max_pairs"] = 1500
    tasks["valid"]["languages"] = ["lv"]
    tasks["test"]["languages"] = ["ko"]
    del tasks["test"]["per_language"]  # the ca/uk/nb overrides name languages left out here
    # no WMT set for ko: an eval set that covers no language is an error
    del tasks["test"]["eval_sets"]["test_wmt"]
    config["data"]["spm"].update(vocab_size=2000, sentences=20000)
    config["data"]["finetune"] = {"tokens": [0, 4000, 16000], "draws": 2}
    return PreparedData.load(prepare(config, root, tmp_path_factory.mktemp("real") / "out", progress=False))


def test_real_splits_and_out_of_domain_sets(prepared):
    data = prepared
    assert data.eval_splits("lv") == ["test", "test_wmt", "test_flores"]
    assert data.eval_splits("ko") == ["test", "test_news", "test_flores"]
    assert [len(data.pairs("lv", s)) for s in data.eval_splits("lv")] == [500, 2001, 1012]
    assert [len(data.pairs("ko", s)) for s in data.eval_splits("ko")] == [500, 2000, 1012]
    assert data.manifest["tasks"]["sk"]["corpora"] == ["tatoeba_laser"]  # training data: Tatoeba only
    assert data.manifest["tasks"]["lv"]["splits"]["test"]["origins"] == {"tatoeba_challenge": 500}
    assert len(data.pairs("de", "train")) == 1500 and len(data.pairs("de", "dev")) == 100


def test_real_no_test_sentence_in_any_training_data(prepared):
    data = prepared
    test_en = {leak_key(t) for lang in data.languages for s in data.eval_splits(lang)
               for t in data.pairs(lang, s).tgt_text}
    for lang in data.languages:
        for split in ("train", "dev"):
            assert not {leak_key(t) for t in data.pairs(lang, split).tgt_text} & test_en, (lang, split)
    assert sum(task["leak_removed"] for task in data.manifest["tasks"].values()) > 0


def test_real_finetune_subsets(prepared):
    data = prepared
    for lang in ("lv", "ko"):
        sizes = data.manifest["finetune"]["subsets"][lang]
        for tokens in (4000, 16000):
            assert all(tokens - 200 < d["en_tokens"] <= tokens for d in sizes[str(tokens)])
        assert len(data.finetune_subset(lang, 4000, 1)) == sizes["4000"][1]["pairs"]
