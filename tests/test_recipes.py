"""The recipes: configs parse, the paper-scale config has the paper's task split, and the scripts run.

The Gu et al. (2018) recipe downloads tens of GB, so it is run here with stand-ins for ``python``,
``metanmt`` and ``accelerate`` on the PATH that only record their arguments. Each recorded command is
then checked against the real parsers (the data scripts' ``--help``, ``accelerate launch``, each
``metanmt`` command), and the files the downloads would write are created from the recorded ``--out``
paths to show that the config's corpora find every language there.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from metanmt.cli import command_module
from metanmt.data.config import load_config
from metanmt.data.readers import make_corpus
from metanmt.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
GU2018 = RECIPES / "configs" / "gu2018_europarl.yaml"
GU2018_SCRIPT = RECIPES / "gu2018_europarl.sh"
# The run fingerprints of the recipe configs, frozen: run directories made with them must still resume
# (offline_tatoeba's: tests/test_pipeline.py::test_settings_added_since_keep_existing_runs_resumable).
# Widening trainer.RESUME_FREE changes them all (then update them: runs are checked against the config they
# recorded, not against these hashes).
FINGERPRINTS = {"gu2018_europarl": "e367ca0ff7a082d3", "offline_tatoeba_gpu": "2ccb21733ebb16e4",
                "pretrained_nllb_lora": "b6d940a35d4a453f", "pretrained_opus_mt": "2f0b665081f66d56"}
PAPER_TRAIN = ["bg", "cs", "da", "de", "el", "es", "et", "fr", "hu", "it", "lt", "nl", "pl", "pt", "sk", "sl",
               "sv", "ru"]
SHIM = """#!{python}
import json, os, sys
record = [os.path.basename(sys.argv[0]), *sys.argv[1:]]
with open(os.environ["RECIPE_LOG"], "a", encoding="utf-8") as log:  # one short append per call
    log.write(json.dumps({{"argv": record, "gpu": os.environ.get("CUDA_VISIBLE_DEVICES")}}) + "\\n")
"""


@pytest.mark.parametrize("path", sorted((RECIPES / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_recipe_config_parses(path):
    data = load_config(path)
    TrainConfig.load(path)
    assert data.languages("train")


def test_gu2018_config_follows_the_paper():
    data, train = load_config(GU2018), TrainConfig.load(GU2018)
    assert data.languages("train") == PAPER_TRAIN
    assert data.languages("valid") == ["ro", "lv"] and data.languages("test") == ["fi", "tr", "ko"]
    assert data.finetune.tokens == (0, 4000, 16000, 40000, 160000) and data.finetune.draws == 5
    for lang in ["ro", "lv", "fi", "tr", "ko"]:  # scored on the official test sets, held out whole
        assert data.plans[lang].test_pairs == 0 and data.plans[lang].eval_sets, lang
    assert data.spm.vocab_size == 32000
    assert train.model.preset == "base" and train.train.mixed_precision == "bf16"
    assert (train.meta.algorithm, train.meta.inner_steps, train.meta.inner_optimizer) == ("fomaml", 1, "adam")
    assert all(train.meta.meta_batch % gpus == 0 for gpus in (1, 2, 4, 8))  # the script's NUM_GPUS choices
    assert (train.eval.beam, train.eval.length_penalty) == (4, 0.6)
    assert train.eval.ood_draws == data.finetune.draws and train.eval.ood_max_sentences is None


@pytest.mark.parametrize("script", sorted(RECIPES.glob("*.sh")), ids=lambda p: p.name)
def test_recipe_script_syntax_and_mode(script):
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert script.stat().st_mode & stat.S_IXUSR, f"{script} is not executable"


def _run_recipe(tmp_path: Path, gpus: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.jsonl"
    bin_dir.mkdir(exist_ok=True)
    for name in ("python", "metanmt", "accelerate"):
        (bin_dir / name).write_text(SHIM.format(python=sys.executable), encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    log.unlink(missing_ok=True)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "RECIPE_LOG": str(log)}
    result = subprocess.run(["bash", str(GU2018_SCRIPT), str(tmp_path / "data"), str(tmp_path / "out"), gpus],
                            check=False, env=env, capture_output=True, text=True, timeout=60)
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    calls = [json.loads(line) for line in lines]
    return result, calls


def _options(argv: list[str]) -> dict[str, list[str]]:
    """``--flag value...`` groups of an argument list."""
    options: dict[str, list[str]] = {}
    flag = None
    for arg in argv:
        if arg.startswith("--"):
            flag = arg
            options[flag] = []
        elif flag is not None:
            options[flag].append(arg)
    return options


def _parse_metanmt(argv: list[str]) -> argparse.Namespace:
    """Parse ``metanmt COMMAND ...`` with that command's real parser (unknown flags exit with code 2)."""
    parser = argparse.ArgumentParser(prog=f"metanmt {argv[0]}")
    command_module(argv[0]).add_arguments(parser)
    return parser.parse_args(argv[1:])


def _create_downloads(calls: list[dict], data_root: Path) -> None:
    """The files each recorded download command would write (empty: only their places matter)."""
    for call in calls:
        module, options = call["argv"][2], _options(call["argv"][3:])
        out = Path(options["--out"][0])
        if module == "data_scripts.europarl":
            for lang in options["--langs"]:
                for side in (lang, "en"):
                    (out / "europarl").mkdir(parents=True, exist_ok=True)
                    (out / "europarl" / f"europarl-v7.{lang}-en.{side}").touch()
        elif module == "data_scripts.hf_download":
            out.mkdir(parents=True)
            (out / "dataset_info.json").write_text("{}", encoding="utf-8")
        elif module == "data_scripts.korean_news":
            folder = out / "korean_parallel" / "korean-english-news-v1"
            folder.mkdir(parents=True, exist_ok=True)
            for split in options["--splits"]:
                for side in ("ko", "en"):
                    (folder / f"korean-english-park.{split}.{side}").touch()


def test_gu2018_script_downloads_what_the_config_reads_then_trains_and_evaluates(tmp_path):
    data_root, out = tmp_path / "data", tmp_path / "out"
    result, calls = _run_recipe(tmp_path, "2")
    assert result.returncode == 0, result.stderr
    downloads = [c for c in calls if c["argv"][:2] == ["python", "-m"]]
    modules = {c["argv"][2] for c in downloads}
    in_text = set(re.findall(r"python -m (data_scripts\.\w+)", GU2018_SCRIPT.read_text(encoding="utf-8")))
    assert modules == in_text == {"data_scripts.europarl", "data_scripts.hf_download",
                                  "data_scripts.korean_news"}

    # every data script exists and accepts the flags the recipe gives it
    for module in sorted(modules):
        assert importlib.util.find_spec(module) is not None, module
        help_text = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True,
                                   text=True, check=True, timeout=30).stdout
        for call in downloads:
            if call["argv"][2] == module:
                for flag in _options(call["argv"][3:]):  # the whole flag, not an abbreviation of a longer one
                    assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])",
                                     help_text), f"{module}: no {flag}"
                assert Path(_options(call["argv"][3:])["--out"][0]).is_relative_to(data_root)
    from data_scripts.europarl import LANGUAGES

    europarl = [c for c in downloads if c["argv"][2] == "data_scripts.europarl"]
    assert len(europarl) == 1 and _options(europarl[0]["argv"])["--langs"] == PAPER_TRAIN[:-1]
    assert set(PAPER_TRAIN[:-1]) <= set(LANGUAGES)
    hf = {(o["--dataset"][0], o["--name"][0], o["--split"][0])
          for o in (_options(c["argv"]) for c in downloads if c["argv"][2] == "data_scripts.hf_download")}
    assert hf == {("wmt/wmt17", "ru-en", "train"), ("wmt/wmt16", "ro-en", "train"),
                  ("wmt/wmt16", "ro-en", "test")} | {
        ("wmt/wmt17", f"{lang}-en", split) for lang in ("lv", "fi", "tr") for split in ("train", "test")}

    # where the downloads land is where the config reads: every pool and every official test set
    _create_downloads(downloads, data_root)
    config = load_config(GU2018)
    for lang, plan in config.plans.items():
        for spec in plan.corpora:
            assert make_corpus(spec.kind, spec.options, data_root).covers(lang), (lang, spec)
        if plan.group != "train":
            tests = [name for name, spec in plan.eval_sets.items()
                     if make_corpus(spec.kind, spec.options, data_root).covers(lang)]
            assert len(tests) == 1, (lang, tests)

    # then prepare, two data-parallel trainings, one fine-tune/evaluate process per system and GPU, report
    rest = [c for c in calls if c not in downloads]
    assert [c["argv"][:2] for c in rest] == [["metanmt", "prepare"], ["accelerate", "launch"],
                                             ["accelerate", "launch"], ["metanmt", "experiment"],
                                             ["metanmt", "experiment"], ["metanmt", "report"]]
    prepare = _parse_metanmt(rest[0]["argv"][1:])
    assert (Path(prepare.config), Path(prepare.data_root), Path(prepare.output_dir)) == (GU2018, data_root,
                                                                                          out / "data")
    from accelerate.commands.launch import launch_command_parser

    for call, command, system in zip(rest[1:3], ["meta-train", "pretrain"], ["metanmt", "multinmt"]):
        launch = launch_command_parser().parse_args(call["argv"][2:])
        assert launch.module and launch.multi_gpu and launch.num_processes == 2
        assert launch.training_script == "metanmt" and launch.mixed_precision == "bf16"
        args = _parse_metanmt(launch.training_script_args)
        assert launch.training_script_args[0] == command
        assert (Path(args.config), Path(args.data),
                Path(args.output_dir)) == (GU2018, out / "data", out / system)
    experiments = {}
    for call in rest[3:5]:
        args = _parse_metanmt(call["argv"][1:])
        assert (Path(args.config), Path(args.output_dir), Path(args.data_root)) == (GU2018, out, data_root)
        assert args.langs == ["ro", "lv", "fi", "tr", "ko"]
        experiments[tuple(args.systems)] = call["gpu"]
    assert experiments == {("metanmt",): "0", ("multinmt",): "1"}
    report = _parse_metanmt(rest[5]["argv"][1:])
    assert (Path(report.runs), Path(report.output_dir)) == (out / "eval", out / "report")

    # re-running continues: the downloads are complete, so only the metanmt steps run again
    result, calls = _run_recipe(tmp_path, "1")
    assert result.returncode == 0, result.stderr
    assert [c["argv"][:2] for c in calls] == [["metanmt", "prepare"], ["accelerate", "launch"],
                                              ["accelerate", "launch"], ["metanmt", "experiment"]]
    launch = launch_command_parser().parse_args(calls[1]["argv"][2:])
    assert launch.num_processes == 1 and not launch.multi_gpu
    # one process, the paper's two systems, then its report
    assert _parse_metanmt(calls[3]["argv"][1:]).systems == ["metanmt", "multinmt"]


def test_gu2018_script_refuses_a_gpu_count_that_splits_the_meta_batch_unevenly(tmp_path):
    result, calls = _run_recipe(tmp_path, "3")
    assert result.returncode == 2 and calls == []
    assert "NUM_GPUS must divide meta.meta_batch (8)" in result.stderr


@pytest.mark.parametrize("name", sorted(FINGERPRINTS))
def test_recipe_fingerprints_are_unchanged(name):
    from metanmt.train.trainer import run_fingerprint

    assert run_fingerprint(TrainConfig.load(RECIPES / "configs" / f"{name}.yaml")) == FINGERPRINTS[name]
