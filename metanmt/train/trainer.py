"""Meta-training (MetaNMT) and the multilingual baseline (MultiNMT) in one loop, read top to bottom.

Both systems see the same 18 tasks with the same sampling, process the same number of target tokens
(``train.steps`` meta-steps define the budget), are validated the same way (fine-tune on each validation
language's support subset, BLEU on its dev set) and keep the best checkpoint in ``OUT/best``.
``OUT/last`` holds the latest checkpoint plus the training state, so re-running the same command resumes.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metanmt.errors import MetaNMTError
from metanmt.train.config import SYSTEMS, TrainConfig

# Settings a resumed run may change: the learning-rate schedule does not depend on the number of steps,
# so raising ``train.steps`` continues a finished run on the schedule it would have had from the start.
RESUME_FREE = ("eval", "train.steps", "finetune.lr_grid", "finetune.tune_tokens")
STATE_FILE = "training_state.pt"


def train(config: TrainConfig, data_dir: str | Path, output_dir: str | Path, system: str = "metanmt",
          progress: bool = True, callbacks: Sequence[Callable[[dict], None]] = ()) -> Path:
    """Train ``system`` and return the path of its best checkpoint.

    ``callbacks`` are called with each step's log record, after that step's checkpoint (if any) is saved.
    """
    from accelerate import Accelerator

    from metanmt.data import PreparedData
    from metanmt.eval.diagnostics import held_out_sample, source_gap
    from metanmt.meta import MetaLearner
    from metanmt.progress import progress_bar
    from metanmt.tasks.translation import TaskSampler, TranslationTask, multilingual_batches, seq2seq_loss
    from metanmt.train.validation import validate

    if system not in SYSTEMS:
        raise MetaNMTError(f"unknown system {system!r}; choose one of {', '.join(SYSTEMS)}")
    cfg, mc, tc = config, config.meta, config.train
    out = Path(output_dir)
    # accelerate picks the device (CUDA, MPS, CPU)
    accelerator = Accelerator(mixed_precision=tc.mixed_precision)
    rank, world = accelerator.process_index, accelerator.num_processes
    if mc.meta_batch % world:
        raise MetaNMTError(f"meta.meta_batch={mc.meta_batch} must be divisible by the {world} processes")
    data = PreparedData.load(data_dir)
    run_info = {"system": system, "algorithm": mc.algorithm if system == "metanmt" else None,
                "data_dir": str(Path(data_dir).resolve()), "config": cfg.to_dict(),
                "fingerprint": cfg.fingerprint(*RESUME_FREE),
                "data_fingerprint": data.manifest.get("cache_key")}
    _check_output_dir(out, run_info, accelerator.is_main_process)

    # ---- model, tokenizer, tasks
    torch.manual_seed(tc.seed)  # same initial weights on every process
    model, tokenizer = _initial_model(cfg, data)
    model.to(accelerator.device).train()
    tasks = {lang: data.pairs(lang, "train") for lang in data.train_langs}
    gap_pairs = held_out_sample(data)  # the source-gap diagnostic's held-out set
    sampler = TaskSampler({lang: len(p) for lang, p in tasks.items()}, tc.temperature)
    tokens_per_step = mc.meta_batch * (mc.inner_steps * mc.support_tokens + mc.query_tokens)
    budget = tc.steps * tokens_per_step  # target tokens, the same for both systems

    if system == "metanmt":
        learner = MetaLearner(model, seq2seq_loss, mc.core_config(tc.grad_clip), accelerator=accelerator)
        task_objs = {lang: TranslationTask(lang, pairs) for lang, pairs in tasks.items()}
        trainable = list(learner.parameters())
    else:
        trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=tc.lr, betas=(0.9, 0.98))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _inverse_sqrt(s, tc.warmup_steps))
    if system == "multinmt":
        ddp_model, optimizer = accelerator.prepare(model, optimizer)

    # ---- resume
    state = {"step": 0, "tokens": 0, "best_bleu": -1.0, "best_chrf": -1.0, "best_step": 0}
    rng = np.random.default_rng([tc.seed, rank])  # per-process task/batch sampling
    last = out / "last"
    if (last / STATE_FILE).is_file():
        state = _load_state(last, model, optimizer, scheduler, rng, rank)
        if accelerator.is_main_process:
            print(f"resuming {system} from {last} at step {state['step']} ({state['tokens']} tokens)")
    if system == "multinmt":  # its own stream, replayed up to the resumed step (it buffers shuffled passes)
        batches = multilingual_batches(tasks, tc.temperature, tokens_per_step // world,
                                       np.random.default_rng([tc.seed, rank, 1]))
        for _ in range(state["step"]):
            next(batches)

    # ---- the loop
    bar = progress_bar(total=budget, initial=state["tokens"], unit="tok", unit_scale=True, desc=system,
               disable=not (progress and accelerator.is_main_process))
    last_bleu, t0, tokens_at_t0 = None, time.perf_counter(), state["tokens"]
    while state["tokens"] < budget:
        state["step"] += 1
        if system == "metanmt":
            langs = sampler.sample(rng, mc.meta_batch // world)
            episodes = [task_objs[lang].episode(rng, mc.support_tokens, mc.query_tokens) for lang in langs]
            loss = learner.meta_step(episodes, optimizer).loss
            n_tokens = sum(mc.inner_steps * _target_tokens(e.support) + _target_tokens(e.query)
                           for e in episodes)
        else:
            _, batch = next(batches)
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            with accelerator.autocast():
                loss_t = ddp_model(**batch).loss
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss_t)
            accelerator.clip_grad_norm_(ddp_model.parameters(), tc.grad_clip)
            optimizer.step()
            loss = float(accelerator.reduce(loss_t.detach(), reduction="mean"))
            n_tokens = _target_tokens(batch)
        scheduler.step()
        step_tokens = int(accelerator.reduce(torch.tensor(n_tokens, device=accelerator.device), "sum"))
        state["tokens"] += step_tokens
        bar.update(step_tokens)
        done = state["tokens"] >= budget
        record: dict[str, Any] = {"step": state["step"], "tokens": state["tokens"], "loss": round(loss, 5),
                                  "lr": scheduler.get_last_lr()[0]}
        if state["step"] % tc.eval_every == 0 or done:
            if accelerator.is_main_process:
                bleu = validate(model, tokenizer, data, cfg, seed=tc.seed)
                record.update(valid_bleu=bleu, source_gap=source_gap(model, gap_pairs))
                last_bleu = bleu["mean"]
                if improves(bleu, state):
                    state.update(best_bleu=last_bleu, best_chrf=bleu["chrf_mean"], best_step=state["step"])
                    _save(model, tokenizer, out / "best", {**run_info, **state})
            accelerator.wait_for_everyone()
        elapsed = time.perf_counter() - t0
        record["tokens_per_s"] = round((state["tokens"] - tokens_at_t0) / max(elapsed, 1e-9), 1)
        bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{record['tokens_per_s']:.0f}",
                        bleu="-" if last_bleu is None else f"{last_bleu:.2f}")
        if accelerator.is_main_process:
            with open(out / "train_log.jsonl", "a", encoding="utf-8") as log:
                log.write(json.dumps(record) + "\n")
        if state["step"] % tc.save_every == 0 or done:
            _save_state(out / "last", model, tokenizer, optimizer, scheduler, rng, state, run_info,
                        accelerator)
        for callback in callbacks:
            callback(record)
    bar.close()
    if not (out / "best").exists():
        raise MetaNMTError(f"{out}: training ended without a validation checkpoint")
    return out / "best"


def improves(scores: dict[str, float], state: dict[str, Any]) -> bool:
    """Model selection: higher mean validation BLEU; chrF breaks ties (early in training every BLEU is 0,
    and a model that outputs nothing must not win the tie)."""
    return (scores["mean"], scores["chrf_mean"]) > (state["best_bleu"], state.get("best_chrf", -1.0))


# ---------------------------------------------------------------------------- helpers
def _inverse_sqrt(step: int, warmup: int) -> float:
    step = max(step, 1)
    return min(step / max(warmup, 1), math.sqrt(max(warmup, 1) / step))


def _target_tokens(batch: dict[str, torch.Tensor]) -> int:
    return int((batch["labels"] != -100).sum())


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
        for key in ("system", "fingerprint", "data_fingerprint"):
            if old.get(key) != run_info.get(key):
                raise MetaNMTError(f"{out} holds a {old.get('system')} run with a different {key} "
                                   f"({old.get(key)} != {run_info.get(key)}); use another --output-dir")
    elif is_main:
        out.mkdir(parents=True, exist_ok=True)
        info_file.write_text(json.dumps(run_info, indent=2), encoding="utf-8")


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

