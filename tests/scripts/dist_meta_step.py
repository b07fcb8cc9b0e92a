"""Run meta-steps on this process's share of a fixed meta-batch; rank 0 saves the parameters.

Launched by tests/test_distributed.py with ``torchrun --nproc_per_node N`` (or run plainly for N=1).
"""

import sys

import torch
from accelerate import Accelerator

from metanmt.meta import MetaConfig, MetaLearner
from tests.test_meta_core import episodes, mlp, regression_loss


def main(out_path: str, algorithm: str) -> None:
    accelerator = Accelerator(cpu=True)
    model = mlp(seed=0, dtype=torch.float64)
    learner = MetaLearner(model, regression_loss,
                          MetaConfig(algorithm=algorithm, inner_steps=2, inner_lr=0.2,
                                     learn_inner_lr=algorithm != "reptile", grad_clip=10.0),
                          accelerator=accelerator)
    opt = torch.optim.Adam(learner.parameters(), lr=1e-2)
    rank, world = accelerator.process_index, accelerator.num_processes
    losses = []
    for step in range(3):
        meta_batch = episodes(4, seed=step)
        losses.append(learner.meta_step(meta_batch[rank::world], opt).loss)
    if accelerator.is_main_process:
        torch.save({"state": learner.state_dict(), "losses": losses, "world": world}, out_path)
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
