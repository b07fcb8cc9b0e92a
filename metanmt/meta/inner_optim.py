"""Differentiable inner-loop optimizers: pure functions of (params, grads, state), so MAML can
differentiate through the update (``create_graph=True``) and FOMAML/Reptile can run them without a graph."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from metanmt.registry import lookup

Tensors = list[torch.Tensor]
# update(params, grads, lrs, state, step) -> new params
Update = Callable[[Tensors, Sequence[torch.Tensor | None], Sequence[torch.Tensor | float], dict, int],
                  Tensors]


def sgd_update(params: Tensors, grads: Sequence[torch.Tensor | None], lrs: Sequence[torch.Tensor | float],
               state: dict, step: int) -> Tensors:
    """theta <- theta - lr * g (a missing gradient, for a parameter the loss did not use, means no change)."""
    return [p if g is None else p - lr * g for p, g, lr in zip(params, grads, lrs)]


def make_adam_update(betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> Update:
    """Adam as a pure function. The denominator is sqrt(v_hat + eps^2) rather than sqrt(v_hat) + eps so that
    its derivative stays finite where a gradient entry is exactly zero (second-order MAML)."""
    b1, b2 = betas

    def adam_update(params, grads, lrs, state, step):
        m = state.setdefault("m", [None] * len(params))
        v = state.setdefault("v", [None] * len(params))
        t = step + 1
        out = []
        for i, (p, g, lr) in enumerate(zip(params, grads, lrs)):
            if g is None:
                out.append(p)
                continue
            m[i] = (1 - b1) * g if m[i] is None else b1 * m[i] + (1 - b1) * g
            v[i] = (1 - b2) * g * g if v[i] is None else b2 * v[i] + (1 - b2) * g * g
            m_hat = m[i] / (1 - b1**t)
            v_hat = v[i] / (1 - b2**t)
            out.append(p - lr * m_hat / torch.sqrt(v_hat + eps * eps))
        return out

    return adam_update


def make_sgd_update(betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> Update:
    """Plain SGD (it has no moment settings: ``betas`` and ``eps`` are ignored)."""
    return sgd_update


# The registry of inner optimizers: name -> factory(betas, eps) of the update function.
INNER_UPDATES: dict[str, Callable[..., Update]] = {"sgd": make_sgd_update, "adam": make_adam_update}


def get_inner_update(name: str, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> Update:
    """The update function of inner optimizer ``name``."""
    return lookup(INNER_UPDATES, name, "inner optimizer")(betas, eps)
