"""Tokens per CPU-second of two versions of a system's training step in ONE process, alternating blocks
of steps, so that this VM's speed of the moment (it varies by up to 20% from one minute to the next, and
between its two cores) hits both alike. The old version is this code with the inner-loop swap and inner Adam
MetaNMT had up to the fifteenth sitting and torch's default (single-tensor) outer Adam, patched into one of
the two runs:

    OMP_NUM_THREADS=1 python benchmarks/step_speed.py --config metanmt/configs/demo.yaml --data DATA \
        --system metanmt --ab [--rounds 20 --block 10]

Both runs start from the same seed and draw the same episodes; their numbers differ only in rounding.
``--compare NAME=CONFIG:SYSTEM ...`` times any steps of this code side by side the same way, e.g. issue 8's
MetaNMT / MultiNMT ratio on a config:

    OMP_NUM_THREADS=1 python benchmarks/step_speed.py --data DATA --compare \
        multi=metanmt/configs/demo.yaml:multinmt meta=metanmt/configs/demo.yaml:metanmt
"""

from __future__ import annotations

import tempfile
import time
import types
from pathlib import Path

import torch
from torch.func import functional_call

from metanmt.meta import inner_optim
from metanmt.train.config import TrainConfig
from metanmt.train.trainer import _Run


def old_foreach_adam(params, grads, lr, m, v, b1, b2, t, eps):
    """The inner Adam's foreach path before: eight passes and one subtraction per tensor."""
    with torch.no_grad():
        if m[0] is None:
            m[:] = torch._foreach_mul(grads, 1 - b1)
            v[:] = torch._foreach_mul(torch._foreach_mul(grads, grads), 1 - b2)
        else:
            torch._foreach_lerp_(m, grads, 1 - b1)
            torch._foreach_mul_(v, b2)
            torch._foreach_addcmul_(v, grads, grads, value=1 - b2)
        denom = torch._foreach_div(v, 1 - b2**t)
        torch._foreach_add_(denom, eps * eps)
        torch._foreach_sqrt_(denom)
        steps = torch._foreach_div(m, denom)
        torch._foreach_mul_(steps, lr / (1 - b1**t))
    return [p - s for p, s in zip(params, steps)]


def make_old(run: _Run) -> None:
    """Patch ``run`` back to the old step: single-tensor outer Adam; functional_call with every parameter and
    tie_weights=True; the old inner Adam."""
    optimizer = getattr(run.system.optimizer, "optimizer", run.system.optimizer)
    for group in optimizer.param_groups:
        group["fused"] = None
    learner = getattr(run.system, "learner", None)
    if learner is None:
        return

    def forward(self, fast, buffers):
        params = {**self._base_params(), **fast}
        return lambda *args, **kwargs: functional_call(self.model, (params, buffers), args, kwargs)

    learner._forward = types.MethodType(forward, learner)
    update = inner_optim.make_adam_update(learner.config.adam_betas)
    learner._update = lambda *args: _with_old_adam(update, *args)


def _with_old_adam(update, *args):
    new, inner_optim._foreach_adam = inner_optim._foreach_adam, old_foreach_adam
    try:
        return update(*args)
    finally:
        inner_optim._foreach_adam = new


def compare(config: str, data: str, system: str, rounds: int, block: int, against: str | None = None) -> None:
    """Print the old and new step's target tokens per CPU-second and their ratio; with ``against``, the
    steps of that config ("old") and of ``config`` ("new"), both with this code."""
    versions = {"old": (against or config, system), "new": (config, system)}
    measure(versions, data, rounds, block, patch=None if against else "old")


def measure(versions: dict[str, tuple[str, str]], data: str, rounds: int, block: int,
            patch: str | None = None) -> None:
    """Print each named (config, system) step's target tokens per CPU-second and per second, in one process,
    blocks of ``block`` steps taken in turn, and their ratios to the first; ``patch``: the version given the
    old code (:func:`make_old`)."""
    with tempfile.TemporaryDirectory() as out:
        runs = {v: _Run.start(TrainConfig.load(c), data, Path(out) / v, s) for v, (c, s) in versions.items()}
        if patch is not None:
            make_old(runs[patch])
        for run in runs.values():
            for _ in range(5):
                run.train_step()
        totals = {v: [0, 0.0, 0.0] for v in runs}
        for _ in range(rounds):
            for version, run in runs.items():
                cpu, wall = time.process_time(), time.perf_counter()
                for _ in range(block):
                    totals[version][0] += run.train_step()[1]
                totals[version][1] += time.process_time() - cpu
                totals[version][2] += time.perf_counter() - wall
    first = totals[next(iter(totals))]
    for version, (tokens, cpu, wall) in totals.items():
        config, system = versions[version]
        print(f"{version} ({system}, {config}): {tokens / cpu:.0f} target tokens per CPU-second "
              f"({tokens / cpu / (first[0] / first[1]):.3f}x the first), {tokens / wall:.0f} per second "
              f"({tokens / wall / (first[0] / first[2]):.3f}x)")
