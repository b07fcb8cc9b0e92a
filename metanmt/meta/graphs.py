"""Meta-steps replayed from CUDA graphs: one launch for the hundreds of small kernels of a step.

On a GPU, a meta-step of a small model (Conv-4 on 28x28 images, say) is bound by the CPU: Python, autograd
and one launch per kernel, not the arithmetic (benchmarks/meta_step_batched.md). A CUDA graph records the
kernels of one call, with static input buffers, and replays them for new inputs of the same shapes. This
needs calls that never read a value back from the device: :meth:`MetaLearner.add_meta_gradients` and
``MetaLearner.adapt(lazy=True)`` are written so. Shapes must repeat (fixed-size episodes): translation's
variable-length batches would record a graph per shape and gain nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_unflatten

from metanmt.errors import MetaNMTError
from metanmt.meta.episode import Episode
from metanmt.meta.learner import MetaLearner


@dataclass
class _Recording:
    graph: torch.cuda.CUDAGraph
    inputs: list[Any]  # the static buffers the graph reads (non-tensor leaves as they were)
    output: Any  # the tensors the graph writes


class CudaGraphed:
    """``fn(*args)`` recorded as a CUDA graph once per input signature (structure, shapes, dtypes), then
    replayed: the arguments are copied into the recording's buffers (from the CPU too) and its kernels run.

    ``fn`` must not read values back from the device or branch on them. Its outputs, and tensors it assigns
    elsewhere (``.grad``), live in the graph's memory: the next replay overwrites them, so copy what you keep.
    """

    def __init__(self, fn: Callable[..., Any], device: torch.device, warmup: int = 2) -> None:
        if device.type != "cuda":
            raise MetaNMTError(f"CUDA graphs need a CUDA device, not {device}")
        self.fn, self.device, self.warmup = fn, device, warmup
        self._recordings: dict[Any, _Recording] = {}

    def __call__(self, *args: Any) -> Any:
        leaves, spec = tree_flatten(args)
        key = (str(spec), *(_leaf_key(leaf) for leaf in leaves))
        recording = self._recordings.get(key) or self._record(key, leaves, spec)
        for static, leaf in zip(recording.inputs, leaves):
            if isinstance(static, torch.Tensor):
                static.copy_(leaf, non_blocking=True)
        recording.graph.replay()
        return recording.output

    def _record(self, key: Any, leaves: list[Any], spec: Any) -> _Recording:
        """Warm up on a side stream (lazy initialisation, kernel choices), then record one call."""
        inputs = [leaf.to(self.device, copy=True) if isinstance(leaf, torch.Tensor) else leaf
                  for leaf in leaves]
        args = tree_unflatten(inputs, spec)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self.fn(*args)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            output = self.fn(*args)
        self._recordings[key] = recording = _Recording(graph, inputs, output)
        return recording


def _leaf_key(leaf: Any) -> Any:
    if isinstance(leaf, torch.Tensor):
        return tuple(leaf.shape), leaf.dtype
    return type(leaf), leaf


class GraphedMetaStep:
    """``learner.meta_step(episodes, optimizer)`` with the meta-gradient replayed from a CUDA graph.

    One process, one GPU, episodes of repeating shapes. The optimizer steps eagerly after each replay (its
    fused / foreach kernels are few), and the losses stay on the device: nothing waits for the GPU, so the
    CPU draws the next episodes while it computes.
    """

    def __init__(self, learner: MetaLearner, optimizer: torch.optim.Optimizer) -> None:
        if learner._world_size() > 1:
            raise MetaNMTError("CUDA-graph meta-steps run in one process (the all-reduce is not recorded)")
        self.learner, self.optimizer = learner, optimizer
        self.params = [p for p in learner.parameters() if p.requires_grad]
        self._graphed = CudaGraphed(self._meta_gradient, learner._device())

    def __call__(self, episodes: Sequence[Episode]) -> torch.Tensor:
        """One outer update; returns ``[mean query loss, mean first support loss, non-finite inner losses]``
        as a device tensor (read it only when needed: reading waits for the GPU)."""
        sums, grads = self._graphed([(ep.support, ep.query) for ep in episodes])
        for p, grad in zip(self.params, grads):
            p.grad = grad  # the recording's gradient buffers (one set per episode signature)
        if self.learner.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.learner.config.grad_clip)
        self.optimizer.step()
        return torch.cat([sums[:2] / len(episodes), sums[2:]])  # a copy: the next replay overwrites sums

    def _meta_gradient(self, batches: list[tuple[Any, Any]]) -> tuple[torch.Tensor, list]:
        """The recorded call: the loss sums and the gradients it leaves (graph memory, rewritten)."""
        self.learner.zero_grad(set_to_none=True)
        episodes = [Episode(support, query, f"task {i}") for i, (support, query) in enumerate(batches)]
        sums = self.learner.add_meta_gradients(episodes, 1.0 / len(episodes))
        return sums, [p.grad for p in self.params]
