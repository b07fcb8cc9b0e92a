"""The configuration of a few-shot experiment and the published settings that fill what it leaves unset.

Each field of :class:`FewShotConfig` is also a ``metanmt fewshot`` option: its help rides in the field's
metadata and :func:`add_config_arguments` builds the command line from the fields, so no default is
written twice.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from metanmt.errors import MetaNMTError
from metanmt.fewshot.algorithms import ALGORITHMS
from metanmt.meta.inner_optim import INNER_UPDATES
from metanmt.meta.learner import BN_EVAL
from metanmt.models.device import DEVICE_HELP
from metanmt.registry import lookup

DATASETS = ("omniglot", "miniimagenet")
LR_SCHEDULES = ("constant", "step", "linear")
AUTO_YES_NO = ("auto", "yes", "no")
NETWORKS = ("torch", "finn")
_PUBLISHED = "unset: the published setting for the dataset, algorithm and ways"


def _option(default: Any = dataclasses.MISSING, help: str | None = None, **argparse_options: Any) -> Any:
    """A config field that is also a ``metanmt fewshot`` option: its help and argparse settings ride along
    in the field's metadata, so the command line repeats no default."""
    return field(default=default, metadata={"help": help, **argparse_options})


@dataclass
class FewShotConfig:
    """One few-shot experiment. ``None`` fields take :func:`published_defaults` for the dataset/algorithm."""

    dataset: str = _option(help="the benchmark (its published settings fill every unset option)",
                           choices=DATASETS)
    data_root: str = _option(metavar="DIR", help="Omniglot: folder with images_{background,evaluation}(.zip) "
                             "or omniglot-py/; Mini-ImageNet: folder with images/ + {train,val,test}.csv, "
                             "per-class folders or the pickles")
    output_dir: str = _option(metavar="OUT", help="checkpoints and results.json go here")
    algorithm: str = _option("maml", "the meta-learner", choices=ALGORITHMS)
    ways: int = _option(5, "classes per test episode (N)")
    shots: int = _option(1, "support images per class (K)")
    protocol: str | None = _option(None, "omniglot: maml (Vinyals split, 1200 training characters, "
                                   "rotations, the default) or lake (background/evaluation); "
                                   "miniimagenet: ravi", choices=("maml", "lake", "ravi"))
    # ProtoNets train with more ways than they are tested on
    train_ways: int | None = _option(None, f"classes per training episode; {_PUBLISHED}")
    # Reptile trains with more shots than it is tested on
    train_shots: int | None = _option(None, f"support images per class in training; {_PUBLISHED}")
    queries: int | None = _option(None, f"query images per class in training; {_PUBLISHED}")
    eval_queries: int = _option(15, "query images per class at validation and test")
    meta_steps: int = _option(60000, "outer updates")
    meta_batch: int | None = _option(None, f"episodes per meta-step; {_PUBLISHED}")
    meta_lr: float | None = _option(None, f"Adam lr (maml, fomaml, protonet), or Reptile's outer step size; "
                                    f"{_PUBLISHED}")
    lr_schedule: str | None = _option(None, "step: halve every --lr-step-every steps; linear: anneal to 0; "
                                      f"{_PUBLISHED}", choices=LR_SCHEDULES)
    lr_step_every: int = _option(2000, "meta-steps between halvings of the outer lr (--lr-schedule step)")
    inner_steps: int | None = _option(None, f"adaptation steps in training; {_PUBLISHED}")
    eval_inner_steps: int | None = _option(None, f"adaptation steps at test; {_PUBLISHED}")
    inner_lr: float | None = _option(None, f"inner-loop step size; {_PUBLISHED}")
    inner_optimizer: str | None = _option(None, _PUBLISHED, choices=tuple(INNER_UPDATES))
    bn_eval: str = _option("transductive", "BatchNorm statistics of adapted MAML/Reptile models at test",
                           choices=BN_EVAL)
    hidden: int | None = _option(None, f"Conv-4 filters; {_PUBLISHED}")
    network: str = _option("torch", "torch: Conv-4 with PyTorch's initialisation, every parameter adapted "
                           "in the inner loop; finn: as Finn et al.'s code builds it (Xavier convolutions, "
                           "BatchNorm without a scale whose offsets the inner loop leaves alone, Omniglot "
                           "head ~ N(0, 1)), and MAML/FOMAML's published inner step times --ways, as that "
                           "code's support loss is a sum over the N*K examples divided by K",
                           choices=NETWORKS)
    batch_tasks: str = _option("auto", "MAML/FOMAML/Reptile: run a meta-batch's tasks together (the "
                               "Conv-4 as grouped convolutions; the same meta-gradient) or one by one; "
                               "auto: together on an accelerator, one by one on CPU, where that measured "
                               "faster", choices=AUTO_YES_NO)
    cuda_graphs: str = _option("auto", "MAML/FOMAML/Reptile on a CUDA device: record each meta-step and each "
                               "test adaptation once as a CUDA graph and replay it (no per-kernel launch "
                               "cost; the same arithmetic); auto: on CUDA, falling back to plain steps with "
                               "a warning if recording fails", choices=AUTO_YES_NO)
    recompute: bool = _option(False, "maml: recompute each inner step in the backward sweep: the memory of "
                              "one inner step's second-order graph, not of all, for one more support pass "
                              "each (the same meta-gradient)")
    eval_every: int = _option(500, "validate and checkpoint every this many meta-steps")
    val_episodes: int = _option(100, "episodes per validation")
    eval_episodes: int = _option(600, "test episodes (E)")
    seed: int = _option(0, "seeds the initialisation and the training episodes; validation and test episodes "
                               "come from seed + 1 and seed + 2")
    deterministic: bool = _option(False, "GPUs: deterministic kernels only "
                                  "(torch.use_deterministic_algorithms; cuDNN's and cuBLAS's, possibly "
                                  "slower), so that the same seed gives the same numbers and a resumed run "
                                  "the uninterrupted one's; on a CPU the kernels used here are deterministic "
                                  "already")
    device: str | None = _option(None, DEVICE_HELP)
    time_limit: float | None = _option(None, "stop meta-training after this many minutes of it, validated "
                                       "and checkpointed (the test still runs; --resume continues later)",
                                       metavar="MINUTES")
    threads: int | None = _option(None, "torch CPU threads (default: torch's choice; 1 is fastest on a busy "
                                  "machine)")
    cache_dir: str | None = _option(None, "decoded-image cache (default: $METANMT_CACHE or ~/.cache/metanmt)",
                                    metavar="DIR")
    resume: bool = _option(False, "continue from OUT/checkpoint.pt")
    init_from: str | None = _option(None, "start from the weights in a best.pt or checkpoint.pt (with "
                                    "--meta-steps 0: only test them)", metavar="FILE")
    command: list[str] = field(default_factory=list)  # how it was run (recorded, not an option)


def published_defaults(dataset: str, algorithm: str, ways: int, shots: int, network: str = "torch"
                       ) -> dict[str, Any]:
    """The settings of the reference papers and code for one benchmark.

    MAML/FOMAML: Finn et al. 2017 and its code (Omniglot 5-way: 1 step of 0.4, meta-batch 32; 20-way:
    5 steps of 0.1, meta-batch 16; Mini-ImageNet: 5 steps of 0.01, meta-batch 4, 32 filters; 10 steps at
    test; queries per class = shots on Omniglot, 15 on Mini-ImageNet; Adam 1e-3).
    Reptile: Nichol et al. 2018 (inner Adam with beta1 = 0, meta-batch 5, outer step 1 annealed linearly
    to 0, 50 steps at test, more shots in training). ProtoNets: Snell et al. 2017 (60-way training episodes
    on Omniglot, 30/20-way on Mini-ImageNet, Adam 1e-3 halved every 2000 episodes, 64 filters).

    ``network="finn"``: Finn's code differentiates the support losses summed over the N*K examples and
    divided by K (``utils.xent`` returns one loss per example; ``tf.gradients`` sums them), N times the mean
    that metanmt differentiates, so the same inner step is the paper's step size times N (20-way: 0.1 -> 2).
    """
    if dataset not in DATASETS:
        raise MetaNMTError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    if algorithm not in ALGORITHMS:
        raise MetaNMTError(f"unknown algorithm {algorithm!r}; choose from {', '.join(ALGORITHMS)}")
    omniglot = dataset == "omniglot"
    out: dict[str, Any] = {
        "protocol": "maml" if omniglot else "ravi", "train_ways": ways, "train_shots": shots,
        "hidden": 64 if omniglot else 32, "inner_optimizer": "sgd", "meta_lr": 1e-3,
        "lr_schedule": "constant", "meta_batch": 1, "inner_steps": 0, "eval_inner_steps": 0, "inner_lr": 0.0,
    }
    out.update(lookup(_ALGORITHM_SETTINGS, algorithm, "algorithm")(omniglot, ways, shots))
    if network == "finn" and algorithm in ("maml", "fomaml"):
        out["inner_lr"] *= ways
    return out


def _maml_settings(omniglot: bool, ways: int, shots: int) -> dict[str, Any]:
    """Finn et al. (2017): Omniglot 5-way 1 step of 0.4, meta-batch 32, 20-way 5 of 0.1, meta-batch 16."""
    if omniglot:
        big = ways > 5
        return {"inner_steps": 5 if big else 1, "inner_lr": 0.1 if big else 0.4,
                "meta_batch": 16 if big else 32, "queries": shots, "eval_inner_steps": 10}
    return {"inner_steps": 5, "inner_lr": 0.01, "meta_batch": 4, "queries": 15, "eval_inner_steps": 10}


def _reptile_settings(omniglot: bool, ways: int, shots: int) -> dict[str, Any]:
    """Nichol et al. (2018): inner Adam, outer step 1 annealed to 0, more shots in training than at test."""
    out = {"inner_optimizer": "adam", "meta_lr": 1.0, "lr_schedule": "linear", "meta_batch": 5,
           "eval_inner_steps": 50, "queries": 1}
    if omniglot:
        big = ways > 5
        out.update(inner_steps=10 if big else 5, inner_lr=5e-4 if big else 1e-3, train_shots=10)
    else:
        out.update(inner_steps=8, inner_lr=1e-3, train_shots=15)
    return out


def _protonet_settings(omniglot: bool, ways: int, shots: int) -> dict[str, Any]:
    """Snell et al. (2017): more ways in training than at test, lr halved every 2000 episodes."""
    return {"hidden": 64, "lr_schedule": "step", "queries": 5 if omniglot else 15,
            "train_ways": 60 if omniglot else (30 if shots == 1 else 20)}


# The published settings of each few-shot algorithm: name -> settings(omniglot, ways, shots).
_ALGORITHM_SETTINGS = {"maml": _maml_settings, "fomaml": _maml_settings, "reptile": _reptile_settings,
                       "protonet": _protonet_settings}


def resolve_config(cfg: FewShotConfig) -> FewShotConfig:
    """A copy of ``cfg`` with every ``None`` replaced by the published default, checked for consistency."""
    cfg = copy.deepcopy(cfg)
    published = published_defaults(cfg.dataset, cfg.algorithm, cfg.ways, cfg.shots, cfg.network)
    for key, value in published.items():
        if getattr(cfg, key) is None:
            setattr(cfg, key, value)
    if cfg.algorithm != "protonet" and cfg.train_ways != cfg.ways:
        raise MetaNMTError(f"{cfg.algorithm} trains a {cfg.ways}-way classifier head: --train-ways must "
                           f"equal --ways (got {cfg.train_ways})")
    for name in ("batch_tasks", "cuda_graphs"):
        if getattr(cfg, name) not in AUTO_YES_NO:
            raise MetaNMTError(f"--{name.replace('_', '-')} must be one of {', '.join(AUTO_YES_NO)}, "
                               f"not {getattr(cfg, name)!r}")
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise MetaNMTError(f"unknown lr schedule {cfg.lr_schedule!r}; use constant, step or linear")
    for name in ("meta_batch", "eval_every", "eval_episodes", "val_episodes", "ways", "shots"):
        if getattr(cfg, name) < 1:
            raise MetaNMTError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    if cfg.time_limit is not None and cfg.time_limit <= 0:
        raise MetaNMTError(f"--time-limit must be > 0 minutes, got {cfg.time_limit}")
    if cfg.meta_steps < 0:
        raise MetaNMTError(f"--meta-steps must be >= 0, got {cfg.meta_steps}")
    return cfg


_TYPES = {"int": int, "float": float, "str": str}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per field of :class:`FewShotConfig` (``data_root``: ``--data-root``), from its metadata."""
    for f in dataclasses.fields(FewShotConfig):
        if "help" in f.metadata:  # the others (``command``) are not options
            parser.add_argument(f"--{f.name.replace('_', '-')}", **_argparse_settings(f))


def _argparse_settings(f: dataclasses.Field) -> dict[str, Any]:
    settings = {key: value for key, value in f.metadata.items() if value is not None}
    if f.default is dataclasses.MISSING:
        return {**settings, "required": True}
    if f.type == "bool":
        return {**settings, "action": "store_true"}
    return {**settings, "default": f.default, "type": _TYPES[str(f.type).split(" | ")[0]]}
