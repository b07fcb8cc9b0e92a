"""``metanmt evaluate``: beam-search a test set with a checkpoint and score it with sacrebleu.

The test set is a split of the prepared data (``--lang XX --split test``) or your own files
(``--src FILE --ref FILE [--ref FILE2 ...]``).
"""

from __future__ import annotations

import argparse
from typing import Any

from metanmt.errors import MetaNMTError
from metanmt.eval.evaluate import Decoding
from metanmt.models.device import DEVICE_HELP

DETAILS = ("A split of the prepared data (--lang, --split) or your own source file (--src, --ref ...); "
           "scores: BLEU, chrF, chrF++, TER, with their signatures.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="checkpoint directory")
    parser.add_argument("--lang", metavar="XX",
                        help="source language: required for prepared data; for files it is recorded (unset: "
                             "the checkpoint's)")
    parser.add_argument("--output", required=True, metavar="FILE.json",
                        help="result JSON; sources, hypotheses and references are written beside it")
    prepared = parser.add_argument_group("prepared data")
    prepared.add_argument("--split", help="split of the prepared data (test, test_flores, ...; default test)")
    prepared.add_argument("--data", metavar="DIR", default=None,
                          help="prepared data directory (unset: the one recorded in the checkpoint)")
    prepared.add_argument("--max-sentences", type=int, default=None,
                          help="evaluate only the first N sentences")
    own = parser.add_argument_group("your own files")
    own.add_argument("--src", metavar="FILE", help="source sentences, one per line")
    own.add_argument("--ref", metavar="FILE", action="append",
                     help="English references aligned with --src; repeat for more reference sets")
    parser.add_argument("--comet-model", metavar="PATH",
                        help="also score with COMET, from this local checkpoint (needs the unbabel-comet "
                             "package; without it or without a path, the result says why COMET is absent)")
    decoding = parser.add_argument_group("decoding")
    decoding.add_argument("--beam", type=int, default=4, help="beam size (1 = greedy)")
    decoding.add_argument("--length-penalty", type=float, default=0.6,
                          help="exponent alpha: beam scores are divided by length**alpha")
    decoding.add_argument("--batch-size", type=int, default=64, help="sentences per batch")
    decoding.add_argument("--max-tokens", type=int, default=None, help="padded source tokens per batch")
    decoding.add_argument("--device", default=None, help=DEVICE_HELP)


def run(args: argparse.Namespace) -> int:
    decoding = Decoding(args.beam, args.length_penalty, args.batch_size, args.max_tokens, args.device)
    result = _run_files(args, decoding) if args.src or args.ref else _run_prepared(args, decoding)
    print(f"{result['lang']}/{result['split']} ({result['num_sentences']} sentences, {result['seconds']:.1f} "
          f"s): BLEU = {result['bleu']:.2f}  chrF = {result['chrf']:.2f}  chrF++ = {result['chrfpp']:.2f}  "
          f"TER = {result['ter']:.2f}")
    for key, name in (("bleu", "BLEU"), ("chrf", "chrF"), ("chrfpp", "chrF++"), ("ter", "TER")):
        print(f"{name} signature: {result[f'{key}_signature']}")
    print(f"COMET = {result['comet']:.4f} ({result['comet_model']})" if result["comet"] is not None
          else f"COMET: absent, {result['comet_absent']}")
    print(f"wrote {args.output}")
    return 0


def _run_prepared(args: argparse.Namespace, decoding: Decoding) -> dict[str, Any]:
    from metanmt.eval.evaluate import evaluate_model

    if not args.lang:
        raise MetaNMTError("give --lang XX (a split of the prepared data) or your own files "
                           "(--src and --ref)")
    return evaluate_model(args.model, args.lang, args.split or "test", args.output, data_dir=args.data,
                          decoding=decoding, max_sentences=args.max_sentences, comet_model=args.comet_model)


def _run_files(args: argparse.Namespace, decoding: Decoding) -> dict[str, Any]:
    from metanmt.data.languages import language_tag
    from metanmt.eval.evaluate import evaluate_files

    mixed = [f"--{name.replace('_', '-')}" for name in ("split", "data", "max_sentences")
             if getattr(args, name) is not None]
    if mixed:
        raise MetaNMTError(f"{', '.join(mixed)} select prepared data; with --src/--ref the files are the "
                           "test set")
    if not (args.src and args.ref):
        raise MetaNMTError("--src and --ref go together: the source file and its English reference file(s)")
    lang = language_tag(args.lang) if args.lang else None
    return evaluate_files(args.model, args.src, args.ref, args.output, lang=lang, decoding=decoding,
                          comet_model=args.comet_model)
