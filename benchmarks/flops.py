"""Model FLOPs per target token and the fraction of this CPU's matmul peak that training achieves.

    python benchmarks/flops.py --config recipes/configs/offline_tatoeba.yaml --data DATA [--runs RUN_DIR]

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on real training batches of the
prepared data (forward + backward, padding included, as the CPU executes them) and divided by the
batches' target tokens. One update costs the same per target token in both systems: MultiNMT runs
forward + backward on its batch, FOMAML runs forward + backward on the support batch (inner step) and
on the query batch. The peak is the best single-thread float32 ``torch.mm`` rate over a few square and
model-shaped products. With ``--runs`` (an experiment directory holding metanmt/ and multinmt/ train
logs), the achieved fraction is FLOPs per token x measured tokens/s / peak, per system.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from metanmt.data import PreparedData
from metanmt.models.seq2seq import build_model
from metanmt.tasks.translation import multilingual_batches
from metanmt.train.config import TrainConfig


def flops_per_token(cfg: TrainConfig, data: PreparedData, batches: int = 20) -> float:
    """Counted forward + backward FLOPs per target token over ``batches`` training batches."""
    model = build_model(cfg.model.preset, data.vocab_size, dropout=cfg.model.dropout, norm=cfg.model.norm)
    tasks = {lang: data.pairs(lang, "train") for lang in data.train_langs}
    mc = cfg.meta
    stream = multilingual_batches(tasks, cfg.train.temperature, mc.support_tokens + mc.query_tokens,
                                  np.random.default_rng(0))
    flops, tokens = 0, 0
    for _, batch in itertools.islice(stream, batches):
        with FlopCounterMode(display=False) as counter:
            model(**batch).loss.backward()
        flops += counter.get_total_flops()
        tokens += int((batch["labels"] != -100).sum())
    return flops / tokens


def matmul_peak(seconds: float = 1.0) -> float:
    """The best float32 matmul rate (FLOP/s) on the current thread setting."""
    best = 0.0
    for m, k, n in ((1024, 1024, 1024), (2048, 128, 512), (2048, 512, 128), (2048, 128, 8000)):
        a, b = torch.randn(m, k), torch.randn(k, n)
        torch.mm(a, b)
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            torch.mm(a, b)
            reps += 1
        best = max(best, 2 * m * k * n * reps / (time.perf_counter() - t0))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--data", required=True, help="prepared data directory")
    parser.add_argument("--runs", help="experiment directory with metanmt/ and multinmt/ train logs")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads of the peak measurement (as in training)")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    cfg = TrainConfig.load(args.config)
    per_token = flops_per_token(cfg, PreparedData.load(args.data))
    peak = matmul_peak()
    result = {"preset": cfg.model.preset, "flops_per_target_token": round(per_token),
              "matmul_peak_gflops": round(peak / 1e9, 1), "threads": args.threads}
    for system in ("metanmt", "multinmt") if args.runs else ():
        lines = (Path(args.runs) / system / "train_log.jsonl").read_text(encoding="utf-8").splitlines()
        rate = json.loads(lines[-1])["tokens_per_s"]
        result[system] = {"tokens_per_s": rate, "achieved_gflops": round(per_token * rate / 1e9, 2),
                          "fraction_of_peak": round(per_token * rate / peak, 3)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
