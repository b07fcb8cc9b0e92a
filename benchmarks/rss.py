"""Resident memory (RSS) per training step: meta-training (MetaNMT) vs the multilingual baseline (MultiNMT).

Each system trains for ``--steps`` steps of the given config on a prepared data directory, in its own
process (so each peak is its own), validating every ``--eval-every`` steps as real runs do. After every step
a callback records the process's RSS, its peak so far (``getrusage``), glibc's heap statistics
(``mallinfo2``: bytes in use vs bytes held free by the allocator, which tells live memory from
fragmentation) and the CPU seconds and page faults so far. Systems run one after the other, never at the
same time, each on the allocator the ``metanmt`` command would use (tcmalloc where installed, whose heap
glibc's statistics do not see; ``--env METANMT_ALLOCATOR=system`` for glibc's: ``metanmt/memory.py``).

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/rss.py --config recipes/configs/offline_tatoeba.yaml \\
        --data runs/ot/data --steps 100 --eval-every 50 --label after --bound-heap

The JSON (``--json``, default benchmarks/rss.json) keeps one entry per ``--label``, so runs before and after a
change sit side by side; a markdown summary is printed and written to ``OUTPUT_DIR/LABEL/summary.md``.
"""

from __future__ import annotations

import argparse
import ctypes
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

SYSTEMS = ("metanmt", "multinmt")
MB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                     "usmblks", "fsmblks", "uordblks", "fordblks",
                                                     "keepcost")]


def heap_stats() -> dict[str, float]:
    """glibc's view of the heap in MB: ``in_use`` (live allocations, mmapped ones included) and ``free``
    (held by the allocator, not returned to the system); empty where there is no ``mallinfo2`` or another
    allocator serves the process (glibc's statistics would read zero)."""
    from metanmt.memory import allocator_in_use

    if allocator_in_use() != "system":
        return {}
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _Mallinfo2
    except (OSError, AttributeError):
        return {}
    info = libc.mallinfo2()
    return {"in_use_mb": round((info.uordblks + info.hblkhd) / MB, 1),
            "free_mb": round(info.fordblks / MB, 1)}


def memory_now() -> dict[str, float]:
    """This process's RSS and peak RSS so far (MB), with the heap statistics; its CPU seconds and minor page
    faults so far (what a memory setting costs, whatever else runs on the machine)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        rss = int(statm.read().split()[1]) * PAGE
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"rss_mb": round(rss / MB, 1), "peak_mb": round(usage.ru_maxrss * 1024 / MB, 1), **heap_stats(),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "faults": usage.ru_minflt}


def child(args: argparse.Namespace) -> None:
    """Train one system, writing one JSON line of memory figures per step to ``args.record``."""
    import dataclasses

    from metanmt.memory import allocator_in_use, restart_with_allocator

    restart_with_allocator()  # as the metanmt command does: tcmalloc where installed (METANMT_ALLOCATOR)
    from metanmt.train.config import TrainConfig
    from metanmt.train.trainer import train

    cfg = TrainConfig.load(args.config)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=args.steps,
                                                             eval_every=args.eval_every,
                                                             bound_heap=args.bound_heap))
    t0 = time.perf_counter()
    with open(args.record, "w", encoding="utf-8") as out:
        def record(rec: dict) -> None:
            row = {"step": rec["step"], "validated": "valid_bleu" in rec, "allocator": allocator_in_use(),
                   "seconds": round(time.perf_counter() - t0, 1), **memory_now()}
            out.write(json.dumps(row) + "\n")
            out.flush()

        train(cfg, args.data, Path(args.output_dir) / args.child, system=args.child, progress=False,
              callbacks=[record])


def run_system(args: argparse.Namespace, system: str, env: dict[str, str]) -> list[dict]:
    """Run ``system`` in a fresh process and return its per-step rows."""
    out = Path(args.output_dir)
    record = out / f"{system}.jsonl"
    cmd = [sys.executable, __file__, "--child", system, "--record", str(record), "--config", args.config,
           "--data", args.data, "--steps", str(args.steps), "--eval-every", str(args.eval_every),
           *(["--bound-heap"] if args.bound_heap else []),
           "--output-dir", str(out)]
    subprocess.run(cmd, check=True, env=env)
    return [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]


def summarise(rows: list[dict]) -> dict:
    """Peak RSS, RSS at the middle and last step, the growth of the step-end RSS over the second half; CPU
    seconds and page faults per training step (means over the steps without a validation)."""
    half = len(rows) // 2
    first, second = [r["rss_mb"] for r in rows[:half]], [r["rss_mb"] for r in rows[half:]]
    return {"peak_mb": rows[-1]["peak_mb"], "rss_mid_mb": rows[half - 1]["rss_mb"] if half else None,
            "rss_last_mb": rows[-1]["rss_mb"],
            "growth_second_half_mb": round(max(second) - max(first), 1) if first else None,
            "heap_in_use_last_mb": rows[-1].get("in_use_mb"), "heap_free_last_mb": rows[-1].get("free_mb"),
            "cpu_s_per_step": _per_step(rows, "cpu_s"), "faults_per_step": _per_step(rows, "faults"),
            "seconds": rows[-1]["seconds"], "allocator": rows[-1].get("allocator", "system")}


def _per_step(rows: list[dict], key: str) -> float | None:
    """The mean increase of ``key`` over the training steps without a validation (None if not recorded)."""
    steps = [b[key] - a[key] for a, b in itertools.pairwise(rows) if key in a and not b["validated"]]
    return round(statistics.fmean(steps), 3) if steps else None


def markdown(label: str, entry: dict) -> str:
    """A table of one labelled run."""
    head = (f"**{label}** ({entry['steps']} steps, validation every {entry['eval_every']}, "
            f"env {entry['env'] or '-'}): peak ratio metanmt / multinmt = **{entry['ratio']}**")
    columns = ("peak RSS MB | RSS mid MB | RSS last MB | growth 2nd half MB | heap in use MB | heap free MB "
               "| CPU s / step | page faults / step")
    lines = [head, "", f"| system | {columns} |", "|---|" + "---:|" * 8]
    for system, s in entry["summary"].items():
        cells = [s.get(k) for k in ("peak_mb", "rss_mid_mb", "rss_last_mb", "growth_second_half_mb",
                                    "heap_in_use_last_mb", "heap_free_last_mb", "cpu_s_per_step",
                                    "faults_per_step")]
        lines.append(f"| {system} | " + " | ".join("-" if c is None else str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="recipes/configs/offline_tatoeba.yaml")
    p.add_argument("--data", required=True, help="a prepared data directory (metanmt prepare)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--bound-heap", action="store_true", help="train with train.bound_heap (metanmt.memory)")
    p.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    p.add_argument("--env", nargs="*", default=[], metavar="KEY=VALUE", help="extra environment of the runs")
    p.add_argument("--label", default="run")
    p.add_argument("--output-dir", default="/tmp/metanmt_rss")
    p.add_argument("--json", default=str(Path(__file__).with_name("rss.json")))
    p.add_argument("--child", choices=SYSTEMS, help=argparse.SUPPRESS)
    p.add_argument("--record", help=argparse.SUPPRESS)
    return p.parse_args()


def main() -> None:
    args = parse_args()
    if args.child:
        return child(args)
    out = Path(args.output_dir) / args.label
    if out.exists() and any(out.iterdir()):
        sys.exit(f"{out} is not empty (runs resume there): choose another --label or --output-dir")
    args.output_dir = str(out)
    out.mkdir(parents=True, exist_ok=True)
    extra = dict(kv.split("=", 1) for kv in args.env)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), **extra}
    rows = {system: run_system(args, system, env) for system in args.systems}
    summary = {system: summarise(r) for system, r in rows.items()}
    ratio = (round(summary["metanmt"]["peak_mb"] / summary["multinmt"]["peak_mb"], 3)
             if set(SYSTEMS) <= set(summary) else None)
    entry = {"config": args.config, "steps": args.steps, "eval_every": args.eval_every, "env": extra,
             "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
             "ratio": ratio, "summary": summary, "per_step": rows}
    path = Path(args.json)
    results = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    results[args.label] = entry
    path.write_text(json.dumps(results) + "\n", encoding="utf-8")  # per-step rows: one line keeps it small
    text = markdown(args.label, entry)
    (out / "summary.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
