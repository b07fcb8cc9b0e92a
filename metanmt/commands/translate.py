"""``metanmt translate``: translate stdin to English, one sentence per line, with a checkpoint."""

from __future__ import annotations

import argparse
import sys

from metanmt.models.device import DEVICE_HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="checkpoint directory")
    parser.add_argument("--lang", required=True, metavar="XX",
                        help="language of the input: an ISO 639-1/639-3 code or BCP-47 tag (tags the source "
                             "for mBART-50, M2M-100, NLLB and T5 models)")
    parser.add_argument("--beam", type=int, default=4, help="beam size (1 = greedy)")
    parser.add_argument("--length-penalty", type=float, default=0.6,
                        help="exponent alpha: beam scores are divided by length**alpha")
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per batch")
    parser.add_argument("--max-tokens", type=int, default=None, help="padded source tokens per batch")
    parser.add_argument("--device", default=None, help=DEVICE_HELP)


def run(args: argparse.Namespace) -> int:
    from metanmt.data.languages import language_tag
    from metanmt.errors import MetaNMTError
    from metanmt.eval.generate import translate
    from metanmt.models.device import pick_device
    from metanmt.models.seq2seq import load_checkpoint

    language_tag(args.lang)  # the model is X->English: the tag must look like one
    device = pick_device(args.device)
    model, tokenizer, info = load_checkpoint(args.model)
    trained_on = info.get("lang")
    if info.get("tokens") and isinstance(trained_on, str) and trained_on != args.lang:
        print(f"metanmt translate: warning: {args.model} was fine-tuned on {trained_on!r}, input is "
              f"declared {args.lang!r}", file=sys.stderr)
    try:
        text = sys.stdin.buffer.read().decode("utf-8")
    except UnicodeDecodeError as err:
        raise MetaNMTError(f"standard input is not UTF-8 text: {err}") from err
    # split on "\n" only (str.splitlines also splits on form feeds, U+2028...): one output line per input line
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines[-1] == "":
        lines.pop()  # the final newline ends the last line, it does not start an empty one
    model.to(device)
    outputs = translate(
        model, tokenizer, lines, lang=args.lang, num_beams=args.beam, length_penalty=args.length_penalty,
        batch_size=args.batch_size, max_tokens=args.max_tokens, progress=None, desc=args.lang,
    )
    sys.stdout.buffer.write("".join(f"{line}\n" for line in outputs).encode("utf-8"))
    sys.stdout.flush()
    return 0
