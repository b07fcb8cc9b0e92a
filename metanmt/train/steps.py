"""One training step of each system behind one interface, so that the training loop reads the same for all.

A step object owns what its system updates and how: the trainable parameters, Adam with the inverse-square-
root warm-up, and :meth:`SystemStep.step` -> (loss, target tokens this process trained on). The loop saves
and restores the optimizer and scheduler it exposes; :meth:`SystemStep.start` then puts the system's own
data stream where the resumed step left it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import torch

from metanmt.data.prepared import EncodedPairs
from metanmt.tasks.translation import target_tokens
from metanmt.train.config import MetaSection, TrainConfig


def tokens_per_step(meta: MetaSection) -> int:
    """Target tokens of one meta-step (support batches once per inner step, then the query): the budget unit
    of both systems."""
    return meta.meta_batch * (meta.inner_steps * meta.support_tokens + meta.query_tokens)


class SystemStep:
    """What all systems share: Adam (betas 0.9, 0.98) over the trainable parameters, inverse-sqrt warm-up."""

    meta_learns = False  # its run records meta.algorithm
    hands_over = False  # saves the checkpoint at train.pretrain_share of the budget (multimeta's start)
    starts_from_multinmt = False  # trains from that checkpoint for the rest of the budget

    def __init__(self, trainable: Iterable[torch.nn.Parameter], cfg: TrainConfig) -> None:
        tc = cfg.train
        self.optimizer = make_adam(trainable, tc.lr, betas=(0.9, 0.98))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                           lambda s: inverse_sqrt(s, tc.warmup_steps))

    def start(self, rng: np.random.Generator, step: int) -> None:
        """Draw from ``rng`` (restored with the checkpoint) from ``step`` on."""
        self.rng = rng

    def step(self) -> tuple[float, int]:
        loss, tokens = self.update()
        self.scheduler.step()
        return loss, tokens

    def update(self) -> tuple[float, int]:
        raise NotImplementedError


class MetaNMTStep(SystemStep):
    """MetaNMT: each process draws its share of the meta-batch's tasks, one episode each; one outer update
    of the meta-gradient summed over the processes."""

    meta_learns = True

    def __init__(self, model: torch.nn.Module, tasks: Mapping[str, EncodedPairs], cfg: TrainConfig,
                 accelerator) -> None:
        from metanmt.meta import MetaLearner
        from metanmt.models.chunked_loss import ChunkedSeq2SeqLoss
        from metanmt.tasks.translation import TaskSampler, TranslationTask, seq2seq_loss

        self.meta = cfg.meta
        loss_fn = ChunkedSeq2SeqLoss(model) if cfg.meta.chunked_loss else seq2seq_loss
        self.learner = MetaLearner(model, loss_fn, cfg.meta.core_config(cfg.train.grad_clip),
                                   accelerator=accelerator, batch_weight=target_tokens)
        self.tasks = {lang: TranslationTask(lang, pairs) for lang, pairs in tasks.items()}
        self.sampler = TaskSampler({lang: len(p) for lang, p in tasks.items()}, cfg.train.temperature)
        self.tasks_per_process = cfg.meta.meta_batch // accelerator.num_processes
        super().__init__(list(self.learner.parameters()), cfg)

    def update(self) -> tuple[float, int]:
        mc = self.meta
        langs = self.sampler.sample(self.rng, self.tasks_per_process)
        episodes = [self.tasks[lang].episode(self.rng, mc.support_tokens, mc.query_tokens) for lang in langs]
        loss = self.learner.meta_step(episodes, self.optimizer).loss
        return loss, sum(mc.inner_steps * target_tokens(e.support) + target_tokens(e.query) for e in episodes)


class MultiNMTStep(SystemStep):
    """MultiNMT: one batch of the temperature-sampled union of the training languages per process, as many
    target tokens as a meta-step; gradients averaged across processes (DDP)."""

    hands_over = True

    def __init__(self, model: torch.nn.Module, tasks: Mapping[str, EncodedPairs], cfg: TrainConfig,
                 accelerator) -> None:
        self.tasks, self.cfg, self.accelerator = tasks, cfg, accelerator
        super().__init__([p for p in model.parameters() if p.requires_grad], cfg)
        self.model, self.optimizer = accelerator.prepare(model, self.optimizer)

    def start(self, rng: np.random.Generator, step: int) -> None:
        """Its own batch stream (it buffers shuffled passes), replayed up to the resumed ``step``."""
        from metanmt.tasks.translation import multilingual_batches

        super().start(rng, step)
        tc, accelerator = self.cfg.train, self.accelerator
        per_process = tokens_per_step(self.cfg.meta) // accelerator.num_processes
        own_rng = np.random.default_rng([tc.seed, accelerator.process_index, 1])
        self.batches = multilingual_batches(self.tasks, tc.temperature, per_process, own_rng)
        for _ in range(step):
            next(self.batches)

    def update(self) -> tuple[float, int]:
        accelerator = self.accelerator
        _, batch = next(self.batches)
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        with accelerator.autocast():
            loss = self.model(**batch).loss
        self.optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
        self.optimizer.step()
        return float(accelerator.reduce(loss.detach(), reduction="mean")), target_tokens(batch)


class MultiMetaStep(MetaNMTStep):
    """MultiNMT+MetaNMT: MetaNMT's step, from the MultiNMT run's checkpoint at ``train.pretrain_share``."""

    starts_from_multinmt = True


# The registry of systems: name -> its step (the names and display names: metanmt.train.config.SYSTEMS).
STEPS: dict[str, type[SystemStep]] = {"metanmt": MetaNMTStep, "multinmt": MultiNMTStep,
                                      "multimeta": MultiMetaStep}


def make_adam(params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float] = (0.9, 0.999)
              ) -> torch.optim.Adam:
    """Adam with the fused kernel (one pass over each tensor instead of ~10 ops): on CPU a step of the tiny
    preset takes ~1.3 ms instead of ~4.4 (benchmarks/adam_step.py); every device this toolkit runs on (CPU,
    CUDA, MPS) has it. A resumed run keeps the kernel its checkpoint was saved with."""
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)


def inverse_sqrt(step: int, warmup: int) -> float:
    """The learning-rate factor: linear warm-up over ``warmup`` steps, then 1/sqrt(step) decay."""
    step = max(step, 1)
    return min(step / max(warmup, 1), math.sqrt(max(warmup, 1) / step))
