"""Fine-tuning on a few thousand tokens of one language, with early stopping on its dev loss.

Used three ways: ``metanmt finetune`` (MetaNMT and MultiNMT alike), the validation inside training
(fixed number of steps, no early stopping), and the tests.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metanmt.data.user_pairs import UserData, UserDataRequest, load_user_data, to_stderr
from metanmt.errors import MetaNMTError
from metanmt.models.device import autocast, pick_device
from metanmt.models.seq2seq import PARAM_GROUPS
from metanmt.tasks.translation import batches_by_tokens, target_tokens
from metanmt.train.config import FinetuneSection
from metanmt.train.steps import make_adam


@dataclass
class FinetuneResult:
    steps: int
    best_step: int
    best_dev_loss: float | None
    train_tokens: int


def set_trainable(model: torch.nn.Module, group: str) -> list[torch.nn.Parameter]:
    """Freeze all parameters but the named group (``all``, ``emb_enc``, ``emb``, ``lora``); return the
    trainable ones. A group that matches nothing is an error, not a silently frozen model."""
    from fnmatch import fnmatchcase

    from metanmt.models.lora import is_lora

    if group not in PARAM_GROUPS:
        raise MetaNMTError(f"unknown parameter group {group!r}; choose one of {', '.join(PARAM_GROUPS)}")
    if group == "lora" and not is_lora(model):
        raise MetaNMTError("parameter group 'lora' needs a model with LoRA adapters "
                           "(metanmt.models.lora.add_lora)")
    patterns = PARAM_GROUPS[group]
    trainable = []
    for name, p in model.named_parameters():
        # sinusoidal position tables are fixed parameters in Marian: never train them
        is_fixed = "embed_positions" in name
        p.requires_grad_(not is_fixed and any(fnmatchcase(name, pat) for pat in patterns))
        if p.requires_grad:
            trainable.append(p)
    if not trainable:
        raise MetaNMTError(f"parameter group {group!r} ({', '.join(patterns)}) matches no parameter of the "
                           "model")
    return trainable


def with_finetuned_params(model, tokenizer, cfg: FinetuneSection):
    """``model`` ready to fine-tune ``cfg.params``: with ``lora``, the checkpoint's own adapter (e.g. the
    meta-learned initialisation) or, if it has none, fresh adapters of the default settings."""
    from metanmt.models.lora import LoraSettings, add_lora

    return add_lora(model, LoraSettings(), tokenizer) if cfg.params == "lora" else model


@torch.no_grad()
def dev_loss(model, pairs, batch_tokens: int) -> float:
    """Token-weighted cross-entropy of ``pairs`` (the early-stopping criterion)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for batch in batches_by_tokens(pairs, batch_tokens, rng=None):
        batch = {k: v.to(device) for k, v in batch.items()}
        n = target_tokens(batch)
        total += float(model(**batch).loss) * n
        count += n
    model.train(was_training)
    return total / max(count, 1)


def finetune(model, train_pairs, dev_pairs, cfg: FinetuneSection, seed: int = 1,
             early_stopping: bool = True, max_steps: int | None = None, progress: bool = False,
             mixed_precision: str = "no") -> FinetuneResult:
    """Fine-tune ``model`` in place, on the device it is on, on ``train_pairs``; keep the weights of the
    best dev loss (computed in full precision, whatever ``mixed_precision`` the training steps use).

    Without ``early_stopping`` it runs exactly ``max_steps`` steps at the flat rate (the in-training
    validation); with it, the rate warms up linearly over ``cfg.warmup_steps`` steps.
    """
    if len(train_pairs) == 0:
        return FinetuneResult(steps=0, best_step=0, best_dev_loss=None, train_tokens=0)
    from metanmt.progress import progress_bar

    device = next(model.parameters()).device
    update = _Update.build(model, cfg, device, mixed_precision, cfg.warmup_steps if early_stopping else 0)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    batches = itertools.chain.from_iterable(
        batches_by_tokens(train_pairs, cfg.batch_tokens, rng=rng) for _ in itertools.count())
    steps = cfg.max_steps if max_steps is None else max_steps
    stopping = _EarlyStopping(model, dev_pairs, cfg) if early_stopping else None
    tokens, step = 0, 0
    model.train()
    bar = progress_bar(total=steps, desc="fine-tune", disable=not progress, leave=False)
    for step in range(1, steps + 1):
        batch = {k: v.to(device) for k, v in next(batches).items()}
        loss = update(batch)
        tokens += target_tokens(batch)
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if stopping and step % cfg.eval_every == 0 and stopping.should_stop(step):
            break
    bar.close()
    best_loss, best_step = stopping.restore_best() if stopping else (None, 0)
    set_trainable(model, "all")
    return FinetuneResult(steps=step, best_step=best_step, best_dev_loss=best_loss, train_tokens=tokens)


class _EarlyStopping:
    """Dev-loss checks: keeps the weights of the best one (step 0 included) and says when ``patience``
    checks in a row brought no improvement."""

    def __init__(self, model, dev_pairs, cfg: FinetuneSection) -> None:
        self.model, self.dev_pairs, self.cfg = model, dev_pairs, cfg
        self.best_loss, self.best_step = dev_loss(model, dev_pairs, cfg.batch_tokens), 0
        self.best_state = copy.deepcopy(model.state_dict())
        self.bad_checks = 0

    def should_stop(self, step: int) -> bool:
        loss = dev_loss(self.model, self.dev_pairs, self.cfg.batch_tokens)
        if loss < self.best_loss:
            self.best_loss, self.best_step, self.bad_checks = loss, step, 0
            self.best_state = copy.deepcopy(self.model.state_dict())
            return False
        self.bad_checks += 1
        return self.bad_checks >= self.cfg.patience

    def restore_best(self) -> tuple[float, int]:
        """Load the best weights into the model; their dev loss and step."""
        self.model.load_state_dict(self.best_state)
        return self.best_loss, self.best_step


@dataclass
class _Update:
    """One optimizer step of fine-tuning, its forward pass in the chosen mixed precision; fp16 scales the
    loss so that small gradients survive (the scaler passes everything through otherwise)."""

    model: torch.nn.Module
    trainable: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    amp: contextlib.AbstractContextManager  # autocast, or nothing
    scaler: torch.amp.GradScaler
    scheduler: torch.optim.lr_scheduler.LRScheduler  # linear warm-up, then the flat rate

    @classmethod
    def build(cls, model, cfg: FinetuneSection, device: torch.device, mixed_precision: str,
              warmup_steps: int = 0) -> _Update:
        amp = autocast(device, mixed_precision)  # refuses fp16 off CUDA before anything changes
        trainable = set_trainable(model, cfg.params)
        optimizer = make_adam(trainable, cfg.lr)
        warmup = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                   lambda s: min(1.0, (s + 1) / max(warmup_steps, 1)))
        return cls(model, trainable, optimizer, amp,
                   torch.amp.GradScaler(device.type, enabled=mixed_precision == "fp16"), warmup)

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with self.amp:
            loss = self.model(**batch).loss
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.trainable, 1.0)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss.detach()


def finetune_checkpoint(model_dir: str | Path, lang: str, tokens: int, draw: int, output_dir: str | Path,
                        cfg: FinetuneSection, data_dir: str | Path | None = None, seed: int = 1,
                        progress: bool = True, device: str | None = None,
                        mixed_precision: str = "no") -> Path:
    """Fine-tune a checkpoint on ``tokens`` target tokens (draw ``draw``) of ``lang``; save to ``output_dir``.

    ``tokens=0`` is zero-shot: the checkpoint is saved unchanged, with the provenance of a fine-tuning run.
    ``device`` None picks the best one present (:func:`metanmt.models.device.pick_device`).
    """
    from metanmt.data import PreparedData
    from metanmt.models.seq2seq import load_checkpoint, save_checkpoint

    model, tokenizer, info = load_checkpoint(model_dir)
    model = with_finetuned_params(model, tokenizer, cfg)
    data_dir = data_dir or info.get("data_dir")
    if not data_dir:
        raise MetaNMTError(f"{model_dir} records no prepared data directory: pass --data")
    model.to(pick_device(device))  # on a GPU machine, fine-tune on the GPU
    data = PreparedData.load(data_dir)
    subset = data.finetune_subset(lang, tokens, draw)
    dev = data.pairs(lang, "dev")
    result = finetune(model, subset, dev, cfg, seed=seed + draw, progress=progress,
                      mixed_precision=mixed_precision)
    new_info = {**{k: v for k, v in info.items() if k not in ("step", "tokens")},
                "base_model": str(Path(model_dir).resolve()), "base_tokens": info.get("tokens"),
                "data_dir": str(Path(data_dir).resolve()),
                "lang": lang, "tokens": tokens, "draw": draw, "params": cfg.params,
                "finetune": {**asdict(result), "lr": cfg.lr, "warmup_steps": cfg.warmup_steps,
                             "batch_tokens": cfg.batch_tokens}}
    return save_checkpoint(model.cpu(), tokenizer, output_dir, new_info)


def finetune_user_data(model_dir: str | Path, request: UserDataRequest, output_dir: str | Path,
                       cfg: FinetuneSection, command: str = "", progress: bool = True,
                       say: Callable[[str], None] = to_stderr, device: str | None = None,
                       mixed_precision: str = "no") -> Path:
    """Fine-tune a checkpoint on the user's own pairs of any language and save a shareable HF directory:
    the decoding settings in ``generation_config.json`` and a model card ``README.md`` that says what it is.

    Everything is read and checked before training, and the checkpoint is written atomically, so bad input
    leaves ``output_dir`` untouched.
    """
    from metanmt.models.families import max_positions
    from metanmt.models.seq2seq import load_checkpoint, save_checkpoint, set_decoding
    from metanmt.train.card import model_card

    chosen = pick_device(device)
    model, tokenizer, info = load_checkpoint(model_dir)
    model = with_finetuned_params(model, tokenizer, cfg)
    data = load_user_data(tokenizer, request, max_positions(model.config), say)
    new_info = _user_info(model_dir, info, request, data, cfg, command)
    check_output_dir(output_dir, new_info["run_key"])
    result = finetune(model.to(chosen), data.train, data.dev, cfg, seed=request.seed, progress=progress,
                      mixed_precision=mixed_precision)
    new_info["finetune"] = {**asdict(result), "lr": cfg.lr, "batch_tokens": cfg.batch_tokens,
                            "mixed_precision": mixed_precision, "device": str(chosen)}
    set_decoding(model)
    return save_checkpoint(model.cpu(), tokenizer, output_dir, new_info,
                           texts={"README.md": model_card(new_info)})


def _user_info(model_dir: str | Path, info: dict[str, Any], request: UserDataRequest, data: UserData,
               cfg: FinetuneSection, command: str) -> dict[str, Any]:
    """``metanmt.json`` of a checkpoint fine-tuned on user data; ``run_key`` identifies the run's inputs."""
    held_out = f"held out of the training data (seed {request.seed})"
    dev = request.dev.describe() if request.dev.given else held_out
    record = {"train": request.train.describe(), "dev": dev, "pairs": len(data.train),
              "en_tokens": data.en_tokens,
              "sha256": data.sha256, "dev_pairs": len(data.dev), "dev_sha256": data.dev_sha256,
              "dev_overlap": data.overlap,
              "max_tokens": request.max_tokens, "seed": request.seed}
    base = str(Path(model_dir).resolve())
    run = {"base_model": base, "lang": request.lang, "data": record, "finetune_config": asdict(cfg)}
    dropped = ("step", "tokens", "draw", "data_dir", "command", "run_key")
    kept = {k: v for k, v in info.items() if k not in dropped}
    # the report groups a model by system (the base's), size and draw: the seed that drew the subset
    return {**kept, **run, "tokens": request.max_tokens or data.en_tokens, "draw": request.seed,
            "params": cfg.params, "command": command,
            "run_key": hashlib.sha256(json.dumps(run, sort_keys=True).encode()).hexdigest()}


def check_output_dir(path: str | Path, run_key: str) -> None:
    """Refuse an output directory that holds another run: only the same command re-run may replace it."""
    from metanmt.models.seq2seq import INFO_FILE

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise MetaNMTError(f"--output-dir {path} exists and is not a directory")
    if not path.exists() or not any(path.iterdir()):
        return
    try:
        info = json.loads((path / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = None
    info = info if isinstance(info, dict) else {}
    if info.get("run_key") != run_key:
        raise MetaNMTError(f"--output-dir {path} holds another run (made by: "
                           f"{info.get('command') or 'unknown'}); "
                           f"choose another directory or remove that one")


def default_device() -> str:
    """The device :func:`pick_device` takes when none is asked for, as a string (the validation uses it)."""
    return str(pick_device())
