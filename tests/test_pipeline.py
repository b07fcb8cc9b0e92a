"""MetaNMT vs MultiNMT end to end on the tiny preset: pipeline, resume after kill -9, fine-tuning learns,
bad checkpoints, two processes."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from metanmt.errors import MetaNMTError
from metanmt.memory import ALLOCATOR_ENV, allocator_environment
from metanmt.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "metanmt" / "configs" / "demo.yaml"

TINY = {
    "model": {"preset": "tiny", "dropout": 0.1},
    "meta": {"meta_batch": 2, "support_tokens": 200, "query_tokens": 200},
    "train": {"steps": 4, "eval_every": 2, "save_every": 2, "warmup_steps": 2},
    "finetune": {"valid_steps": 2, "max_steps": 6, "eval_every": 3, "batch_tokens": 400,
                 "lr_grid": [1e-4, 1e-3], "tune_tokens": 500},
    "eval": {"valid_sentences": 10, "beam": 2},
}


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory) -> Path:
    """The demo data section cut to 4 training languages, 1 validation and 1 test language."""
    pytest.importorskip("django", reason="the demo corpus needs the 'demo' extra (pip install metanmt[demo])")
    raw = yaml.safe_load(DEMO.read_text())
    tasks = raw["data"]["tasks"]
    tasks["train"]["languages"] = ["de", "es", "fr", "it"]
    tasks["valid"]["languages"] = ["ro"]
    tasks["test"]["languages"] = ["fi"]
    raw["data"]["spm"]["vocab_size"] = 1000
    raw["data"]["finetune"] = {"tokens": [0, 500], "draws": 1}
    raw.update(TINY)
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def tiny_data(tiny_config, tmp_path_factory) -> Path:
    from metanmt.data.prepare import prepare

    return prepare(tiny_config, None, tmp_path_factory.mktemp("data") / "prepared", progress=False)


def test_full_pipeline_on_tiny_preset(tiny_config, tmp_path):
    from metanmt.train.pipeline import ExperimentPlan, run_experiment

    report = run_experiment(tiny_config, tmp_path / "run",
                            ExperimentPlan(splits=["test"], max_eval_sentences=20, progress=False))
    for name in ("report.json", "report.md", "bleu_vs_size.png"):
        assert (tmp_path / "run" / "report" / name).is_file(), name
    evals = sorted((tmp_path / "run" / "eval").rglob("*_test.json"))
    assert len(evals) == 6  # 3 systems x (zero-shot + 500 tokens) on fi/test
    result = json.loads(evals[0].read_text())
    assert result["bleu_signature"].startswith("nrefs:1") and result["num_sentences"] == 20
    assert set(result["source_gap"]) == {"loss", "shuffled_loss", "gap"}
    sources = (evals[0].parent / result["sources"]).read_text(encoding="utf-8").splitlines()
    assert len(sources) == 20  # the sources beside hypotheses and references
    # each trained model is also scored on every training language's dev split
    dev = sorted((tmp_path / "run" / "eval").rglob("train_dev.json"))
    assert sorted(p.parent.name for p in dev) == sorted(["de", "es", "fr", "it"] * 3)
    md = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "MetaNMT" in md and "MultiNMT" in md
    assert md.index("## Verdict") < md.index("## Training languages")  # the verdict comes first
    # the training log carries the source-gap diagnostic at every validation
    validations = [json.loads(line) for line in (tmp_path / "run" / "metanmt" / "train_log.jsonl")
                   .read_text().splitlines() if "valid_bleu" in line]
    assert validations and all("gap" in r["source_gap"] for r in validations)
    assert report  # the report dict is returned too
    # each system's fine-tuning rate is chosen on the validation language and used for every test fine-tune
    for system in ("metanmt", "multinmt", "multimeta"):
        choice = json.loads((tmp_path / "run" / "eval" / system / "finetune_lr.json").read_text())
        assert choice["langs"] == ["ro"] and set(choice["scores"]) == {"0.0001", "0.001"}
        best = max(choice["scores"].items(), key=lambda kv: (kv[1]["chrf_mean"], kv[1]["mean"]))
        assert choice["lr"] == float(best[0])
        info = json.loads((tmp_path / "run" / "finetune" / system / "fi" / "500" / "draw0" / "metanmt.json")
                          .read_text())
        assert info["finetune"]["lr"] == choice["lr"]
    assert "Fine-tuning learning rate, chosen per system on the validation languages" in md
    # both systems processed the same token budget
    logs = {s: (tmp_path / "run" / s / "train_log.jsonl").read_text().splitlines() for s in ("metanmt",
                                                                                             "multinmt")}
    per_step = 2 * (200 + 200)
    budget = 4 * per_step
    for lines in logs.values():  # each stops at the first step that reaches the budget
        assert budget <= json.loads(lines[-1])["tokens"] < budget + per_step
    # multimeta: meta-learning from MultiNMT's checkpoint at half the budget, for the other half
    start = tmp_path / "run" / "multinmt" / f"tokens_{budget // 2}"
    pretrained = json.loads((start / "metanmt.json").read_text())["tokens"]
    assert budget // 2 <= pretrained < budget // 2 + per_step
    run_info = json.loads((tmp_path / "run" / "multimeta" / "run.json").read_text())
    assert run_info["config"]["model"]["init_from"] == str(start.resolve())
    meta_lines = (tmp_path / "run" / "multimeta" / "train_log.jsonl").read_text().splitlines()
    assert budget // 2 <= json.loads(meta_lines[-1])["tokens"] < budget // 2 + per_step
    assert "MultiNMT+MetaNMT" in md
    # its learning curve counts tokens from random weights: MultiNMT's before its own
    curves = json.loads((tmp_path / "run" / "report" / "report.json").read_text())["training_curves"]
    curve = curves["multimeta"]
    assert curve[-1]["tokens"] == pretrained + json.loads(meta_lines[-1])["tokens"]


def test_experiment_uses_prepared_data_as_is(tiny_config, tiny_data, tmp_path):
    """--data: a directory prepared elsewhere is used without the corpora (e.g. on a GPU machine)."""
    from metanmt.train.pipeline import ExperimentPlan, run_experiment

    config = yaml.safe_load(tiny_config.read_text())
    config["data"]["tasks"]["train"]["corpora"] = ["no_such_corpus"]  # never read: nothing is prepared
    config["train"]["steps"] = 1
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(config))
    plan = ExperimentPlan(systems=["multinmt"], langs=["fi"], validation=True, sizes=[0], checkpoint="last",
                          splits=["test"], max_eval_sentences=5, progress=False)
    report = run_experiment(path, tmp_path / "run", plan, data_dir=tiny_data)
    assert not (tmp_path / "run" / "data").exists()
    # --validation: ro evaluated too, each result with its language's role; ro reported apart from the verdict
    evals = tmp_path / "run" / "eval" / "multinmt"
    groups = {la: json.loads((evals / la / "0_draw0_test.json").read_text())["group"] for la in ("fi", "ro")}
    assert groups == {"fi": "test", "ro": "valid"}
    assert [t["lang"] for t in report["tables"]] == ["fi"]
    assert [t["lang"] for t in report["validation_tables"]] == ["ro"]
    tuned = tmp_path / "run" / "finetune" / "multinmt" / "fi" / "0" / "draw0"
    info = json.loads((tuned / "metanmt.json").read_text())
    assert info["base_model"] == str((tmp_path / "run" / "multinmt" / "last").resolve())  # --checkpoint last


def test_systems_side_by_side_give_the_numbers_of_each_alone(tiny_config, tiny_data, tmp_path, capfd):
    """--jobs 2: each system trained, fine-tuned and evaluated in its own process on one thread gives every
    logged loss and score of running it alone on one thread; the report covers both."""
    from metanmt.train.pipeline import ExperimentPlan, run_experiment

    plan = ExperimentPlan(systems=["metanmt", "multinmt"], sizes=[500], splits=["test"],
                          max_eval_sentences=10, progress=False)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # shared out: one thread per process
        report = run_experiment(tiny_config, tmp_path / "side", dataclasses.replace(plan, jobs=2),
                                data_dir=tiny_data)
        torch.set_num_threads(1)
        run_experiment(tiny_config, tmp_path / "alone", plan, data_dir=tiny_data)
    finally:
        torch.set_num_threads(threads)
    shown = capfd.readouterr().out
    for system in ("metanmt", "multinmt"):
        assert f"[{system}] === 2/4 train {system}" in shown
        assert (tmp_path / "side" / "logs" / f"{system}.log").is_file()
        logs = [[{k: v for k, v in json.loads(line).items() if k != "tokens_per_s"}
                 for line in (tmp_path / run / system / "train_log.jsonl").read_text().splitlines()]
                for run in ("side", "alone")]
        assert logs[0] == logs[1]
    results = [sorted((tmp_path / run / "eval").rglob("*.json")) for run in ("side", "alone")]
    assert [p.relative_to(tmp_path / "side") for p in results[0]] == \
        [p.relative_to(tmp_path / "alone") for p in results[1]]
    for side, alone in zip(*results):
        kept = ("bleu", "chrf", "source_gap", "scores", "lr")
        scores = [{k: v for k, v in json.loads(p.read_text()).items() if k in kept} for p in (side, alone)]
        assert scores[0] and scores[0] == scores[1], side
    assert {t["lang"] for t in report["tables"]} == {"fi"}


def test_jobs_keep_multimeta_behind_multinmt(tiny_config, tmp_path):
    from metanmt.train.pipeline import ExperimentPlan, _job_groups, run_experiment

    assert _job_groups(["metanmt", "multinmt", "multimeta"], 2) == [["metanmt"], ["multinmt", "multimeta"]]
    assert _job_groups(["metanmt", "multinmt", "multimeta"], 5) == [["metanmt"], ["multinmt", "multimeta"]]
    assert _job_groups(["metanmt", "multinmt", "multimeta"], 1) == [["metanmt", "multinmt", "multimeta"]]
    assert _job_groups(["metanmt", "multimeta"], 2) == [["metanmt"], ["multimeta"]]  # multinmt trained before
    with pytest.raises(MetaNMTError, match="jobs must be at least 1, not 0"):
        run_experiment(tiny_config, tmp_path / "run", ExperimentPlan(jobs=0))
    assert not (tmp_path / "run").exists()  # refused before anything is prepared or written


def test_fine_tunes_of_a_run_extended_since_are_refused(tiny_config, tiny_data, tmp_path):
    from metanmt.train.pipeline import ExperimentPlan, run_experiment

    config = yaml.safe_load(tiny_config.read_text())
    config["train"].update(steps=1, eval_every=1)
    config["finetune"]["lr_grid"] = []
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(config))

    def run():
        plan = ExperimentPlan(systems=["multinmt"], langs=["fi"], sizes=[500], splits=["test"],
                              max_eval_sentences=5, progress=False)
        run_experiment(path, tmp_path / "run", plan, data_dir=tiny_data)

    run()
    evaluation = tmp_path / "run" / "eval" / "multinmt" / "fi" / "500_draw0_test.json"
    before = evaluation.read_bytes()
    run()  # nothing changed: everything is reused
    assert evaluation.read_bytes() == before
    best = tmp_path / "run" / "multinmt" / "best" / "metanmt.json"  # as if a longer run had found a new best
    info = json.loads(best.read_text())
    best.write_text(json.dumps({**info, "tokens": info["tokens"] + 1}))
    with pytest.raises(MetaNMTError, match="move the 'finetune' and 'eval' folders"):
        run()
    assert evaluation.read_bytes() == before


def _train_and_die(config: dict, system: str, data: str, out: str, die_at: int | None) -> None:
    from metanmt.train.trainer import train

    def kill(record):
        if die_at is not None and record["step"] == die_at:
            os.kill(os.getpid(), signal.SIGKILL)  # kill -9: no cleanup, no final checkpoint

    torch.set_num_threads(1)
    train(TrainConfig.from_dict(config), data, out, system=system, progress=False, callbacks=[kill])


def _run(config, system, data, out, die_at=None) -> int:
    proc = mp.get_context("spawn").Process(target=_train_and_die,
                                           args=(config, system, str(data), str(out), die_at))
    proc.start()
    proc.join(300)
    return proc.exitcode


@pytest.mark.parametrize("system", ["metanmt", "multinmt"])
def test_resume_after_kill_gives_the_same_parameters(tiny_data, tmp_path, system):
    config = {**TINY, "train": {**TINY["train"], "steps": 5, "eval_every": 10}}
    assert _run(config, system, tiny_data, tmp_path / "straight") == 0
    assert _run(config, system, tiny_data, tmp_path / "killed", die_at=3) == -signal.SIGKILL
    state = torch.load(tmp_path / "killed" / "last" / "training_state.pt", weights_only=False)
    assert state["state"]["step"] == 2  # the last checkpoint before the kill
    assert _run(config, system, tiny_data, tmp_path / "killed") == 0  # same command again
    from safetensors.torch import load_file

    a = load_file(tmp_path / "straight" / "last" / "model.safetensors")
    b = load_file(tmp_path / "killed" / "last" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    def log(run):
        lines = (tmp_path / run / "train_log.jsonl").read_text().splitlines()
        return [(r["step"], r["tokens"], r["loss"]) for r in map(json.loads, lines)]

    straight, killed = log("straight"), log("killed")
    assert killed[2][0] == 3 and killed[3][0] == 3  # step 3 ran before the kill and again after the resume
    assert killed[:2] + killed[3:] == straight  # the same losses and token counts at every step


def test_finetuning_learns_its_training_sentences(tiny_data):
    """A fine-tuned tiny model reproduces a small fixed parallel set: the pipeline really learns."""
    from metanmt.data import PreparedData
    from metanmt.eval.generate import translate
    from metanmt.eval.metrics import corpus_scores
    from metanmt.models.seq2seq import build_model, build_tokenizer
    from metanmt.train.config import FinetuneSection
    from metanmt.train.finetune import finetune

    data = PreparedData.load(tiny_data)
    pairs = data.pairs("de", "train").subset(range(12))
    torch.manual_seed(0)
    model = build_model("tiny", data.vocab_size, dropout=0.0)
    cfg = FinetuneSection(lr=3e-3, batch_tokens=2000, max_steps=250)
    finetune(model, pairs, pairs, cfg, early_stopping=False)
    hyps = translate(model.eval(), build_tokenizer(data.spm_path), pairs.src_text, num_beams=2,
                     progress=False)
    bleu = corpus_scores(hyps, pairs.tgt_text).bleu
    assert bleu > 80, (bleu, hyps[:3], pairs.tgt_text[:3])


def test_finetune_early_stopping_keeps_the_best_dev_loss(tiny_data):
    from metanmt.data import PreparedData
    from metanmt.models.seq2seq import build_model
    from metanmt.train.config import FinetuneSection
    from metanmt.train.finetune import dev_loss, finetune

    data = PreparedData.load(tiny_data)
    train_pairs, dev = data.pairs("fi", "train").subset(range(20)), data.pairs("fi", "dev")
    torch.manual_seed(0)
    model = build_model("tiny", data.vocab_size)
    start = dev_loss(model, dev, 1000)
    result = finetune(model, train_pairs, dev,
                      FinetuneSection(lr=3e-3, max_steps=60, eval_every=5, patience=2))
    assert result.best_dev_loss < start
    assert dev_loss(model, dev, 1000) == pytest.approx(result.best_dev_loss, rel=1e-5)


def test_multimeta_needs_the_multinmt_checkpoint_at_its_share(tmp_path):
    from metanmt.train.trainer import system_config

    config = TrainConfig.from_dict(TINY)
    assert system_config(config, "metanmt", tmp_path / "multinmt") is config
    with pytest.raises(MetaNMTError, match="tokens_1600.*train multinmt first"):
        system_config(config, "multimeta", tmp_path / "multinmt")
    with pytest.raises(MetaNMTError, match="pretrain_share"):
        TrainConfig.from_dict({**TINY, "train": {**TINY["train"], "pretrain_share": 1.0}})


@pytest.mark.parametrize("bound", [False, True])
def test_bounded_heap_only_when_asked(tiny_data, tmp_path, monkeypatch, bound):
    """train.bound_heap switches the allocator setting on; off by default (it costs CPU)."""
    from metanmt.train import trainer

    calls = []
    monkeypatch.setattr(trainer, "bound_heap", lambda: calls.append(True))
    config = TrainConfig.from_dict({**TINY, "train": {**TINY["train"], "steps": 1, "bound_heap": bound}})
    trainer.train(config, tiny_data, tmp_path / "run", system="multinmt", progress=False)
    assert calls == ([True] if bound else [])
    other = TrainConfig.from_dict({**TINY, "train": {**TINY["train"], "steps": 1, "bound_heap": not bound}})
    assert trainer.run_fingerprint(config) == trainer.run_fingerprint(other)  # memory only: runs resume


def test_finetune_warms_up_linearly_when_early_stopping(tiny_data):
    """finetune.warmup_steps: the rate climbs lr/W, 2 lr/W, ... to lr, then stays."""
    from metanmt.data import PreparedData
    from metanmt.models.seq2seq import build_model
    from metanmt.tasks.translation import batches_by_tokens
    from metanmt.train.config import FinetuneSection
    from metanmt.train.finetune import _Update

    data = PreparedData.load(tiny_data)
    batch = next(iter(batches_by_tokens(data.pairs("fi", "train").subset(range(4)), 1000, rng=None)))
    model = build_model("tiny", data.vocab_size)
    update = _Update.build(model, FinetuneSection(lr=1e-3), torch.device("cpu"), "no", warmup_steps=4)
    rates = []
    for _ in range(6):
        rates.append(update.optimizer.param_groups[0]["lr"])
        update(batch)
    assert rates == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])


def test_corrupt_and_mismatched_checkpoints_are_clear_errors(tiny_data, tmp_path):
    from metanmt.data import PreparedData
    from metanmt.models.seq2seq import build_model, build_tokenizer, load_checkpoint, save_checkpoint
    from metanmt.train.trainer import train

    data = PreparedData.load(tiny_data)
    ckpt = save_checkpoint(build_model("tiny", data.vocab_size), build_tokenizer(data.spm_path),
                           tmp_path / "ck")
    (ckpt / "model.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(MetaNMTError, match="cannot load checkpoint"):
        load_checkpoint(ckpt)
    with pytest.raises(MetaNMTError, match="not a metanmt/HF checkpoint"):
        load_checkpoint(tmp_path)
    other = save_checkpoint(build_model("tiny", data.vocab_size + 5), build_tokenizer(data.spm_path),
                            tmp_path / "other")
    with pytest.raises(MetaNMTError, match="tokenizer has"):
        load_checkpoint(other)
    cfg = TrainConfig.from_dict({**TINY, "model": {"preset": "tiny", "init_from": str(ckpt)}})
    with pytest.raises(MetaNMTError, match="cannot load checkpoint"):
        train(cfg, tiny_data, tmp_path / "run", progress=False)


def test_init_from_a_checkpoint_with_other_pieces_is_refused(tiny_data, tmp_path):
    """Same vocabulary size, other SentencePiece model: ids would mean other pieces, so refuse, naming
    both."""
    import sentencepiece as spm

    from metanmt.data import PreparedData
    from metanmt.models.seq2seq import build_model, build_tokenizer, save_checkpoint
    from metanmt.train.trainer import train

    data = PreparedData.load(tiny_data)
    pairs = [data.pairs(lang, "train") for lang in data.train_langs]
    text = [t for p in pairs for t in p.src_text + p.tgt_text]
    (tmp_path / "text.txt").write_text("\n".join(text), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(tmp_path / "text.txt"), model_prefix=str(tmp_path / "bpe"),
                                   model_type="bpe", vocab_size=data.vocab_size, pad_id=0, eos_id=1, unk_id=2,
                                   bos_id=-1, minloglevel=2)
    other = build_tokenizer(tmp_path / "bpe.model", tmp_path / "tok")
    assert len(other) == data.vocab_size
    ckpt = save_checkpoint(build_model("tiny", data.vocab_size), other, tmp_path / "ck")
    cfg = TrainConfig.from_dict({**TINY, "model": {"preset": "tiny", "init_from": str(ckpt)}})
    with pytest.raises(MetaNMTError, match=r"its tokenizer \(pieces [0-9a-f]{12}\) is not .*spm.model"):
        train(cfg, tiny_data, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "last").exists()
    same = save_checkpoint(build_model("tiny", data.vocab_size), build_tokenizer(data.spm_path),
                           tmp_path / "ok")
    cfg = TrainConfig.from_dict({**TINY, "model": {"preset": "tiny", "init_from": str(same)},
                                 "train": {**TINY["train"], "steps": 1, "eval_every": 1}})
    assert train(cfg, tiny_data, tmp_path / "run2", progress=False).is_dir()


def test_output_dir_of_another_config_is_refused(tiny_data, tmp_path):
    from metanmt.train.trainer import train

    out = tmp_path / "run"
    train(TrainConfig.from_dict({**TINY, "train": {**TINY["train"], "steps": 2}}), tiny_data, out,
          progress=False)
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(MetaNMTError, match="different fingerprint"):
        train(TrainConfig.from_dict({**TINY, "train": {**TINY["train"], "steps": 2, "lr": 1e-3}}), tiny_data,
              out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == before


def test_held_out_finetuning_settings_and_older_fingerprints_do_not_orphan_a_run(tiny_data, tmp_path):
    """The held-out fine-tuning's step cap and early stopping never touch training: a finished run is
    evaluated under new ones. A run.json whose stored fingerprint predates today's list of resume-free
    settings (so it hashed them in) is judged by the config it recorded."""
    from metanmt.train.trainer import train

    def cfg(steps, **finetune):
        return TrainConfig.from_dict({**TINY, "train": {**TINY["train"], "steps": steps},
                                      "finetune": {**TINY.get("finetune", {}), **finetune}})

    def last_step():
        return json.loads((out / "train_log.jsonl").read_text().splitlines()[-1])["step"]

    out = tmp_path / "run"
    train(cfg(2, max_steps=60, patience=2, eval_every=10), tiny_data, out, progress=False)
    finished = last_step()
    info = json.loads((out / "run.json").read_text())
    info["fingerprint"] = cfg(2).fingerprint("eval", "train.steps")  # an older, narrower exclusion list
    (out / "run.json").write_text(json.dumps(info))
    train(cfg(3, max_steps=300, patience=3, eval_every=20), tiny_data, out, progress=False)
    assert last_step() > finished
    with pytest.raises(MetaNMTError, match="different fingerprint"):  # what training uses still counts
        train(cfg(3, lr=1e-2, max_steps=300), tiny_data, out, progress=False)


@pytest.mark.parametrize("system", ["metanmt", "multinmt"])
def test_raising_steps_extends_a_finished_run_on_the_same_course(tiny_data, tmp_path, system):
    """The schedule does not depend on train.steps: a finished run continues as if it had been longer."""
    from metanmt.train.trainer import train

    def cfg(steps):
        return TrainConfig.from_dict({**TINY, "train": {**TINY["train"], "steps": steps, "eval_every": 10}})

    def log(run):
        lines = (tmp_path / run / "train_log.jsonl").read_text().splitlines()
        return [(r["step"], r["tokens"], r["loss"]) for r in map(json.loads, lines)]

    train(cfg(3), tiny_data, tmp_path / "straight", system=system, progress=False)
    train(cfg(2), tiny_data, tmp_path / "extended", system=system, progress=False)
    finished = len(log("extended"))
    train(cfg(3), tiny_data, tmp_path / "extended", system=system, progress=False)
    assert finished < len(log("extended"))
    assert log("extended") == log("straight")  # the same losses and token counts at every step


def test_unknown_config_key_is_an_error():
    with pytest.raises(MetaNMTError, match="unknown key.*inner_lrr"):
        TrainConfig.from_dict({"meta": {"inner_lrr": 0.1}})


def test_meta_train_on_two_processes(tiny_config, tiny_data, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(29600 + os.getpid() % 1000), "-m", "metanmt", "meta-train",
           "--config", str(tiny_config), "--data", str(tiny_data), "--output-dir", str(tmp_path / "run"),
           "--steps", "2", "--no-progress"]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = [json.loads(x) for x in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, len(log) + 1))
    assert log[-1]["tokens"] >= 2 * 2 * (200 + 200)  # the budget of --steps 2, summed over both processes
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()
    state = torch.load(tmp_path / "run" / "last" / "training_state.pt", weights_only=False)
    assert len(state["rngs"]) == 2  # one random stream per process, saved for resume


@pytest.mark.skipif(not allocator_environment({}), reason="no tcmalloc installed (libtcmalloc-minimal4)")
def test_tcmalloc_trains_to_the_same_numbers_as_glibc(tiny_config, tiny_data, tmp_path):
    """The ``metanmt`` command restarts with tcmalloc preloaded: it moves the tensors, not the numbers."""
    logs = {}
    for allocator in ("system", "tcmalloc"):
        env = {**os.environ, "OMP_NUM_THREADS": "1", ALLOCATOR_ENV: allocator}
        cmd = [sys.executable, "-m", "metanmt", "meta-train", "--config", str(tiny_config), "--data",
               str(tiny_data), "--output-dir", str(tmp_path / allocator), "--steps", "4", "--no-progress"]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        lines = (tmp_path / allocator / "train_log.jsonl").read_text().splitlines()
        logs[allocator] = [json.loads(x) for x in lines]
    for allocator, log in logs.items():  # validation records name the allocator
        named = [r.pop("allocator") for r in log if "valid_bleu" in r]
        assert named and set(named) == {allocator}
        for record in log:
            del record["tokens_per_s"]
    assert logs["system"] == logs["tcmalloc"]


def test_selection_prefers_chrf_then_bleu():
    from metanmt.train.trainer import improves

    state = {"best_bleu": 0.0, "best_chrf": 3.0}
    assert improves({"mean": 0.0, "chrf_mean": 3.1}, state)
    assert not improves({"mean": 0.0, "chrf_mean": 3.0}, state)  # a tie keeps the earlier checkpoint
    assert improves({"mean": 0.1, "chrf_mean": 3.0}, state)  # BLEU breaks a chrF tie
    assert not improves({"mean": 0.7, "chrf_mean": 2.9}, state)  # noise-level BLEU does not beat chrF


def test_finetune_lr_choice_is_reused_only_for_the_same_grid(tiny_data, tmp_path):
    from metanmt.data import PreparedData
    from metanmt.train.validation import choose_finetune_lr

    data = PreparedData.load(tiny_data)
    cfg = TrainConfig.from_dict(TINY)
    assert choose_finetune_lr(tmp_path / "no_model", data, TrainConfig.from_dict({}),
                              tmp_path / "x.json") == 3e-4
    done = tmp_path / "finetune_lr.json"
    done.write_text(json.dumps({"grid": [1e-4, 1e-3], "tokens": 500, "langs": ["ro"], "lr": 1e-4,
                                "scores": {}}))
    assert choose_finetune_lr(tmp_path / "no_model", data, cfg, done) == 1e-4  # reused: no model is loaded
    other = TrainConfig.from_dict({**TINY, "finetune": {**TINY["finetune"], "lr_grid": [5e-4]}})
    with pytest.raises(MetaNMTError, match="no_model"):  # another grid: chosen anew, from the model
        choose_finetune_lr(tmp_path / "no_model", data, other, done)


def test_settings_added_since_keep_existing_runs_resumable():
    """A run keeps its identity when the code gains settings it does not use (its directory resumes).
    If the literal fails after an intended change of the offline config, update it. The runs of
    benchmarks/offline_tatoeba up to the eleventh sitting (made with a 60-step fine-tuning cap and half the
    budget as multimeta's share, their run.json fingerprint hashed under a shorter RESUME_FREE) still match
    the config shipped until the twelfth sitting (MetaNMT's 375/375-token episodes, inner rate 5e-4)."""
    import dataclasses

    from metanmt.train.trainer import _recorded_fingerprint, run_fingerprint

    config = TrainConfig.load(ROOT / "recipes" / "configs" / "offline_tatoeba.yaml")
    assert run_fingerprint(config) == "0d782d5acd2b848c"
    meta = dataclasses.replace(config.meta, support_tokens=375, query_tokens=375, inner_lr=5e-4)
    then = dataclasses.replace(config, meta=meta, finetune=dataclasses.replace(config.finetune, max_steps=60),
                               train=dataclasses.replace(config.train, pretrain_share=0.5))
    recorded = {"config": then.to_dict(), "fingerprint": "3fd589af971c2de8"}  # their run.json
    assert _recorded_fingerprint(recorded) == "2e68cc3d53a8b2a9"  # shipped until the twelfth sitting
    assert _recorded_fingerprint({"fingerprint": "3fd589af971c2de8"}) == "3fd589af971c2de8"  # no config kept


def test_chunked_loss_meta_trains_the_same_run(tiny_data, tmp_path, monkeypatch):
    """meta.chunked_loss: the learner's loss is the chunked one; same first loss; resumable either way."""
    from metanmt.models import chunked_loss
    from metanmt.train import trainer

    calls = []
    original = chunked_loss.ChunkedSeq2SeqLoss.__call__
    monkeypatch.setattr(chunked_loss.ChunkedSeq2SeqLoss, "__call__",
                        lambda self, forward, batch: calls.append(1) or original(self, forward, batch))
    losses = {}
    for chunked in (False, True):
        config = TrainConfig.from_dict({**TINY, "meta": {**TINY["meta"], "chunked_loss": chunked},
                                        "train": {**TINY["train"], "steps": 1}})
        trainer.train(config, tiny_data, tmp_path / str(chunked), system="metanmt", progress=False)
        log = (tmp_path / str(chunked) / "train_log.jsonl").read_text().splitlines()
        losses[chunked] = json.loads(log[0])["loss"]
    assert calls  # the chunked run used it
    assert losses[True] == pytest.approx(losses[False], rel=1e-5)
    assert trainer.run_fingerprint(config) == trainer.run_fingerprint(
        TrainConfig.from_dict({**TINY, "train": {**TINY["train"], "steps": 1}}))


def test_recomputed_maml_meta_trains_the_same_run(tiny_data, tmp_path):
    """meta.recompute: a second-order run with the inner step recomputed takes the same updates (the same
    dropout masks redrawn) and the same fingerprint, so either setting resumes the other's run."""
    from metanmt.train import trainer

    losses, fingerprints = {}, set()
    for recompute in (False, True):
        config = TrainConfig.from_dict({**TINY, "meta": {**TINY["meta"], "algorithm": "maml",
                                                         "recompute": recompute},
                                        "train": {**TINY["train"], "steps": 3, "eval_every": 10}})
        fingerprints.add(trainer.run_fingerprint(config))
        trainer.train(config, tiny_data, tmp_path / str(recompute), system="metanmt", progress=False)
        log = (tmp_path / str(recompute) / "train_log.jsonl").read_text().splitlines()
        losses[recompute] = [json.loads(line)["loss"] for line in log if "loss" in json.loads(line)]
    assert len(losses[True]) == 4  # the budget's 2,200 tokens end in a fourth step
    # the same up to float32 rounding (other attention kernels, another Adam formula), which the outer Adam
    # amplifies where a gradient entry is near zero: after one update 1e-6 apart; after two 1e-6 on one
    # thread, 3e-5 on two (other reduction orders); after three 1e-3
    assert losses[True][:2] == pytest.approx(losses[False][:2], rel=1e-5)
    assert losses[True][2] == pytest.approx(losses[False][2], rel=1e-4)
    assert losses[True] == pytest.approx(losses[False], rel=1e-2)
    assert len(fingerprints) == 1


def test_micro_batched_meta_training_takes_the_same_steps(tiny_data, tmp_path, monkeypatch):
    """meta.micro_batches: episodes in pieces of sentences weighted by their target tokens give the same
    updates (no dropout: the pieces draw their own masks) and the same fingerprint (resume either way)."""
    from metanmt.meta import learner
    from metanmt.train import trainer

    split, pieces_seen = learner.split_batch, []
    monkeypatch.setattr(learner, "split_batch", lambda *a: pieces_seen.append(len(out := split(*a))) or out)
    losses, fingerprints = {}, set()
    for pieces in (1, 3):
        config = TrainConfig.from_dict({**TINY, "model": {"preset": "tiny", "dropout": 0.0},
                                        "meta": {**TINY["meta"], "micro_batches": pieces},
                                        "train": {**TINY["train"], "steps": 2, "eval_every": 10}})
        fingerprints.add(trainer.run_fingerprint(config))
        trainer.train(config, tiny_data, tmp_path / str(pieces), system="metanmt", progress=False)
        log = (tmp_path / str(pieces) / "train_log.jsonl").read_text().splitlines()
        losses[pieces] = [json.loads(line)["loss"] for line in log if "loss" in json.loads(line)]
    assert len(losses[3]) == 3 and set(pieces_seen) == {3}  # the micro-batched run cut its batches in 3
    assert losses[3] == pytest.approx(losses[1], rel=1e-5)
    assert len(fingerprints) == 1


def test_experiment_command_hands_its_options_to_run_experiment(monkeypatch, tmp_path):
    from metanmt.cli import main
    from metanmt.train import pipeline

    seen = {}
    def run_experiment(config, out, plan, **where):
        seen.update(config=config, out=out, plan=plan, **where)

    monkeypatch.setattr(pipeline, "run_experiment", run_experiment)
    assert main(["experiment", "--config", "c.yaml", "--output-dir", str(tmp_path), "--data", "prepared",
                 "--langs", "ca", "nb", "--validation", "--sizes", "0", "4000", "--draws", "2", "--systems",
                 "multinmt", "--splits", "test", "--max-eval-sentences", "5", "--checkpoint", "last",
                 "--no-progress", "--jobs", "3"]) == 0
    assert seen == {"config": "c.yaml", "out": str(tmp_path), "data_root": None, "data_dir": "prepared",
                    "plan": pipeline.ExperimentPlan(systems=["multinmt"], langs=["ca", "nb"], validation=True,
                                                    sizes=[0, 4000], draws=2, checkpoint="last",
                                                    splits=["test"], max_eval_sentences=5, progress=False,
                                                    jobs=3)}
    main(["quickstart", "--output-dir", str(tmp_path)])  # the quickstart's defaults: two systems, all cells
    assert seen["plan"] == pipeline.ExperimentPlan(systems=["metanmt", "multinmt"], jobs=2)  # side by side
    assert seen["config"].endswith("demo.yaml") and seen["data_dir"] is None
