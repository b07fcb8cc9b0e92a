"""Episode sampling speed from the decoded Omniglot cache (episodes per second, one thread).

Reported per wall second and per CPU second of this process: on a shared machine the wall rate
depends on the other load, the CPU rate is what sampling costs.

Usage: python benchmarks/omniglot/sampling_speed.py OMNIGLOT_ROOT [--output sampling_speed.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from metanmt.tasks.images.omniglot import load_omniglot, omniglot_splits
from metanmt.tasks.images.sampler import EpisodeSampler

SETTINGS = [(5, 1, 1), (5, 1, 15), (20, 1, 1), (20, 1, 5), (60, 1, 5), (5, 5, 15)]  # (ways, shots, queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    pools = omniglot_splits(load_omniglot(args.root), "maml")
    result = {"cache_load_and_split_s": round(time.perf_counter() - start, 2), "episodes_per_s": {},
              "episodes_per_cpu_s": {},
              "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                          "load_average_1m": round(os.getloadavg()[0], 2), "torch": torch.__version__}}
    for ways, shots, queries in SETTINGS:
        sampler = EpisodeSampler(pools["train"], ways, shots, queries, seed=0)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.episodes):
            sampler.sample()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        name = f"{ways}-way {shots}-shot {queries} queries"
        result["episodes_per_s"][name] = round(args.episodes / wall)
        result["episodes_per_cpu_s"][name] = round(args.episodes / cpu)
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
