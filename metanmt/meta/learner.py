"""MAML, first-order MAML and Reptile around any ``nn.Module`` and loss, as one small learner.

Parameters are handled as a dict of tensors and the model is run with ``torch.func.functional_call``:
the inner loop never clones or patches the module. A loss function ``loss_fn(forward, batch)`` receives
``forward(*args, **kwargs)`` (the model run with the current fast parameters) and a batch, so the core
knows nothing of what a batch holds (token ids, images, ...).
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn
from torch.func import functional_call

from metanmt.errors import MetaNMTError
from metanmt.meta.batched import TaskGroup, batching_pays, group_episodes, per_task, task_losses
from metanmt.meta.episode import Episode, move_batch
from metanmt.meta.inner_optim import get_inner_update
from metanmt.meta.micro import BatchWeight, first_tensor, rows, split_batch
from metanmt.meta.params import check_names, select_fast_names, tensors_to_swap

LossFn = Callable[[Callable[..., Any], Any], torch.Tensor]
ALGORITHMS = ("maml", "fomaml", "reptile")
BN_EVAL = ("transductive", "support")


@dataclass
class MetaConfig:
    """Hyper-parameters of the episodic learner.

    ``algorithm``: "maml" (exact second order), "fomaml" (first order) or "reptile".
    ``inner_steps`` / ``eval_inner_steps``: adaptation steps while meta-training / in
    :meth:`MetaLearner.adapt` (None: same as training). ``learn_inner_lr``: one learned step size per fast
    tensor and per step (Meta-SGD/MAML++ style). ``fast_params``: glob patterns of the parameters adapted in
    the inner loop; the others stay fixed there (they still receive meta-gradients). ``multi_step_loss``:
    average the query loss after every inner step instead of using the last one (MAML++). ``bn_eval``:
    BatchNorm statistics used when predicting with adapted parameters: "transductive" (statistics of the
    batch being predicted, as in the MAML paper) or "support" (statistics of the support set, so each query
    is predicted on its own). ``batch_tasks``: run the episodes of a meta-batch that share shapes together,
    per-task fast weights along a leading dimension under ``torch.func.vmap`` (the same meta-gradient up to
    rounding): True, False, or "auto": together on accelerators, one by one on CPU (faster there, see
    :func:`~metanmt.meta.batched.batching_pays`) and for models vmap cannot run (a warning says why).
    ``recompute`` (MAML): keep one inner step's second-order graph alive at a time instead of the whole inner
    loop's beside the query pass: the inner loop first runs without a graph, the query gradient is taken at
    its end, then each step is recomputed (same dropout masks) and differentiated backwards, last to first.
    The same meta-gradient up to rounding, for one more support pass per step (benchmarks/meta_step_large.md).
    ``micro_batches``: cut each support and query batch into this many pieces (:mod:`metanmt.meta.micro`),
    so that one piece's activations, and with ``recompute`` one piece's second-order graph, are alive at a
    time: the same meta-gradient up to rounding, for a loss that averages over the learner's
    ``batch_weight``. FOMAML, Reptile, MAML with ``recompute`` and :meth:`MetaLearner.adapt`; tasks one
    by one; not for models with BatchNorm, whose statistics would be those of a piece. ``keep_pieces``
    (``recompute`` with micro-batches): the last this many support pieces of each inner step are
    differentiated with their graph in the inner loop and kept for the backward sweep instead of being
    recomputed there: one piece's support pass saved per kept piece, one piece's graph more held.
    """

    algorithm: Literal["maml", "fomaml", "reptile"] = "fomaml"
    inner_steps: int = 1
    eval_inner_steps: int | None = None
    inner_lr: float = 0.01
    learn_inner_lr: bool = False
    inner_optimizer: Literal["sgd", "adam"] = "sgd"
    adam_betas: tuple[float, float] = (0.9, 0.999)
    fast_params: tuple[str, ...] = ("*",)
    grad_clip: float | None = None
    multi_step_loss: bool = False
    bn_eval: Literal["transductive", "support"] = "transductive"
    batch_tasks: Literal["auto"] | bool = "auto"
    recompute: bool = False
    micro_batches: int = 1
    keep_pieces: int = 0

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise MetaNMTError(f"unknown algorithm {self.algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
        if self.inner_steps < 0 or (self.eval_inner_steps is not None and self.eval_inner_steps < 0):
            raise MetaNMTError("inner steps must be >= 0")
        if self.algorithm == "reptile" and (self.learn_inner_lr or self.multi_step_loss):
            raise MetaNMTError("reptile supports neither learn_inner_lr nor multi_step_loss")
        if self.bn_eval not in BN_EVAL:
            raise MetaNMTError(f"bn_eval must be one of {', '.join(BN_EVAL)}, not {self.bn_eval!r}")
        if self.batch_tasks not in ("auto", True, False):
            raise MetaNMTError(f"batch_tasks must be 'auto', True or False, not {self.batch_tasks!r}")
        if self.recompute and (self.algorithm != "maml" or self.multi_step_loss):
            raise MetaNMTError("recompute saves memory for second-order MAML with the last query loss only, "
                               f"not for algorithm={self.algorithm!r} and multi_step_loss="
                               f"{self.multi_step_loss}")
        self._check_micro_batches()
        patterns = self.fast_params
        self.fast_params = tuple([patterns] if isinstance(patterns, str) else patterns)

    def _check_micro_batches(self) -> None:
        if self.micro_batches < 1:
            raise MetaNMTError(f"micro_batches must be >= 1, not {self.micro_batches}")
        if not 0 <= self.keep_pieces <= self.micro_batches or (self.keep_pieces and self.micro_batches == 1):
            raise MetaNMTError(f"keep_pieces ({self.keep_pieces}) keeps some of the support pieces of "
                               f"micro_batches ({self.micro_batches} > 1) for the backward sweep")
        if self.keep_pieces and not self.recompute:
            raise MetaNMTError("keep_pieces applies to MAML's recompute sweep: set recompute=True")
        if self.micro_batches == 1:
            return
        if (self.algorithm == "maml" and not self.recompute) or self.multi_step_loss:
            raise MetaNMTError("micro_batches needs a gradient taken piece by piece: second-order MAML only "
                               "with recompute=True, and no multi_step_loss")
        if self.batch_tasks is True:
            raise MetaNMTError("micro_batches runs tasks one by one: batch_tasks must be 'auto' or False")

    @property
    def test_steps(self) -> int:
        return self.inner_steps if self.eval_inner_steps is None else self.eval_inner_steps


@dataclass
class MetaStepResult:
    loss: float  # mean post-adaptation query loss over this step's tasks (all processes)
    support_loss: float  # mean pre-adaptation support loss
    tasks: int  # number of tasks in the meta-batch (all processes)
    grad_norm: float | None = None


@dataclass
class Adapted:
    """A model's adapted parameters, callable like the model itself (``adapted(x)``)."""

    learner: MetaLearner
    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    support_losses: list[float] | torch.Tensor = field(default_factory=list)  # a tensor when adapted lazily

    def __call__(self, *args, **kwargs):
        learner = self.learner
        transductive = learner.config.bn_eval == "transductive"
        buffers = {k: v.clone() for k, v in self.buffers.items()} if transductive else self.buffers
        with _batchnorm_mode(learner.model, train=transductive), learner._autocast():
            return learner._call(self.params, buffers, args, kwargs)

    def to_module(self) -> nn.Module:
        """A stand-alone copy of the model holding the adapted weights (e.g. for ``generate``)."""
        module = copy.deepcopy(self.learner.model)
        state = {k: v.detach() for k, v in {**self.params, **self.buffers}.items()}
        module.load_state_dict(state, strict=False)
        return module


@dataclass
class StepPoint:
    """Where an inner step started: fast weights, optimizer state (detached copies) and the random state
    its support pass drew dropout masks from, so that :meth:`MetaLearner._step_vjp` can redo it exactly."""

    fast: dict[str, torch.Tensor]
    state: dict[str, list[torch.Tensor | None]]
    cpu_rng: torch.Tensor
    device_rng: torch.Tensor | None
    device: torch.device
    grads: list[torch.Tensor | None] | None = None  # the step's support gradient, kept when micro-batched
    origin: list[torch.Tensor] = field(default_factory=list)  # the inner loop's own fast-weight leaves
    kept: list[list[torch.Tensor | None]] = field(default_factory=list)  # kept pieces' gradients, with graph

    @classmethod
    def capture(cls, fast: dict[str, torch.Tensor], state: dict, device: torch.device) -> StepPoint:
        copies = {k: [None if t is None else t.detach().clone() for t in ts] for k, ts in state.items()}
        device_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        detached = {n: t.detach() for n, t in fast.items()}
        return cls(detached, copies, torch.get_rng_state(), device_rng, device, origin=list(fast.values()))

    def leaves(self) -> tuple[dict[str, torch.Tensor], dict[str, list[torch.Tensor | None]]]:
        """Fresh leaf tensors (requiring grad) of the fast weights and the optimizer state."""
        fast = {n: t.detach().requires_grad_() for n, t in self.fast.items()}
        return fast, {k: [None if t is None else t.detach().requires_grad_() for t in ts]
                      for k, ts in self.state.items()}

    @contextlib.contextmanager
    def rng(self) -> Iterator[None]:
        """Run with the random state of the original pass; the caller's state is restored afterwards."""
        devices = [self.device] if self.device_rng is not None else []
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(self.cpu_rng)
            if self.device_rng is not None:
                torch.cuda.set_rng_state(self.device_rng, self.device)
            yield


class MetaLearner(nn.Module):
    """Meta-trains ``model`` with MAML / FOMAML / Reptile.

    >>> learner = MetaLearner(model, loss_fn, MetaConfig(algorithm="maml", inner_lr=0.4))
    >>> opt = torch.optim.Adam(learner.parameters(), lr=1e-3)
    >>> learner.meta_step(episodes, opt)          # one outer update from a meta-batch of episodes
    >>> adapted = learner.adapt(support_batch)    # same inner loop, at test time
    >>> predictions = adapted(query_inputs)

    With an ``accelerate.Accelerator``, each process passes its own share of the meta-batch and the
    meta-gradients are summed across processes (one all-reduce) before the outer step. ``batch_weight(batch)``
    is what ``loss_fn`` averages over (rows by default; target tokens for translation): micro-batches are
    weighted by it.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, config: MetaConfig | None = None,
                 accelerator: Any | None = None, batch_weight: BatchWeight = rows) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn
        self.config = config or MetaConfig()
        self.accelerator = accelerator
        self.batch_weight = batch_weight  # what loss_fn averages over (micro-batches): rows, target tokens...
        bns = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if self.config.micro_batches > 1 and bns:
            raise MetaNMTError(f"micro_batches would normalise each piece with its own statistics in "
                               f"BatchNorm layers ({', '.join(bns)}); use micro_batches=1")
        self.fast_names = select_fast_names(model.named_parameters(), self.config.fast_params)
        no_stats = [n for n, m in model.named_modules()
                    if isinstance(m, nn.modules.batchnorm._BatchNorm) and not m.track_running_stats]
        if self.config.bn_eval == "support" and no_stats:
            raise MetaNMTError(f"bn_eval='support' needs BatchNorm layers with running statistics; "
                               f"{', '.join(no_stats)} have track_running_stats=False")
        self._update = get_inner_update(self.config.inner_optimizer, self.config.adam_betas)
        rows = max(self.config.inner_steps, self.config.test_steps, 1)
        if self.config.learn_inner_lr:
            like = dict(model.named_parameters())[self.fast_names[0]]
            self.inner_lrs = nn.Parameter(torch.full((rows, len(self.fast_names)),
                                                     float(self.config.inner_lr),
                                                     dtype=like.dtype, device=like.device))
        else:
            self.inner_lrs = None
        self._batchable: bool | None = None  # whether the model ran under vmap (None: not tried yet)

    # ------------------------------------------------------------------ public API
    def meta_step(self, episodes: Sequence[Episode], optimizer: torch.optim.Optimizer | None = None
                  ) -> MetaStepResult:
        """Compute the meta-gradient of ``episodes`` into ``.grad`` and, if given, take an optimizer step."""
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
        else:
            self.zero_grad(set_to_none=True)
        result = self.accumulate_meta_gradients(episodes)
        if self.config.grad_clip is not None:
            result.grad_norm = float(torch.nn.utils.clip_grad_norm_(self.parameters(), self.config.grad_clip))
        if optimizer is not None:
            optimizer.step()
        return result

    def accumulate_meta_gradients(self, episodes: Sequence[Episode]) -> MetaStepResult:
        """Add the mean (over all processes' tasks) meta-gradient of ``episodes`` to the ``.grad``s."""
        count = torch.tensor([float(len(episodes))], dtype=torch.float64)
        total_tasks = int(self._all_reduce(count)[0].item())
        if total_tasks == 0:
            raise MetaNMTError("meta_step got no episodes")
        sums = self.add_meta_gradients(episodes, 1.0 / total_tasks)
        query, support, bad = self._all_reduce(sums.detach().to("cpu", torch.float64)).tolist()
        if bad:
            raise MetaNMTError(f"the inner-loop support loss is not finite ({int(bad)} inner step(s) of this "
                               f"meta-batch); lower the inner learning rate")
        return MetaStepResult(loss=query / total_tasks, support_loss=support / total_tasks, tasks=total_tasks)

    def add_meta_gradients(self, episodes: Sequence[Episode], scale: float) -> torch.Tensor:
        """Add ``scale`` times the meta-gradient of ``episodes`` to the ``.grad``s (summed over processes) and
        return this process's ``[query loss sum, first support loss sum, non-finite inner losses]``.

        Nothing here waits for the device (no loss is read back), so on one GPU the whole call can be
        recorded once as a CUDA graph and replayed (:class:`~metanmt.meta.graphs.GraphedMetaStep`)."""
        params = self._trainable()
        before = [p.grad for p in params]
        for p in params:
            p.grad = None
        sums = self._backward_episodes(episodes, scale)
        self._all_reduce_grads(params)
        for p, old in zip(params, before):
            if old is not None:
                p.grad = old if p.grad is None else p.grad + old
        return sums

    def adapt(self, support: Any, steps: int | None = None, lazy: bool = False) -> Adapted:
        """Adapt to a task's support batch with the inner loop (no meta-gradient graph). ``lazy``: leave the
        support losses on the device (a tensor) unchecked, so that nothing waits for it (CUDA graphs)."""
        steps = self.config.test_steps if steps is None else steps
        support = self._to_device(support)
        with torch.enable_grad():
            fast, buffers, losses, _ = self._inner_loop(support, steps, create_graph=False, detach=True)
        params = {**self._base_params(), **{k: v.detach() for k, v in fast.items()}}
        if self.config.bn_eval == "support":
            buffers = self._support_statistics(params, buffers, support)
        if lazy:
            return Adapted(self, params, buffers, losses)
        values = losses.tolist()
        for step, loss in enumerate(values):
            if not math.isfinite(loss):
                raise MetaNMTError(f"inner-loop loss is {loss} at step {step}")
        return Adapted(self, params, buffers, values)

    def functional(self, params: dict[str, torch.Tensor]) -> Callable[..., Any]:
        """``forward(*args, **kwargs)`` running the model with ``params`` (names checked against it)."""
        check_names(params, dict(self.model.named_parameters()))
        merged = {**self._base_params(), **params}
        buffers = dict(self.model.named_buffers())
        return lambda *args, **kwargs: self._call(merged, buffers, args, kwargs)

    # ------------------------------------------------------------------ the episodes
    def _backward_episodes(self, episodes: Sequence[Episode], scale: float) -> torch.Tensor:
        """Backpropagate each episode's meta-loss times ``scale``; return the sums of the query and of the
        first support losses and the count of non-finite inner losses (a tensor). Tasks run together where
        ``batch_tasks`` allows; "auto" falls back to one by one, for good, if the model fails under vmap."""
        for ep in episodes:
            _check_not_empty(ep.support, "support", ep.task)
            if self.config.algorithm != "reptile":  # Reptile's update needs no query set (only monitored)
                _check_not_empty(ep.query, "query", ep.task)
        if self._batching():
            try:
                return self._backward_groups(group_episodes(episodes, batch=True), scale)
            except MetaNMTError:
                raise
            except Exception as err:
                if self._batchable:
                    raise
                self._cannot_batch(err)
        return self._backward_groups(group_episodes(episodes, batch=False), scale)

    def _backward_groups(self, groups: list[TaskGroup], scale: float) -> torch.Tensor:
        sums = []
        for group in groups:
            query, inner = self._group_meta_loss(group, scale)
            dtype = torch.promote_types(query.dtype, torch.float32)  # no half-precision sums
            query = query.to(dtype)
            support = inner[0].to(dtype) if len(inner) else query
            sums.append(torch.stack([query, support, (~inner.isfinite()).sum().to(dtype)]))
            if group.size is not None:
                self._batchable = True
        return torch.stack(sums).sum(0)

    def _batching(self) -> bool:
        mode = self.config.batch_tasks
        if self.config.micro_batches > 1:
            return False
        if mode == "auto":
            return self._batchable is not False and batching_pays(next(self.model.parameters()).device)
        return bool(mode)

    def _cannot_batch(self, err: Exception) -> None:
        """A model that vmap cannot run: an error if batching was asked for, else one warning and one by one
        from now on (the failed attempt's gradients are dropped)."""
        why = f"{type(err).__name__}: {err}"
        if self.config.batch_tasks is True:
            raise MetaNMTError(f"batch_tasks=True, but this model cannot run its tasks together under "
                               f"torch.func.vmap ({why}); use batch_tasks='auto' or False") from err
        warnings.warn(f"running the tasks of each meta-batch one by one: the model fails under "
                      f"torch.func.vmap ({why})", stacklevel=4)
        self._batchable = False
        for p in self._trainable():
            p.grad = None

    def _group_meta_loss(self, group: TaskGroup, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Backpropagate the meta-loss of one episode or one stacked group; return the query loss and the
        support loss of each inner step (sums over stacked tasks, detached)."""
        cfg, tasks = self.config, group.size
        support, query = self._to_device(group.support), self._to_device(group.query)
        if cfg.algorithm == "reptile":
            return self._reptile_meta_loss(support, query, tasks, scale)
        if cfg.recompute:
            return self._recomputed_meta_loss(support, query, tasks, scale)
        if cfg.algorithm == "fomaml" and not cfg.multi_step_loss:
            return self._first_order_meta_loss(support, query, tasks, scale)
        second_order = cfg.algorithm == "maml"
        collect = (lambda f, b: self._losses(f, b, query, tasks)) if cfg.multi_step_loss else None
        with _attention_for_double_backward(second_order):
            fast, buffers, losses, step_losses = self._inner_loop(
                support, cfg.inner_steps, create_graph=second_order, detach=False, query_loss=collect,
                tasks=tasks)
            with _batchnorm_mode(self.model, train=True):
                q_loss = self._losses(fast, buffers, query, tasks)
            meta_loss = torch.stack([*step_losses, q_loss]).mean(0) if collect else q_loss
            (meta_loss.sum() * scale).backward()
        return q_loss.detach().sum(), losses

    def _first_order_meta_loss(self, support: Any, query: Any, tasks: int | None, scale: float
                               ) -> tuple[torch.Tensor, torch.Tensor]:
        """FOMAML's meta-gradient into ``.grad``: the query gradient at the adapted weights, passed to the
        initial ones through the identity path of :meth:`_inner_loop`."""
        fast, buffers, losses, _ = self._inner_loop(support, self.config.inner_steps, create_graph=False,
                                                    detach=False, tasks=tasks)
        return self._query_backward(fast, buffers, query, tasks, scale), losses

    def _query_backward(self, fast: dict[str, torch.Tensor], buffers: dict[str, Any], query: Any,
                        tasks: int | None, scale: float) -> torch.Tensor:
        """Backpropagate ``scale`` times the query loss at ``fast``, piece by piece; return the loss (summed
        over stacked tasks)."""
        pieces, total = self._pieces(query), 0.0
        with _batchnorm_mode(self.model, train=True):
            for i, (piece, weight) in enumerate(pieces):
                loss = self._weighted(self._losses(fast, buffers, piece, tasks).sum(), weight)
                (loss * scale).backward(retain_graph=i < len(pieces) - 1)  # the path to theta, shared
                total = total + loss.detach()
        return total

    def _reptile_meta_loss(self, support: Any, query: Any, tasks: int | None, scale: float
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reptile's meta-gradient, theta - phi (summed over stacked tasks), into ``.grad``."""
        fast, buffers, losses, _ = self._inner_loop(support, self.config.inner_steps, create_graph=False,
                                                    detach=True, tasks=tasks)
        base = self._base_params()
        for name, phi in fast.items():
            theta = base[name]
            diff = theta.detach() - phi
            g = (diff if tasks is None else diff.sum(0)) * scale
            theta.grad = g if theta.grad is None else theta.grad + g
        if query is None:
            q_loss = torch.tensor(float("nan"), device=self._device())
        else:
            with torch.no_grad(), _batchnorm_mode(self.model, train=True):
                q_loss = self._losses(fast, buffers, query, tasks).sum()
        return q_loss, losses

    def _recomputed_meta_loss(self, support: Any, query: Any, tasks: int | None, scale: float
                              ) -> tuple[torch.Tensor, torch.Tensor]:
        """MAML's meta-gradient into ``.grad`` with one inner step's graph alive at a time (``recompute``):
        the query gradient at the adapted weights, then vector-Jacobian products back through each step."""
        trace: list[StepPoint] = []
        with _attention_for_double_backward(self.config.keep_pieces > 0):  # kept pieces: graphs made here
            fast, buffers, losses, _ = self._inner_loop(support, self.config.inner_steps, create_graph=False,
                                                        detach=True, tasks=tasks, trace=trace)
        # the weights outside the inner loop get their query gradient here
        q_total = self._query_backward(fast, buffers, query, tasks, scale)
        cotangent = [t.grad for t in fast.values()], {}
        with _attention_for_double_backward(True):
            for step in reversed(range(len(trace))):
                cotangent = self._step_vjp(trace[step], step, cotangent, buffers, support, tasks)
        initial = self._initial_state(tasks)[0].values()  # the model's own weights (stacked per task)
        _backward_pairs([(t, g) for t, g in zip(initial, cotangent[0]) if g is not None])
        return q_total, losses

    def _step_vjp(self, point: StepPoint, step: int, cotangent: tuple[list, dict], buffers: dict[str, Any],
                  support: Any, tasks: int | None) -> tuple[list, dict]:
        """Recompute inner step ``step`` from where it started, with its graph, and pull the cotangent of its
        outputs (fast weights, optimizer state) back to its inputs; the weights outside the inner loop and the
        learned step sizes collect their share in ``.grad`` on the way."""
        fast, state = point.leaves()
        if point.grads is None:  # the support gradient again, with its graph
            with point.rng(), _batchnorm_mode(self.model, train=True):
                loss = self._losses(fast, buffers, support, tasks).sum()
            grads = torch.autograd.grad(loss, list(fast.values()), create_graph=True, allow_unused=True)
        else:  # micro-batched: the recorded gradient as a leaf, its cotangent taken to the weights below
            grads = [None if g is None else g.detach().requires_grad_() for g in point.grads]
        new_state = {k: list(v) for k, v in state.items()}
        new = self._update(list(fast.values()), grads, self._lrs(step), new_state, step)
        pairs = [*zip(new, cotangent[0]), *((t, cotangent[1].get(k, [None] * len(ts))[i])
                                            for k, ts in new_state.items() for i, t in enumerate(ts))]
        _backward_pairs([(out, g) for out, g in pairs if out is not None and g is not None])
        if point.grads is not None:
            self._hessian_products(point, fast, [None if g is None else g.grad for g in grads], buffers,
                                   support, tasks)
        return ([_sum_grads(t.grad, o.grad) for t, o in zip(fast.values(), point.origin)],
                {k: [None if t is None else t.grad for t in ts] for k, ts in state.items()})

    def _hessian_products(self, point: StepPoint, fast: dict[str, torch.Tensor],
                          cotangent: list[torch.Tensor | None], buffers: dict[str, Any], support: Any,
                          tasks: int | None) -> None:
        """The cotangent of a step's support gradient pulled back to the weights, one support piece at a
        time (the same dropout masks): each piece's Hessian-vector product into the fast weights' ``.grad``,
        its mixed second derivatives into those of the weights outside the inner loop. The pieces kept from
        the inner loop (the last ones, so that the others redraw their masks in order) use their own graph,
        whose products land in the inner loop's leaves (``point.origin``)."""
        pieces = self._pieces(support)
        with point.rng(), _batchnorm_mode(self.model, train=True):
            for piece, weight in pieces[:len(pieces) - len(point.kept)]:
                loss = self._weighted(self._losses(fast, buffers, piece, tasks).sum(), weight)
                grads = torch.autograd.grad(loss, list(fast.values()), create_graph=True, allow_unused=True)
                _backward_pairs([(g, v) for g, v in zip(grads, cotangent) if g is not None and v is not None])
        for grads in point.kept:
            _backward_pairs([(g, v) for g, v in zip(grads, cotangent) if g is not None and v is not None])
        point.kept.clear()

    def _inner_loop(self, support: Any, steps: int, create_graph: bool, detach: bool,
                    query_loss: Callable | None = None, tasks: int | None = None,
                    trace: list[StepPoint] | None = None):
        """Run ``steps`` inner updates; return (fast params, buffers, support losses (a ``[steps]`` tensor,
        detached), query losses).

        ``detach``: start from detached copies (Reptile, test-time adaptation): no graph back to the
        initial parameters. Otherwise FOMAML keeps the identity path phi = theta - lr * g.detach(), so the
        query gradient reaches theta (and the learned step sizes), while MAML keeps the full graph.
        With ``query_loss(fast, buffers)`` (multi-step loss) the query losses after each step but the last
        are returned too. ``tasks``: the batches are stacked tasks; fast weights and buffers get a leading
        task dimension and the losses are per task (their sums are returned). ``trace`` collects where each
        step started (:class:`StepPoint`), for :meth:`_recomputed_meta_loss`.
        """
        fast, buffers = self._initial_state(tasks)
        if detach:
            fast = {n: t.detach().requires_grad_() for n, t in fast.items()}
        state: dict = {}
        losses: list[torch.Tensor] = []
        step_losses: list[torch.Tensor] = []
        with _batchnorm_mode(self.model, train=True):
            for step in range(steps):
                if trace is not None:
                    trace.append(StepPoint.capture(fast, state, self._device()))
                kept = trace[-1].kept if trace is not None and self.config.keep_pieces else None
                loss, grads = self._support_gradient(fast, buffers, support, tasks, create_graph, kept)
                losses.append(loss)
                if trace is not None and self.config.micro_batches > 1:
                    trace[-1].grads = grads
                new = self._update(list(fast.values()), grads, self._lrs(step), state, step)
                if detach:
                    new = [t.detach().requires_grad_() for t in new]
                fast = dict(zip(fast.keys(), new))
                if query_loss is not None and step < steps - 1:
                    step_losses.append(query_loss(fast, buffers))
        stacked = torch.stack(losses) if losses else torch.zeros(0, device=self._device())
        return fast, buffers, stacked, step_losses

    def _support_gradient(self, fast: dict[str, torch.Tensor], buffers: dict[str, Any], support: Any,
                          tasks: int | None, create_graph: bool, kept: list | None = None
                          ) -> tuple[torch.Tensor, list]:
        """The support loss (detached; summed over stacked tasks) and its gradient in the fast weights, with
        its graph (``create_graph``) or detached and summed piece by piece (micro-batches). With ``kept``, the
        last ``keep_pieces`` pieces' gradients are also appended to it with their graph."""
        pieces = self._pieces(support)
        first_kept = len(pieces) - self.config.keep_pieces if kept is not None else len(pieces)
        total, grads = 0.0, [None] * len(fast)
        for i, (piece, weight) in enumerate(pieces):
            loss = self._weighted(self._losses(fast, buffers, piece, tasks).sum(), weight)
            graph = create_graph or i >= first_kept
            part = torch.autograd.grad(loss, list(fast.values()), create_graph=graph, allow_unused=True)
            if i >= first_kept:
                kept.append(part)
            if not create_graph:
                part = [None if g is None else g.detach() for g in part]
            grads = [_sum_grads(a, b) for a, b in zip(grads, part)]
            total = total + loss.detach()
        return total, grads

    def _pieces(self, batch: Any) -> list[tuple[Any, float]]:
        """``batch`` as (piece, weight) micro-batches (itself, weight 1, without ``micro_batches``)."""
        if self.config.micro_batches == 1:
            return [(batch, 1.0)]
        return split_batch(batch, self.config.micro_batches, self.batch_weight)

    @staticmethod
    def _weighted(loss: torch.Tensor, weight: float) -> torch.Tensor:
        return loss if weight == 1.0 else loss * weight

    def _initial_state(self, tasks: int | None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The fast parameters (the model's own) and copies of the buffers (running stats never polluted),
        each with a leading dimension of ``tasks`` if given."""
        base = self._base_params()
        fast = {n: base[n] for n in self.fast_names}
        buffers = dict(self.model.named_buffers())
        if tasks is None:
            return fast, {n: b.clone() for n, b in buffers.items()}
        return per_task(fast, tasks), per_task(buffers, tasks, copy=True)

    def _losses(self, fast: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], batch: Any,
                tasks: int | None) -> torch.Tensor:
        """The loss of one task's ``batch``, or the ``[tasks]`` losses of stacked tasks."""
        with self._autocast():
            if tasks is None:
                return self.loss_fn(self._forward(fast, buffers), batch)
            return task_losses(self.model, self.loss_fn, self._base_params(), fast, buffers, batch)

    # ------------------------------------------------------------------ helpers
    def _lrs(self, step: int) -> list[torch.Tensor | float]:
        if self.inner_lrs is None:
            return [self.config.inner_lr] * len(self.fast_names)
        return list(self.inner_lrs[step].unbind())

    def _base_params(self) -> dict[str, torch.Tensor]:
        return dict(self.model.named_parameters())

    def _trainable(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def _forward(self, fast: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor]) -> Callable[..., Any]:
        return lambda *args, **kwargs: self._call(fast, buffers, args, kwargs)

    def _call(self, params, buffers, args, kwargs):
        """The model run with ``params`` and ``buffers`` (the module's own where a name is missing)."""
        swap = tensors_to_swap(self.model, params, buffers)
        return functional_call(self.model, swap, args, kwargs, tie_weights=False)

    def _support_statistics(self, params, buffers, support) -> dict[str, torch.Tensor]:
        """BatchNorm running statistics recomputed exactly from the support set (non-transductive eval)."""
        buffers = {k: v.clone() for k, v in buffers.items()}
        bns = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        saved = [m.momentum for m in bns]
        for name, module in self.model.named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
                buffers[f"{name}.running_mean".lstrip(".")].zero_()
                buffers[f"{name}.running_var".lstrip(".")].fill_(1.0)
                buffers[f"{name}.num_batches_tracked".lstrip(".")].zero_()
        try:
            for m in bns:
                m.momentum = None  # cumulative average: one pass gives the support set's exact statistics
            with torch.no_grad(), _batchnorm_mode(self.model, train=True), self._autocast():
                self.loss_fn(self._forward(params, buffers), support)
        finally:
            for m, mom in zip(bns, saved):
                m.momentum = mom
        return buffers

    def _autocast(self):
        return self.accelerator.autocast() if self.accelerator is not None else contextlib.nullcontext()

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _to_device(self, batch: Any) -> Any:
        return move_batch(batch, self._device())

    def _world_size(self) -> int:
        return 1 if self.accelerator is None else self.accelerator.num_processes

    def _all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        if self._world_size() == 1:
            return tensor
        return self.accelerator.reduce(tensor.to(self.accelerator.device), reduction="sum").cpu()

    def _all_reduce_grads(self, params: list[nn.Parameter]) -> None:
        """Sum the meta-gradients of all processes with one flat all-reduce (DDP hooks do not see
        ``autograd.grad``/``create_graph`` graphs, so the reduction is explicit)."""
        if self._world_size() == 1:
            return
        for dtype in {p.dtype for p in params}:
            group = [p for p in params if p.dtype == dtype]
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in group]
            flat = torch.cat([g.reshape(-1) for g in grads])
            flat = self.accelerator.reduce(flat, reduction="sum")
            for p, g in zip(group, flat.split([p.numel() for p in group])):
                p.grad = g.view_as(p).clone()


def _sum_grads(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    return b if a is None else a if b is None else a + b


def _backward_pairs(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Backpropagate each (output, its cotangent) pair into the ``.grad`` of the leaves (none: nothing)."""
    if pairs:
        torch.autograd.backward([out for out, _ in pairs], [g for _, g in pairs])


def _check_not_empty(batch: Any, what: str, task: str) -> None:
    t = first_tensor(batch)
    if batch is None or (t is not None and (t.dim() == 0 or t.shape[0] == 0)):
        raise MetaNMTError(f"empty {what} set in episode of task {task!r}")


@contextlib.contextmanager
def _batchnorm_mode(model: nn.Module, train: bool) -> Iterator[None]:
    """Temporarily put BatchNorm layers in train (batch statistics) or eval (running statistics) mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.training for m in bns]
    for m in bns:
        m.training = train
    try:
        yield
    finally:
        for m, mode in zip(bns, saved):
            m.training = mode


@contextlib.contextmanager
def _attention_for_double_backward(enabled: bool) -> Iterator[None]:
    """Second-order MAML differentiates through gradients; fused SDPA kernels have no double backward
    (on CPU), the math kernel does. Models without SDPA are unaffected."""
    if not enabled:
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        yield
