"""Cross-entropy over a large vocabulary without materialising the logits, twice differentiable.

Second-order MAML keeps the support pass and the graph of its gradient alive until the query's gradient has
flowed back through them. With HF's loss that graph holds several [tokens, vocabulary] tensors (logits,
log-probabilities, their gradients): 1 GB each for 2,000 tokens over M2M-100's 128K pieces, most of a
meta-step's memory (benchmarks/meta_step_large.md). Here the output projection and the cross-entropy are one
operation computed over chunks of rows: the forward keeps only the decoder states, the gradient and the
gradient's own derivative (what MAML's outer loop differentiates) recompute one chunk of logits at a time.
Fused linear-cross-entropy kernels exist for GPUs (Liger-Kernel, Apple's cut-cross-entropy), but none has a
double backward or runs on a CPU, so the two functions below are written out.

:class:`ChunkedSeq2SeqLoss` computes a HF encoder-decoder's loss this way: a forward hook on the model's base
(encoder + decoder, before the output projection) takes the decoder states and stops the forward there, so
it works through ``functional_call`` (fast weights), peft adapters and every family whose head is a linear map
of the decoder states (Marian, mBART, M2M-100, NLLB); not T5, which rescales the states before its head.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from metanmt.errors import MetaNMTError

IGNORE_INDEX = nn.CrossEntropyLoss().ignore_index  # -100: the padding of HF labels, as F.cross_entropy skips
CHUNK_ELEMENTS = 1 << 24  # logits per chunk (64 MB in float32): 128 rows of a 128K vocabulary


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                         labels: torch.Tensor, chunk_rows: int | None = None) -> torch.Tensor:
    """Mean cross-entropy of ``hidden @ weight.T + bias`` against ``labels`` (``-100`` ignored), as
    ``F.cross_entropy`` computes it, with at most ``chunk_rows`` rows of logits alive at a time."""
    hidden, labels = hidden.reshape(-1, hidden.shape[-1]), labels.reshape(-1)
    rows = chunk_rows or max(1, CHUNK_ELEMENTS // weight.shape[0])
    total = _LinearCrossEntropy.apply(hidden, weight, bias, labels, rows)
    return total / (labels != IGNORE_INDEX).sum().clamp(min=1)


def _chunk(hidden, weight, bias, labels, start, rows):
    """One chunk's rows: (logits in float32 or wider, labels clamped to valid ids, mask of counted rows)."""
    h, y = hidden[start:start + rows], labels[start:start + rows]
    logits = (h @ weight.T).to(_acc(h))
    if bias is not None:
        logits = logits + bias.reshape(-1).to(logits.dtype)
    mask = (y != IGNORE_INDEX).unsqueeze(1)
    return logits, y.clamp(min=0).unsqueeze(1), mask


def _acc(t: torch.Tensor) -> torch.dtype:
    """The dtype sums are taken in: float32, or float64 for float64 inputs (the numerical tests)."""
    return torch.promote_types(t.dtype, torch.float32)


def _residual(logits, y, mask):
    """``mask * (softmax(logits) - onehot(y))``: the gradient of the summed loss w.r.t. the logits."""
    probs = torch.softmax(logits, dim=1)
    return (probs - torch.zeros_like(probs).scatter_(1, y, 1.0)) * mask, probs


class _LinearCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy; its backward is :class:`_LinearCrossEntropyGrad`, itself differentiable."""

    @staticmethod
    def forward(hidden, weight, bias, labels, rows):
        total = hidden.new_zeros((), dtype=_acc(hidden))
        for start in range(0, hidden.shape[0], rows):
            logits, y, mask = _chunk(hidden, weight, bias, labels, start, rows)
            nll = torch.logsumexp(logits, dim=1, keepdim=True) - logits.gather(1, y)
            total = total + (nll * mask).sum()
        return total

    @staticmethod
    def setup_context(ctx, inputs, output):
        hidden, weight, bias, labels, rows = inputs
        ctx.save_for_backward(hidden, weight, bias, labels)
        ctx.rows = rows

    @staticmethod
    def backward(ctx, grad_total):
        hidden, weight, bias, labels = ctx.saved_tensors
        needs = ctx.needs_input_grad[:3]
        grads = _LinearCrossEntropyGrad.apply(hidden, weight, bias, labels, grad_total, ctx.rows, needs)
        return (*grads, None, None)


class _LinearCrossEntropyGrad(torch.autograd.Function):
    """(d hidden, d weight, d bias) of ``grad_total * summed loss``, and their derivative (second order)."""

    @staticmethod
    def forward(hidden, weight, bias, labels, grad_total, rows, needs):
        d_hidden = torch.zeros_like(hidden) if needs[0] else None
        acc = _acc(hidden)
        d_weight = torch.zeros_like(weight, dtype=acc) if needs[1] else None
        d_bias = weight.new_zeros(weight.shape[0], dtype=acc) if needs[2] and bias is not None else None
        for start in range(0, hidden.shape[0], rows):
            logits, y, mask = _chunk(hidden, weight, bias, labels, start, rows)
            g = _residual(logits, y, mask)[0] * grad_total
            if d_hidden is not None:
                d_hidden[start:start + rows] = (g.to(weight.dtype) @ weight).to(hidden.dtype)
            if d_weight is not None:
                d_weight += g.T @ hidden[start:start + rows].to(acc)
            if d_bias is not None:
                d_bias += g.sum(0)
        return (d_hidden, _cast(d_weight, weight), _cast(d_bias, bias))

    @staticmethod
    def setup_context(ctx, inputs, output):
        hidden, weight, bias, labels, grad_total, rows, _ = inputs
        ctx.save_for_backward(hidden, weight, bias, labels, grad_total)
        ctx.rows = rows

    @staticmethod
    def backward(ctx, u_hidden, u_weight, u_bias):
        """The gradient of <u, (d hidden, d weight, d bias)>: through the softmax (its Jacobian-vector
        product, ``probs * (r - <probs, r>)``) and through the explicit factors of the first gradient."""
        hidden, weight, bias, labels, grad_total = ctx.saved_tensors
        upstream = (u_hidden, u_weight, u_bias)
        out = _SecondOrder(hidden, weight, bias, grad_total, upstream, ctx.needs_input_grad)
        for start in range(0, hidden.shape[0], ctx.rows):
            out.add_chunk(*_chunk(hidden, weight, bias, labels, start, ctx.rows), start, ctx.rows)
        return out.result()


class _SecondOrder:
    """Accumulates :meth:`_LinearCrossEntropyGrad.backward` chunk by chunk."""

    def __init__(self, hidden, weight, bias, grad_total, upstream, needs):
        self.hidden, self.weight, self.bias, self.grad_total = hidden, weight, bias, grad_total
        acc = _acc(hidden)
        self.weight_acc = weight.to(acc)  # converted once, not per chunk
        self.u_hidden, self.u_weight, self.u_bias = (None if u is None else u.to(acc) for u in upstream)
        self.d_hidden = torch.zeros_like(hidden, dtype=acc) if needs[0] else None
        self.d_weight = torch.zeros_like(weight, dtype=acc) if needs[1] else None
        self.d_bias = weight.new_zeros(weight.shape[0], dtype=acc) if needs[2] and bias is not None else None
        self.d_grad_total = hidden.new_zeros((), dtype=acc) if needs[4] else None

    def add_chunk(self, logits, y, mask, start, rows):
        weight, grad_total = self.weight_acc, self.grad_total
        h = self.hidden[start:start + rows].to(logits.dtype)
        u_h = None if self.u_hidden is None else self.u_hidden[start:start + rows]
        residual, probs = _residual(logits, y, mask)
        r = torch.zeros_like(logits)  # the direction of the logits that <u, gradient> moves along
        if u_h is not None:
            r = r + u_h @ weight.T
        if self.u_weight is not None:
            r = r + h @ self.u_weight.T
        if self.u_bias is not None:
            r = r + self.u_bias.reshape(-1)
        if self.d_grad_total is not None:
            self.d_grad_total += (residual * r).sum()
        q = grad_total * mask * probs * (r - (probs * r).sum(1, keepdim=True))
        g = residual * grad_total
        if self.d_hidden is not None:
            extra = g @ self.u_weight if self.u_weight is not None else 0.0
            self.d_hidden[start:start + rows] = q @ weight + extra
        if self.d_weight is not None:
            self.d_weight += q.T @ h + (g.T @ u_h if u_h is not None else 0.0)
        if self.d_bias is not None:
            self.d_bias += q.sum(0)

    def result(self):
        return (_cast(self.d_hidden, self.hidden), _cast(self.d_weight, self.weight),
                _cast(self.d_bias, self.bias), None, _cast(self.d_grad_total, self.grad_total), None, None)


def _cast(t: torch.Tensor | None, like: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None or like is None else t.to(like.dtype)


class _DecoderStates(Exception):
    """Carries the decoder states and the head's weight and bias out of the stopped forward."""

    def __init__(self, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__("decoder states")
        self.hidden, self.weight, self.bias = hidden, weight, bias


class ChunkedSeq2SeqLoss:
    """The loss the core differentiates (``loss_fn(forward, batch)``), chunked: the same value as HF's
    seq2seq cross-entropy, computed by :func:`linear_cross_entropy` on the decoder states of ``model``."""

    def __init__(self, model: nn.Module) -> None:
        hf = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.hf, self.base = hf, getattr(hf, "base_model", hf)
        head = hf.get_output_embeddings() if hasattr(hf, "get_output_embeddings") else None
        if self.base is hf or not isinstance(head, nn.Linear) or "T5" in type(hf).__name__:
            raise MetaNMTError(f"the chunked loss needs an encoder-decoder whose head is a linear map of the "
                               f"decoder states (Marian, mBART, M2M-100, NLLB); {type(hf).__name__} is not")

    def __call__(self, forward: Callable[..., Any], batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        handle = self.base.register_forward_hook(self._stop)
        try:
            forward(**batch)  # the model shifts the labels into decoder inputs; the hook stops it after
        except _DecoderStates as states:
            return linear_cross_entropy(states.hidden, states.weight, states.bias, batch["labels"])
        finally:
            handle.remove()
        raise MetaNMTError(f"{type(self.hf).__name__}: the forward never reached its base model")

    def _stop(self, module: nn.Module, args: Any, output: Any) -> None:
        """Inside ``functional_call`` the head's weight and bias are the fast/functional ones."""
        bias = getattr(self.hf, "final_logits_bias", None)
        raise _DecoderStates(output[0], self.hf.get_output_embeddings().weight, bias)
