"""Learning curves of training runs side by side, at equal target tokens, read from their train logs.

    python benchmarks/curves.py RUN [RUN ...] [--every 1000000]

RUN: a run directory holding ``train_log.jsonl`` (output of ``metanmt meta-train`` / ``pretrain``), or a log
itself, plain or gzipped (the committed ``benchmarks/offline_tatoeba/*/SYSTEM_train_log.jsonl.gz``). For each
multiple of ``--every`` target tokens, each run's last validation at or before it: the source gap (held-out
loss with mismatched sources minus with true ones, nats) / the in-training validation chrF (ro/lv), and the
wall-clock hours the run had spent to get there (summed from its logged throughput, validations excluded).
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path


def validations(run: Path) -> tuple[list[dict], int]:
    """The rows of a train log that hold a validation, with the training hours spent up to each, and the
    target tokens the run has reached."""
    rows, seconds, tokens = [], 0.0, 0
    log = run / "train_log.jsonl" if run.is_dir() else run
    text = gzip.decompress(log.read_bytes()) if log.suffix == ".gz" else log.read_bytes()
    for line in text.decode("utf-8").splitlines():
        row = json.loads(line)
        if row["tokens"] > tokens and row.get("tokens_per_s"):
            seconds += (row["tokens"] - tokens) / row["tokens_per_s"]
            tokens = row["tokens"]
        if "source_gap" in row:
            rows.append({**row, "hours": seconds / 3600})
    return rows, tokens


def at(curve: tuple[list[dict], int], tokens: int) -> str:
    rows, reached = curve
    before = [r for r in rows if r["tokens"] <= tokens]
    if not before or tokens > reached:
        return "—"
    r = before[-1]
    return f"{r['source_gap']['gap']:.2f} / {r['valid_bleu']['chrf_mean']:.1f} ({r['hours']:.2f} h)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--every", type=int, default=1_000_000, help="target tokens between rows")
    args = parser.parse_args()
    curves = {run: validations(run) for run in args.runs}
    last = max(reached for _, reached in curves.values())
    print("| target tokens | " + " | ".join(str(run) for run in args.runs) + " |")
    print("|---:|" + "---:|" * len(args.runs))
    for tokens in range(args.every, last + 1, args.every):
        print(f"| {tokens / 1e6:.1f}M | " + " | ".join(at(curves[run], tokens) for run in args.runs) + " |")


if __name__ == "__main__":
    main()
