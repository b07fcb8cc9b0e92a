"""Milliseconds per meta-step, the tasks of a meta-batch one by one vs together (``MetaConfig.batch_tasks``).

Workload (a) of ``meta_step.py``: Omniglot Conv-4 (64 filters, BatchNorm, 28x28), 5-way 1-shot, 15 queries
per class, meta-batch 32, one inner SGD step (lr 0.4); FOMAML and MAML. Paths:

- ``one_by_one``: ``batch_tasks=False``, the tasks in turn;
- ``vmap``: ``batch_tasks=True`` with the model's ``forward_tasks`` hidden: torch.func.vmap's own rules;
- ``grouped``: ``batch_tasks=True`` through ``Conv4.forward_tasks`` (grouped convolutions);
- ``learn2learn``: ``learn2learn.algorithms.MAML`` on the same model and episodes, one task after another
  (where learn2learn is installed: ``../shared/peers/setup_peers.sh`` builds a venv with it);
- ``one_by_one_nchw``, ``learn2learn_nchw``: the same with the Conv-4's activations in the default
  (channels-first) layout instead of channels-last on the CPU (``Conv4(channels_last=False)``): how a peer's
  own Conv-4 runs.

``--pool max`` takes the max-pooling Conv-4 (ProtoNets; MAML on Mini-ImageNet; the episode of
``../shared/peers/bench_maml_peers.py``) instead of Finn's strided one; ``--paths`` runs some paths only.

Each (method, path) runs in its own process; they are interleaved over rounds and each keeps its fastest
round, so load from other jobs hits all alike.

    python benchmarks/meta_step_batched.py --threads 1    # writes benchmarks/meta_step_batched.json
    python benchmarks/meta_step_batched.py --device cuda --output benchmarks/meta_step_batched_cuda.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from metanmt.meta import MetaConfig, MetaLearner

METHODS = ("fomaml", "maml")
PATHS = ("one_by_one", "vmap", "grouped", "learn2learn", "one_by_one_nchw", "learn2learn_nchw")


def to_device(episodes: list, device: str) -> list:
    return [dataclasses.replace(e, support=tuple(t.to(device) for t in e.support),
                                query=tuple(t.to(device) for t in e.query)) for e in episodes]


def run_one(method: str, path: str, steps: int, warmup: int, device: str = "cpu", pool: str = "stride"
            ) -> dict:
    from meta_step import omniglot_workload  # beside this file

    layout = False if path.endswith("_nchw") else "auto"
    model, loss_fn, episodes, _, config, _ = omniglot_workload(pool, layout)
    model, episodes = model.to(device), to_device(episodes, device)
    path = path.removesuffix("_nchw")
    if path == "vmap":
        model.forward_tasks = None  # hidden: vmap batches the model with its per-operator rules
    if path == "learn2learn":
        meta_step = learn2learn_step(model, loss_fn, episodes, method, config["inner_lr"])
    else:
        learner = MetaLearner(model, loss_fn, MetaConfig(algorithm=method, batch_tasks=path != "one_by_one",
                                                         **config))
        opt = torch.optim.Adam(learner.parameters(), lr=1e-3)
        meta_step = lambda: learner.meta_step(episodes, opt)
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        meta_step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    assert path == "learn2learn" or learner._batchable is (None if path == "one_by_one" else True)
    return {"method": method, "path": path + ("_nchw" if layout is False else ""), "pool": pool,
            "ms_per_step": round(1000 * statistics.median(times), 1), "steps": steps,
            "threads": torch.get_num_threads(), "device": device}


def learn2learn_step(model, loss_fn, episodes: list, method: str, inner_lr: float):
    """learn2learn's MAML (one inner SGD step, first order for FOMAML) over the tasks one after another."""
    import learn2learn as l2l

    maml = l2l.algorithms.MAML(model, lr=inner_lr, first_order=method == "fomaml")
    opt = torch.optim.Adam(maml.parameters(), lr=1e-3)

    def meta_step() -> None:
        opt.zero_grad(set_to_none=True)
        for episode in episodes:
            task_model = maml.clone()
            task_model.adapt(loss_fn(task_model, episode.support))
            (loss_fn(task_model, episode.query) / len(episodes)).backward()
        opt.step()

    return meta_step


def installed(path: str) -> bool:
    """Whether a path can run here (learn2learn is an optional peer)."""
    if not path.startswith("learn2learn"):
        return True
    import importlib.util

    return importlib.util.find_spec("learn2learn") is not None


def cpu_name() -> str:
    """The CPU's model name where Linux tells it (the speed of a layout or precision depends on it)."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions; the fastest is kept")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads of each process")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (model and episodes moved there)")
    parser.add_argument("--pool", default="stride", choices=("stride", "max"),
                        help="the Conv-4's downsampling")
    parser.add_argument("--paths", nargs="+", default=PATHS, choices=PATHS, metavar="PATH",
                        help=f"paths to run (one_by_one is always run: the ratios are to it); of {PATHS}")
    parser.add_argument("--output", default=str(Path(__file__).with_suffix(".json")))
    parser.add_argument("--one", nargs=2, metavar=("METHOD", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        torch.set_num_threads(args.threads)
        print(json.dumps(run_one(*args.one, steps=args.steps, warmup=args.warmup, device=args.device,
                                 pool=args.pool)))
        return
    paths = ["one_by_one", *(p for p in args.paths if p != "one_by_one" and installed(p))]
    runs: dict[tuple[str, str], list[dict]] = {(m, p): [] for m in METHODS for p in paths}
    for _ in range(args.rounds):
        for key, done in runs.items():
            cmd = [sys.executable, __file__, "--one", *key, "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--threads", str(args.threads), "--device", args.device,
                   "--pool", args.pool]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            done.append(json.loads(out.splitlines()[-1]))
    rows = []
    for (method, path), rounds in runs.items():
        row = min(rounds, key=lambda r: r["ms_per_step"])
        row["ms_per_step_rounds"] = [r["ms_per_step"] for r in rounds]
        row["over_one_by_one"] = round(row["ms_per_step"] / min(r["ms_per_step"]
                                                                for r in runs[(method, "one_by_one")]), 3)
        rows.append(row)
        print(f"{method:7s} {path:16s} {row['ms_per_step']:8.1f} ms/step  x{row['over_one_by_one']:.2f}",
              flush=True)
    machine = {"cpu": cpu_name(), "cores": os.cpu_count(),
               "torch": torch.__version__, "python": platform.python_version(),
               "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None,
               "load_average_1m_at_end": round(os.getloadavg()[0], 2)}
    Path(args.output).write_text(json.dumps({"machine": machine, "command": " ".join(sys.argv),
                                             "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
