"""Scores on the validation languages (the config's valid tasks, ro/lv in the paper's split): model
selection during training, and the fine-tuning learning rate of each system.

The test languages never enter here. A fixed fine-tuning rate would favour one system: MetaNMT is trained
for exactly its inner loop's step, while a multilingual model's first Adam steps at that rate can undo what
it knows (all 36 MultiNMT fine-tunes of benchmarks/offline_tatoeba kept their step-0 weights). So each
system gets the rate from ``finetune.lr_grid`` that adapts it best to the validation languages, as Gu et
al. (2018) tune on ro/lv.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import torch

from metanmt.train.config import FinetuneSection, TrainConfig


def selection_key(scores: dict[str, float]) -> tuple[float, float]:
    """What "better on the validation languages" means: mean chrF, BLEU breaking ties. Below a few BLEU
    points BLEU differences are noise (benchmarks/offline_tatoeba: BLEU 0.7 at 1.8M tokens beat 0.5 at 5.7M,
    when chrF rose from 8.2 to 10.9 and the source gap doubled); chrF moves with what the model learns."""
    return scores["chrf_mean"], scores["mean"]


def validate(model, tokenizer, data, cfg: TrainConfig, seed: int) -> dict[str, float]:
    """Post-adaptation validation BLEU (and chrF): fine-tune a copy on each validation language's smallest
    non-empty fine-tuning subset for ``finetune.valid_steps`` steps, then decode part of its dev set."""
    sizes = [s for s in data.finetune_sizes if s > 0]
    with torch.random.fork_rng():  # validation must not shift the training run's random stream
        return adapted_scores(model, tokenizer, data, cfg, cfg.finetune, sizes[0] if sizes else 0, seed,
                              early_stopping=False)


def adapted_scores(model, tokenizer, data, cfg: TrainConfig, ft: FinetuneSection, size: int, seed: int,
                   early_stopping: bool) -> dict[str, float]:
    """Dev BLEU/chrF of each validation language after fine-tuning a copy of ``model`` with ``ft`` on
    draw 0 of its ``size``-token subset; plus their means (``mean``, ``chrf_mean``)."""
    from metanmt.eval.generate import translate
    from metanmt.eval.metrics import corpus_scores
    from metanmt.train.finetune import finetune

    per_lang = {}
    for lang in data.valid_langs:
        adapted = copy.deepcopy(model)
        dev = data.pairs(lang, "dev")
        if size:
            finetune(adapted, data.finetune_subset(lang, size, 0), dev if early_stopping else None, ft,
                     seed=seed, early_stopping=early_stopping,
                     max_steps=None if early_stopping else ft.valid_steps)
        n = min(len(dev), cfg.eval.valid_sentences)
        adapted.eval()
        hyps = translate(adapted, tokenizer, dev.src_text[:n], lang=lang, num_beams=cfg.eval.valid_beam,
                         progress=False)
        per_lang[lang] = corpus_scores(hyps, dev.tgt_text[:n])
    n = max(len(per_lang), 1)
    scores: dict[str, float] = {lang: round(s.bleu, 3) for lang, s in per_lang.items()}
    scores["mean"] = round(sum(s.bleu for s in per_lang.values()) / n, 3)
    scores["chrf_mean"] = round(sum(s.chrf for s in per_lang.values()) / n, 3)
    return scores


def choose_finetune_lr(model_dir: str | Path, data, cfg: TrainConfig, out_file: str | Path) -> float:
    """The rate of ``finetune.lr_grid`` with the best mean validation chrF (BLEU breaks ties; see
    ``trainer.improves``) after
    fine-tuning, with early stopping as the test runs do, on ``finetune.tune_tokens`` tokens of each
    validation language. Without a grid: ``finetune.lr``. The choice and every score go to ``out_file``
    (reused when it holds the same grid and size)."""
    from metanmt.atomic import write_text_atomic
    from metanmt.models.seq2seq import load_checkpoint
    from metanmt.train.finetune import default_device

    ft = cfg.finetune
    if not ft.lr_grid:
        return ft.lr
    out_file = Path(out_file)
    asked = {"grid": list(ft.lr_grid), "tokens": ft.tune_tokens, "langs": list(data.valid_langs)}
    if out_file.is_file():
        done = json.loads(out_file.read_text(encoding="utf-8"))
        if {k: done.get(k) for k in asked} == asked:
            return done["lr"]
    model, tokenizer, _ = load_checkpoint(model_dir)
    model.to(default_device())
    scores = {lr: adapted_scores(model, tokenizer, data, cfg, dataclasses.replace(ft, lr=lr), ft.tune_tokens,
                                 cfg.train.seed, early_stopping=True) for lr in ft.lr_grid}
    best = max(ft.lr_grid, key=lambda lr: selection_key(scores[lr]))
    record = {**asked, "lr": best, "scores": {str(lr): s for lr, s in scores.items()}}
    write_text_atomic(out_file, json.dumps(record, indent=2) + "\n")
    print(f"fine-tuning lr for {model_dir}: {best} (validation chrF by lr: "
          f"{ {lr: s['chrf_mean'] for lr, s in scores.items()} })", flush=True)
    return best
