"""Channels-last vs channels-first Conv-4 on the CPU, in ONE process: the two layouts alternate round by
round, so that the VM's speed of the moment hits both alike (separate processes on this VM spread by up to
50%).

The issue's episode (5-way 1-shot, 15 queries per class, meta-batch 32, one inner SGD step of 0.4, synthetic
images of the real shape): a FOMAML and a MAML meta-step through the core, and a ProtoNet training step on a
20-way 1-shot episode with 5 queries per class (Snell et al.'s training ways).

    OMP_NUM_THREADS=2 python benchmarks/conv4_layout.py --pool max --rounds 6
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from metanmt.meta import Episode, MetaConfig, MetaLearner
from metanmt.meta.protonet import protonet_loss
from metanmt.models.conv4 import Conv4


def meta_step(algorithm: str, pool: str, layout: str | bool) -> Callable[[], object]:
    g = torch.Generator().manual_seed(0)
    episodes = [Episode((torch.rand(5, 1, 28, 28, generator=g), torch.arange(5)),
                        (torch.rand(75, 1, 28, 28, generator=g), torch.arange(5).repeat_interleave(15)))
                for _ in range(32)]
    torch.manual_seed(0)
    learner = MetaLearner(Conv4(pool=pool, num_classes=5, channels_last=layout),
                          lambda f, b: F.cross_entropy(f(b[0]), b[1]),
                          MetaConfig(algorithm=algorithm, inner_steps=1, inner_lr=0.4, batch_tasks=False))
    opt = torch.optim.Adam(learner.parameters(), 1e-3)
    return lambda: learner.meta_step(episodes, opt)


def protonet_step(pool: str, layout: str | bool) -> Callable[[], object]:
    g = torch.Generator().manual_seed(0)
    support = (torch.rand(20, 1, 28, 28, generator=g), torch.arange(20))
    query = (torch.rand(100, 1, 28, 28, generator=g), torch.arange(20).repeat(5))
    torch.manual_seed(0)
    model = Conv4(pool=pool, channels_last=layout)
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def step() -> None:
        opt.zero_grad()
        protonet_loss(model, support, query)[0].backward()
        opt.step()

    return step


def paired(steps: dict[str, Callable[[], object]], rounds: int, repeat: int) -> dict[str, list[float]]:
    """Milliseconds per step of each, ``repeat`` steps per round, the steps alternating round by round."""
    for step in steps.values():
        step()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(repeat):
                step()
            times[name].append(1000 * (time.perf_counter() - start) / repeat)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", default="max", choices=("max", "stride"))
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    workloads = {"fomaml": (lambda layout: meta_step("fomaml", args.pool, layout), 1),
                 "maml": (lambda layout: meta_step("maml", args.pool, layout), 1),
                 "protonet 20-way": (lambda layout: protonet_step(args.pool, layout), 10)}
    for name, (build, repeat) in workloads.items():
        t = paired({"last": build("auto"), "first": build(False)}, args.rounds, repeat)
        ratios = " ".join(f"{f / c:.2f}" for c, f in zip(t["last"], t["first"]))
        print(f"{args.pool} {name}: median ms channels-last {statistics.median(t['last']):.0f}, "
              f"channels-first {statistics.median(t['first']):.0f}; channels-first / channels-last per "
              f"round: {ratios}",
              flush=True)


if __name__ == "__main__":
    main()
