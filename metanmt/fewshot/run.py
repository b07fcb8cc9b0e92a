"""The few-shot run: data and model, meta-training with periodic validation and checkpoints, the test.

:func:`run_fewshot` keeps the model that is best on validation episodes, tests it on test episodes and
writes ``OUT/results.json``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metanmt.atomic import save_torch_atomic, write_text_atomic
from metanmt.errors import MetaNMTError
from metanmt.fewshot.algorithms import Algorithm, build_algorithm
from metanmt.fewshot.config import FewShotConfig, resolve_config
from metanmt.models.conv4 import Conv4, init_like_finn
from metanmt.models.device import pick_device
from metanmt.progress import progress_bar
from metanmt.tasks.images.sampler import ClassPool, EpisodeSampler

# Settings that change what is trained: a checkpoint made with other values cannot be resumed.
_RESUME_KEYS = ("dataset", "protocol", "algorithm", "ways", "shots", "train_ways", "train_shots", "queries",
                "meta_batch", "inner_steps", "inner_lr", "inner_optimizer", "network", "seed")
# what checkpoints made before a setting existed were trained with
_SETTINGS_BEFORE = {"network": "torch"}


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
    model = Conv4(channels, cfg.hidden, size, pool, head)
    if cfg.network == "finn":
        init_like_finn(model, head_std=1.0 if cfg.dataset == "omniglot" else None)
    return model


def lr_factor(cfg: FewShotConfig, step: int) -> float:
    """The meta learning-rate multiplier at ``step``: constant, halved every ``lr_step_every`` steps, or
    linearly annealed to 0 at ``meta_steps`` (Reptile)."""
    if cfg.lr_schedule == "step":
        return 0.5 ** (step // cfg.lr_step_every)
    if cfg.lr_schedule == "linear":
        return max(0.0, 1.0 - step / max(cfg.meta_steps, 1))
    return 1.0


def evaluate(algo: Algorithm, sampler: EpisodeSampler, episodes: int, device: torch.device,
             desc: str | None = None) -> tuple[float, float]:
    """(mean accuracy in percent, 95% confidence half-width 1.96 * std / sqrt(episodes)) over ``episodes``."""
    bar = progress_bar(range(episodes), desc=desc, unit="ep", disable=desc is None, leave=False)
    accs = torch.stack([algo.accuracy(sampler.sample().to(device)) for _ in bar]).double().cpu()
    std = float(accs.std(unbiased=False)) if episodes > 1 else 0.0
    return 100.0 * float(accs.mean()), 100.0 * 1.96 * std / math.sqrt(episodes)


def sampling_rate(pool: ClassPool, ways: int, shots: int, queries: int, episodes: int = 500) -> float:
    """Episodes per second drawn from the cached pool (by a sampler of its own: training is unaffected)."""
    sampler = EpisodeSampler(pool, ways, shots, queries, seed=12345)
    start = time.perf_counter()
    for _ in range(episodes):
        sampler.sample()
    return episodes / (time.perf_counter() - start)


def _load_checkpoint(path: Path, cfg: FewShotConfig) -> dict[str, Any]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as err:
        raise MetaNMTError(f"cannot read checkpoint {path}: {err}") from err
    saved = {**_SETTINGS_BEFORE, **ckpt["config"]}
    changed = [f"{k}: {saved.get(k)!r} -> {getattr(cfg, k)!r}"
               for k in _RESUME_KEYS if saved.get(k) != getattr(cfg, k)]
    if changed:
        raise MetaNMTError(f"cannot resume from {path}: it was trained with other settings "
                           f"({'; '.join(changed)})")
    return ckpt


@contextlib.contextmanager
def deterministic_kernels(enabled: bool) -> Iterator[None]:
    """``torch.use_deterministic_algorithms`` for one run, the caller's setting restored after it. cuBLAS
    needs its workspace fixed before its first call for that (``CUBLAS_WORKSPACE_CONFIG``); an operation
    without a deterministic kernel warns instead of failing (``warn_only``)."""
    if not enabled:
        yield
        return
    enabled_before, warn_only_before = (torch.are_deterministic_algorithms_enabled(),
                                        torch.is_deterministic_algorithms_warn_only_enabled())
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled_before, warn_only=warn_only_before)


def run_fewshot(cfg: FewShotConfig) -> dict[str, Any]:
    """Meta-train, keep the best model on validation episodes, test it and write ``OUT/results.json``."""
    cfg = resolve_config(cfg)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads or threads)
    try:
        with deterministic_kernels(cfg.deterministic):
            run = _Run.start(cfg)
            run.restore()
            training = run.train()
            test = run.test()
            results = run.results(training, test)
    finally:
        torch.set_num_threads(threads)  # the caller's setting: --threads holds for this run only
    write_text_atomic(run.out / "results.json", json.dumps(results, indent=2) + "\n")
    return results


@dataclass
class _Run:
    """One run's state, in phases: start (data, model, samplers), restore, train, test, results."""

    cfg: FewShotConfig
    out: Path
    pools: dict[str, ClassPool]
    model: nn.Module
    algo: Algorithm
    train_sampler: EpisodeSampler
    load_s: float
    device: torch.device
    step: int = 0
    init_step: int = 0  # the meta-steps behind --init-from weights
    best: dict[str, float] = field(default_factory=lambda: {"val_accuracy": -1.0, "step": 0})
    history: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def start(cls, cfg: FewShotConfig) -> _Run:
        out = Path(cfg.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        start = time.perf_counter()
        pools = load_pools(cfg)
        load_s = time.perf_counter() - start
        device = pick_device(cfg.device)
        model = build_model(cfg, tuple(pools["train"].images.shape[1:])).to(device)
        algo = build_algorithm(cfg, model)
        train_sampler = EpisodeSampler(pools["train"], cfg.train_ways, cfg.train_shots, cfg.queries, cfg.seed,
                                       "train")
        run = cls(cfg, out, pools, model, algo, train_sampler, load_s, device)
        run.eval_sampler("val")  # built now so that impossible settings fail before any training
        run.eval_sampler("test")
        return run

    def eval_sampler(self, split: str, seed: int | None = None) -> EpisodeSampler:
        return EpisodeSampler(self.pools[split], self.cfg.ways, self.cfg.shots, self.cfg.eval_queries,
                              *(() if seed is None else (seed,)), split=split)

    def restore(self) -> None:
        """Start from --init-from weights and/or continue from OUT/checkpoint.pt (--resume)."""
        cfg, ckpt_path = self.cfg, self.out / "checkpoint.pt"
        if cfg.init_from:
            try:
                init = torch.load(cfg.init_from, map_location="cpu", weights_only=True)
                self.model.load_state_dict(init["model"])
            except (OSError, RuntimeError, KeyError, TypeError) as err:
                raise MetaNMTError(f"cannot initialise the model from {cfg.init_from}: {err}") from err
            self.init_step = int(init.get("step", 0))
        if cfg.resume and ckpt_path.exists():
            ckpt = _load_checkpoint(ckpt_path, cfg)
            self.model.load_state_dict(ckpt["model"])
            self.algo.optimizer.load_state_dict(ckpt["optimizer"])
            self.train_sampler.load_state_dict(ckpt["sampler"])
            torch.set_rng_state(ckpt["torch_rng"])
            self.step, self.best, self.history = ckpt["step"], ckpt["best"], ckpt["history"]
            print(f"resuming from {ckpt_path} at meta-step {self.step}", file=sys.stderr)
        elif cfg.resume:
            print(f"--resume: no checkpoint in {self.out}, starting from scratch", file=sys.stderr)

    def validate_and_save(self) -> None:
        """Score the validation episodes (the same ones each time); save the best model and the state."""
        val_acc, _ = evaluate(self.algo, self.eval_sampler("val", self.cfg.seed + 1), self.cfg.val_episodes,
                              self.device)
        self.history.append({"step": self.step, "val_accuracy": val_acc})
        state = {"model": self.model.state_dict(), "config": asdict(self.cfg), "step": self.step}
        if val_acc > self.best["val_accuracy"]:
            self.best.update(val_accuracy=val_acc, step=self.step)
            save_torch_atomic(state, self.out / "best.pt")
        save_torch_atomic({**state, "optimizer": self.algo.optimizer.state_dict(),
                           "sampler": self.train_sampler.state_dict(), "torch_rng": torch.get_rng_state(),
                           "best": self.best, "history": self.history}, self.out / "checkpoint.pt")

    def train(self) -> dict[str, float]:
        """Meta-train up to ``meta_steps`` or for ``time_limit`` minutes, validating every ``eval_every``
        and at the end; load the best model."""
        cfg, first_step = self.cfg, self.step
        start, cpu_start = time.perf_counter(), time.process_time()
        deadline = start + 60 * cfg.time_limit if cfg.time_limit else math.inf
        bar = progress_bar(total=cfg.meta_steps, initial=self.step, desc=f"{cfg.algorithm} {cfg.dataset}",
                   unit="step")
        while self.step < cfg.meta_steps:
            loss = self.train_step()
            bar.update()
            out_of_time = time.perf_counter() > deadline
            if self.step % cfg.eval_every == 0 or self.step == cfg.meta_steps or out_of_time:
                loss = self._checked(loss)
                self.validate_and_save()
                bar.set_postfix(loss=f"{loss:.3f}", val=f"{self.history[-1]['val_accuracy']:.1f}",
                                best=f"{self.best['val_accuracy']:.1f}")
            elif self.step % 10 == 0:
                bar.set_postfix(loss=f"{self._checked(loss):.3f}", best=f"{self.best['val_accuracy']:.1f}")
            if out_of_time:
                print(f"\n--time-limit {cfg.time_limit} min: stopped at meta-step {self.step} of "
                      f"{cfg.meta_steps} (--resume continues)", file=sys.stderr)
                break
        bar.close()
        timing = {"train_s": time.perf_counter() - start, "train_cpu_s": time.process_time() - cpu_start,
                  "steps": self.step - first_step}
        if self.best["val_accuracy"] < 0:  # no training at all (--meta-steps 0): test the model as it is
            self.validate_and_save()
        best = torch.load(self.out / "best.pt", map_location="cpu", weights_only=True)
        self.model.load_state_dict(best["model"])
        return timing

    def train_step(self) -> torch.Tensor | float:
        """One meta-step; its loss, left on the device when it is there (read every 10 steps: reading
        waits for the GPU, which would otherwise run while the next episodes are drawn)."""
        for group in self.algo.optimizer.param_groups:
            group["lr"] = self.cfg.meta_lr * lr_factor(self.cfg, self.step)
        episodes = self.train_sampler.sample_batch(self.cfg.meta_batch)
        loss = self.algo.train_step([episode.to(self.device) for episode in episodes])
        self.step += 1
        return loss if isinstance(loss, torch.Tensor) else self._checked(loss)

    def _checked(self, loss: torch.Tensor | float) -> float:
        loss = float(loss)
        if not math.isfinite(loss):
            raise MetaNMTError(f"meta-training diverged by meta-step {self.step} (loss {loss}); "
                               "lower --meta-lr or --inner-lr")
        return loss

    def test(self) -> dict[str, float]:
        """Accuracy and its 95% confidence half-width on the test episodes, and the time they took."""
        start, cpu_start = time.perf_counter(), time.process_time()
        sampler = self.eval_sampler("test", self.cfg.seed + 2)
        accuracy, ci95 = evaluate(self.algo, sampler, self.cfg.eval_episodes, self.device,
                                  desc="test episodes")
        return {"accuracy": accuracy, "ci95": ci95, "test_s": time.perf_counter() - start,
                "test_cpu_s": time.process_time() - cpu_start}

    def results(self, training: dict[str, float], test: dict[str, float]) -> dict[str, Any]:
        """The content of ``results.json``."""
        cfg = self.cfg
        return {
            "dataset": cfg.dataset, "protocol": cfg.protocol, "ways": cfg.ways, "shots": cfg.shots,
            "algorithm": cfg.algorithm, "meta_steps": self.init_step + self.step,
            "eval_episodes": cfg.eval_episodes, "accuracy": round(test["accuracy"], 3),
            "ci95": round(test["ci95"], 3), "seed": cfg.seed, "best_step": self.init_step + self.best["step"],
            "val_accuracy": round(self.best["val_accuracy"], 3),
            "init_from": {"path": cfg.init_from, "step": self.init_step} if cfg.init_from else None,
            "classes": {split: pool.num_classes for split, pool in self.pools.items()},
            "config": {f.name: getattr(cfg, f.name) for f in fields(cfg)
                       if f.name not in ("data_root", "output_dir", "cache_dir", "command")},
            "timing": self._timing(training, test),
            "history": self.history,
            "machine": {"platform": platform.platform(),
                        "processor": platform.processor() or platform.machine(),
                        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                        "python": platform.python_version(), "torch": torch.__version__,
                        "device": _device_name(self.device)},
            "command": cfg.command,
        }

    def _timing(self, training: dict[str, float], test: dict[str, float]) -> dict[str, Any]:
        cfg, steps = self.cfg, training["steps"]
        sampling = sampling_rate(self.pools["train"], cfg.train_ways, cfg.train_shots, cfg.queries)
        return {
            "data_load_s": round(self.load_s, 2),
            "train_s_this_run": round(training["train_s"], 1),
            # all threads; the wall time includes the machine's other load
            "train_cpu_s_this_run": round(training["train_cpu_s"], 1),
            "meta_steps_this_run": steps,
            "meta_steps_per_s": round(steps / training["train_s"], 3) if steps else None,
            # whether the steps were replayed from CUDA graphs to the end (false after a fallback)
            "cuda_graphs": bool(getattr(self.algo, "graphs", False)),
            "sampler_episodes_per_s": round(sampling, 1),
            "test_s": round(test["test_s"], 1),
            "test_cpu_s": round(test["test_cpu_s"], 1),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        }


def _device_name(device: torch.device) -> str:
    """``cpu``, or the accelerator's model name (e.g. ``cuda: NVIDIA H100 80GB HBM3``)."""
    if device.type == "cuda":
        return f"{device}: {torch.cuda.get_device_name(device)}"
    return str(device)
