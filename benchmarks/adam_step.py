"""Milliseconds per optimizer step on a preset's parameters, one thread: torch's Adam (single-tensor, foreach,
fused) as the outer optimizer, and the inner Adam's foreach path before and after the sixteenth sitting
(`step_ab.old_foreach_adam` vs `metanmt.meta.inner_optim`), alone and with the backward through its update.

    OMP_NUM_THREADS=1 python benchmarks/adam_step.py [PRESET ...]      # default: tiny compact
"""

from __future__ import annotations

import sys
import time

import torch
from step_ab import old_foreach_adam

from metanmt.meta import inner_optim
from metanmt.models.seq2seq import build_model

VOCAB = {"tiny": 4000}  # the quickstart's vocabulary; other presets: the offline config's 8,000


def interleaved_ms(steps: dict, rounds: int = 10, repeats: int = 20) -> dict[str, float]:
    """Milliseconds per call of each of ``steps`` (name -> function), their rounds alternating so that this
    VM's speed of the moment hits all alike."""
    for step in steps.values():
        step()
    spent = dict.fromkeys(steps, 0.0)
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.process_time()
            for _ in range(repeats):
                step()
            spent[name] += time.process_time() - start
    return {name: seconds / (rounds * repeats) * 1e3 for name, seconds in spent.items()}


def inner_step(params: list, grads: list, old: bool, backward: bool):
    """One first inner Adam update (old or new foreach path), with the backward through it if asked."""
    update = inner_optim.make_adam_update()

    def step():
        saved = inner_optim._foreach_adam
        inner_optim._foreach_adam = old_foreach_adam if old else saved
        try:
            fast = update(params, grads, [1e-3] * len(params), {}, 0)
        finally:
            inner_optim._foreach_adam = saved
        if backward:
            torch.autograd.backward(fast, grads)

    return step


def main(presets: list[str]) -> None:
    for preset in presets:
        params = [p for p in build_model(preset, VOCAB.get(preset, 8000)).parameters() if p.requires_grad]
        grads = [torch.randn_like(p) for p in params]
        for p, g in zip(params, grads):
            p.grad = g
        outer = {name: torch.optim.Adam(params, lr=1e-3, **kwargs).step for name, kwargs in
                 (("single-tensor", {}), ("foreach", {"foreach": True}), ("fused", {"fused": True}))}
        inner = {f"{version}{' + backward' if backward else ''}": inner_step(params, grads, version == "old",
                                                                            backward)
                 for backward in (False, True) for version in ("old", "new")}
        print(f"{preset}, {sum(p.numel() for p in params):,} parameters in {len(params)} tensors:")
        for what, steps in (("outer Adam", outer), ("first inner Adam update", inner)):
            print(f"  {what}: " + ", ".join(f"{n} {ms:.2f} ms" for n, ms in interleaved_ms(steps).items()))


if __name__ == "__main__":
    main(sys.argv[1:] or ["tiny", "compact"])
