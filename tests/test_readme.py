"""The README's Python example runs as printed and adaptation helps on the new task."""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_core_example_runs_and_adapts():
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.DOTALL).group(1)
    block = block.replace("range(2000)", "range(300)")  # shorter meta-training keeps the suite fast
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 -- the README's own example
    task, model, adapted = namespace["new_task"], namespace["model"], namespace["adapted"]
    x, y = task.query
    with torch.no_grad():
        before = F.mse_loss(model(x), y).item()
        after = F.mse_loss(adapted(x), y).item()
    assert after < before, (before, after)
