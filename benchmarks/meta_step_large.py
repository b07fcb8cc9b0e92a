"""One meta-step on a pretrained-size model: plain training vs FOMAML vs MAML, full-parameter and LoRA.

Model: a randomly initialised M2M-100 (``M2M100ForConditionalGeneration``) of d_model 512, 6+6 layers, 8
heads, FFN 2048, the M2M-100 vocabulary of 128,112 pieces with tied embeddings: 110M parameters (``--small``:
d_model 128, 2+2 layers, 4 heads, FFN 512, vocabulary 8,000, for a quick check on a busy machine). Meta-batch:
4 tasks, each a support and a query batch of ``--tokens`` target tokens (80 sentences x 25 tokens at 2,000),
one inner step of the differentiable Adam (lr 1e-3; ``--inner-steps``), as metanmt meta-trains. The plain step
trains all weights on the same 8 batches with gradient accumulation (one batch's activations at a time, as the
meta-step holds one task's). LoRA: rank 16, alpha 32 on q_proj and v_proj (the family default of
metanmt.models.families); the inner loop adapts the adapters and the outer loop trains them
(``meta.outer_params: adapters``).

Every method computes its cross-entropy the same way: ``--loss chunked`` (the default; metanmt's chunked,
twice-differentiable loss, as ``meta.chunked_loss`` trains) or ``--loss hf`` (HF's, over the whole
[tokens, vocabulary] logits). Layer-drop is off, so every step runs every layer.

Each method runs in its own process, so its peak memory is its own: peak RSS on a CPU,
``torch.cuda.max_memory_allocated`` on a GPU. Synthetic token ids: the cost of a step does not depend on them.

    python benchmarks/meta_step_large.py                      # writes benchmarks/meta_step_large.json
    python benchmarks/meta_step_large.py --loss hf            # the same with HF's loss
    python benchmarks/meta_step_large.py --small --steps 1    # a quick check
    python benchmarks/meta_step_large.py --recompute          # MAML rows with MetaConfig.recompute
    python benchmarks/meta_step_large.py --recompute --micro-batches 4   # every batch in 4 pieces, plain too
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

METHODS = ("plain", "fomaml", "maml", "fomaml-lora", "maml-lora")
SIZES = {
    "full": {"d_model": 512, "encoder_layers": 6, "decoder_layers": 6, "encoder_attention_heads": 8,
             "decoder_attention_heads": 8, "encoder_ffn_dim": 2048, "decoder_ffn_dim": 2048,
             "vocab_size": 128112},
    "small": {"d_model": 128, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
              "decoder_attention_heads": 4, "encoder_ffn_dim": 512, "decoder_ffn_dim": 512,
              "vocab_size": 8000},
}
LENGTH, TASKS = 25, 4


def build(size: str, device: str):
    from transformers import M2M100Config, M2M100ForConditionalGeneration

    torch.manual_seed(0)
    config = M2M100Config(**SIZES[size], max_position_embeddings=256, dropout=0.1, encoder_layerdrop=0.0,
                          decoder_layerdrop=0.0, pad_token_id=1,
                          eos_token_id=2, decoder_start_token_id=2)
    return M2M100ForConditionalGeneration(config).to(device).train()


def batches(size: str, tokens: int, device: str) -> list[dict[str, torch.Tensor]]:
    """Support and query batches of every task: ``tokens`` target tokens each (sentences x LENGTH)."""
    vocab = SIZES[size]["vocab_size"]
    shape = (max(1, tokens // LENGTH), LENGTH)
    out = []
    for _ in range(2 * TASKS):
        ids = torch.randint(3, vocab, shape)
        out.append({"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device),
                    "labels": torch.randint(3, vocab, shape).to(device)})
    return out


def loss_function(model, loss: str):
    """HF's seq2seq cross-entropy, or the chunked one (metanmt.models.chunked_loss): the same loss."""
    from metanmt.models.chunked_loss import ChunkedSeq2SeqLoss
    from metanmt.tasks.translation import seq2seq_loss

    return ChunkedSeq2SeqLoss(model) if loss == "chunked" else seq2seq_loss


def plain_step(model, data, opts: argparse.Namespace):
    """All weights on the 8 batches with gradient accumulation, each batch in ``--micro-batches`` pieces
    weighted by their target tokens (the pieces the meta-learning rows cut)."""
    from metanmt.meta.micro import split_batch
    from metanmt.tasks.translation import target_tokens

    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    loss_fn = loss_function(model, opts.loss)

    def step():
        optimizer.zero_grad(set_to_none=True)
        for batch in data:
            for piece, weight in split_batch(batch, opts.micro_batches, target_tokens):
                (loss_fn(model, piece) * weight / len(data)).backward()
        optimizer.step()
    return step


def meta_step(model, data, method: str, opts: argparse.Namespace):
    from metanmt.meta import Episode, MetaConfig, MetaLearner
    from metanmt.models.lora import LORA_PATTERNS, LoraSettings, add_lora

    lora = method.endswith("-lora")
    if lora:
        model = add_lora(model, LoraSettings(r=16, alpha=32, target_modules=["q_proj", "v_proj"]), None)
    algorithm = method.removesuffix("-lora")
    from metanmt.tasks.translation import target_tokens

    config = MetaConfig(algorithm=algorithm, inner_steps=opts.inner_steps, inner_lr=1e-3,
                        inner_optimizer="adam", fast_params=LORA_PATTERNS if lora else ("*",),
                        recompute=opts.recompute and algorithm == "maml", micro_batches=opts.micro_batches,
                        keep_pieces=opts.keep_pieces if opts.recompute and algorithm == "maml" else 0)
    learner = MetaLearner(model, loss_function(model, opts.loss), config, batch_weight=target_tokens)
    optimizer = torch.optim.Adam([p for p in learner.parameters() if p.requires_grad], lr=1e-4)
    episodes = [Episode(support=data[2 * i], query=data[2 * i + 1]) for i in range(TASKS)]
    return lambda: learner.meta_step(episodes, optimizer)


def run_one(method: str, size: str, tokens: int, opts: argparse.Namespace) -> dict:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, data = build(size, device), batches(size, tokens, device)
    params = sum(p.numel() for p in model.parameters())
    step = plain_step(model, data, opts) if method == "plain" else meta_step(model, data, method, opts)
    times = []
    for i in range(opts.warmup + opts.steps):
        t0 = time.perf_counter()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= opts.warmup:
            times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"method": method, "loss": opts.loss, "recompute": opts.recompute and method.startswith("maml"),
            "inner_steps": 0 if method == "plain" else opts.inner_steps, "micro_batches": opts.micro_batches,
            "keep_pieces": opts.keep_pieces if opts.recompute and method.startswith("maml") else 0,
            "ms_per_step": round(1000 * statistics.median(times), 1),
            "peak_mb": round(peak / 2**20, 1),
            "peak_kind": "cuda_max_allocated" if device == "cuda" else "rss",
            "params": params, "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "steps": opts.steps, "threads": torch.get_num_threads(), "device": device}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="the small model and 500-token batches")
    parser.add_argument("--tokens", type=int, help="target tokens per support/query batch (default 2000)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--loss", choices=("hf", "chunked"), default="chunked",
                        help="every method's cross-entropy: HF's (the [tokens, vocabulary] logits) or "
                             "chunked (metanmt.models.chunked_loss, as meta.chunked_loss trains)")
    parser.add_argument("--recompute", action="store_true",
                        help="MAML rows recompute each inner step in their backward sweep "
                             "(MetaConfig.recompute)")
    parser.add_argument("--inner-steps", type=int, default=1, help="inner steps of the meta-learning rows")
    parser.add_argument("--micro-batches", type=int, default=1,
                        help="every batch in this many pieces, one piece's activations at a time, in every "
                             "row (MetaConfig.micro_batches; plain training: gradient accumulation)")
    parser.add_argument("--keep-pieces", type=int, default=0,
                        help="with --recompute and --micro-batches: MAML rows keep the last this many "
                             "support pieces' graphs from the inner loop (MetaConfig.keep_pieces)")
    parser.add_argument("--output", default=str(Path(__file__).with_suffix(".json")))
    parser.add_argument("--one", metavar="METHOD", help=argparse.SUPPRESS)
    args = parser.parse_args()
    size, tokens = ("small" if args.small else "full"), args.tokens or (500 if args.small else 2000)
    if args.one:
        print(json.dumps(run_one(args.one, size, tokens, args)))
        return
    rows = []
    for method in args.methods:
        cmd = [sys.executable, __file__, "--one", method, "--steps", str(args.steps), "--warmup",
               str(args.warmup), "--tokens", str(tokens), "--loss", args.loss,
               "--inner-steps", str(args.inner_steps), "--micro-batches", str(args.micro_batches),
               "--keep-pieces", str(args.keep_pieces),
               *(["--small"] if args.small else []), *(["--recompute"] if args.recompute else [])]
        rows.append(json.loads(subprocess.run(cmd, check=True, capture_output=True,
                                              text=True).stdout.splitlines()[-1]))
        print(f"{method:12s} {rows[-1]['ms_per_step']:10.1f} ms/step  peak {rows[-1]['peak_mb']:8.0f} MB  "
              f"trainable {rows[-1]['trainable']:,}", flush=True)
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
               "torch": torch.__version__, "python": platform.python_version()}
    record = {"size": size, "config": SIZES[size], "tasks": TASKS, "tokens_per_batch": tokens,
              "inner_steps": args.inner_steps, "micro_batches": args.micro_batches,
              "keep_pieces": args.keep_pieces, "rows": rows,
              "machine": machine, "command": " ".join(["python", *sys.argv])}
    Path(args.output).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
