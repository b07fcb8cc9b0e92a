"""What one inner step buys: the query-loss change after one step on a support batch, per optimizer and rate.

FOMAML's outer gradient is the query gradient at the weights after the inner step, so meta-learning can only
pay for the support tokens it spends if that step helps the query set. This script measures it on any
checkpoint: for each training language, ``--episodes`` episodes of ``--support``/``--query`` target tokens
(drawn as meta-training draws them), the query loss before and after one inner step (dropout off), for each
``--settings`` entry ``OPTIMIZER:RATE`` (the core's inner optimizers: a first Adam step moves every weight by
about the rate, whatever its gradient; SGD moves it by rate x gradient).

    OMP_NUM_THREADS=1 python benchmarks/inner_step_gain.py --model runs/multi/last --data runs/data \\
        --output inner_step_gain.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

DEFAULT_SETTINGS = ["adam:1e-5", "adam:3e-5", "adam:1e-4", "adam:5e-4", "sgd:0.03", "sgd:0.1", "sgd:0.3",
                    "sgd:1.0"]


def query_changes(model, task, rng, settings: list[tuple[str, float]], args) -> dict[str, list[float]]:
    """Query-loss change (after - before) of ``args.episodes`` episodes of ``task`` for each setting."""
    import torch

    from metanmt.meta import MetaLearner
    from metanmt.meta.learner import MetaConfig
    from metanmt.tasks.translation import seq2seq_loss, target_tokens

    learners = {f"{opt}:{lr:g}": MetaLearner(model, seq2seq_loss, MetaConfig(
        algorithm="fomaml", inner_lr=lr, inner_optimizer=opt, inner_steps=1), batch_weight=target_tokens)
        for opt, lr in settings}
    changes: dict[str, list[float]] = {key: [] for key in learners}
    for _ in range(args.episodes):
        episode = task.episode(rng, args.support, args.query)
        with torch.no_grad():
            before = float(seq2seq_loss(model, episode.query))
        for key, learner in learners.items():
            adapted = learner.adapt(episode.support)
            with torch.no_grad():
                changes[key].append(float(seq2seq_loss(adapted, episode.query)) - before)
    return changes


def summary(changes: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Mean change and the share of episodes whose query loss went down, per setting."""
    return {k: {"mean_change": round(statistics.fmean(v), 4),
                "improved": round(sum(c < 0 for c in v) / len(v), 3)} for k, v in changes.items()}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="checkpoint directory (e.g. RUN/last)")
    p.add_argument("--data", required=True, help="prepared data directory")
    p.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS, help="OPTIMIZER:RATE entries")
    p.add_argument("--support", type=int, default=375, help="support target tokens")
    p.add_argument("--query", type=int, default=375, help="query target tokens")
    p.add_argument("--episodes", type=int, default=3, help="episodes per training language")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", required=True, help="result JSON")
    return p.parse_args()


def main() -> None:
    import numpy as np
    import torch

    from metanmt.data import PreparedData
    from metanmt.models.seq2seq import load_checkpoint
    from metanmt.tasks.translation import TranslationTask

    args = parse_args()
    settings = [(s.split(":")[0], float(s.split(":")[1])) for s in args.settings]
    torch.manual_seed(args.seed)
    model, _, _ = load_checkpoint(args.model)
    model.eval()
    data, rng = PreparedData.load(args.data), np.random.default_rng(args.seed)
    changes: dict[str, list[float]] = {}
    for lang in data.train_langs:
        for key, values in query_changes(model, TranslationTask(lang, data.pairs(lang, "train")), rng,
                                         settings, args).items():
            changes.setdefault(key, []).extend(values)
    result = {"model": args.model, "support": args.support, "query": args.query, "episodes": args.episodes,
              "langs": data.train_langs, "settings": summary(changes)}
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    for key, row in result["settings"].items():
        print(f"{key:10s} query loss {row['mean_change']:+.4f}, lower in {row['improved']:.0%} of episodes")


if __name__ == "__main__":
    main()
