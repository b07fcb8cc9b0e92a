"""Continue the CPU runs of the offline Tatoeba recipe on one GPU: three systems side by side, equal budgets.

On 2 CPU cores the learning curves of ``recipes/offline_tatoeba.sh`` had not flattened at 17.1M target tokens
(benchmarks/offline_tatoeba/README.md): the budget binds. This driver asks what more compute buys the same
models. MetaNMT and MultiNMT continue from their CPU checkpoints (``last``, 17.1M tokens each);
MultiNMT+MetaNMT meta-learns from the MultiNMT one (the multimeta system, its MultiNMT part done on the CPU).
All three take the same number of steps with the settings in GPU_SETTINGS (a fresh Adam, a short warm-up),
then fine-tune and evaluate as the CPU sittings did, at the config's sizes (0/4K/16K/40K tokens x 3 draws
of the test languages; first 300 in-domain test sentences, beam 4), and one report covers the three. The
step count is set so that the slowest system trains for about ``--train-seconds``: a short calibration run
of MetaNMT measures its speed first. Every process ends by ``--deadline`` so that what was done comes back
even when something runs long.

  tar czf BUNDLE -C runs/ots2 data -C CKPTS metanmt_cpu multinmt_cpu   # each *_cpu: a run's last/
  python benchmarks/offline_tatoeba_gpu/continue_runs.py --bundle BUNDLE --work /tmp/otc --out OUT
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import yaml

BASE_CONFIG = "recipes/configs/offline_tatoeba.yaml"
# What differs from the CPU recipe: 5.3x the target tokens per update (at 1.5K tokens a GPU's time goes to
# kernel launches, so larger tasks cost little more per update) and a fresh warm-up from the CPU checkpoints.
GPU_SETTINGS = {"meta": {"meta_batch": 2, "support_tokens": 2000, "query_tokens": 2000},
                "train": {"lr": 0.0005, "warmup_steps": 300},
                "eval": {"batch_size": 250}}
EVAL_ARGS = ["--splits", "test", "--max-eval-sentences", "300", "--checkpoint", "last", "--no-progress"]
# MetaNMT's speed beside the two other training processes, relative to alone: 0.87 on an H100 (2026-11-26)
CONTENTION = 0.75
SYSTEMS = ("metanmt", "multinmt", "multimeta")


def tokens_per_step(config: Path) -> int:
    """The budget unit of ``config``, as the trainer counts it."""
    from metanmt.train.config import TrainConfig
    from metanmt.train.steps import tokens_per_step as per_step

    return per_step(TrainConfig.load(config).meta)


def write_config(path: Path, init_from: Path | None, **train: object) -> Path:
    """The CPU recipe's config with GPU_SETTINGS, ``train`` overrides and ``model.init_from``."""
    cfg = yaml.safe_load(Path(BASE_CONFIG).read_text(encoding="utf-8"))
    for section, values in GPU_SETTINGS.items():
        cfg.setdefault(section, {}).update(values)
    cfg["train"].update(train)
    if init_from is not None:
        cfg["model"]["init_from"] = str(init_from)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    """Start ``cmd`` with its output in ``log``."""
    with open(log, "w", encoding="utf-8") as sink:
        return subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT)


def wait_all(procs: dict[str, subprocess.Popen], deadline: float) -> dict[str, int]:
    """Wait for every process, terminating those still running at ``deadline``; their exit codes."""
    for proc in procs.values():
        try:
            proc.wait(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait()
    return {name: proc.returncode for name, proc in procs.items()}


def calibrate(work: Path, seconds: float) -> float:
    """MetaNMT's target tokens per second on this machine (alone), from a run stopped after ``seconds``."""
    out = work / "calibration"
    cfg = write_config(work / "calibration.yaml", work / "metanmt_cpu", steps=10**6, eval_every=10**6)
    cmd = [sys.executable, "-m", "metanmt", "meta-train", "--config", str(cfg), "--data", str(work / "data"),
           "--output-dir", str(out), "--no-progress"]
    wait_all({"calibration": start(cmd, work / "calibration.log")}, time.time() + seconds)
    last = (out / "train_log.jsonl").read_text(encoding="utf-8").splitlines()[-1]
    return float(json.loads(last)["tokens_per_s"])


def system_configs(work: Path, steps: int) -> dict[str, Path]:
    """One config per system. multimeta trains ``steps`` from the CPU MultiNMT checkpoint, which it finds
    where a MultiNMT run of twice the steps (pretrain_share 0.5) would have saved its half-way checkpoint."""
    every = max(50, steps // 4 // 50 * 50)
    common = {"eval_every": every, "save_every": every}
    configs = {s: write_config(work / f"{s}.yaml", work / f"{s}_cpu", steps=steps, **common)
               for s in ("metanmt", "multinmt")}
    configs["multimeta"] = write_config(work / "multimeta.yaml", None, steps=2 * steps, pretrain_share=0.5,
                                        **common)
    handover = work / "multimeta" / "multinmt" / f"tokens_{steps * tokens_per_step(configs['metanmt'])}"
    handover.parent.mkdir(parents=True, exist_ok=True)
    if not handover.exists():
        handover.symlink_to((work / "multinmt_cpu").resolve())
    return configs


def experiment(work: Path, system: str, config: Path, extra: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "metanmt", "experiment", "--config", str(config), "--data",
           str(work / "data"), "--output-dir", str(work / system), "--systems", system, *EVAL_ARGS, *extra]
    return start(cmd, work / f"{system}.log")


def device_tests(work: Path) -> subprocess.Popen:
    """The suite's tests that run only where a GPU is present (fine-tune, evaluate, translate on it)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_user_data.py", "-k",
           "on_a_device"]
    return start(cmd, work / "device_tests.log")


def report(work: Path) -> None:
    """One report over the three systems' evaluations and training curves."""
    merged = work / "all_eval"
    merged.mkdir(exist_ok=True)
    runs = []
    for system in SYSTEMS:  # the runs have ended: their evaluations move
        if (work / system / "eval" / system).is_dir() and not (merged / system).exists():
            (work / system / "eval" / system).rename(merged / system)
        if (work / system / system / "train_log.jsonl").is_file():
            runs.append(str(work / system / system))
    cmd = [sys.executable, "-m", "metanmt", "report", "--runs", str(merged), "--output-dir",
           str(work / "report"), "--train-runs", *runs]
    subprocess.run(cmd, check=False)


def pack(work: Path, out: Path, summary: dict) -> None:
    """Configs, logs, training logs, the report and every evaluation into OUT/results.tgz."""
    (work / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    with tarfile.open(out / "results.tgz", "w:gz") as tar:
        for path in sorted(work.glob("*.yaml")) + sorted(work.glob("*.log")) + [work / "summary.json"]:
            tar.add(path, arcname=path.name)
        for name in ("report", "all_eval"):
            if (work / name).exists():
                tar.add(work / name, arcname=name)
        for system in SYSTEMS:
            log = work / system / system / "train_log.jsonl"
            if log.is_file():
                tar.add(log, arcname=f"{system}_train_log.jsonl")


def train_and_evaluate(args: argparse.Namespace, t0: float, summary: dict) -> dict[str, int]:
    """Calibrate, then the three systems side by side (and the GPU-only tests); their exit codes."""
    speed = calibrate(args.work, args.calibration_seconds)
    per_step = tokens_per_step(args.work / "calibration.yaml")
    steps = max(1, int(speed * CONTENTION * args.train_seconds / per_step))
    summary.update(calibration_tokens_per_s=speed, steps=steps, tokens_per_system=steps * per_step)
    print(f"calibration: MetaNMT {speed:.0f} target tokens/s alone -> {steps} steps", flush=True)
    procs = {s: experiment(args.work, s, c, args.experiment_args)
             for s, c in system_configs(args.work, steps).items()}
    procs["device_tests"] = device_tests(args.work)
    return wait_all(procs, t0 + args.deadline)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True, help="tarball of data/, metanmt_cpu/ and multinmt_cpu/")
    parser.add_argument("--work", type=Path, required=True, help="working directory (all runs)")
    parser.add_argument("--out", type=Path, required=True, help="where results.tgz goes")
    parser.add_argument("--calibration-seconds", type=float, default=45)
    parser.add_argument("--train-seconds", type=float, default=240,
                        help="training time of the slowest system")
    parser.add_argument("--deadline", type=float, default=500,
                        help="seconds after start when every run stops")
    parser.add_argument("--experiment-args", nargs=argparse.REMAINDER, default=[],
                        help="more `metanmt experiment` arguments (e.g. --langs ca --draws 1 for a dry run)")
    args = parser.parse_args(argv)
    t0, summary, codes = time.time(), {}, {}
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(args.bundle) as tar:
        tar.extractall(args.work, filter="data")
    try:
        codes = train_and_evaluate(args, t0, summary)
    finally:  # what was done comes back, also after an error
        report(args.work)
        summary.update(exit_codes=codes, wall_s=round(time.time() - t0, 1))
        pack(args.work, args.out, summary)
        print(json.dumps(summary), flush=True)
    return 0 if codes and all(code == 0 for code in codes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
