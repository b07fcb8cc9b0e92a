"""What bf16 autocast does to training steps on a CPU with bf16 matrix units (AMX), and why.

    python benchmarks/bf16_cpu.py --matmul      # float32 vs bf16 GFLOP/s at this model's shapes
    OMP_NUM_THREADS=1 python benchmarks/bf16_cpu.py --data DATA --config CFG --system SYSTEM --attention math
    ... --profile 12       # and the costliest torch operators over 20 steps (torch.profiler)

The config's ``train.mixed_precision`` chooses float32 or bf16 (accelerate allows one per process: one config
per run). ``--attention math`` forces PyTorch's math attention kernel instead of its fused CPU one.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from metanmt.memory import restart_with_allocator

SHAPES = ((750, 128, 512), (750, 512, 128), (750, 128, 128), (750, 128, 8000))  # tokens x d_model x ...


def matmul_rates(repeat: int = 200) -> None:
    for m, k, n in SHAPES:
        rates = []
        for dtype in (torch.float32, torch.bfloat16):
            a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
            for _ in range(5):
                a @ b
            start = time.perf_counter()
            for _ in range(repeat):
                a @ b
            rates.append(2 * m * k * n * repeat / (time.perf_counter() - start) / 1e9)
        print(f"{m}x{k} @ {k}x{n}: float32 {rates[0]:.0f} GFLOP/s, bf16 {rates[1]:.0f} GFLOP/s")


def step_rate(args: argparse.Namespace) -> None:
    from metanmt.train.config import TrainConfig
    from metanmt.train.trainer import _Run

    kernel = sdpa_kernel(SDPBackend.MATH) if args.attention == "math" else contextlib.nullcontext()
    with tempfile.TemporaryDirectory() as out, kernel:
        cfg = TrainConfig.load(args.config)
        run = _Run.start(cfg, args.data, Path(out) / args.system, args.system)
        for _ in range(10):
            run.train_step()
        start, tokens = time.perf_counter(), 0
        for _ in range(args.steps):
            tokens += run.train_step()[1]
        print(f"{args.system}, mixed_precision {cfg.train.mixed_precision}, attention {args.attention}: "
              f"{tokens / (time.perf_counter() - start):.0f} target tokens/s over {args.steps} steps")
        if args.profile:
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                for _ in range(20):
                    run.train_step()
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--matmul", action="store_true", help="only the matrix-product rates")
    parser.add_argument("--data", help="a directory written by `metanmt prepare`")
    parser.add_argument("--config")
    parser.add_argument("--system", default="multinmt", choices=("metanmt", "multinmt"))
    parser.add_argument("--attention", default="default", choices=("default", "math"))
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--profile", type=int, metavar="N", help="also the N costliest operators")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.matmul:
        matmul_rates()
        return
    if not (args.data and args.config):
        parser.error("--data and --config are required (or --matmul)")
    restart_with_allocator()  # as the metanmt command does: tcmalloc where installed
    step_rate(args)


if __name__ == "__main__":
    main()
