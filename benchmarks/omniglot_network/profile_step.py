"""Where the time of one 20-way 1-shot MAML meta-step goes on the CPU (the published settings: 16 tasks, 5
inner steps, second order): seconds per meta-step over a few steps, then torch.profiler's table of one step.

    python benchmarks/omniglot_network/profile_step.py ../shared/data/omniglot --threads 2
"""

from __future__ import annotations

import argparse
import time

import torch

from metanmt.fewshot.config import FewShotConfig, resolve_config
from metanmt.fewshot.run import _Run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_root")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--network", default="torch", choices=("torch", "finn"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = FewShotConfig(dataset="omniglot", data_root=args.data_root, algorithm="maml", ways=20,
                        output_dir="/tmp/profile_step", device="cpu", network=args.network)
    run = _Run.start(resolve_config(cfg))
    run.train_step()  # warm-up
    start = time.perf_counter()
    for _ in range(args.steps):
        run.train_step()
    print(f"{(time.perf_counter() - start) / args.steps:.2f} s per meta-step ({args.threads} threads)")
    with torch.profiler.profile() as prof:
        run.train_step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
