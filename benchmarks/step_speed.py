"""Target tokens per second of training steps alone (no validation, no checkpoints), for an A/B of two code
versions or two systems on the same config and prepared data.

    python benchmarks/step_speed.py --config CFG --data DATA --system metanmt --steps 100
    python benchmarks/step_speed.py ... --profile 25      # and where the time goes (cProfile, costliest 25)
    python benchmarks/step_speed.py ... --ab              # old vs new step in one process (step_ab.py)
    python benchmarks/step_speed.py ... --ab --against OTHER_CFG    # two configs' steps in one process
    python benchmarks/step_speed.py --data DATA --compare multi=CFG:multinmt meta=CFG:metanmt ...  # any steps
    cd /tmp && PYTHONPATH=OTHER_CHECKOUT python /path/to/benchmarks/step_speed.py ...   # another version

Run from outside a checkout when PYTHONPATH picks the version (the working directory would shadow it);
interleave rounds of the versions so that load from other jobs hits both alike. This VM's speed (per wall
and per CPU-second alike) varies by up to 20% from one minute to the next and between its two cores: for a
change of a few percent, ``--ab`` compares the old and new step in one process.
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
    parser.add_argument("--config", help="required unless --compare")
    parser.add_argument("--data", required=True, help="a directory written by `metanmt prepare`")
    parser.add_argument("--system", default="metanmt", choices=("metanmt", "multinmt"))
    parser.add_argument("--steps", type=int, default=100, help="timed steps, after 10 untimed ones")
    parser.add_argument("--profile", type=int, metavar="N",
                        help="also profile the timed steps (cProfile) and print the N costliest functions")
    parser.add_argument("--ab", action="store_true",
                        help="instead, the old and new step in one process, alternating (step_ab.py)")
    parser.add_argument("--against", metavar="CONFIG",
                        help="--ab: instead of the old code, this config's step with this code")
    parser.add_argument("--compare", nargs="+", metavar="NAME=CONFIG:SYSTEM",
                        help="instead, these steps of this code in one process, in turn; ratios to the first")
    parser.add_argument("--rounds", type=int, default=20, help="--ab, --compare: blocks of each version")
    parser.add_argument("--block", type=int, default=10, help="--ab, --compare: steps per block")
    args = parser.parse_args()
    if not args.compare and not args.config:
        parser.error("--config is required (or --compare)")
    restart_with_allocator()  # as the metanmt command does: tcmalloc where installed (METANMT_ALLOCATOR)
    if args.compare:
        from step_ab import measure

        measure(dict(_version(v) for v in args.compare), args.data, args.rounds, args.block)
        return
    if args.ab:
        from step_ab import compare

        compare(args.config, args.data, args.system, args.rounds, args.block, args.against)
        return
    with tempfile.TemporaryDirectory() as out:
        run = _Run.start(TrainConfig.load(args.config), args.data, Path(out) / args.system, args.system)
        for _ in range(10):
            run.train_step()
        profile = cProfile.Profile() if args.profile else None
        start, cpu, tokens = time.perf_counter(), time.process_time(), 0
        with profile or contextlib.nullcontext():
            for _ in range(args.steps):
                tokens += run.train_step()[1]
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    print(f"{args.system} ({Path(metanmt.__file__).parent}, {allocator_in_use()} allocator): "
          f"{tokens / seconds:.0f} target tokens/s over {args.steps} steps, "
          f"{tokens / cpu_seconds:.0f} per CPU-second")
    if profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)


def _version(spec: str) -> tuple[str, tuple[str, str]]:
    """``NAME=CONFIG:SYSTEM`` as (name, (config, system))."""
    name, _, rest = spec.partition("=")
    config, _, system = rest.rpartition(":")
    if not name or not config or system not in ("metanmt", "multinmt"):
        raise SystemExit(f"--compare takes NAME=CONFIG:SYSTEM (system metanmt or multinmt), not {spec!r}")
    return name, (config, system)


if __name__ == "__main__":
    main()
