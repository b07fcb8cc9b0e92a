"""Running the tasks of a meta-batch together: per-task tensors along a new leading dimension.

Episodes whose batches have equal shapes are stacked (``[T, ...]``), every fast weight and buffer gets a
leading task dimension, and the loss runs under ``torch.func.vmap`` over ``functional_call``: one set of
kernels for T tasks instead of T small ones. Each task still sees only its own data (BatchNorm normalises
each task over its own batch), so the meta-gradient is the sequential one up to rounding.

A model may offer ``forward_tasks(params, buffers, *args, **kwargs)``: its forward for T parameter sets and
T inputs at once (every tensor with a leading task dimension), written with operations that batch better
than vmap's generic per-operator rules (grouped convolutions, say). Under vmap the model is then called
through it; the core knows nothing of what it does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

from metanmt.meta.episode import Episode

_PLAIN = (int, float, bool, str, type(None))  # non-tensor leaves that episodes may share


def batching_pays(device: torch.device) -> bool:
    """Whether ``batch_tasks="auto"`` runs tasks together on ``device``: on accelerators one kernel for all
    tasks beats many small launches; on CPU the per-task kernels are already compute bound and the batched
    ones measured slower (benchmarks/meta_step_batched.md)."""
    return device.type != "cpu"


@dataclass
class TaskGroup:
    """Episodes run together: batches stacked along a new leading dimension of ``size`` tasks, or a single
    episode as it is (``size`` None)."""

    support: Any
    query: Any
    size: int | None
    names: list[str]


def group_episodes(episodes: Sequence[Episode], batch: bool) -> list[TaskGroup]:
    """The episodes as task groups: with ``batch``, those whose batches share shapes are stacked."""
    if not batch:
        return [TaskGroup(ep.support, ep.query, None, [ep.task]) for ep in episodes]
    buckets: dict[Any, list[Episode]] = {}
    for i, ep in enumerate(episodes):
        key = _signature((ep.support, ep.query))
        buckets.setdefault(("alone", i) if key is None else key, []).append(ep)
    return [_stack(group) for group in buckets.values()]


def _stack(episodes: list[Episode]) -> TaskGroup:
    names = [ep.task for ep in episodes]
    if len(episodes) == 1:
        return TaskGroup(episodes[0].support, episodes[0].query, None, names)
    leaves = [tree_flatten((ep.support, ep.query))[0] for ep in episodes]
    spec = tree_flatten((episodes[0].support, episodes[0].query))[1]
    stacked = [torch.stack(column) if isinstance(column[0], torch.Tensor) else column[0]
               for column in zip(*leaves)]
    support, query = tree_unflatten(stacked, spec)
    return TaskGroup(support, query, len(episodes), names)


def _signature(batches: Any) -> Any:
    """What must be equal for batches to stack (structure, shapes, dtypes, other values); None: cannot."""
    leaves, spec = tree_flatten(batches)
    out: list[Any] = [str(spec)]
    for leaf in leaves:
        if isinstance(leaf, torch.Tensor):
            out.append((tuple(leaf.shape), leaf.dtype, leaf.device))
        elif isinstance(leaf, _PLAIN):
            out.append((type(leaf), leaf))
        else:
            return None
    return tuple(out)


def per_task(tensors: dict[str, torch.Tensor], tasks: int, copy: bool = False) -> dict[str, torch.Tensor]:
    """``tasks`` copies of each tensor along a new leading dimension: views of the original (gradients flow
    back as sums over tasks), or independent copies that can be written (``copy``: buffers)."""
    out = {n: t.expand(tasks, *t.shape) for n, t in tensors.items()}
    return {n: t.clone() for n, t in out.items()} if copy else out


def task_losses(model: nn.Module, loss_fn: Callable, base: dict[str, torch.Tensor],
                fast: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], batch: Any) -> torch.Tensor:
    """The ``[T]`` losses of T tasks: ``fast``, ``buffers`` and ``batch`` carry a leading task dimension,
    the other parameters in ``base`` are shared. Random operations are an error: the tasks would not draw
    what they draw one by one."""
    run = _runner(model)

    def one(fast_t, buffers_t, batch_t):
        params = {**base, **fast_t}
        return loss_fn(lambda *args, **kwargs: run(params, buffers_t, args, kwargs), batch_t)

    dims = tree_map(lambda leaf: 0 if isinstance(leaf, torch.Tensor) else None, batch)
    return vmap(one, in_dims=(0, 0, dims), randomness="error")(fast, buffers, batch)


def _runner(model: nn.Module) -> Callable:
    if callable(getattr(model, "forward_tasks", None)):
        def run(params, buffers, args, kwargs):
            leaves, spec = tree_flatten((params, buffers, args, kwargs))
            return _TaskForward.apply(model, spec, *leaves)
        return run
    return lambda params, buffers, args, kwargs: functional_call(model, (params, buffers), args, kwargs)


class _TaskForward(torch.autograd.Function):
    """The model under vmap, batched by its own ``forward_tasks`` instead of vmap's per-operator rules.

    Only the ``vmap`` rule runs: it calls ``forward_tasks`` on the plain stacked tensors, whose operations
    autograd records as usual (so MAML differentiates through them twice). Outside vmap ``forward``
    refuses, so no ``backward`` is needed.
    """

    @staticmethod
    def forward(model, spec, *leaves):
        raise RuntimeError("forward_tasks runs only under torch.func.vmap")

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def vmap(info, in_dims, model, spec, *leaves):
        def task_first(leaf, dim):
            if not isinstance(leaf, torch.Tensor):
                return leaf
            return leaf.expand(info.batch_size, *leaf.shape) if dim is None else leaf.movedim(dim, 0)

        stacked = [task_first(leaf, dim) for leaf, dim in zip(leaves, in_dims[2:])]
        params, buffers, args, kwargs = tree_unflatten(stacked, spec)
        out = model.forward_tasks(params, buffers, *args, **kwargs)
        return out, tree_map(lambda o: 0 if isinstance(o, torch.Tensor) else None, out)
