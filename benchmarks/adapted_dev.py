"""Training-language dev BLEU after a few fine-tuning steps on that language, for any trained checkpoint.

MetaNMT's parameters are an initialisation: meta-training optimises the loss *after* one inner step on a
language's support set, so its unadapted dev BLEU (what ``metanmt experiment`` reports for the 18 training
languages) may understate what it has learned. This script gives every system the same treatment: for each
training language, fine-tune a copy of the checkpoint for each of ``--steps`` steps (the config's ``finetune``
rate and batch tokens; flat rate, no early stopping, as the in-training validation) on a random draw of about
``--tokens`` English tokens of the language's training pairs (drawn as ``metanmt prepare`` draws its
fine-tuning subsets), then decode its dev set with beam search.

    OMP_NUM_THREADS=1 python benchmarks/adapted_dev.py --config recipes/configs/offline_tatoeba.yaml \\
        --data runs/ots2/data --model runs/ots4/metanmt/last --steps 0 1 20 --output adapted_metanmt.json

One step of the config's rate on a 1,000-token batch from a fresh Adam state is MetaNMT's own inner loop
(one Adam step at ``meta.inner_lr`` on 375 support tokens) up to the batch size.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path


def adapted_scores(model, tokenizer, data, cfg, lang: str, steps: int, args) -> dict:
    """Dev BLEU/chrF of ``lang`` after ``steps`` fine-tuning steps of a copy of ``model``."""
    from metanmt.data.user_pairs import draw_subset
    from metanmt.eval.generate import translate
    from metanmt.eval.metrics import corpus_scores
    from metanmt.train.finetune import finetune

    adapted = copy.deepcopy(model)
    if steps:
        train = data.pairs(lang, "train")
        draw = train.subset(draw_subset(lang, train.tgt_text, args.tokens, args.seed))  # as `prepare` draws
        finetune(adapted, draw, None, cfg.finetune, seed=args.seed, early_stopping=False, max_steps=steps)
    dev = data.pairs(lang, "dev")
    n = min(len(dev), args.max_sentences)
    adapted.eval()
    hyps = translate(adapted, tokenizer, dev.src_text[:n], lang=lang, num_beams=cfg.eval.beam,
                     length_penalty=cfg.eval.length_penalty, progress=False)
    scores = corpus_scores(hyps, dev.tgt_text[:n])
    return {"bleu": round(scores.bleu, 2), "chrf": round(scores.chrf, 2), "sample": hyps[0]}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="training config (its finetune and eval sections)")
    p.add_argument("--data", required=True, help="prepared data directory")
    p.add_argument("--model", required=True, help="checkpoint directory (e.g. RUN/last)")
    p.add_argument("--steps", type=int, nargs="+", default=[0, 1, 20], help="fine-tuning steps to compare")
    p.add_argument("--tokens", type=int, default=4000, help="English tokens of the fine-tuning draw")
    p.add_argument("--max-sentences", type=int, default=100, help="dev sentences decoded per language")
    p.add_argument("--langs", nargs="*", help="training languages (default: all of the prepared data)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--output", required=True, help="result JSON (rewritten after every language; resumes)")
    return p.parse_args()


def main() -> None:
    import torch

    from metanmt.data import PreparedData
    from metanmt.models.seq2seq import load_checkpoint
    from metanmt.train.config import TrainConfig

    args = parse_args()
    cfg, data = TrainConfig.load(args.config), PreparedData.load(args.data)
    model, tokenizer, _ = load_checkpoint(args.model)
    torch.manual_seed(args.seed)
    out = Path(args.output)
    result = json.loads(out.read_text()) if out.is_file() else {"model": args.model, "langs": {}}
    for lang in args.langs or data.train_langs:
        rows = result["langs"].setdefault(lang, {})
        for steps in (s for s in args.steps if str(s) not in rows):
            t0 = time.perf_counter()
            rows[str(steps)] = adapted_scores(model, tokenizer, data, cfg, lang, steps, args)
            rows[str(steps)]["seconds"] = round(time.perf_counter() - t0)
            print(lang, steps, rows[str(steps)], flush=True)
        result["mean"] = {str(s): round(statistics.fmean(r[str(s)]["bleu"] for r in result["langs"].values()
                                                          if str(s) in r), 2) for s in args.steps}
        out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print("mean dev BLEU by steps:", result["mean"])


if __name__ == "__main__":
    main()
