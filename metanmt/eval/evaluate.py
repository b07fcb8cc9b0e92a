"""Evaluate a checkpoint on one split of the prepared data, or on the user's own test files, and write the
result JSON the report reads.

Next to ``FILE.json`` go ``FILE.hyp.txt`` (one detokenised hypothesis per line), ``FILE.ref.txt`` (the
references; further reference sets in ``FILE.ref2.txt``...) and ``FILE.src.txt`` (the sources), so the
report can run paired significance tests without the data and COMET or a reviewer can see the input.
The JSON is written last: its presence means the evaluation is complete.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from metanmt.atomic import write_lines_atomic, write_text_atomic
from metanmt.data.prepared import EncodedPairs
from metanmt.errors import MetaNMTError
from metanmt.eval.comet import Comet
from metanmt.models.device import pick_device

# keys every result JSON has, older ones included (the report relies on them); results now also hold chrF++
# and TER with their signatures ("chrfpp", "ter", ...) and the name of the sources file ("sources")
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


def load_split(data_dir: str | Path, lang: str, split: str,
               max_sentences: int | None = None) -> tuple[EncodedPairs, str]:
    """The encoded pairs of ``lang``/``split`` in a prepared data directory (the first ``max_sentences``) and
    the language's role there: ``train``, ``valid`` or ``test`` (the report keeps validation languages out of
    its verdict).

    An unknown directory, language or split is a MetaNMTError from :class:`PreparedData` naming what exists.
    """
    import numpy as np

    from metanmt.data import PreparedData

    data = PreparedData.load(data_dir)
    pairs = data.pairs(lang, split)
    if max_sentences is not None and max_sentences < len(pairs):
        pairs = pairs.subset(np.arange(max_sentences))
    return pairs, data.group(lang)


def _one_line(text: str) -> str:
    """Keep the one-sentence-per-line reference file aligned even if a reference contains a line break."""
    return " ".join(text.splitlines())


@dataclass(frozen=True)
class Decoding:
    """How to translate: ``metanmt translate``'s beam search, batching and device (None: the best present)."""

    beam: int = 4
    length_penalty: float = 0.6
    batch_size: int = 64
    max_tokens: int | None = None
    device: str | None = None


def evaluate_model(model_dir: str | Path, lang: str, split: str, output_json: str | Path,
                   data_dir: str | Path | None = None, decoding: Decoding = Decoding(),
                   max_sentences: int | None = None, progress: bool = True,
                   comet_model: str | Path | None = None) -> dict[str, Any]:
    """Translate ``lang``/``split`` with the checkpoint in ``model_dir``, score it and write the result files.

    ``data_dir`` defaults to the ``data_dir`` recorded in the checkpoint's ``metanmt.json``;
    ``max_sentences`` keeps only the first sentences (quick checks). ``comet_model`` adds COMET where the
    package is installed (else the result says why it is absent). Returns the dict written to
    ``output_json``.
    """
    from metanmt.models.seq2seq import load_checkpoint

    start = time.perf_counter()
    if max_sentences is not None and max_sentences < 1:
        raise MetaNMTError(f"max sentences must be at least 1, got {max_sentences}")
    model_dir = Path(model_dir)
    comet = Comet.load(comet_model)
    model, tokenizer, info = load_checkpoint(model_dir)
    data_dir = data_dir or info.get("data_dir")
    pairs, group = _split_to_evaluate(model_dir, data_dir, lang, split, max_sentences)
    record = {"lang": lang, "split": split, "group": group, "max_sentences": max_sentences,
              "data_dir": os.path.abspath(data_dir)}
    return _translate_and_score(model_dir, (model, tokenizer, info), pairs, [list(pairs.tgt_text)],
                                output_json, record, decoding, progress, start, comet)


def _split_to_evaluate(model_dir: Path, data_dir: str | Path | None, lang: str, split: str,
                       max_sentences: int | None) -> tuple[EncodedPairs, str]:
    """``lang``/``split`` of the prepared data in ``data_dir`` (the checkpoint's, if it records one), and the
    language's role there."""
    if not data_dir:
        raise MetaNMTError(f"{model_dir}/metanmt.json records no data_dir: give the prepared data directory")
    pairs, group = load_split(data_dir, lang, split, max_sentences)
    if not len(pairs):
        raise MetaNMTError(f"{data_dir}: split {split!r} of {lang} is empty")
    return pairs, group


def evaluate_files(model_dir: str | Path, src: str | Path, refs: list[str | Path], output_json: str | Path,
                   lang: str | None = None, decoding: Decoding = Decoding(), progress: bool = True,
                   comet_model: str | Path | None = None) -> dict[str, Any]:
    """Translate the user's own test file and score it against one or more reference files (line-aligned).

    ``lang`` defaults to the language the checkpoint records; the result has the keys of
    :func:`evaluate_model` with ``split`` ``"files"``, so ``metanmt report`` reads it too; the checkpoint's
    ``metanmt.json`` (system, size, draw) is in it, so the report groups fine-tuned models as the
    experiment's.
    """
    from metanmt.data.corpora import read_aligned
    from metanmt.data.user_pairs import encode_pairs
    from metanmt.models.families import max_positions
    from metanmt.models.seq2seq import load_checkpoint

    start = time.perf_counter()
    if not refs:
        raise MetaNMTError("give at least one reference file (--ref)")
    texts = [read_aligned(Path(src), Path(ref)) for ref in refs]  # each misalignment names both files
    sources, references = texts[0].src, [text.tgt for text in texts]
    if not sources:
        raise MetaNMTError(f"{src} is empty: nothing to evaluate")
    comet = Comet.load(comet_model)
    model, tokenizer, info = load_checkpoint(model_dir)
    lang = lang or info.get("lang")
    pairs = encode_pairs(tokenizer, sources, references[0], max_positions(model.config), str(src), lang)
    record = {"lang": lang or "unknown", "split": "files",
              "source_file": os.path.abspath(src), "reference_files": [os.path.abspath(r) for r in refs]}
    return _translate_and_score(model_dir, (model, tokenizer, info), pairs, references, output_json, record,
                                decoding, progress, start, comet)


def _translate_and_score(model_dir: str | Path, loaded: tuple[Any, Any, dict[str, Any]], pairs: EncodedPairs,
                         references: list[list[str]], output_json: str | Path, record: dict[str, Any],
                         decoding: Decoding, progress: bool, start: float, comet: Comet) -> dict[str, Any]:
    """Decode ``pairs``' sources with the checkpoint ``loaded`` from ``model_dir`` (model, tokenizer, info),
    score against ``references`` (one list per reference set; COMET against the first) and write the
    result files."""
    from metanmt.eval.diagnostics import source_gap
    from metanmt.eval.generate import translate
    from metanmt.eval.metrics import corpus_scores

    model, tokenizer, info = loaded
    device = pick_device(decoding.device)
    model.to(device)
    sources = list(pairs.src_text)
    lang = None if record["lang"] == "unknown" else record["lang"]
    hypotheses = translate(model, tokenizer, sources, lang=lang, num_beams=decoding.beam,
                           length_penalty=decoding.length_penalty, batch_size=decoding.batch_size,
                           max_tokens=decoding.max_tokens, progress=progress,
                           desc=f"{record['lang']}/{record['split']}")
    references = [[_one_line(r) for r in refs] for refs in references]
    scores = corpus_scores(hypotheses, references[0], references[1:])
    comet_scores = comet.score(sources, hypotheses, references[0], gpus=int(device.type == "cuda"))
    files = _write_texts(output_json, sources, hypotheses, references)
    result: dict[str, Any] = {
        **record, **asdict(scores), **comet_scores, "source_gap": source_gap(model, pairs),
        "num_sentences": len(sources), "beam": decoding.beam, "length_penalty": decoding.length_penalty,
        "model": os.path.abspath(model_dir),
        "model_info": info, **files, "seconds": round(time.perf_counter() - start, 3),
    }
    write_text_atomic(output_json, json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result


def _write_texts(output_json: str | Path, sources: list[str], hypotheses: list[str],
                 references: list[list[str]]
                 ) -> dict[str, Any]:
    """Sources, hypotheses and each reference set beside the result JSON; their names for the result."""
    hyp_path, ref_path = companion_paths(output_json)
    more = [ref_path.with_name(ref_path.name.replace(".ref.txt", f".ref{n}.txt"))
            for n in range(2, len(references) + 1)]
    write_lines_atomic(hyp_path, hypotheses)
    for path, refs in zip([ref_path, *more], references, strict=True):
        write_lines_atomic(path, refs)
    write_lines_atomic(sources_path(output_json), [_one_line(x) for x in sources])
    names = {"hypotheses": hyp_path.name, "references": ref_path.name,
             "sources": sources_path(output_json).name}
    return {**names, **({"more_references": [p.name for p in more]} if more else {})}
