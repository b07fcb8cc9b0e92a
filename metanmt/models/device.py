"""Where the model runs and in what precision: one choice for ``finetune``, ``evaluate`` and ``translate``.

Unset, the fastest device present is taken (CUDA, then Apple MPS, then the CPU), so a GPU machine never
fine-tunes or decodes on its CPU by accident; a device that was asked for but is absent is an error, not a
silent fall-back.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from metanmt.errors import MetaNMTError

if TYPE_CHECKING:  # torch is imported when a device is picked, so that the commands' --help stays fast
    import torch

DEVICE_HELP = "torch device: cuda, cuda:1, mps or cpu (unset: CUDA if present, else Apple MPS, else the CPU)"
PRECISIONS = {"no": None, "bf16": "bfloat16", "fp16": "float16"}  # --mixed-precision -> torch dtype


def is_available(kind: str) -> bool:
    """Whether torch can use a device of this type here (``torch.<kind>.is_available()`` for the others)."""
    import torch

    if kind == "cpu":
        return True
    if kind == "mps":
        return torch.backends.mps.is_available()
    backend = getattr(torch, kind, None)
    return bool(getattr(backend, "is_available", lambda: False)())


def pick_device(requested: str | None = None) -> torch.device:
    """``requested`` if it is present here, else the first of CUDA, MPS and the CPU that is."""
    import torch

    if not requested:
        return torch.device(next(kind for kind in ("cuda", "mps", "cpu") if is_available(kind)))
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise MetaNMTError(f"--device {requested!r} is not a torch device "
                           "(e.g. cuda, cuda:1, mps, cpu)") from None
    if not is_available(device.type):
        raise MetaNMTError(f"--device {requested}: no {device.type} device is available on this machine "
                           f"(leave --device unset to use the best device present)")
    count = getattr(getattr(torch, device.type, None), "device_count", None)
    if device.index is not None and count is not None and device.index >= count():
        raise MetaNMTError(f"--device {requested}: this machine has {count()} {device.type} device(s)")
    return device


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The forward passes' mixed precision on ``device``: ``no``, ``bf16`` (CPU, GPUs) or ``fp16`` (CUDA)."""
    import torch

    if precision not in PRECISIONS:
        raise MetaNMTError(f"unknown mixed precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise MetaNMTError(f"mixed precision fp16 needs a CUDA device, this run is on {device}: use bf16 or "
                           "no")
    if precision == "no":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=getattr(torch, PRECISIONS[precision]))
