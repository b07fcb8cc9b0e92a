"""Evaluate a checkpoint on one split of the prepared data and write the result JSON the report reads.

Next to ``FILE.json`` go ``FILE.hyp.txt`` (one detokenised hypothesis per line) and ``FILE.ref.txt``
(the references), so the report can run paired significance tests without the data. The JSON is
written last: its presence means the evaluation is complete.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from metanmt.errors import MetaNMTError
from metanmt.eval.files import write_lines_atomic, write_text_atomic

# keys every result JSON has (the report relies on them)
RESULT_KEYS = ("lang", "split", "bleu", "chrf", "bleu_signature", "chrf_signature", "num_sentences", "beam",
               "length_penalty", "model", "model_info", "hypotheses", "references", "seconds")


def companion_paths(output_json: str | Path) -> tuple[Path, Path]:
    """The hypotheses and references files that belong to a result JSON (``X.json`` -> ``X.hyp.txt``)."""
    output_json = Path(output_json)
    stem = output_json.name.removesuffix(".json")
    return output_json.with_name(f"{stem}.hyp.txt"), output_json.with_name(f"{stem}.ref.txt")


def sources_path(output_json: str | Path) -> Path:
    """The source sentences beside a result JSON (``X.json`` -> ``X.src.txt``), for review and COMET."""
    output_json = Path(output_json)
    return output_json.with_name(output_json.name.removesuffix(".json") + ".src.txt")


def load_split(data_dir: str | Path, lang: str, split: str, max_sentences: int | None = None):
    """The encoded pairs of ``lang``/``split`` in a prepared data directory (the first ``max_sentences``).

    An unknown directory, language or split is a MetaNMTError from :class:`PreparedData` naming what exists.
    """
    import numpy as np

    from metanmt.data import PreparedData

    pairs = PreparedData.load(data_dir).pairs(lang, split)
    if max_sentences is not None and max_sentences < len(pairs):
        pairs = pairs.subset(np.arange(max_sentences))
    return pairs


def _one_line(text: str) -> str:
    """Keep the one-sentence-per-line reference file aligned even if a reference contains a line break."""
    return " ".join(text.splitlines())


def evaluate_model(
    model_dir: str | Path,
    lang: str,
    split: str,
    output_json: str | Path,
    data_dir: str | Path | None = None,
    beam: int = 4,
    length_penalty: float = 0.6,
    batch_size: int = 64,
    max_tokens: int | None = None,
    max_sentences: int | None = None,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Translate ``lang``/``split`` with the checkpoint in ``model_dir``, score it and write the result files.

    ``data_dir`` defaults to the ``data_dir`` recorded in the checkpoint's ``metanmt.json``;
    ``max_sentences`` keeps only the first sentences (quick checks). ``device`` defaults to CUDA when
    available. Returns the dict written to ``output_json``.
    """
    import torch

    from metanmt.eval.diagnostics import source_gap
    from metanmt.eval.generate import translate
    from metanmt.eval.metrics import corpus_scores
    from metanmt.models.seq2seq import load_checkpoint

    start = time.perf_counter()
    if max_sentences is not None and max_sentences < 1:
        raise MetaNMTError(f"max sentences must be at least 1, got {max_sentences}")
    model_dir = Path(model_dir)
    model, tokenizer, info = load_checkpoint(model_dir)
    data_dir = data_dir or info.get("data_dir")
    if not data_dir:
        raise MetaNMTError(f"{model_dir}/metanmt.json records no data_dir: give the prepared data directory")
    pairs = load_split(data_dir, lang, split, max_sentences)
    sources, references = list(pairs.src_text), list(pairs.tgt_text)
    if not sources:
        raise MetaNMTError(f"{data_dir}: split {split!r} of {lang} is empty")

    model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    hypotheses = translate(
        model, tokenizer, sources, num_beams=beam, length_penalty=length_penalty, batch_size=batch_size,
        max_tokens=max_tokens, progress=progress, desc=f"{lang}/{split}",
    )
    references = [_one_line(r) for r in references]
    scores = corpus_scores(hypotheses, references)
    gap = source_gap(model, pairs)

    output_json = Path(output_json)
    hyp_path, ref_path = companion_paths(output_json)
    write_lines_atomic(hyp_path, hypotheses)
    write_lines_atomic(ref_path, references)
    write_lines_atomic(sources_path(output_json), [_one_line(x) for x in sources])
    result: dict[str, Any] = {
        "lang": lang,
        "split": split,
        "bleu": scores.bleu,
        "chrf": scores.chrf,
        "bleu_signature": scores.bleu_signature,
        "chrf_signature": scores.chrf_signature,
        "source_gap": gap,
        "num_sentences": len(sources),
        "max_sentences": max_sentences,
        "beam": beam,
        "length_penalty": length_penalty,
        "model": os.path.abspath(model_dir),
        "model_info": info,
        "data_dir": os.path.abspath(data_dir),
        "hypotheses": hyp_path.name,
        "references": ref_path.name,
        "sources": sources_path(output_json).name,
        "seconds": round(time.perf_counter() - start, 3),
    }
    write_text_atomic(output_json, json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result
