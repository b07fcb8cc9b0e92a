"""One training loop, read top to bottom, for MetaNMT, the baseline MultiNMT and MultiNMT+MetaNMT.

All systems see the same 18 tasks with the same sampling, process the same number of target tokens
(``train.steps`` meta-steps define the budget), are validated the same way (fine-tune on each validation
language's support subset, BLEU on its dev set) and keep the best checkpoint in ``OUT/best``.
``OUT/last`` holds the latest checkpoint plus the training state, so re-running the same command resumes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metanmt.atomic import write_text_atomic
from metanmt.errors import MetaNMTError
from metanmt.memory import allocator_in_use, bound_heap
from metanmt.progress import progress_bar
from metanmt.registry import lookup
from metanmt.train.config import TrainConfig
from metanmt.train.steps import STEPS, SystemStep, tokens_per_step

# Settings a resumed run may change: the learning-rate schedule does not depend on the number of steps,
# so raising ``train.steps`` continues a finished run on the schedule it would have had from the start.
# ``train.pretrain_share`` reaches a multimeta run through its ``init_from`` and budget, both fingerprinted;
# the fine-tuning rate grid, warm-up, step cap and early stopping shape the held-out fine-tunes only, never
# the in-training validation (``finetune.valid_steps`` at ``finetune.lr``); the allocator setting changes
# memory, not numbers; the chunked loss, MAML's recomputed inner steps and micro-batches memory and rounding.
# A run directory is checked against the config it recorded, with the list as it is now
# (``_recorded_fingerprint``): adding a setting here never orphans an existing run.
RESUME_FREE = ("eval", "train.steps", "train.pretrain_share", "train.bound_heap", "meta.chunked_loss",
               "meta.recompute", "meta.micro_batches", "meta.keep_pieces", "finetune.lr_grid",
               "finetune.tune_tokens", "finetune.warmup_steps", "finetune.max_steps", "finetune.eval_every",
               "finetune.patience")
LORA_ONLY = ("meta.lora", "meta.outer_params")  # settings that change nothing in a run without LoRA
STATE_FILE = "training_state.pt"


def train(config: TrainConfig, data_dir: str | Path, output_dir: str | Path, system: str = "metanmt",
          progress: bool = True, callbacks: Sequence[Callable[[dict], None]] = ()) -> Path:
    """Train ``system`` and return the path of its best checkpoint.

    ``callbacks`` are called with each step's log record, after that step's checkpoint (if any) is saved.
    With ``train.bound_heap`` large tensors are kept out of glibc's heap (:func:`metanmt.memory.bound_heap`):
    memory stays flat, at a CPU cost.
    """
    if config.train.bound_heap:
        bound_heap()
    run = _Run.start(config, data_dir, Path(output_dir), system)
    budget = config.train.steps * tokens_per_step(config.meta)  # target tokens, the same for both systems
    bar = progress_bar(total=budget, initial=run.state["tokens"], unit="tok", unit_scale=True, desc=system,
                       disable=not (progress and run.accelerator.is_main_process))
    last_bleu, t0, tokens_at_t0 = None, time.perf_counter(), run.state["tokens"]
    share = pretrain_tokens(config) if run.system.hands_over else None
    while run.state["tokens"] < budget:
        record, step_tokens = run.train_step()
        if share is not None and run.state["tokens"] - step_tokens < share <= run.state["tokens"]:
            run.save_model(pretrained_checkpoint(run.out, config))  # where multimeta starts
        bar.update(step_tokens)
        done = run.state["tokens"] >= budget
        if run.state["step"] % config.train.eval_every == 0 or done:
            last_bleu = run.validate(record)
        elapsed = time.perf_counter() - t0
        record["tokens_per_s"] = round((run.state["tokens"] - tokens_at_t0) / max(elapsed, 1e-9), 1)
        bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_s']:.0f}",
                        bleu="-" if last_bleu is None else f"{last_bleu:.2f}")
        run.log(record)
        if run.state["step"] % config.train.save_every == 0 or done:
            run.save_state()
        for callback in callbacks:
            callback(record)
    bar.close()
    if not (run.out / "best").exists():
        raise MetaNMTError(f"{run.out}: training ended without a validation checkpoint")
    return run.out / "best"


@dataclass
class _Run:
    """One training run: the model, its system's step, the counters and random streams that resume."""

    cfg: TrainConfig
    out: Path
    accelerator: Any
    data: Any
    model: torch.nn.Module
    tokenizer: Any
    system: SystemStep
    run_info: dict[str, Any]
    gap_pairs: list  # the source-gap diagnostic's held-out set
    rng: np.random.Generator  # per-process task/batch sampling
    state: dict[str, Any] = field(default_factory=lambda: {"step": 0, "tokens": 0, "best_bleu": -1.0,
                                                           "best_chrf": -1.0, "best_step": 0})

    @classmethod
    def start(cls, cfg: TrainConfig, data_dir: str | Path, out: Path, system: str) -> _Run:
        """Check the run directory, build the model and the system's step, and resume from ``out/last``."""
        from accelerate import Accelerator

        from metanmt.data import PreparedData
        from metanmt.eval.diagnostics import held_out_sample
        from metanmt.models.device import pick_device

        step_class = lookup(STEPS, system, "system")
        # accelerate picks the accelerator (CUDA, MPS, ...); on a CPU-only machine it must be told, or
        # processes started by torchrun do not form a MULTI_CPU group and each believes it is the only one
        accelerator = Accelerator(mixed_precision=cfg.train.mixed_precision, cpu=pick_device().type == "cpu")
        if cfg.meta.meta_batch % accelerator.num_processes:
            raise MetaNMTError(f"meta.meta_batch={cfg.meta.meta_batch} must be divisible by the "
                               f"{accelerator.num_processes} processes")
        data = PreparedData.load(data_dir)
        run_info = _run_info(cfg, data, data_dir, system)
        _check_output_dir(out, run_info, accelerator.is_main_process)
        torch.manual_seed(cfg.train.seed)  # same initial weights on every process
        model, tokenizer = _initial_model(cfg, data)
        model.to(accelerator.device).train()
        tasks = {lang: data.pairs(lang, "train") for lang in data.train_langs}
        gap_pairs = held_out_sample(data)
        step = step_class(model, tasks, cfg, accelerator)
        rng = np.random.default_rng([cfg.train.seed, accelerator.process_index])
        run = cls(cfg, out, accelerator, data, model, tokenizer, step, run_info, gap_pairs, rng)
        run.resume()
        return run

    def resume(self) -> None:
        """Continue from ``out/last`` when it holds a training state; then start the system's step there."""
        last = self.out / "last"
        if (last / STATE_FILE).is_file():
            self.state = _load_state(last, self.model, self.system.optimizer, self.system.scheduler, self.rng,
                                     self.accelerator.process_index)
            if self.accelerator.is_main_process:
                print(f"resuming {self.run_info['system']} from {last} at step {self.state['step']} "
                      f"({self.state['tokens']} tokens)")
        self.system.start(self.rng, self.state["step"])

    def train_step(self) -> tuple[dict[str, Any], int]:
        """One step of the system: its log record, and the target tokens it took on all processes."""
        accelerator, state = self.accelerator, self.state
        state["step"] += 1
        loss, n_tokens = self.system.step()
        step_tokens = int(accelerator.reduce(torch.tensor(n_tokens, device=accelerator.device), "sum"))
        state["tokens"] += step_tokens
        record = {"step": state["step"], "tokens": state["tokens"], "loss": round(loss, 5),
                  "lr": self.system.scheduler.get_last_lr()[0]}
        return record, step_tokens

    def validate(self, record: dict[str, Any]) -> float | None:
        """Validation BLEU and the source gap into ``record`` (main process); the best model is saved."""
        from metanmt.eval.diagnostics import source_gap
        from metanmt.train.validation import validate

        bleu = None
        if self.accelerator.is_main_process:
            scores = validate(self.model, self.tokenizer, self.data, self.cfg, seed=self.cfg.train.seed)
            record.update(valid_bleu=scores, source_gap=source_gap(self.model, self.gap_pairs),
                          allocator=allocator_in_use())  # what memory and speed figures depend on
            bleu = scores["mean"]
            if improves(scores, self.state):
                self.state.update(best_bleu=bleu, best_chrf=scores["chrf_mean"], best_step=self.state["step"])
                _save(self.model, self.tokenizer, self.out / "best", {**self.run_info, **self.state})
        self.accelerator.wait_for_everyone()
        return bleu

    def save_model(self, path: Path) -> None:
        if self.accelerator.is_main_process:
            _save(self.model, self.tokenizer, path, {**self.run_info, **self.state})
        self.accelerator.wait_for_everyone()

    def log(self, record: dict[str, Any]) -> None:
        if self.accelerator.is_main_process:
            with open(self.out / "train_log.jsonl", "a", encoding="utf-8") as log:
                log.write(json.dumps(record) + "\n")

    def save_state(self) -> None:
        system = self.system
        _save_state(self.out / "last", self.model, self.tokenizer, system.optimizer, system.scheduler,
                    self.rng, self.state, self.run_info, self.accelerator)


def _run_info(cfg: TrainConfig, data, data_dir: str | Path, system: str) -> dict[str, Any]:
    """What ``run.json`` and every checkpoint record of the run: a resumed run must match it."""
    meta_learns = lookup(STEPS, system, "system").meta_learns
    return {"system": system, "algorithm": cfg.meta.algorithm if meta_learns else None,
            "data_dir": str(Path(data_dir).resolve()), "config": cfg.to_dict(),
            "fingerprint": run_fingerprint(cfg), "data_fingerprint": data.manifest.get("cache_key")}


def pretrain_tokens(cfg: TrainConfig) -> int:
    """Target tokens of ``train.pretrain_share`` of the budget: where multimeta leaves MultiNMT."""
    return cfg.train.pretrain_steps() * tokens_per_step(cfg.meta)


def pretrained_checkpoint(multinmt_run: Path, cfg: TrainConfig) -> Path:
    """The MultiNMT run's checkpoint at ``train.pretrain_share`` of the budget (saved as it passes there)."""
    return multinmt_run / f"tokens_{pretrain_tokens(cfg)}"


def system_config(cfg: TrainConfig, system: str, multinmt_run: Path) -> TrainConfig:
    """The config ``system`` trains with: multimeta meta-learns from the MultiNMT run's checkpoint at
    ``train.pretrain_share`` of the budget for the rest of it, so all systems process the same tokens."""
    import dataclasses

    if not lookup(STEPS, system, "system").starts_from_multinmt:
        return cfg
    init = pretrained_checkpoint(multinmt_run, cfg)
    if not (init / "config.json").is_file():
        raise MetaNMTError(f"multimeta starts from {init}, which the multinmt run writes as it passes "
                           f"{pretrain_tokens(cfg)} target tokens: train multinmt first")
    tc = cfg.train
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, init_from=str(init.resolve())),
                               train=dataclasses.replace(tc, steps=tc.steps - tc.pretrain_steps()))


def run_fingerprint(cfg: TrainConfig) -> str:
    """What a resumed run must share with the run in its directory (settings it does not use left out)."""
    return cfg.fingerprint(*RESUME_FREE, *(() if cfg.meta.uses_lora else LORA_ONLY))


def improves(scores: dict[str, float], state: dict[str, Any]) -> bool:
    """Model selection: a checkpoint replaces the best one if its validation scores rank higher."""
    from metanmt.train.validation import selection_key

    return selection_key(scores) > (state.get("best_chrf", -1.0), state["best_bleu"])


# ---------------------------------------------------------------------------- helpers
def _initial_model(cfg: TrainConfig, data):
    """The model training starts from: random weights over the prepared SentencePiece model, or the
    pretrained ``model.init_from`` (which must use the prepared data's tokenizer); with LoRA adapters when
    ``meta.fast_params`` is ``lora`` (both systems: the baseline trains what the outer loop trains)."""
    from metanmt.models.lora import add_lora
    from metanmt.models.seq2seq import build_model, build_tokenizer, load_checkpoint

    if cfg.model.init_from:
        model, tokenizer, _ = load_checkpoint(cfg.model.init_from)
        _check_same_pieces(tokenizer, data, cfg.model.init_from)
    elif data.pretrained_tokenizer:
        raise MetaNMTError(f"{data.root} was encoded with the tokenizer of "
                           f"{data.pretrained_tokenizer['from_pretrained']}: set model.init_from "
                           "(--init-from) to a model that uses it")
    else:
        tokenizer = build_tokenizer(data.spm_path)
        model = build_model(cfg.model.preset, data.vocab_size, dropout=cfg.model.dropout, norm=cfg.model.norm,
                            init_std=cfg.model.init_std)
    if cfg.meta.uses_lora:
        model = add_lora(model, cfg.meta.lora, tokenizer, train_base=cfg.meta.outer_params == "all")
    return model, tokenizer


def _check_same_pieces(tokenizer, data, init_from: str) -> None:
    """The ids of the prepared data must mean the same pieces to the model. Data encoded with a pretrained
    tokenizer records its identity; for metanmt's own SentencePiece model equal vocabulary sizes are not
    enough: two SentencePiece models map different pieces to the same ids."""
    import hashlib

    import sentencepiece as spm

    from metanmt.models.families import tokenizer_identity

    if data.pretrained_tokenizer:
        theirs, ours = tokenizer_identity(tokenizer), data.pretrained_tokenizer["identity"]
        if theirs != ours:
            raise MetaNMTError(f"--init-from {init_from}: its tokenizer (identity {theirs}) is not the one "
                               f"{data.root} was encoded with "
                               f"({data.pretrained_tokenizer['from_pretrained']}, "
                               f"identity {ours}); prepare the data with data.tokenizer.from_pretrained: "
                               f"{init_from}")
        return
    if len(tokenizer) != data.vocab_size:
        raise MetaNMTError(f"--init-from {init_from}: vocabulary {len(tokenizer)} does not match the "
                           f"prepared data's {data.vocab_size}")
    sp = spm.SentencePieceProcessor(model_file=str(data.spm_path))
    ours = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    theirs = sorted(tokenizer.get_vocab(), key=tokenizer.get_vocab().get)[:len(ours)]
    if ours != theirs:
        digest = [hashlib.sha256("\n".join(p).encode()).hexdigest()[:12] for p in (theirs, ours)]
        raise MetaNMTError(f"--init-from {init_from}: its tokenizer (pieces {digest[0]}) is not the prepared "
                           f"data's SentencePiece model {data.spm_path} (pieces {digest[1]}); prepare the "
                           "data with the checkpoint's tokenizer or start from random weights")


def _check_output_dir(out: Path, run_info: dict, is_main: bool) -> None:
    """Refuse to resume a directory that another config or system wrote."""
    info_file = out / "run.json"
    if info_file.is_file():
        old = json.loads(info_file.read_text(encoding="utf-8"))
        old["fingerprint"] = _recorded_fingerprint(old)
        for key in ("system", "fingerprint", "data_fingerprint"):
            if old.get(key) != run_info.get(key):
                raise MetaNMTError(f"{out} holds a {old.get('system')} run with a different {key} "
                                   f"({old.get(key)} != {run_info.get(key)}); use another --output-dir")
    elif is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(info_file, json.dumps(run_info, indent=2))


def _recorded_fingerprint(run_info: dict) -> str | None:
    """The fingerprint of the config a run directory recorded, under today's ``RESUME_FREE``; the stored one
    where that config cannot be read back (a run of an older layout)."""
    try:
        return run_fingerprint(TrainConfig.from_dict(run_info["config"]))
    except (KeyError, TypeError, MetaNMTError):
        return run_info.get("fingerprint")


def _save(model, tokenizer, path: Path, info: dict, extra_files: dict | None = None) -> None:
    from metanmt.models.seq2seq import save_checkpoint

    save_checkpoint(model, tokenizer, path, {k: v for k, v in info.items() if k != "config"}, extra_files)


def _save_state(path: Path, model, tokenizer, optimizer, scheduler, rng, state, run_info,
                accelerator) -> None:
    """The resumable checkpoint: weights, optimizer, scheduler, step/token counters and every RNG."""
    from accelerate.utils import gather_object

    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None  # dropout on the GPU
    rngs = [(rng.bit_generator.state, torch.get_rng_state(), cuda)]
    rngs = gather_object(rngs) if accelerator.num_processes > 1 else rngs
    if accelerator.is_main_process:
        training_state = {"state": dict(state), "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict(), "rngs": rngs}
        _save(model, tokenizer, path, {**run_info, **state}, {STATE_FILE: training_state})
    accelerator.wait_for_everyone()


def _load_state(path: Path, model, optimizer, scheduler, rng, rank: int) -> dict:
    from metanmt.models.seq2seq import load_checkpoint

    try:
        saved, _, _ = load_checkpoint(path)
        training_state = torch.load(path / STATE_FILE, weights_only=False)
    except MetaNMTError:
        raise
    except Exception as err:
        raise MetaNMTError(f"corrupt training state in {path}: {type(err).__name__}: {err}") from err
    missing = model.load_state_dict(saved.state_dict(), strict=False)
    if missing.missing_keys or missing.unexpected_keys:
        raise MetaNMTError(f"checkpoint {path} does not match the configured model: {missing}")
    optimizer.load_state_dict(training_state["optimizer"])
    scheduler.load_state_dict(training_state["scheduler"])
    rngs = training_state["rngs"]
    if rank >= len(rngs):
        raise MetaNMTError(f"{path} was written by {len(rngs)} process(es); resume with the same number")
    rng.bit_generator.state = rngs[rank][0]
    torch.set_rng_state(rngs[rank][1])
    cuda = rngs[rank][2] if len(rngs[rank]) > 2 else None  # older checkpoints saved the CPU state only
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    return dict(training_state["state"])

