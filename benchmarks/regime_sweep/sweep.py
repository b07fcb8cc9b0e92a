"""Which training regime teaches the small model to translate in the fewest target tokens?

Runs several variants of a base config side by side (each a `metanmt pretrain` or `meta-train` process
with a wall-clock limit), each validated every ``--eval-tokens`` target tokens: the source gap on the
training languages' dev sets (metanmt.eval.diagnostics) and the in-training validation BLEU (ro/lv after
20 fine-tuning steps). Tokens, not seconds, are the currency: a variant's CPU cost is proportional to the
target tokens it processes (same model size), so the curve "gap against tokens" measured on any device
says what a CPU-second buys.

    python benchmarks/regime_sweep/sweep.py --config recipes/configs/offline_tatoeba.yaml \
        --data runs/ot/data --out runs/sweep --limit-s 270
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml


def _meta(tokens: int) -> dict:
    """Two tasks a meta-step, support and query batches of ``tokens`` target tokens each."""
    return {"meta_batch": 2, "support_tokens": tokens, "query_tokens": tokens}


def _train(lr: float) -> dict:
    return {"lr": lr, "warmup_steps": 1000}


# name -> (system, overrides of the base config's model/meta/train sections)
VARIANTS: dict[str, tuple[str, dict]] = {
    "multi_post_2k_lr7e-4": ("multinmt", {"meta": _meta(500), "train": _train(7e-4)}),
    "multi_post_4k_lr7e-4": ("multinmt", {"meta": _meta(1000), "train": _train(7e-4)}),
    "multi_post_4k_lr1.5e-3": ("multinmt", {"meta": _meta(1000), "train": _train(1.5e-3)}),
    "multi_post_4k_lr7e-4_drop0": ("multinmt", {"model": {"dropout": 0.0}, "meta": _meta(1000),
                                                "train": _train(7e-4)}),
    "multi_pre_4k_lr1.5e-3": ("multinmt", {"model": {"norm": "pre"}, "meta": _meta(1000),
                                           "train": _train(1.5e-3)}),
    "multi_pre_2k_lr1e-3": ("multinmt", {"model": {"norm": "pre"}, "meta": _meta(500),
                                         "train": _train(1e-3)}),
    "meta_post_4k_lr7e-4": ("metanmt", {"meta": _meta(1000), "train": _train(7e-4)}),
    "meta_pre_4k_lr1.5e-3": ("metanmt", {"model": {"norm": "pre"}, "meta": _meta(1000),
                                         "train": _train(1.5e-3)}),
}


def variant_config(base: dict, overrides: dict, eval_tokens: int) -> dict:
    """The base config with the overrides, an endless budget and validation every ``eval_tokens``."""
    cfg = copy.deepcopy(base)
    for section, values in overrides.items():
        cfg.setdefault(section, {}).update(values)
    meta = cfg["meta"]
    tokens_per_step = meta["meta_batch"] * (meta.get("inner_steps", 1) * meta["support_tokens"]
                                            + meta["query_tokens"])
    every = max(1, eval_tokens // tokens_per_step)
    cfg["train"].update(steps=10**7, eval_every=every, save_every=10**7)
    return cfg


def launch(name: str, system: str, cfg: dict, args: argparse.Namespace) -> subprocess.Popen:
    run_dir = Path(args.out) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    command = ["timeout", str(args.limit_s), sys.executable, "-m", "metanmt",
               "meta-train" if system == "metanmt" else "pretrain", "--config", str(run_dir / "config.yaml"),
               "--data", args.data, "--output-dir", str(run_dir / "run"), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    return subprocess.Popen(command, stdout=open(run_dir / "log.txt", "w"), stderr=subprocess.STDOUT, env=env)


def curve(run_dir: Path) -> list[dict]:
    """The validation records of one variant: tokens, updates, source gap, validation BLEU."""
    log = run_dir / "run" / "train_log.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    return [{"tokens": r["tokens"], "updates": r["step"], "gap": r["source_gap"]["gap"],
             "dev_loss": r["source_gap"]["loss"], "valid_bleu": r["valid_bleu"]["mean"],
             "valid_chrf": r["valid_bleu"]["chrf_mean"], "tokens_per_s": r["tokens_per_s"]}
            for r in rows if "source_gap" in r]


def summary_markdown(curves: dict[str, list[dict]]) -> str:
    lines = ["| variant | target tokens | updates | source gap | dev loss | valid BLEU | valid chrF |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, rows in curves.items():
        for r in rows:
            lines.append(f"| {name} | {r['tokens'] / 1e6:.2f}M | {r['updates']} | {r['gap']:.3f} | "
                         f"{r['dev_loss']:.3f} | {r['valid_bleu']:.2f} | {r['valid_chrf']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True,
                        help="base experiment YAML (its model/meta/train sections)")
    parser.add_argument("--data", required=True, help="prepared data directory")
    parser.add_argument("--out", required=True, help="one folder per variant, summary.md/json")
    parser.add_argument("--limit-s", type=int, default=270, help="wall-clock seconds per variant")
    parser.add_argument("--eval-tokens", type=int, default=1_000_000, help="validate every N target tokens")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per variant")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    base = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
    procs = [launch(n, VARIANTS[n][0], variant_config(base, VARIANTS[n][1], args.eval_tokens), args)
             for n in args.variants]
    for p in procs:
        p.wait()
    curves = {n: curve(Path(args.out) / n) for n in args.variants}
    (Path(args.out) / "summary.json").write_text(json.dumps(curves, indent=2), encoding="utf-8")
    (Path(args.out) / "summary.md").write_text(summary_markdown(curves), encoding="utf-8")
    print(summary_markdown(curves))


if __name__ == "__main__":
    main()
