"""Two CPU processes (gloo) give the same meta-update as one process on the same meta-batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.test_meta_core import mlp

ROOT = Path(__file__).resolve().parents[1]


def run(nproc: int, out: Path, algorithm: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    script = ["-m", "tests.scripts.dist_meta_step", str(out), algorithm]
    if nproc == 1:
        cmd = [sys.executable, *script]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--master_port", str(29500 + os.getpid() % 1000), *script]
    proc = subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(out)


@pytest.mark.parametrize("algorithm", ["maml", "reptile"])
def test_two_processes_equal_one_process(tmp_path, algorithm):
    one = run(1, tmp_path / "one.pt", algorithm)
    two = run(2, tmp_path / "two.pt", algorithm)
    assert one["world"] == 1 and two["world"] == 2
    assert one["losses"] == pytest.approx(two["losses"], abs=1e-9)
    for name, value in one["state"].items():
        diff = (value - two["state"][name]).abs().max().item()
        assert diff < 1e-6, (name, diff)
    init = mlp(seed=0).state_dict()
    assert (one["state"]["model.0.weight"] - init["0.weight"]).abs().max() > 1e-3  # the steps moved it
