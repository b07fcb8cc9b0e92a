"""Milliseconds per meta-step and peak memory: plain joint training vs FOMAML vs MAML.

(a) Omniglot Conv-4 (64 filters, BN, 28x28), 5-way 1-shot, 15 queries per class, meta-batch 32, one inner
    step, inner lr 0.4. The plain step trains on the same 32 x (5 + 75) images as one batch.
(b) Marian transformer (d_model 256, 3+3 layers), support and query batches of 32 sentences x 25 tokens,
    meta-batch 4. The plain step trains on the same sentences (all support and query batches).

Each (workload, method) runs in its own process so its peak RSS is its own; the methods are interleaved
over several rounds and the fastest round of each is kept. Synthetic inputs of the right shapes: the cost
of a step does not depend on the pixel or token values.

    python benchmarks/meta_step.py                # all, writes benchmarks/meta_step.json
    python benchmarks/meta_step.py --steps 5      # quicker
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from metanmt.meta import Episode, MetaConfig, MetaLearner

METHODS = ("plain", "fomaml", "maml")


def omniglot_workload(pool: str = "stride", channels_last: str | bool = "auto"):
    from metanmt.models.conv4 import Conv4

    torch.manual_seed(0)
    model = Conv4(in_channels=1, hidden=64, image_size=28, pool=pool, num_classes=5,
                  channels_last=channels_last)
    ways, shots, queries, meta_batch = 5, 1, 15, 32

    def episode():
        xs, xq = torch.rand(ways * shots, 1, 28, 28), torch.rand(ways * queries, 1, 28, 28)
        ys, yq = torch.arange(ways).repeat_interleave(shots), torch.arange(ways).repeat_interleave(queries)
        return Episode(support=(xs, ys), query=(xq, yq))

    def loss_fn(forward, batch):
        return F.cross_entropy(forward(batch[0]), batch[1])

    episodes = [episode() for _ in range(meta_batch)]
    joint = (torch.cat([t for e in episodes for t in (e.support[0], e.query[0])]),
             torch.cat([t for e in episodes for t in (e.support[1], e.query[1])]))
    config = {"inner_steps": 1, "inner_lr": 0.4}
    return model, loss_fn, episodes, joint, config, int(joint[0].shape[0])


def marian_workload():
    from metanmt.models.seq2seq import build_model

    torch.manual_seed(0)
    vocab, sentences, length, meta_batch = 8000, 32, 25, 4
    model = build_model("small", vocab_size=vocab, dropout=0.1)

    def batch():
        ids = torch.randint(3, vocab, (sentences, length))
        labels = torch.randint(3, vocab, (sentences, length))
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}

    def loss_fn(forward, b):
        return forward(**b).loss

    episodes = [Episode(support=batch(), query=batch()) for _ in range(meta_batch)]
    joint = {k: torch.cat([b[k] for e in episodes for b in (e.support,
                                                            e.query)]) for k in episodes[0].support}
    config = {"inner_steps": 1, "inner_lr": 1e-3, "inner_optimizer": "adam"}
    return model, loss_fn, episodes, joint, config, int(joint["labels"].numel())


WORKLOADS = {"omniglot": omniglot_workload, "marian": marian_workload}


def run_one(workload: str, method: str, steps: int, warmup: int) -> dict:
    model, loss_fn, episodes, joint, config, units = WORKLOADS[workload]()
    model.train()
    if method == "plain":
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        call = model if workload == "omniglot" else (lambda **kw: model(**kw))

        def step():
            opt.zero_grad(set_to_none=True)
            loss_fn(call, joint).backward()
            opt.step()
    else:
        learner = MetaLearner(model, loss_fn, MetaConfig(algorithm=method, **config))
        opt = torch.optim.Adam(learner.parameters(), lr=1e-3)

        def step():
            learner.meta_step(episodes, opt)

    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    ms = 1000 * statistics.median(times)
    return {"workload": workload, "method": method, "ms_per_step": round(ms, 1),
            "units_per_s": round(units / (ms / 1000), 1),
            "unit": "images" if workload == "omniglot" else "tokens",
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "steps": steps, "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions; the fastest is kept")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--output", default=str(Path(__file__).with_suffix(".json")))
    parser.add_argument("--one", nargs=2, metavar=("WORKLOAD", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one, steps=args.steps, warmup=args.warmup)))
        return
    rows = []
    for workload in args.workloads:
        runs: dict[str, list[dict]] = {m: [] for m in METHODS}
        for _ in range(args.rounds):  # methods interleaved, so load from other jobs hits all alike
            for method in METHODS:
                cmd = [sys.executable, __file__, "--one", workload, method, "--steps", str(args.steps),
                       "--warmup", str(args.warmup)]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                runs[method].append(json.loads(out.splitlines()[-1]))
        for method in METHODS:
            row = min(runs[method], key=lambda r: r["ms_per_step"])  # least disturbed round
            row["ms_per_step_rounds"] = [r["ms_per_step"] for r in runs[method]]
            rows.append(row)
            print(f"{workload:9s} {method:7s} {row['ms_per_step']:9.1f} ms/step  "
                  f"{row['units_per_s']:10.1f} {row['unit']}/s  peak {row['peak_rss_mb']:.0f} MB", flush=True)
    ratios = {}
    for workload in args.workloads:
        ms = {r["method"]: r["ms_per_step"] for r in rows if r["workload"] == workload}
        ratios[workload] = {"fomaml_over_plain": round(ms["fomaml"] / ms["plain"], 3),
                            "maml_over_plain": round(ms["maml"] / ms["plain"], 3),
                            "maml_over_fomaml": round(ms["maml"] / ms["fomaml"], 3),
                            "fomaml_tokens_per_s_over_plain": round(ms["plain"] / ms["fomaml"], 3)}
        print(workload, ratios[workload])
    machine = {"cpu": platform.processor() or platform.machine(), "cores": __import__("os").cpu_count(),
               "torch": torch.__version__, "python": platform.python_version()}
    Path(args.output).write_text(json.dumps({"machine": machine, "command": " ".join(sys.argv),
                                             "rows": rows, "ratios": ratios}, indent=2) + "\n")


if __name__ == "__main__":
    main()
