"""Image few-shot benchmarks (Omniglot, Mini-ImageNet) on the episodic core: meta-train, select, test.

Read in order: :mod:`~metanmt.fewshot.config` (the experiment and the papers' settings),
:mod:`~metanmt.fewshot.algorithms` (MAML/FOMAML/Reptile through the core, ProtoNets),
:mod:`~metanmt.fewshot.run` (the loop and ``results.json``) and :mod:`~metanmt.fewshot.report` (our
results beside the published numbers).
"""

from metanmt.fewshot.algorithms import ALGORITHMS
from metanmt.fewshot.config import DATASETS, FewShotConfig, published_defaults, resolve_config
from metanmt.fewshot.run import run_fewshot

__all__ = ["ALGORITHMS", "DATASETS", "FewShotConfig", "published_defaults", "resolve_config", "run_fewshot"]
