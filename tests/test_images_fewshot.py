"""`metanmt fewshot` / `fewshot-report` end to end: on a fixture always, on the real Omniglot when given."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from metanmt.cli import main
from metanmt.errors import MetaNMTError
from metanmt.fewshot import algorithms as fewshot_algorithms
from metanmt.fewshot import published_defaults
from metanmt.fewshot import run as fewshot_run
from metanmt.fewshot.algorithms import build_algorithm
from metanmt.fewshot.report import find_results, render
from tests.test_images_miniimagenet import make_csv_layout
from tests.test_images_omniglot import make_omniglot

# 7 background alphabets (5 of them become the lake protocol's validation set) and 2 evaluation ones
LAKE_LAYOUT = [("background", f"Bg{i}", 3) for i in range(7)] + [("evaluation", f"Ev{i}", 3) for i in (0, 1)]
FIELDS = ("dataset", "protocol", "ways", "shots", "algorithm", "meta_steps", "eval_episodes", "accuracy",
          "ci95", "seed")


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    return make_omniglot(tmp_path_factory.mktemp("omniglot"), LAKE_LAYOUT)


@pytest.fixture
def fewshot(fixture_root, tmp_path):
    """``fewshot(name, *options)``: a small `metanmt fewshot` run on the fixture into ``tmp_path / name``."""

    def run(name: str, *options: str) -> int:
        before = torch.get_num_threads()
        torch.set_num_threads(3)  # not the run's --threads 1: the run must leave the caller's setting
        try:
            code = main(["fewshot", "--dataset", "omniglot", "--protocol", "lake",
                         "--data-root", str(fixture_root), "--output-dir", str(tmp_path / name),
                         "--cache-dir", str(tmp_path / "cache"), "--threads", "1", "--hidden", "8",
                         "--val-episodes", "3", "--eval-episodes", "5", *options])
            assert torch.get_num_threads() == 3
        finally:
            torch.set_num_threads(before)
        return code

    return run


def read(path: Path) -> dict:
    return json.loads((path / "results.json").read_text())


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_fomaml_run_writes_results_and_resume_continues_exactly(fewshot, tmp_path, device):
    # on CUDA with --deterministic: without it, on an H100 (2026-11-27), the resumed weights differed from
    # the uninterrupted run's in the last bits (the same test accuracy); non-deterministic kernels suspected
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device here")
    common = ("--algorithm", "fomaml", "--meta-batch", "2", "--eval-every", "2", "--eval-inner-steps", "2",
              "--device", device, *(("--deterministic",) if device == "cuda" else ()))
    assert fewshot("a", *common, "--meta-steps", "6") == 0
    results = read(tmp_path / "a")
    assert all(k in results for k in FIELDS)
    assert (results["dataset"], results["protocol"], results["algorithm"]) == ("omniglot", "lake", "fomaml")
    assert [results[k] for k in ("ways", "shots", "meta_steps", "eval_episodes")] == [5, 1, 6, 5]
    assert 0 <= results["accuracy"] <= 100 and results["ci95"] >= 0
    assert results["classes"] == {"train": 6, "val": 15, "test": 6}
    assert [h["step"] for h in results["history"]] == [2, 4, 6]
    assert results["config"]["inner_lr"] == 0.4 and results["config"]["inner_steps"] == 1  # published 5-way
    assert results["timing"]["sampler_episodes_per_s"] > 0

    # stop at 4, resume to 6: the same model and the same test accuracy as the uninterrupted run
    assert fewshot("b", *common, "--meta-steps", "4") == 0
    assert fewshot("b", *common, "--meta-steps", "6", "--resume") == 0
    resumed = read(tmp_path / "b")
    assert [h["step"] for h in resumed["history"]] == [2, 4, 6]
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["accuracy"] == results["accuracy"]


def test_deterministic_holds_for_the_run_only(fewshot, tmp_path, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    seen, real_start = [], fewshot_run._Run.start

    def start(cls, cfg):  # records the setting the run starts under
        seen.append(torch.are_deterministic_algorithms_enabled())
        return real_start(cfg)

    monkeypatch.setattr(fewshot_run._Run, "start", classmethod(start))
    assert not torch.are_deterministic_algorithms_enabled()
    small = ("--algorithm", "fomaml", "--meta-batch", "2", "--eval-inner-steps", "1")
    assert fewshot("d", *small, "--meta-steps", "2", "--eval-every", "2", "--deterministic") == 0
    assert seen == [True] and read(tmp_path / "d")["config"]["deterministic"] is True
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"  # before cuBLAS's first call, as it requires
    assert not torch.are_deterministic_algorithms_enabled()  # the caller's setting again
    assert fewshot("n", *small, "--meta-steps", "1", "--eval-every", "1") == 0
    assert seen == [True, False]


def test_time_limit_stops_with_a_checkpoint_that_resume_continues(fewshot, tmp_path, capsys):
    common = ("--algorithm", "fomaml", "--meta-batch", "2", "--eval-every", "50", "--eval-inner-steps", "1")
    assert fewshot("t", *common, "--meta-steps", "100", "--time-limit", "1e-9") == 0
    stopped = read(tmp_path / "t")
    assert "--time-limit 1e-09 min: stopped at meta-step 1 of 100" in capsys.readouterr().err
    assert stopped["meta_steps"] == 1 and [h["step"] for h in stopped["history"]] == [1]
    assert torch.load(tmp_path / "t" / "checkpoint.pt", weights_only=False)["step"] == 1
    assert fewshot("t", *common, "--meta-steps", "3", "--resume") == 0
    assert [h["step"] for h in read(tmp_path / "t")["history"]] == [1, 3]
    assert fewshot("t0", *common, "--meta-steps", "3", "--time-limit", "0") == 2
    assert "--time-limit must be > 0 minutes, got 0.0" in capsys.readouterr().err


def test_finn_network_runs_with_finns_inner_step_and_resumes_only_as_itself(fewshot, tmp_path, capsys):
    common = ("--algorithm", "maml", "--meta-batch", "2", "--eval-every", "2", "--eval-inner-steps", "1")
    assert fewshot("f", *common, "--network", "finn", "--meta-steps", "2") == 0
    config = read(tmp_path / "f")["config"]
    assert (config["network"], config["inner_lr"]) == ("finn", 0.4 * 5)  # 5-way: 0.4 on a sum of 5 losses
    model = torch.load(tmp_path / "f" / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
    assert all(torch.equal(model[f"features.{i}.weight"], torch.ones(8)) for i in (1, 4, 7, 10))
    assert fewshot("f", *common, "--meta-steps", "4", "--resume") == 2  # --network torch, the default
    assert "network: 'finn' -> 'torch'" in capsys.readouterr().err

    # a checkpoint from before --network existed was trained with the torch network, and resumes as such
    assert fewshot("t", *common, "--meta-steps", "2") == 0
    ckpt = torch.load(tmp_path / "t" / "checkpoint.pt", weights_only=False)
    del ckpt["config"]["network"]
    torch.save(ckpt, tmp_path / "t" / "checkpoint.pt")
    assert fewshot("t", *common, "--meta-steps", "4", "--resume") == 0
    assert read(tmp_path / "t")["meta_steps"] == 4


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_runs_on_the_device_it_is_given(fewshot, tmp_path, device):
    """On the device asked for (cuda wherever one is present): the model, the episodes and the test."""
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device here")
    for algorithm in ("maml", "protonet"):
        assert fewshot(device + algorithm, "--algorithm", algorithm, "--train-ways", "5", "--meta-batch", "2",
                       "--meta-steps", "2", "--eval-every", "2", "--eval-inner-steps", "1",
                       "--device", device) == 0
        results = read(tmp_path / (device + algorithm))
        assert results["machine"]["device"].startswith(device) and results["meta_steps"] == 2
        assert 0 <= results["accuracy"] <= 100


def test_a_step_that_cannot_be_recorded_falls_back_to_plain_steps_and_says_so(fewshot, tmp_path, monkeypatch):
    """As on a GPU where recording fails (--cuda-graphs auto): a warning, then the plain steps of a run that
    never tried, and results.json records that the steps were not replayed."""
    common = ("--algorithm", "maml", "--meta-batch", "2", "--meta-steps", "3", "--eval-every", "3",
              "--eval-inner-steps", "1")
    assert fewshot("plain", *common) == 0

    def unrecordable(*args):
        raise RuntimeError("operation not permitted when stream is capturing")

    def half_recorded(learner, optimizer):
        def step(episodes):
            learner.accumulate_meta_gradients(episodes)  # gradients left behind by a capture broken mid-way
            unrecordable()
        return step

    def graphs_on(cfg, model):
        algo = build_algorithm(cfg, model)
        algo.graphs = True  # what --cuda-graphs auto sets on a CUDA device
        return algo
    monkeypatch.setattr(fewshot_run, "build_algorithm", graphs_on)
    monkeypatch.setattr(fewshot_algorithms, "GraphedMetaStep", half_recorded)
    monkeypatch.setattr(fewshot_algorithms.MetaAlgorithm, "_graphed_accuracy", lambda self: unrecordable)
    warning = r"CUDA graphs off: recording the step failed \(RuntimeError: operation not permitted"
    with pytest.warns(UserWarning, match=warning):
        assert fewshot("fallback", *common) == 0
    plain, fallback = read(tmp_path / "plain"), read(tmp_path / "fallback")
    assert (plain["timing"]["cuda_graphs"], fallback["timing"]["cuda_graphs"]) == (False, False)
    assert (fallback["accuracy"], fallback["history"]) == (plain["accuracy"], plain["history"])
    a, b = (torch.load(tmp_path / name / "checkpoint.pt", weights_only=False)["model"]
            for name in ("plain", "fallback"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cuda_graphs_asked_for_off_cuda_are_an_error(fewshot, capsys):
    assert fewshot("g", "--meta-steps", "1", "--device", "cpu", "--cuda-graphs", "yes") == 2
    assert "--cuda-graphs yes needs a CUDA device; the model is on cpu" in capsys.readouterr().err


def test_an_absent_device_is_an_error(fewshot, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert fewshot("x", "--meta-steps", "1", "--device", "cuda") == 2
    assert "--device cuda: no cuda device is available on this machine" in capsys.readouterr().err


@pytest.mark.parametrize("algorithm", ["maml", "reptile"])
def test_second_order_maml_and_reptile_run_with_their_published_settings(fewshot, tmp_path, algorithm):
    assert fewshot(algorithm, "--algorithm", algorithm, "--meta-batch", "2", "--meta-steps", "2",
                   "--eval-every", "2", "--eval-inner-steps", "2", "--batch-tasks", "yes") == 0
    results = read(tmp_path / algorithm)
    assert results["algorithm"] == algorithm and results["meta_steps"] == 2
    assert results["config"]["batch_tasks"] == "yes"  # the meta-batch's two tasks ran together
    if algorithm == "reptile":  # Nichol et al.: inner Adam, 10 training shots, outer SGD step 1 annealed to 0
        assert results["config"]["inner_optimizer"] == "adam" and results["config"]["train_shots"] == 10
        assert results["config"]["lr_schedule"] == "linear" and results["config"]["meta_lr"] == 1.0


def test_miniimagenet_runs_end_to_end_on_a_fixture(tmp_path):
    root = make_csv_layout(tmp_path / "mini")  # 3/2/2 classes with 3-4/2/2-3 images
    assert main(["fewshot", "--dataset", "miniimagenet", "--data-root", str(root), "--algorithm", "fomaml",
                 "--ways", "2", "--queries", "1", "--eval-queries", "1", "--hidden", "4", "--meta-batch", "2",
                 "--meta-steps", "2", "--eval-every", "2", "--val-episodes", "2", "--eval-episodes", "3",
                 "--eval-inner-steps", "1", "--threads", "1", "--cache-dir", str(tmp_path / "cache"),
                 "--output-dir", str(tmp_path / "run")]) == 0
    results = read(tmp_path / "run")
    assert [results["dataset"], results["protocol"]] == ["miniimagenet", "ravi"]
    assert results["config"]["inner_lr"] == 0.01 and results["config"]["hidden"] == 4
    assert results["classes"] == {"train": 3, "val": 2, "test": 2}


def test_protonet_model_is_tested_on_other_ways_with_init_from(fewshot, tmp_path):
    proto = ("--algorithm", "protonet", "--train-ways", "6")
    assert fewshot("p", *proto, "--meta-steps", "3", "--eval-every", "3") == 0
    trained = read(tmp_path / "p")
    assert trained["config"]["train_ways"] == 6 and trained["config"]["queries"] == 5
    best = str(tmp_path / "p" / "best.pt")
    assert fewshot("p3", *proto, "--ways", "3", "--meta-steps", "0", "--init-from", best) == 0
    tested = read(tmp_path / "p3")
    # no training here: the tested model is the one trained for best_step meta-steps above
    assert (tested["ways"], tested["meta_steps"], tested["init_from"]["step"]) == (3, 3, trained["best_step"])
    assert tested["timing"]["meta_steps_this_run"] == 0
    assert "--meta-steps 0 " in " ".join(tested["command"]) + " "


def test_user_errors_exit_2_with_a_message(fewshot, tmp_path, capsys):
    assert fewshot("e", "--ways", "7", "--meta-steps", "1") == 2
    assert "7-way episodes need 7 classes but split 'train' has only 6" in capsys.readouterr().err
    assert fewshot("e", "--algorithm", "maml", "--train-ways", "6", "--meta-steps", "1") == 2
    assert "--train-ways must equal --ways" in capsys.readouterr().err
    proto = ("--algorithm", "protonet", "--eval-every", "1")
    assert fewshot("r", *proto, "--meta-steps", "1", "--train-ways", "5") == 0
    assert fewshot("r", *proto, "--meta-steps", "2", "--train-ways", "6", "--resume") == 2
    assert "train_ways: 5 -> 6" in capsys.readouterr().err
    assert main(["fewshot", "--dataset", "omniglot", "--data-root", str(tmp_path / "nowhere"),
                 "--output-dir", str(tmp_path / "x")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_published_defaults_are_the_papers():
    keys = ("inner_steps", "inner_lr", "meta_batch", "eval_inner_steps")
    assert [published_defaults("omniglot", "maml", 5, 1)[k] for k in keys] == [1, 0.4, 32, 10]
    assert [published_defaults("omniglot", "fomaml", 20, 1)[k] for k in keys] == [5, 0.1, 16, 10]
    mini = published_defaults("miniimagenet", "maml", 5, 5)
    assert [mini[k] for k in keys] == [5, 0.01, 4, 10] and mini["hidden"] == 32 and mini["queries"] == 15
    assert published_defaults("omniglot", "protonet", 5, 1)["train_ways"] == 60
    assert published_defaults("miniimagenet", "protonet", 5, 1)["train_ways"] == 30
    # Finn's code steps on the support losses summed and divided by K: N times the mean's step
    finn = [published_defaults(d, a, n, k, "finn")["inner_lr"]
            for d, a, n, k in [("omniglot", "maml", 5, 1), ("omniglot", "fomaml", 20, 1),
                               ("miniimagenet", "maml", 5, 5), ("omniglot", "reptile", 5, 1)]]
    assert finn == pytest.approx([2.0, 2.0, 0.05, 1e-3])  # Reptile's inner Adam: no conversion


def write_result(folder: Path, **values) -> None:
    folder.mkdir(parents=True)
    base = {"dataset": "omniglot", "protocol": "maml", "algorithm": "maml", "ways": 5, "shots": 1,
            "accuracy": 97.5, "ci95": 0.5, "meta_steps": 5000, "eval_episodes": 600, "seed": 0}
    (folder / "results.json").write_text(json.dumps({**base, **values}))


def test_report_puts_results_beside_the_published_numbers(tmp_path):
    write_result(tmp_path / "runs" / "maml_5w1s", best_step=4500)
    write_result(tmp_path / "runs" / "proto_20w1s", algorithm="protonet", ways=20, accuracy=95.0, ci95=0.3)
    write_result(tmp_path / "runs" / "lake_proto", algorithm="protonet", protocol="lake", accuracy=90.0)
    write_result(tmp_path / "runs" / "finn_20w1s", ways=20, accuracy=94.0, ci95=0.25,
                 config={"network": "finn"})
    text = render(find_results([str(tmp_path / "runs")]))
    lines = text.splitlines()
    assert ("| Omniglot | MAML | 5-way 1-shot | 98.70 ± 0.40 (Finn et al. 2017) | 97.50 ± 0.50 | -1.20 "
            "| 5000 (best 4500) | 600 | `maml_5w1s` |") in lines
    assert ("| Omniglot | ProtoNets | 20-way 1-shot | 96.00 (Snell et al. 2017) | 95.00 ± 0.30 | -1.00 "
            "| 5000 | 600 | `proto_20w1s` |") in lines
    assert ("| Omniglot | MAML | 20-way 1-shot | 95.80 ± 0.30 (Finn et al. 2017) | 94.00 ± 0.25 | -1.80 "
            "| 5000 | 600 | `finn_20w1s` (`--network finn`) |") in lines
    # a lake-protocol result is not compared with the (maml-protocol) published number
    assert "| Omniglot | ProtoNets | 5-way 1-shot | 98.80 (Snell et al. 2017) | not run | | | | |" in lines
    assert ("| Omniglot (lake protocol) | ProtoNets | 5-way 1-shot | — | 90.00 ± 0.50 | | 5000 | 600 "
            "| `lake_proto` |") in lines
    assert ("| Mini-ImageNet | first-order MAML | 5-way 5-shot | 63.15 ± 0.91 (Finn et al. 2017) "
            "| not run | | | | |") in lines
    out = tmp_path / "parity.md"
    assert main(["fewshot-report", str(tmp_path / "runs"), "--output", str(out)]) == 0
    assert out.read_text() == text
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text('{"accuracy": 1}')
    with pytest.raises(MetaNMTError, match="missing dataset"):
        find_results([str(tmp_path / "bad")])


def test_real_omniglot_protonet_learns_well_above_chance(tmp_path, tmp_path_factory):
    data_root = os.environ.get("METANMT_DATA_ROOT")
    if not data_root:
        pytest.skip("METANMT_DATA_ROOT not set: the real Omniglot (shared/data/omniglot) is not available")
    # the user's cache if set, else one decode shared by this session's tests
    cache = os.environ.get("METANMT_CACHE") or str(tmp_path_factory.getbasetemp() / "metanmt-cache")
    out = tmp_path / "run"
    assert main(["fewshot", "--dataset", "omniglot", "--data-root", str(Path(data_root) / "omniglot"),
                 "--algorithm", "protonet", "--ways", "5", "--shots", "1", "--train-ways", "20",
                 "--meta-steps", "50", "--eval-every", "50", "--val-episodes", "10",
                 "--eval-episodes", "50", "--threads", "1", "--cache-dir", cache,
                 "--output-dir", str(out)]) == 0
    results = read(out)
    assert results["classes"] == {"train": 4400, "val": 400, "test": 1692}
    assert results["accuracy"] > 60.0, results["accuracy"]  # chance is 20%
    timing = results["timing"]
    assert timing["sampler_episodes_per_s"] > 10 * timing["meta_steps_per_s"]


def test_recompute_runs_maml_and_is_refused_elsewhere(fewshot, tmp_path, capsys):
    common = ("--meta-batch", "2", "--meta-steps", "2", "--eval-every", "2", "--eval-inner-steps", "1",
              "--recompute")
    assert fewshot("r", "--algorithm", "maml", *common) == 0
    results = read(tmp_path / "r")
    assert results["config"]["recompute"] is True and results["meta_steps"] == 2
    assert fewshot("rf", "--algorithm", "fomaml", *common) == 2
    assert "recompute saves memory for second-order MAML" in capsys.readouterr().err
