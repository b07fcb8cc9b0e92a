"""The device and precision choice shared by finetune, evaluate and translate, tested on the CPU by pretending
which accelerators are present (the commands themselves run on real devices in tests/test_user_data.py)."""

from __future__ import annotations

import contextlib
import re

import pytest
import torch

from metanmt.errors import MetaNMTError
from metanmt.models.device import autocast, pick_device
from metanmt.train.finetune import default_device


@pytest.fixture
def present(monkeypatch):
    """``present(cuda=..., mps=..., gpus=...)`` makes torch report those devices."""
    def set_present(cuda: bool = False, mps: bool = False, gpus: int = 1) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus if cuda else 0)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    return set_present


@pytest.mark.parametrize("cuda,mps,expected", [(True, True, "cuda"), (True, False, "cuda"),
                                               (False, True, "mps"), (False, False, "cpu")])
def test_unset_takes_cuda_then_mps_then_cpu(present, cuda, mps, expected):
    present(cuda=cuda, mps=mps)
    assert pick_device() == pick_device(None) == pick_device("") == torch.device(expected)
    assert default_device() == expected


def test_an_explicit_device_wins(present):
    present(cuda=True, mps=True, gpus=2)
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("mps") == torch.device("mps")
    assert pick_device("cuda:1") == torch.device("cuda", 1)


@pytest.mark.parametrize("requested,message", [
    ("cuda", "--device cuda: no cuda device is available on this machine (leave --device unset"),
    ("cuda:0", "--device cuda:0: no cuda device is available"),
    ("mps", "--device mps: no mps device is available"),
    ("gpu", "--device 'gpu' is not a torch device (e.g. cuda, cuda:1, mps, cpu)"),
])
def test_an_absent_or_unknown_device_is_an_error(present, requested, message):
    present()
    with pytest.raises(MetaNMTError, match=re.escape(message)):
        pick_device(requested)


def test_a_gpu_index_beyond_the_machine_is_an_error(present):
    present(cuda=True, gpus=2)
    with pytest.raises(MetaNMTError, match="--device cuda:2: this machine has 2 cuda device"):
        pick_device("cuda:2")


def test_autocast_per_precision_and_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert isinstance(autocast(cpu, "no"), contextlib.nullcontext)
    bf16 = autocast(cpu, "bf16")
    assert isinstance(bf16, torch.autocast) and (bf16.device, bf16.fast_dtype) == ("cpu", torch.bfloat16)
    with bf16:
        assert torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3)).dtype == torch.bfloat16
    with pytest.raises(MetaNMTError, match="mixed precision fp16 needs a CUDA device, this run is on cpu"):
        autocast(cpu, "fp16")
    with pytest.raises(MetaNMTError, match="unknown mixed precision 'fp8'; choose one of no, bf16, fp16"):
        autocast(cpu, "fp8")
    if torch.cuda.is_available():
        assert autocast(cuda, "fp16").fast_dtype == torch.float16
