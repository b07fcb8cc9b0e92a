"""Image few-shot benchmarks (Omniglot, Mini-ImageNet) on the episodic core: meta-train, select, test.

Read top to bottom: :class:`FewShotConfig` and :func:`published_defaults` (the papers' settings),
:func:`load_pools` (data), :func:`build_model` (Conv-4), the two algorithm families (:class:`MetaAlgorithm`
for MAML/FOMAML/Reptile through :class:`~metanmt.meta.MetaLearner`, :class:`ProtoNetAlgorithm`), and
:func:`run_fewshot`, the loop: meta-train with periodic validation and checkpoints, keep the best validation
model, evaluate it on test episodes and write ``results.json``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from metanmt.errors import MetaNMTError
from metanmt.meta import Episode, MetaConfig, MetaLearner
from metanmt.meta.protonet import protonet_loss
from metanmt.models.conv4 import Conv4
from metanmt.tasks.images.cache import save_atomic
from metanmt.tasks.images.sampler import ClassPool, EpisodeSampler

DATASETS = ("omniglot", "miniimagenet")
ALGORITHMS = ("maml", "fomaml", "reptile", "protonet")
# Settings that change what is trained: a checkpoint made with other values cannot be resumed.
_RESUME_KEYS = ("dataset", "protocol", "algorithm", "ways", "shots", "train_ways", "train_shots", "queries",
                "meta_batch", "inner_steps", "inner_lr", "inner_optimizer", "seed")


@dataclass
class FewShotConfig:
    """One few-shot experiment. ``None`` fields take :func:`published_defaults` for the dataset/algorithm."""

    dataset: str
    data_root: str
    output_dir: str
    algorithm: str = "maml"
    ways: int = 5
    shots: int = 1
    protocol: str | None = None  # omniglot: "maml" or "lake"; miniimagenet: "ravi"
    train_ways: int | None = None  # ProtoNets train with more ways than they are tested on
    train_shots: int | None = None  # Reptile trains with more shots than it is tested on
    queries: int | None = None  # query images per class in training episodes
    eval_queries: int = 15  # query images per class in validation and test episodes
    meta_steps: int = 60000
    meta_batch: int | None = None  # episodes per meta-step
    meta_lr: float | None = None  # Adam lr (maml, fomaml, protonet) or outer SGD step size (reptile)
    lr_schedule: str | None = None  # "constant", "step" (x0.5 every lr_step_every) or "linear" (to 0)
    lr_step_every: int = 2000
    inner_steps: int | None = None
    eval_inner_steps: int | None = None
    inner_lr: float | None = None
    inner_optimizer: str | None = None  # "sgd" or "adam"
    bn_eval: str = "transductive"
    hidden: int | None = None  # Conv-4 filters
    eval_every: int = 500
    val_episodes: int = 100
    eval_episodes: int = 600
    seed: int = 0
    threads: int | None = None
    cache_dir: str | None = None
    resume: bool = False
    init_from: str | None = None
    command: list[str] = field(default_factory=list)


def published_defaults(dataset: str, algorithm: str, ways: int, shots: int) -> dict[str, Any]:
    """The settings of the reference papers and code for one benchmark.

    MAML/FOMAML: Finn et al. 2017 and its code (Omniglot 5-way: 1 step of 0.4, meta-batch 32; 20-way:
    5 steps of 0.1, meta-batch 16; Mini-ImageNet: 5 steps of 0.01, meta-batch 4, 32 filters; 10 steps at
    test; queries per class = shots on Omniglot, 15 on Mini-ImageNet; Adam 1e-3).
    Reptile: Nichol et al. 2018 (inner Adam with beta1 = 0, meta-batch 5, outer step 1 annealed linearly
    to 0, 50 steps at test, more shots in training). ProtoNets: Snell et al. 2017 (60-way training episodes
    on Omniglot, 30/20-way on Mini-ImageNet, Adam 1e-3 halved every 2000 episodes, 64 filters).
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
    if algorithm in ("maml", "fomaml"):
        if omniglot:
            big = ways > 5
            out.update(inner_steps=5 if big else 1, inner_lr=0.1 if big else 0.4,
                       meta_batch=16 if big else 32, queries=shots)
        else:
            out.update(inner_steps=5, inner_lr=0.01, meta_batch=4, queries=15)
        out["eval_inner_steps"] = 10
    elif algorithm == "reptile":
        out.update(inner_optimizer="adam", meta_lr=1.0, lr_schedule="linear", meta_batch=5,
                   eval_inner_steps=50, queries=1)
        if omniglot:
            big = ways > 5
            out.update(inner_steps=10 if big else 5, inner_lr=5e-4 if big else 1e-3, train_shots=10)
        else:
            out.update(inner_steps=8, inner_lr=1e-3, train_shots=15)
    else:  # protonet
        out.update(hidden=64, lr_schedule="step", queries=5 if omniglot else 15,
                   train_ways=60 if omniglot else (30 if shots == 1 else 20))
    return out


def resolve_config(cfg: FewShotConfig) -> FewShotConfig:
    """A copy of ``cfg`` with every ``None`` replaced by the published default, checked for consistency."""
    cfg = copy.deepcopy(cfg)
    for key, value in published_defaults(cfg.dataset, cfg.algorithm, cfg.ways, cfg.shots).items():
        if getattr(cfg, key) is None:
            setattr(cfg, key, value)
    if cfg.algorithm != "protonet" and cfg.train_ways != cfg.ways:
        raise MetaNMTError(f"{cfg.algorithm} trains a {cfg.ways}-way classifier head: --train-ways must "
                           f"equal --ways (got {cfg.train_ways})")
    if cfg.lr_schedule not in ("constant", "step", "linear"):
        raise MetaNMTError(f"unknown lr schedule {cfg.lr_schedule!r}; use constant, step or linear")
    for name in ("meta_batch", "eval_every", "eval_episodes", "val_episodes", "ways", "shots"):
        if getattr(cfg, name) < 1:
            raise MetaNMTError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    if cfg.meta_steps < 0:
        raise MetaNMTError(f"--meta-steps must be >= 0, got {cfg.meta_steps}")
    return cfg


# ---------------------------------------------------------------------------------------------- data, model
def load_pools(cfg: FewShotConfig) -> dict[str, ClassPool]:
    """``{"train", "val", "test"}`` class pools of the configured dataset and protocol."""
    if cfg.dataset == "omniglot":
        from metanmt.tasks.images.omniglot import load_omniglot, omniglot_splits

        return omniglot_splits(load_omniglot(cfg.data_root, 28, cfg.cache_dir), cfg.protocol)
    from metanmt.tasks.images.miniimagenet import load_miniimagenet

    if cfg.protocol != "ravi":
        raise MetaNMTError(f"Mini-ImageNet has one protocol, 'ravi' (Ravi & Larochelle), "
                           f"not {cfg.protocol!r}")
    return load_miniimagenet(cfg.data_root, cache_dir=cfg.cache_dir)


def build_model(cfg: FewShotConfig, image_shape: tuple[int, ...]) -> Conv4:
    """Conv-4 as each paper used it: strided and spatially averaged for MAML/Reptile on Omniglot, max-pooled
    otherwise; ProtoNets get no head (the embedding is the model)."""
    channels, size = image_shape[0], image_shape[-1]
    pool = "stride" if cfg.dataset == "omniglot" and cfg.algorithm != "protonet" else "max"
    head = None if cfg.algorithm == "protonet" else cfg.ways
    return Conv4(channels, cfg.hidden, size, pool, head)


def _cross_entropy(forward, batch) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(forward(x), y)


# ---------------------------------------------------------------------------------------------- algorithms
class MetaAlgorithm:
    """MAML, FOMAML and Reptile: the core's :class:`MetaLearner` with a cross-entropy loss."""

    def __init__(self, cfg: FewShotConfig, model: nn.Module) -> None:
        meta_cfg = MetaConfig(algorithm=cfg.algorithm, inner_steps=cfg.inner_steps,
                              eval_inner_steps=cfg.eval_inner_steps, inner_lr=cfg.inner_lr,
                              inner_optimizer=cfg.inner_optimizer, bn_eval=cfg.bn_eval,
                              adam_betas=(0.0, 0.999) if cfg.algorithm == "reptile" else (0.9, 0.999))
        self.learner = MetaLearner(model, _cross_entropy, meta_cfg)
        outer = torch.optim.SGD if cfg.algorithm == "reptile" else torch.optim.Adam
        self.optimizer = outer(self.learner.parameters(), lr=cfg.meta_lr)

    def train_step(self, episodes: list[Episode]) -> float:
        return self.learner.meta_step(episodes, self.optimizer).loss

    def accuracy(self, episode: Episode) -> float:
        adapted = self.learner.adapt(episode.support)
        with torch.no_grad():
            logits = adapted(episode.query[0])
        return float((logits.argmax(dim=1) == episode.query[1]).float().mean())


class ProtoNetAlgorithm:
    """Prototypical Networks: the Conv-4 embedding trained on the prototype loss of each episode."""

    def __init__(self, cfg: FewShotConfig, model: nn.Module) -> None:
        self.model = model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg.meta_lr)

    def train_step(self, episodes: list[Episode]) -> float:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        losses = [protonet_loss(self.model, ep.support, ep.query)[0] for ep in episodes]
        loss = torch.stack(losses).mean()
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def accuracy(self, episode: Episode) -> float:
        self.model.eval()
        with torch.no_grad():
            return float(protonet_loss(self.model, episode.support, episode.query)[1])


def build_algorithm(cfg: FewShotConfig, model: nn.Module) -> MetaAlgorithm | ProtoNetAlgorithm:
    return ProtoNetAlgorithm(cfg, model) if cfg.algorithm == "protonet" else MetaAlgorithm(cfg, model)


def lr_factor(cfg: FewShotConfig, step: int) -> float:
    """The meta learning-rate multiplier at ``step``: constant, halved every ``lr_step_every`` steps, or
    linearly annealed to 0 at ``meta_steps`` (Reptile)."""
    if cfg.lr_schedule == "step":
        return 0.5 ** (step // cfg.lr_step_every)
    if cfg.lr_schedule == "linear":
        return max(0.0, 1.0 - step / max(cfg.meta_steps, 1))
    return 1.0


def evaluate(algo: MetaAlgorithm | ProtoNetAlgorithm, sampler: EpisodeSampler, episodes: int,
             desc: str | None = None) -> tuple[float, float]:
    """(mean accuracy in percent, 95% confidence half-width 1.96 * std / sqrt(episodes)) over ``episodes``."""
    bar = tqdm(range(episodes), desc=desc, unit="ep", disable=desc is None, leave=False)
    accs = torch.tensor([algo.accuracy(sampler.sample()) for _ in bar])
    std = float(accs.std(unbiased=False)) if episodes > 1 else 0.0
    return 100.0 * float(accs.mean()), 100.0 * 1.96 * std / math.sqrt(episodes)


def sampling_rate(pool: ClassPool, ways: int, shots: int, queries: int, episodes: int = 500) -> float:
    """Episodes per second drawn from the cached pool (by a sampler of its own: training is unaffected)."""
    sampler = EpisodeSampler(pool, ways, shots, queries, seed=12345)
    start = time.perf_counter()
    for _ in range(episodes):
        sampler.sample()
    return episodes / (time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------- the run
def _write_json(obj: dict, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(obj, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


def _load_checkpoint(path: Path, cfg: FewShotConfig) -> dict[str, Any]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as err:
        raise MetaNMTError(f"cannot read checkpoint {path}: {err}") from err
    saved = ckpt["config"]
    changed = [f"{k}: {saved.get(k)!r} -> {getattr(cfg, k)!r}"
               for k in _RESUME_KEYS if saved.get(k) != getattr(cfg, k)]
    if changed:
        raise MetaNMTError(f"cannot resume from {path}: it was trained with other settings "
                           f"({'; '.join(changed)})")
    return ckpt


def run_fewshot(cfg: FewShotConfig) -> dict[str, Any]:
    """Meta-train, keep the best model on validation episodes, test it and write ``OUT/results.json``."""
    cfg = resolve_config(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path, best_path = out / "checkpoint.pt", out / "best.pt"
    torch.manual_seed(cfg.seed)

    start = time.perf_counter()
    pools = load_pools(cfg)
    load_s = time.perf_counter() - start
    model = build_model(cfg, tuple(pools["train"].images.shape[1:]))
    algo = build_algorithm(cfg, model)
    train_sampler = EpisodeSampler(pools["train"], cfg.train_ways, cfg.train_shots, cfg.queries, cfg.seed,
                                   "train")
    eval_args = (cfg.ways, cfg.shots, cfg.eval_queries)
    # Built now so that impossible settings fail before any training.
    EpisodeSampler(pools["val"], *eval_args, split="val")
    EpisodeSampler(pools["test"], *eval_args, split="test")

    step, best, init_step = 0, {"val_accuracy": -1.0, "step": 0}, 0
    history: list[dict[str, float]] = []
    if cfg.init_from:
        try:
            init = torch.load(cfg.init_from, map_location="cpu", weights_only=True)
            model.load_state_dict(init["model"])
        except (OSError, RuntimeError, KeyError, TypeError) as err:
            raise MetaNMTError(f"cannot initialise the model from {cfg.init_from}: {err}") from err
        init_step = int(init.get("step", 0))  # the meta-steps behind those weights
    if cfg.resume and ckpt_path.exists():
        ckpt = _load_checkpoint(ckpt_path, cfg)
        model.load_state_dict(ckpt["model"])
        algo.optimizer.load_state_dict(ckpt["optimizer"])
        train_sampler.load_state_dict(ckpt["sampler"])
        torch.set_rng_state(ckpt["torch_rng"])
        step, best, history = ckpt["step"], ckpt["best"], ckpt["history"]
        print(f"resuming from {ckpt_path} at meta-step {step}", file=sys.stderr)
    elif cfg.resume:
        print(f"--resume: no checkpoint in {out}, starting from scratch", file=sys.stderr)

    def validate_and_save() -> None:
        val_sampler = EpisodeSampler(pools["val"], *eval_args, cfg.seed + 1, "val")  # same episodes each time
        val_acc, _ = evaluate(algo, val_sampler, cfg.val_episodes)
        history.append({"step": step, "val_accuracy": val_acc})
        if val_acc > best["val_accuracy"]:
            best.update(val_accuracy=val_acc, step=step)
            save_atomic({"model": model.state_dict(), "config": asdict(cfg), "step": step}, best_path)
        save_atomic({"model": model.state_dict(), "optimizer": algo.optimizer.state_dict(),
                     "sampler": train_sampler.state_dict(), "torch_rng": torch.get_rng_state(), "step": step,
                     "best": best, "history": history, "config": asdict(cfg)}, ckpt_path)

    train_start, train_cpu_start, first_step = time.perf_counter(), time.process_time(), step
    bar = tqdm(total=cfg.meta_steps, initial=step, desc=f"{cfg.algorithm} {cfg.dataset}", unit="step")
    while step < cfg.meta_steps:
        for group in algo.optimizer.param_groups:
            group["lr"] = cfg.meta_lr * lr_factor(cfg, step)
        loss = algo.train_step(train_sampler.sample_batch(cfg.meta_batch))
        if not math.isfinite(loss):
            raise MetaNMTError(f"meta-training diverged at step {step} (loss {loss}); "
                               "lower --meta-lr or --inner-lr")
        step += 1
        bar.update()
        if step % cfg.eval_every == 0 or step == cfg.meta_steps:
            validate_and_save()
            bar.set_postfix(loss=f"{loss:.3f}", val=f"{history[-1]['val_accuracy']:.1f}",
                            best=f"{best['val_accuracy']:.1f}")
        elif step % 10 == 0:
            bar.set_postfix(loss=f"{loss:.3f}", best=f"{best['val_accuracy']:.1f}")
    bar.close()
    train_s, train_cpu_s = time.perf_counter() - train_start, time.process_time() - train_cpu_start
    if best["val_accuracy"] < 0:  # no training at all (--meta-steps 0): test the model as it is
        validate_and_save()
    model.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=True)["model"])

    eval_start, eval_cpu_start = time.perf_counter(), time.process_time()
    test_sampler = EpisodeSampler(pools["test"], *eval_args, cfg.seed + 2, "test")
    accuracy, ci95 = evaluate(algo, test_sampler, cfg.eval_episodes, desc="test episodes")
    eval_s, eval_cpu_s = time.perf_counter() - eval_start, time.process_time() - eval_cpu_start
    steps_run = step - first_step
    results = {
        "dataset": cfg.dataset, "protocol": cfg.protocol, "ways": cfg.ways, "shots": cfg.shots,
        "algorithm": cfg.algorithm, "meta_steps": init_step + step, "eval_episodes": cfg.eval_episodes,
        "accuracy": round(accuracy, 3), "ci95": round(ci95, 3), "seed": cfg.seed,
        "best_step": init_step + best["step"], "val_accuracy": round(best["val_accuracy"], 3),
        "init_from": {"path": cfg.init_from, "step": init_step} if cfg.init_from else None,
        "classes": {split: pool.num_classes for split, pool in pools.items()},
        "config": {f.name: getattr(cfg, f.name) for f in fields(cfg)
                   if f.name not in ("data_root", "output_dir", "cache_dir", "command")},
        "timing": {
            "data_load_s": round(load_s, 2),
            "train_s_this_run": round(train_s, 1),
            "train_cpu_s_this_run": round(train_cpu_s, 1),  # all threads; wall time includes other load
            "meta_steps_this_run": steps_run,
            "meta_steps_per_s": round(steps_run / train_s, 3) if steps_run else None,
            "sampler_episodes_per_s": round(sampling_rate(pools["train"], cfg.train_ways, cfg.train_shots,
                                                          cfg.queries), 1),
            "test_s": round(eval_s, 1),
            "test_cpu_s": round(eval_cpu_s, 1),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "history": history,
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "python": platform.python_version(), "torch": torch.__version__},
        "command": cfg.command,
    }
    _write_json(results, out / "results.json")
    return results
