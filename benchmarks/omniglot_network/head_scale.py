"""Does the N(0, 1) head of Finn's network slow the start of 20-way 1-shot MAML? The `finn` run of run.sh,
with only its head drawn at another scale: `metanmt fewshot --network finn` (every setting, the seed, the
convolutions' initial weights, the episodes), after which the head's weights are drawn again from
N(0, HEAD_STD). PyTorch's default head for 64 inputs has a standard deviation of 1/sqrt(3 * 64) = 0.072.

    python benchmarks/omniglot_network/head_scale.py ../shared/data/omniglot RUNS/finn_head0.072 \\
        --head-std 0.072 --meta-steps 800 --threads 1

Writes OUT/results.json like `metanmt fewshot` (validation every 200 steps in its `history`); `--resume`
continues a stopped run.
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch import nn

from metanmt.fewshot import run as fewshot
from metanmt.fewshot.config import FewShotConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_root", help="the Omniglot folder (the zips)")
    parser.add_argument("output_dir", help="checkpoints and results.json go here")
    parser.add_argument("--head-std", type=float, required=True, help="standard deviation of the head")
    parser.add_argument("--meta-steps", type=int, default=800, help="outer updates")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--time-limit", type=float, default=None, help="minutes of training (then test)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    args = parser.parse_args()
    build_finn = fewshot.build_model

    def build_with_head(cfg: FewShotConfig, image_shape: tuple[int, ...]) -> nn.Module:
        model = build_finn(cfg, image_shape)
        with torch.no_grad():
            nn.init.normal_(model.head.weight, std=args.head_std)
        return model

    fewshot.build_model = build_with_head  # the run's own loop, checkpoints and results, this one change
    cfg = FewShotConfig(dataset="omniglot", data_root=args.data_root, output_dir=args.output_dir,
                        algorithm="maml", ways=20, network="finn", eval_every=200, device="cpu",
                        meta_steps=args.meta_steps, threads=args.threads, time_limit=args.time_limit,
                        resume=args.resume, command=["python", *sys.argv])
    results = fewshot.run_fewshot(cfg)
    print({k: results[k] for k in ("meta_steps", "accuracy", "ci95", "val_accuracy")})


if __name__ == "__main__":
    main()
