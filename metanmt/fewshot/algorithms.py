"""The few-shot algorithms, each with ``train_step(episodes) -> loss`` and ``accuracy(episode)``.

:class:`MetaAlgorithm` runs MAML, first-order MAML and Reptile through the episodic core
(:class:`~metanmt.meta.MetaLearner`); :class:`ProtoNetAlgorithm` trains a prototype embedding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from metanmt.meta import ALGORITHMS as META_ALGORITHMS
from metanmt.meta import Episode, MetaConfig, MetaLearner
from metanmt.meta.protonet import protonet_loss
from metanmt.registry import lookup

if TYPE_CHECKING:
    from metanmt.fewshot.config import FewShotConfig


def _cross_entropy(forward, batch) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(forward(x), y)



class MetaAlgorithm:
    """MAML, FOMAML and Reptile: the core's :class:`MetaLearner` with a cross-entropy loss."""

    def __init__(self, cfg: FewShotConfig, model: nn.Module) -> None:
        meta_cfg = MetaConfig(algorithm=cfg.algorithm, inner_steps=cfg.inner_steps,
                              eval_inner_steps=cfg.eval_inner_steps, inner_lr=cfg.inner_lr,
                              inner_optimizer=cfg.inner_optimizer, bn_eval=cfg.bn_eval,
                              batch_tasks={"yes": True, "no": False}.get(cfg.batch_tasks, "auto"),
                              recompute=cfg.recompute,
                              adam_betas=(0.0, 0.999) if cfg.algorithm == "reptile" else (0.9, 0.999))
        self.learner = MetaLearner(model, _cross_entropy, meta_cfg)
        outer = torch.optim.SGD if cfg.algorithm == "reptile" else torch.optim.Adam
        self.optimizer = outer(self.learner.parameters(), lr=cfg.meta_lr)

    def train_step(self, episodes: list[Episode]) -> float:
        return self.learner.meta_step(episodes, self.optimizer).loss

    def accuracy(self, episode: Episode) -> float:
        adapted = self.learner.adapt(episode.support)
        with torch.no_grad():
            logits = adapted(episode.query[0])
        return float((logits.argmax(dim=1) == episode.query[1]).float().mean())


class ProtoNetAlgorithm:
    """Prototypical Networks: the Conv-4 embedding trained on the prototype loss of each episode."""

    def __init__(self, cfg: FewShotConfig, model: nn.Module) -> None:
        self.model = model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg.meta_lr)

    def train_step(self, episodes: list[Episode]) -> float:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        losses = [protonet_loss(self.model, ep.support, ep.query)[0] for ep in episodes]
        loss = torch.stack(losses).mean()
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def accuracy(self, episode: Episode) -> float:
        self.model.eval()
        with torch.no_grad():
            return float(protonet_loss(self.model, episode.support, episode.query)[1])


Algorithm = MetaAlgorithm | ProtoNetAlgorithm

# The registry of few-shot algorithms: name -> class, built from the config and the model.
ALGORITHMS: dict[str, type[Algorithm]] = {**dict.fromkeys(META_ALGORITHMS, MetaAlgorithm),
                                          "protonet": ProtoNetAlgorithm}


def build_algorithm(cfg: FewShotConfig, model: nn.Module) -> Algorithm:
    """The configured algorithm, training ``model``."""
    return lookup(ALGORITHMS, cfg.algorithm, "few-shot algorithm")(cfg, model)
