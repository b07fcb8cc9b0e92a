"""``metanmt evaluate``: beam-search a test split with a checkpoint and score it with sacrebleu."""

from __future__ import annotations

import argparse

HELP = "Translate a test split with beam search and score it with sacrebleu (BLEU, chrF)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="checkpoint directory")
    parser.add_argument("--lang", required=True, metavar="XX", help="source language code of the split")
    parser.add_argument("--split", default="test", help="split of the prepared data (test, test_flores, ...)")
    parser.add_argument("--output", required=True, metavar="FILE.json",
                        help="result JSON; hypotheses and references are written beside it")
    parser.add_argument("--data", metavar="DIR", default=None,
                        help="prepared data directory (unset: the one recorded in the checkpoint)")
    parser.add_argument("--beam", type=int, default=4, help="beam size (1 = greedy)")
    parser.add_argument("--length-penalty", type=float, default=0.6,
                        help="exponent alpha: beam scores are divided by length**alpha")
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per batch")
    parser.add_argument("--max-tokens", type=int, default=None, help="padded source tokens per batch")
    parser.add_argument("--max-sentences", type=int, default=None, help="evaluate only the first N sentences")
    parser.add_argument("--device", default=None, help="torch device (unset: cuda if available, else cpu)")


def run(args: argparse.Namespace) -> int:
    from metanmt.eval.evaluate import evaluate_model

    result = evaluate_model(
        args.model, args.lang, args.split, args.output, data_dir=args.data, beam=args.beam,
        length_penalty=args.length_penalty, batch_size=args.batch_size, max_tokens=args.max_tokens,
        max_sentences=args.max_sentences, device=args.device,
    )
    print(f"{result['lang']}/{result['split']} ({result['num_sentences']} sentences, "
          f"{result['seconds']:.1f} s): BLEU = {result['bleu']:.2f}  chrF = {result['chrf']:.2f}")
    print(f"BLEU signature: {result['bleu_signature']}")
    print(f"chrF signature: {result['chrf_signature']}")
    print(f"wrote {args.output}")
    return 0
