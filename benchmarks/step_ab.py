"""Tokens per CPU-second of two versions of a system's training step in ONE process, alternating blocks
of steps, so that this VM's speed of the moment (it varies by up to 20% from one minute to the next, and
between its two cores) hits both alike. The old version is this code with the inner-loop swap and inner Adam
MetaNMT had up to the fifteenth sitting and torch's default (single-tensor) outer Adam, patched into one of
the two runs:

    OMP_NUM_THREADS=1 python benchmarks/step_speed.py --config metanmt/configs/demo.yaml --data DATA \
        --system metanmt --ab [--rounds 20 --block 10]

Both runs start from the same seed and draw the same episodes; their numbers differ only in rounding.
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
    with tempfile.TemporaryDirectory() as out:
        configs = {"old": against or config, "new": config}
        runs = {v: _Run.start(TrainConfig.load(c), data, Path(out) / v, system) for v, c in configs.items()}
        if against is None:
            make_old(runs["old"])
        for run in runs.values():
            for _ in range(5):
                run.train_step()
        totals = {v: [0, 0.0] for v in runs}
        for _ in range(rounds):
            for version, run in runs.items():
                start = time.process_time()
                for _ in range(block):
                    totals[version][0] += run.train_step()[1]
                totals[version][1] += time.process_time() - start
    rates = {v: tokens / seconds for v, (tokens, seconds) in totals.items()}
    for version, rate in rates.items():
        print(f"{system} {version} ({configs[version]}): {rate:.0f} target tokens per CPU-second")
    print(f"{system} new / old: {rates['new'] / rates['old']:.3f}")
