"""Target tokens per second of training steps alone (no validation, no checkpoints), for an A/B of two code
versions or two systems on the same config and prepared data.

    python benchmarks/step_speed.py --config CFG --data DATA --system metanmt --steps 100
    python benchmarks/step_speed.py ... --profile 25      # and where the time goes (cProfile, costliest 25)
    cd /tmp && PYTHONPATH=OTHER_CHECKOUT python /path/to/benchmarks/step_speed.py ...   # another version

Run from outside a checkout when PYTHONPATH picks the version (the working directory would shadow it);
interleave rounds of the versions so that load from other jobs hits both alike.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

import metanmt
from metanmt.memory import allocator_in_use, restart_with_allocator
from metanmt.train.config import TrainConfig
from metanmt.train.trainer import _Run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--data", required=True, help="a directory written by `metanmt prepare`")
    parser.add_argument("--system", default="metanmt", choices=("metanmt", "multinmt"))
    parser.add_argument("--steps", type=int, default=100, help="timed steps, after 10 untimed ones")
    parser.add_argument("--profile", type=int, metavar="N",
                        help="also profile the timed steps (cProfile) and print the N costliest functions")
    args = parser.parse_args()
    restart_with_allocator()  # as the metanmt command does: tcmalloc where installed (METANMT_ALLOCATOR)
    with tempfile.TemporaryDirectory() as out:
        run = _Run.start(TrainConfig.load(args.config), args.data, Path(out) / args.system, args.system)
        for _ in range(10):
            run.train_step()
        profile = cProfile.Profile() if args.profile else None
        start, tokens = time.perf_counter(), 0
        with profile or contextlib.nullcontext():
            for _ in range(args.steps):
                tokens += run.train_step()[1]
        seconds = time.perf_counter() - start
    print(f"{args.system} ({Path(metanmt.__file__).parent}, {allocator_in_use()} allocator): "
          f"{tokens / seconds:.0f} target tokens/s over {args.steps} steps")
    if profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
