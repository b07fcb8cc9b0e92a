"""How much MetaNMT's episode batches pad: padded over real label positions (worst batch, mean) per language.

    python benchmarks/episode_padding.py --data runs/ots2/data --langs es pl sl de el --budget 375
    python benchmarks/episode_padding.py --data runs/quickstart/data --budget 400 --episodes 300
    python benchmarks/episode_padding.py --data runs/quickstart/data --budget 133 --query 667 --episodes 300
    PYTHONPATH=OTHER_CHECKOUT python benchmarks/episode_padding.py ...   # another version of metanmt

Numbers of 2026-11-26 (`benchmarks/rss.md`): at e8cb5b3 (episode windows cut from a ring sorted once) the
worst batch padded 9.7-17x on these languages; with the rising-then-falling ring, 1.3-2.5x. That ring halved
the density of lengths in a window; windows of the plain length order, cut at its two ends (seventh sitting):

    data, --budget                      ring rising then falling        length order cut at the ends
    offline Tatoeba (runs/ots2), 375    worst 1.30-2.52x, mean 1.13-1.41x  worst 1.31-1.95x, mean 1.12-1.39x
    quickstart demo (Django), 400       worst 2.17-2.82x, mean 1.59-1.90x  worst 1.69-2.26x, mean 1.36-1.66x

(labels only). The last line counts source positions too: on the demo data (`--budget 400 --episodes 300`, all
18 languages) episodes cost 2.98 positions per target token, 3.53 with the ring; MultiNMT's batches of 800
padded tokens (the quickstart's, meta_batch 1) 2.83.
"""

from __future__ import annotations

import argparse

import numpy as np

from metanmt.data import PreparedData
from metanmt.tasks.translation import IGNORE_INDEX, TranslationTask, batches_by_tokens


def padding(task: TranslationTask, budget: int, query: int, episodes: int, seed: int
            ) -> tuple[float, float, int, int]:
    """(worst, mean) padded / real label positions over the support and query batches of ``episodes``, and
    the padded source + label positions and real target tokens they hold."""
    rng = np.random.default_rng(seed)
    worst, padded, real, positions = 0.0, 0, 0, 0
    for _ in range(episodes):
        episode = task.episode(rng, budget, query)
        for batch in (episode.support, episode.query):
            n = int((batch["labels"] != IGNORE_INDEX).sum())  # not target_tokens: older versions lack it
            worst = max(worst, batch["labels"].numel() / n)
            padded, real = padded + batch["labels"].numel(), real + n
            positions += batch["labels"].numel() + batch["input_ids"].numel()
    return worst, padded / real, positions, real


def multinmt_positions(pairs, max_tokens: int, seed: int) -> tuple[int, int]:
    """Padded source + label positions and real target tokens of one pass of MultiNMT's batches."""
    positions, real = 0, 0
    for batch in batches_by_tokens(pairs, max_tokens, np.random.default_rng(seed)):
        positions += batch["labels"].numel() + batch["input_ids"].numel()
        real += int((batch["labels"] != IGNORE_INDEX).sum())
    return positions, real


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a directory written by `metanmt prepare`")
    parser.add_argument("--langs", nargs="+", help="training languages (default: all)")
    parser.add_argument("--budget", type=int, default=375,
                        help="target tokens per support batch (and query batch, without --query)")
    parser.add_argument("--query", type=int, help="target tokens per query batch, if not --budget")
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=2)
    args = parser.parse_args()
    data = PreparedData.load(args.data)
    query = args.query or args.budget
    meta, multi, floor = np.zeros(2), np.zeros(2), np.zeros(2)  # (positions, target tokens)
    for lang in args.langs or data.train_langs:
        pairs = data.pairs(lang, "train")
        worst, mean, positions, real = padding(TranslationTask(lang, pairs), args.budget, query,
                                               args.episodes, args.seed)
        meta += (positions, real)
        multi += multinmt_positions(pairs, args.budget + query, args.seed)  # MultiNMT: one meta-step's budget
        floor += (pairs.src_lengths.sum() + pairs.tgt_lengths.sum(), pairs.tgt_lengths.sum())  # no padding
        print(f"{lang}: worst {worst:.2f}x, mean {mean:.3f}x")
    print(f"source + label positions per target token: episodes {meta[0] / meta[1]:.2f}, "
          f"MultiNMT batches of {args.budget + query} padded tokens {multi[0] / multi[1]:.2f}, "
          f"unpadded {floor[0] / floor[1]:.2f}")


if __name__ == "__main__":
    main()
