"""The ``data:`` section of a config: defaults, overrides, and clear errors for mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from metanmt.data.config import load_config
from metanmt.errors import MetaNMTError

RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "configs"


def config(**tasks: object) -> dict:
    base = {"train": {"languages": ["de", "sk"], "corpora": ["tatoeba_challenge", "ntrex128"], "dev_pairs": 5,
                      "per_language": {"sk": {"corpora": ["tatoeba_laser", "ntrex128"]}}}}
    base.update(tasks)
    return {"data": {"tasks": base}, "model": {"preset": "tiny"}}


def test_defaults_overrides_and_other_sections_ignored():
    raw = config(test={"languages": ["fi"], "corpora": "tatoeba_challenge", "test_pairs": 10,
                       "eval_sets": {"test_wmt": {"corpus": "wmt_newstest", "year": 2016}}})
    cfg = load_config(raw)
    assert cfg.languages("train") == ["de", "sk"] and cfg.languages("test") == ["fi"]
    assert [c.kind for c in cfg.plans["sk"].corpora] == ["tatoeba_laser", "ntrex128"]
    assert [c.kind for c in cfg.plans["de"].corpora] == ["tatoeba_challenge", "ntrex128"]
    assert cfg.plans["fi"].test_from == "tatoeba_challenge" and cfg.plans["de"].test_from is None
    assert cfg.plans["fi"].eval_sets["test_wmt"].options == {"year": 2016}
    assert cfg.spm.vocab_size == 8000 and cfg.finetune.tokens == (0, 4000, 16000, 40000, 160000)
    assert cfg.section == raw["data"]  # the cache key hashes this section only


@pytest.mark.parametrize(("path", "test_langs"), [
    (RECIPES.parents[1] / "metanmt" / "configs" / "demo.yaml", ["ca", "nb", "uk"]),
    (RECIPES / "offline_tatoeba.yaml", ["fi", "tr", "ko", "ca", "uk", "nb"]),
    (RECIPES / "offline_tatoeba_gpu.yaml", ["fi", "tr", "ko", "ca", "uk", "nb"])])
def test_recipe_configs_parse(path, test_langs):
    from metanmt.train.config import TrainConfig

    TrainConfig.load(path)  # the training sections of the same file parse too
    cfg = load_config(path)
    assert len(cfg.languages("train")) == 18
    assert cfg.languages("valid") == ["ro", "lv"] and cfg.languages("test") == test_langs


@pytest.mark.parametrize(("data", "message"), [
    ({"tasks": {"train": {"languages": ["de"], "corpora": ["flores200"]}}, "spm": {"vocab": 10}},
     r"data.spm: unknown key\(s\) \['vocab'\]; allowed: \['vocab_size'"),
    ({"tasks": {"train": {"languages": []}}}, "data.tasks.train.languages is empty"),
    ({"tasks": {"train": {"languages": ["de"]}}}, "no corpora listed for 'de'"),
    ({"tasks": {"train": {"languages": ["de"], "corpora": ["flores200"]},
                "test": {"languages": ["de"], "corpora": ["flores200"]}}},
     "'de' is listed in both data.tasks.train and data.tasks.test"),
    ({"tasks": {"train": {"languages": ["en"], "corpora": ["flores200"]}}}, "English is the target side"),
    ({"tasks": {"train": {"languages": ["de"], "corpora": ["flores200"], "test_pairs": 5,
                          "test_from": "wmt"}}},
     r"test_from: 'wmt' is not one of the corpora \['flores200'\]"),
    ({"tasks": {"train": {"languages": ["de"], "corpora": ["flores200"], "eval_sets": {"dev": "flores200"}}}},
     "'dev' is not a valid split name"),
    ({"tasks": {"train": {"languages": ["de"], "corpora": ["flores200"], "per_language": {"fr": {}}}}},
     r"per_language names \['fr'\], which are not in"),
    ({"tasks": {"train": {"languages": ["de"], "corpora": [{"corpus": "text", "src": "a"}]}}},
     r"corpus 'text': missing option\(s\) \['tgt'\]"),
    ({"tasks": {"train": {"languages": ["de"], "corpora": ["flores200"]}}, "finetune": {"tokens": [-1]}},
     "data.finetune.tokens\\[\\] must be an integer >= 0"),
    ({"tasks": {"train": {"languages": ["de"], "corpora": ["flores200"]}},
      "spm": {"model_type": "wordpiece"}},
     "data.spm.model_type must be one of"),
])
def test_config_errors(data, message):
    with pytest.raises(MetaNMTError, match=message):
        load_config({"data": data})


def test_config_file_errors(tmp_path):
    with pytest.raises(MetaNMTError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("data: [unclosed")
    with pytest.raises(MetaNMTError, match="bad.yaml is not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "nodata.yaml").write_text("model: {preset: tiny}\n")
    with pytest.raises(MetaNMTError, match="no top-level 'data:' section"):
        load_config(tmp_path / "nodata.yaml")
