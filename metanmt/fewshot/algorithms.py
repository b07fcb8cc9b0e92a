"""The few-shot algorithms, each with ``train_step(episodes) -> loss`` and ``accuracy(episode)``.

:class:`MetaAlgorithm` runs MAML, first-order MAML and Reptile through the episodic core
(:class:`~metanmt.meta.MetaLearner`); :class:`ProtoNetAlgorithm` trains a prototype embedding.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from metanmt.errors import MetaNMTError
from metanmt.meta import ALGORITHMS as META_ALGORITHMS
from metanmt.meta import Episode, MetaConfig, MetaLearner
from metanmt.meta.graphs import CudaGraphed, GraphedMetaStep
from metanmt.meta.protonet import protonet_loss
from metanmt.models.conv4 import finn_adapted
from metanmt.registry import lookup

if TYPE_CHECKING:
    from metanmt.fewshot.config import FewShotConfig


def _cross_entropy(forward, batch) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(forward(x), y)


class MetaAlgorithm:
    """MAML, FOMAML and Reptile: the core's :class:`MetaLearner` with a cross-entropy loss; on a CUDA device
    each meta-step and each test adaptation is replayed from a CUDA graph (``cuda_graphs``)."""

    def __init__(self, cfg: FewShotConfig, model: nn.Module) -> None:
        meta_cfg = MetaConfig(algorithm=cfg.algorithm, inner_steps=cfg.inner_steps,
                              eval_inner_steps=cfg.eval_inner_steps, inner_lr=cfg.inner_lr,
                              inner_optimizer=cfg.inner_optimizer, bn_eval=cfg.bn_eval,
                              batch_tasks={"yes": True, "no": False}.get(cfg.batch_tasks, "auto"),
                              recompute=cfg.recompute,
                              fast_params=finn_adapted(model) if cfg.network == "finn" else ("*",),
                              adam_betas=(0.0, 0.999) if cfg.algorithm == "reptile" else (0.9, 0.999))
        self.learner = MetaLearner(model, _cross_entropy, meta_cfg)
        outer = torch.optim.SGD if cfg.algorithm == "reptile" else torch.optim.Adam
        self.optimizer = outer(self.learner.parameters(), lr=cfg.meta_lr)
        self.device = next(model.parameters()).device
        if cfg.cuda_graphs == "yes" and self.device.type != "cuda":
            raise MetaNMTError(f"--cuda-graphs yes needs a CUDA device; the model is on {self.device}")
        self.graph_mode = cfg.cuda_graphs
        self.graphs = cfg.cuda_graphs == "yes" or (cfg.cuda_graphs == "auto" and self.device.type == "cuda")
        self._graphed: dict[str, Any] = {}  # "step", "accuracy" -> their recorded versions

    def train_step(self, episodes: list[Episode]) -> torch.Tensor | float:
        """One outer update; the mean query loss (on the device when replayed: reading it waits for it)."""
        if self.graphs:
            step = self._replayed("step", lambda: GraphedMetaStep(self.learner, self.optimizer), episodes)
            if step is not None:
                return step[0]
        return self.learner.meta_step(episodes, self.optimizer).loss

    def accuracy(self, episode: Episode) -> torch.Tensor:
        """The fraction of query examples classified right after adapting on the support set."""
        if self.graphs:
            accuracy = self._replayed("accuracy", self._graphed_accuracy, episode.support, episode.query)
            if accuracy is not None:
                return accuracy.clone()  # the next replay overwrites it
        return self._accuracy(episode.support, episode.query, lazy=False)

    def _graphed_accuracy(self) -> CudaGraphed:
        return CudaGraphed(lambda support, query: self._accuracy(support, query, lazy=True), self.device)

    def _accuracy(self, support: Any, query: Any, lazy: bool) -> torch.Tensor:
        adapted = self.learner.adapt(support, lazy=lazy)
        with torch.no_grad():
            logits = adapted(query[0])
        return (logits.argmax(dim=1) == query[1]).float().mean()

    def _replayed(self, name: str, build: Callable[[], Callable], *args: Any) -> Any:
        """``build()(*args)``, built once; with ``cuda_graphs`` auto, a first call that fails (a model or
        step that a CUDA graph cannot record) warns and turns the graphs off for good (None)."""
        first = name not in self._graphed
        try:
            if first:
                self._graphed[name] = build()
            return self._graphed[name](*args)
        except MetaNMTError:
            raise
        except Exception as err:
            if not first or self.graph_mode == "yes":
                raise
            warnings.warn(f"CUDA graphs off: recording the {name} failed ({type(err).__name__}: {err}); "
                          "running plain steps", stacklevel=3)
            self.graphs = False
            self.learner.zero_grad(set_to_none=True)
            return None


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

    def accuracy(self, episode: Episode) -> torch.Tensor:
        self.model.eval()
        with torch.no_grad():
            return torch.as_tensor(protonet_loss(self.model, episode.support, episode.query)[1])


Algorithm = MetaAlgorithm | ProtoNetAlgorithm

# The registry of few-shot algorithms: name -> class, built from the config and the model.
ALGORITHMS: dict[str, type[Algorithm]] = {**dict.fromkeys(META_ALGORITHMS, MetaAlgorithm),
                                          "protonet": ProtoNetAlgorithm}


def build_algorithm(cfg: FewShotConfig, model: nn.Module) -> Algorithm:
    """The configured algorithm, training ``model``."""
    return lookup(ALGORITHMS, cfg.algorithm, "few-shot algorithm")(cfg, model)
