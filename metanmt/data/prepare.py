"""``metanmt prepare``: raw parallel text -> cleaned, split, SentencePiece-encoded, cached task data.

Steps, per the ``data:`` section of a config (see :mod:`metanmt.data.config`):

1. read every language's corpora, clean them (whitespace, empty, overlong, length ratio) and dedupe;
2. hold out the in-domain test split (from the ``test_from`` corpus) and read the out-of-domain eval sets;
3. remove from everything else any pair that leaks a test sentence: same source sentence as a test
   pair of its language, or same English sentence as a test pair of *any* language (multi-way corpora
   such as FLORES/NTREX and overlapping ones such as the two Tatoeba releases share English sides);
4. split the rest into dev and train (``max_pairs`` caps train);
5. train ONE SentencePiece model over all languages with temperature-based sampling (or encode with a
   pretrained model's tokenizer, ``data.tokenizer.from_pretrained``, whose identity enters the cache key);
6. encode every split once into flat int32 arrays + offsets, keep the cleaned text beside them;
7. draw the fine-tuning subsets of valid/test languages by English token count;
8. write ``manifest.json`` (counts, tokens, spm settings, source files and sha256) and ``summary.md``.

Selections (test, dev, caps) rank pairs by a seeded hash of their normalised English side, so they do
not depend on file order and pick the same English sentences across the languages of a multi-way
corpus, which keeps the cross-language leakage filter from emptying training sets. Everything is built
in a temporary sibling folder that replaces the output folder only when complete.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
import time
import unicodedata
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metanmt.atomic import atomic_dir
from metanmt.data.config import CleanConfig, DataConfig, LanguagePlan, load_config
from metanmt.data.corpora import Corpus, ParallelText
from metanmt.data.languages import TARGET, language
from metanmt.data.prepared import MANIFEST, read_manifest
from metanmt.data.readers import make_corpus
from metanmt.errors import MetaNMTError
from metanmt.models import families

FORMAT_VERSION = 1
SUMMARY = "summary.md"
SPM_PREFIX = "spm"
TOKENIZER_DIR = "tokenizer"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_NON_WORD = re.compile(r"[\W_]+")
_RATIO_SMOOTHING = 5  # characters added to both lengths, so "OK"/"D'accord" is not an outlier


def normalize(text: str) -> str:
    """NFC, control characters removed, whitespace runs (incl. NBSP, tabs) collapsed to single spaces."""
    return " ".join(_CONTROL.sub(" ", unicodedata.normalize("NFC", text)).split())


def clean_pairs(text: ParallelText,
                filters: CleanConfig | None) -> tuple[list[str], list[str], dict[str, int]]:
    """Normalise and filter one corpus read; ``filters=None`` only drops empty pairs (for test sets).

    The length-ratio filter compares each pair's log character-length ratio with the corpus median,
    so a language whose script is denser than English keeps its normal pairs.
    """
    stats = {"read": len(text), "empty": 0, "overlong": 0, "ratio": 0}
    src: list[str] = []
    tgt: list[str] = []
    for raw_src, raw_tgt in zip(text.src, text.tgt):
        s, t = normalize(raw_src), normalize(raw_tgt)
        if not s or not t:
            stats["empty"] += 1
        elif filters is not None and (max(len(s), len(t)) > filters.max_chars
                                      or max(len(s.split()), len(t.split())) > filters.max_words):
            stats["overlong"] += 1
        else:
            src.append(s)
            tgt.append(t)
    if filters is not None and src:
        log_ratio = np.log((np.array([len(s) for s in src]) + _RATIO_SMOOTHING)
                           / (np.array([len(t) for t in tgt]) + _RATIO_SMOOTHING))
        keep = np.abs(log_ratio - np.median(log_ratio)) <= math.log(filters.max_ratio)
        stats["ratio"] = int((~keep).sum())
        src = [s for s, k in zip(src, keep) if k]
        tgt = [t for t, k in zip(tgt, keep) if k]
    return src, tgt, stats


def leak_key(text: str) -> str:
    """What two sentences must share to count as the same for leakage: case and punctuation ignored."""
    return _NON_WORD.sub("", text.casefold()) or text


def _rank(seed: int, salt: str, english: str, src: str) -> tuple[bytes, str]:
    digest = hashlib.blake2b(f"{seed}\t{salt}\t{leak_key(english)}".encode(), digest_size=8).digest()
    return digest, src


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class _Sources:
    """The readers that serve one language: training pool corpora (by label) and eval sets (by split)."""

    plan: LanguagePlan
    pool: list[tuple[str, Corpus]]
    missing: list[str]
    evals: dict[str, Corpus]


@dataclass
class _Split:
    src: list[str]
    tgt: list[str]
    origins: dict[str, int] = field(default_factory=dict)


def _resolve(cfg: DataConfig, data_root: Path | None) -> dict[str, _Sources]:
    """Build the readers and check coverage before any heavy work: a language with no data is an error."""
    resolved: dict[str, _Sources] = {}
    for lang, plan in cfg.plans.items():
        pool, missing = [], []
        for spec in plan.corpora:
            corpus = make_corpus(spec.kind, spec.options, data_root)
            (pool if corpus.covers(lang) else missing).append((spec.label, corpus))
        if not pool:
            looked = "; ".join(f"{label}: {corpus.where(lang)}" for label, corpus in missing)
            raise MetaNMTError(f"no data for language {lang!r} ({language(lang).name}): none of its corpora "
                               f"has it ({looked})")
        if plan.test_from is not None and plan.test_from not in [label for label, _ in pool]:
            corpus = dict(missing)[plan.test_from]
            raise MetaNMTError(f"{lang}: the in-domain test split is taken from {plan.test_from!r}, which "
                               f"has no {lang}-en data (looked for {corpus.where(lang)})")
        evals = {}
        for name, spec in plan.eval_sets.items():
            corpus = make_corpus(spec.kind, spec.options, data_root)
            if corpus.covers(lang):
                evals[name] = corpus
        resolved[lang] = _Sources(plan, pool, [label for label, _ in missing], evals)
    for group in ("train", "valid", "test"):
        langs = cfg.languages(group)
        names = {name for lang in langs for name in cfg.plans[lang].eval_sets}
        for name in sorted(names):
            if not any(name in resolved[lang].evals for lang in langs):
                raise MetaNMTError(f"eval set {name!r} of data.tasks.{group} has data for none of {langs}")
    return resolved


def _display(path: Path, data_root: Path | None) -> str:
    if data_root is not None:
        try:
            return path.resolve().relative_to(data_root.resolve()).as_posix()
        except ValueError:
            pass
    return str(path)


def _fingerprint(resolved: dict[str, _Sources], data_root: Path | None) -> tuple[list[dict[str, Any]], Any]:
    """Source entries for the manifest and the content-only structure hashed into the cache key."""
    hashes: dict[Path, str] = {}
    entries: list[dict[str, Any]] = []
    keyed: dict[str, Any] = {}
    for lang, sources in resolved.items():
        items = [("pool", label, corpus) for label, corpus in sources.pool]
        items += [(name, name, corpus) for name, corpus in sources.evals.items()]
        for role, label, corpus in items:
            files = []
            for path in corpus.files(lang):
                if path not in hashes:
                    hashes[path] = _sha256(path)
                files.append({"path": _display(path, data_root), "sha256": hashes[path],
                              "bytes": path.stat().st_size})
            entries.append({"lang": lang, "role": role, "corpus": label, "kind": corpus.kind,
                            "licence": corpus.licence, "identity": corpus.identity(lang), "files": files})
            keyed[f"{lang}/{role}/{label}"] = [corpus.identity(lang), [f["sha256"] for f in files]]
    return entries, keyed


class _Reporter:
    """Progress output on stderr (silent when ``enabled`` is false)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def say(self, message: str) -> None:
        if self.enabled:
            print(f"[prepare] {message}", file=sys.stderr, flush=True)

    def bar(self, items: Any, desc: str) -> Any:
        if not self.enabled:
            return items
        from metanmt.progress import progress_bar

        return progress_bar(items, desc=f"[prepare] {desc}", file=sys.stderr, leave=False)


def _read_pool(sources: _Sources,
               filters: CleanConfig) -> tuple[_Split, list[str], dict[str, dict[str, int]]]:
    """The cleaned, deduplicated pool of a language: pairs, their corpus labels, per-corpus statistics."""
    seen: set[tuple[str, str]] = set()
    pool = _Split([], [])
    labels: list[str] = []
    stats: dict[str, dict[str, int]] = {}
    for label, corpus in sources.pool:
        src, tgt, counts = clean_pairs(corpus.read(sources.plan.lang), filters)
        counts["duplicate"] = 0
        for s, t in zip(src, tgt):
            if (s, t) in seen:
                counts["duplicate"] += 1
                continue
            seen.add((s, t))
            pool.src.append(s)
            pool.tgt.append(t)
            labels.append(label)
        dropped = ("empty", "overlong", "ratio", "duplicate")
        counts["kept"] = counts["read"] - sum(counts[key] for key in dropped)
        stats[label] = counts
    return pool, labels, stats


def _take(indices: list[int], pool: _Split, labels: list[str]) -> _Split:
    split = _Split([pool.src[i] for i in indices], [pool.tgt[i] for i in indices])
    for i in indices:
        split.origins[labels[i]] = split.origins.get(labels[i], 0) + 1
    return split


def _split_language(plan: LanguagePlan, pool: _Split, labels: list[str], test: list[int], seed: int,
                    test_en: set[str], test_src: set[str]) -> tuple[dict[str, _Split], int]:
    """dev and train of one language from its pool minus the test pairs and every leaking pair."""
    held = set(test)
    rest = [i for i in range(len(pool.src)) if i not in held]
    clean = [i for i in rest
             if leak_key(pool.tgt[i]) not in test_en and leak_key(pool.src[i]) not in test_src]
    leaked = len(rest) - len(clean)
    if plan.dev_pairs > len(clean):
        raise MetaNMTError(f"{plan.lang}: dev_pairs is {plan.dev_pairs} but only {len(clean)} pairs are left "
                           f"after holding out the test split and removing leaking pairs")
    ranked = sorted(clean, key=lambda i: _rank(seed, "dev", pool.tgt[i], pool.src[i]))
    dev, train = ranked[:plan.dev_pairs], ranked[plan.dev_pairs:]
    if plan.max_pairs is not None and len(train) > plan.max_pairs:
        train = sorted(train, key=lambda i: _rank(seed, "train", pool.tgt[i], pool.src[i]))[:plan.max_pairs]
    splits = {"train": _take(sorted(train), pool, labels), "dev": _take(sorted(dev), pool, labels)}
    if test:
        splits["test"] = _take(sorted(test), pool, labels)
    return splits, leaked


def _choose_test(plan: LanguagePlan, pool: _Split, labels: list[str], seed: int) -> list[int]:
    if not plan.test_pairs:
        return []
    candidates = [i for i, label in enumerate(labels) if label == plan.test_from]
    if plan.test_pairs > len(candidates):
        raise MetaNMTError(f"{plan.lang}: test_pairs is {plan.test_pairs} but {plan.test_from!r} has only "
                           f"{len(candidates)} {plan.lang}-en pairs after cleaning")
    candidates.sort(key=lambda i: _rank(seed, "test", pool.tgt[i], pool.src[i]))
    return candidates[:plan.test_pairs]


def english_token_counts(sentences: list[str]) -> np.ndarray:
    """English tokens per sentence as sacrebleu's 13a tokenizer counts them (close to Moses word counts)."""
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    tokenize = Tokenizer13a()
    return np.fromiter((len(tokenize(s).split()) for s in sentences), dtype=np.int64, count=len(sentences))


def finetune_subsets(lang: str, english: list[str], sizes: tuple[int, ...], draws: int, seed: int,
                     option: str = "data.finetune.tokens"
                     ) -> tuple[dict[str, np.ndarray], dict[str, list[dict[str, int]]]]:
    """Nested random subsets of a train split, each the longest prefix of a seeded permutation whose
    English token count stays within the budget. Returns index arrays by ``tokens{N}_draw{d}`` and,
    for the manifest, pairs and tokens of each (size, draw). ``option`` names the setting in errors."""
    counts = english_token_counts(english)
    total = int(counts.sum())
    too_big = [size for size in sizes if size > total]
    if too_big:
        raise MetaNMTError(f"{lang}: fine-tuning subset size(s) {too_big} English tokens exceed its training "
                           f"data: {total} English tokens in {len(english)} pairs ({option})")
    arrays: dict[str, np.ndarray] = {}
    record: dict[str, list[dict[str, int]]] = {str(size): [] for size in sizes}
    for draw in range(draws):
        order = np.random.default_rng([seed, zlib.crc32(lang.encode()), draw]).permutation(len(english))
        cumulative = np.cumsum(counts[order])
        for size in sizes:
            take = int(np.searchsorted(cumulative, size, side="right")) if size else 0
            arrays[f"tokens{size}_draw{draw}"] = np.sort(order[:take]).astype(np.int64)
            record[str(size)].append({"pairs": take, "en_tokens": int(cumulative[take - 1]) if take else 0})
    return arrays, record


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _summary(manifest: dict[str, Any]) -> str:
    """The end-of-run table: pairs per split and target tokens per language, with totals."""
    header = ("| lang | group | corpora | train | dev | test | other eval sets | train src tok "
              "| train tgt tok |")
    rows = [header, "|" + "---|" * 9]
    totals = [0, 0, 0, 0, 0]
    for lang, task in manifest["tasks"].items():
        splits = task["splits"]
        train, dev = splits["train"], splits["dev"]
        test = splits.get("test", {}).get("pairs", 0)
        others = ", ".join(f"{name} {splits[name]['pairs']}"
                           for name in task["eval_splits"] if name != "test")
        rows.append(f"| {lang} | {task['group']} | {'+'.join(task['corpora'])} | {train['pairs']} | "
                    f"{dev['pairs']} | {test} | {others or '-'} | {train['src_tokens']} | "
                    f"{train['tgt_tokens']} |")
        for i, value in enumerate((train["pairs"], dev["pairs"], test, train["src_tokens"],
                                   train["tgt_tokens"])):
            totals[i] += value
    rows.append(f"| **all** | | | {totals[0]} | {totals[1]} | {totals[2]} | | {totals[3]} | {totals[4]} |")
    leaked = sum(t["leak_removed"] for t in manifest["tasks"].values())
    lines = [f"# Prepared data ({len(manifest['tasks'])} languages)", "", *rows, "",
             _vocabulary_line(manifest), f"Leaking pairs removed from dev/train: {leaked}."]
    finetune = manifest["finetune"]
    if finetune["subsets"]:
        lines += ["", f"Fine-tuning subsets ({finetune['unit']}), pairs per draw:", "",
                  "| lang | " + " | ".join(str(s) for s in finetune["tokens"]) + " |",
                  "|---|" + "---|" * len(finetune["tokens"])]
        for lang, sizes in finetune["subsets"].items():
            cells = ["/".join(str(d["pairs"]) for d in sizes[str(s)]) for s in finetune["tokens"]]
            lines.append(f"| {lang} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _spm_encoder(cfg: DataConfig, splits: dict[str, dict[str, _Split]], out: Path, report: _Reporter
                 ) -> tuple[Callable[[str, _Split], tuple[np.ndarray, ...]], dict[str, Any]]:
    """Train the shared SentencePiece model on every training split; its split encoder and manifest entry."""
    import sentencepiece as spm

    from metanmt.data.spm import encode, sample_training_text, train_spm

    spm_text = {lang: s["train"].src for lang, s in splits.items()}
    spm_text[TARGET] = list(dict.fromkeys(t for s in splits.values() for t in s["train"].tgt))
    sample, per_language = sample_training_text(spm_text, cfg.spm.sentences, cfg.spm.temperature, cfg.seed)
    report.say(f"training SentencePiece ({cfg.spm.model_type}, {cfg.spm.vocab_size} pieces) on "
               f"{len(sample)} sentences of {len(spm_text)} languages")
    model_path = train_spm(sample, cfg.spm, cfg.seed, out / f"{SPM_PREFIX}.model")
    processor = spm.SentencePieceProcessor(model_file=str(model_path))

    def encode_split(lang: str, split: _Split) -> tuple[np.ndarray, ...]:
        return (*encode(processor, split.src), *encode(processor, split.tgt))

    return encode_split, {"spm": {
        "model": f"{SPM_PREFIX}.model", "vocab": f"{SPM_PREFIX}.vocab",
        "vocab_size": processor.get_piece_size(), "vocab_size_requested": cfg.spm.vocab_size,
        "model_type": cfg.spm.model_type, "character_coverage": cfg.spm.character_coverage,
        "byte_fallback": cfg.spm.byte_fallback, "temperature": cfg.spm.temperature,
        "training_sentences": len(sample), "sentences_per_language": per_language,
        "pad_id": 0, "eos_id": 1, "unk_id": 2, "bos_id": -1, "sha256": _sha256(model_path)}}


def _pretrained_encoder(tokenizer: Any, source: str, out: Path
                        ) -> tuple[Callable[[str, _Split], tuple[np.ndarray, ...]], dict[str, Any]]:
    """Encode with a pretrained model's tokenizer (saved in ``out/tokenizer``), language tags as its family
    wants; its split encoder and manifest entry (its identity is what a training run checks)."""
    from metanmt.data.prepared import ragged

    tokenizer.save_pretrained(out / TOKENIZER_DIR)

    def encode_split(lang: str, split: _Split) -> tuple[np.ndarray, ...]:
        src, tgt = families.encode(tokenizer, lang, split.src, split.tgt)
        return (*ragged(src), *ragged(tgt))

    return encode_split, {"tokenizer": {
        "from_pretrained": source, "path": TOKENIZER_DIR, "class": type(tokenizer).__name__,
        "family": families.family_of(tokenizer).name, "identity": families.tokenizer_identity(tokenizer),
        "size": families.tokenizer_size(tokenizer)}}


def _vocabulary_line(manifest: dict[str, Any]) -> str:
    if "tokenizer" in manifest:
        tok = manifest["tokenizer"]
        return (f"Tokenizer: {tok['class']} of {tok['from_pretrained']} "
                f"({tok['size']} ids, identity {tok['identity']}).")
    spm = manifest["spm"]
    return (f"SentencePiece: {spm['model_type']}, {spm['vocab_size']} pieces (asked "
            f"{spm['vocab_size_requested']}),"
            f" trained on {spm['training_sentences']} sentences sampled at temperature {spm['temperature']}.")


def _build(cfg: DataConfig, resolved: dict[str, _Sources], out: Path, report: _Reporter,
           tokenizer: Any = None) -> dict[str, Any]:
    """Write everything under ``out`` (a fresh folder) and return the manifest (without source info);
    ``tokenizer``: a pretrained one to encode with instead of training SentencePiece."""
    read = _read_and_clean(cfg, resolved, report)
    splits, leaked = _split_without_leaks(cfg, read)
    # fine-tuning subsets before the slow SentencePiece training, so a size error comes early
    finetune_langs = [lang for lang in splits if cfg.plans[lang].group in ("valid", "test")]
    subsets = {lang: finetune_subsets(lang, splits[lang]["train"].tgt, cfg.finetune.tokens,
                                      cfg.finetune.draws, cfg.seed)
               for lang in report.bar(finetune_langs, "fine-tuning subsets")}
    if tokenizer is None:
        encode_split, vocabulary = _spm_encoder(cfg, splits, out, report)
    else:
        encode_split, vocabulary = _pretrained_encoder(tokenizer, cfg.tokenizer.from_pretrained, out)
    tasks: dict[str, Any] = {}
    for lang in report.bar(list(splits), "encoding"):
        task_splits = _write_splits(out / "tasks" / lang, lang, splits[lang], encode_split)
        tasks[lang] = _task_entry(cfg.plans[lang], resolved[lang], read, lang, task_splits, leaked[lang])
    for lang, (arrays, _) in subsets.items():
        np.savez(out / "tasks" / lang / "finetune.npz", **arrays)
    return _manifest(cfg, tasks, vocabulary, subsets)


@dataclass
class _Read:
    """Every language's cleaned pool (pairs, corpus labels, statistics), its test picks and eval sets."""

    pools: dict[str, tuple[_Split, list[str], dict[str, dict[str, int]]]] = field(default_factory=dict)
    tests: dict[str, list[int]] = field(default_factory=dict)
    evals: dict[str, dict[str, _Split]] = field(default_factory=dict)
    eval_stats: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)


def _read_and_clean(cfg: DataConfig, resolved: dict[str, _Sources], report: _Reporter) -> _Read:
    """Phase 1: read and clean every corpus, pick each language's test pairs."""
    read = _Read()
    for lang in report.bar(list(resolved), "reading and cleaning"):
        sources = resolved[lang]
        read.pools[lang] = _read_pool(sources, cfg.clean)
        for label in sources.missing:
            report.say(f"warning: corpus {label!r} has no {lang}-en data; using "
                       f"{[l for l, _ in sources.pool]}")
        read.tests[lang] = _choose_test(sources.plan, read.pools[lang][0], read.pools[lang][1], cfg.seed)
        read.evals[lang], read.eval_stats[lang] = {}, {}
        for name, corpus in sources.evals.items():
            src, tgt, stats = clean_pairs(corpus.read(lang), None)
            read.evals[lang][name] = _Split(src, tgt, {name: len(src)})
            read.eval_stats[lang][name] = stats
    return read


def _split_without_leaks(cfg: DataConfig, read: _Read) -> tuple[dict[str, dict[str, _Split]], dict[str, int]]:
    """Phase 2: every language's splits, and how many train/dev pairs were dropped because their English
    (of any language's test sets) or their source (of their own test sets) is in a test set."""
    test_en: set[str] = set()
    for lang, (pool, _, _) in read.pools.items():
        test_en.update(leak_key(pool.tgt[i]) for i in read.tests[lang])
        for split in read.evals[lang].values():
            test_en.update(map(leak_key, split.tgt))
    splits: dict[str, dict[str, _Split]] = {}
    leaked: dict[str, int] = {}
    for lang, (pool, labels, stats) in read.pools.items():
        test_src = {leak_key(pool.src[i]) for i in read.tests[lang]}
        for split in read.evals[lang].values():
            test_src.update(map(leak_key, split.src))
        splits[lang], leaked[lang] = _split_language(cfg.plans[lang], pool, labels, read.tests[lang],
                                                     cfg.seed, test_en, test_src)
        splits[lang].update(read.evals[lang])
        if cfg.plans[lang].group == "train" and not splits[lang]["train"].src:
            raise MetaNMTError(f"no training data left for {lang!r} after cleaning, holding out dev/test and "
                               f"removing leaking pairs (cleaning: {stats})")
    return splits, leaked


def _write_splits(folder: Path, lang: str, splits: dict[str, _Split], encode_split) -> dict[str, Any]:
    """Phase 3: encode and write one language's splits (ids as .npz, text as lines); their manifest
    entries."""
    folder.mkdir(parents=True)
    written = {}
    for name, split in splits.items():
        src_ids, src_offsets, tgt_ids, tgt_offsets = encode_split(lang, split)
        np.savez(folder / f"{name}.npz", src_ids=src_ids, src_offsets=src_offsets, tgt_ids=tgt_ids,
                 tgt_offsets=tgt_offsets)
        _write_lines(folder / f"{name}.{lang}", split.src)
        _write_lines(folder / f"{name}.{TARGET}", split.tgt)
        written[name] = {"pairs": len(split.src), "src_tokens": int(src_offsets[-1]),
                         "tgt_tokens": int(tgt_offsets[-1]), "origins": split.origins,
                         "files": [f"tasks/{lang}/{name}.npz", f"tasks/{lang}/{name}.{lang}",
                                   f"tasks/{lang}/{name}.{TARGET}"]}
    return written


def _task_entry(plan: LanguagePlan, sources: _Sources, read: _Read, lang: str, task_splits: dict[str, Any],
                leaked: int) -> dict[str, Any]:
    """A language's manifest entry: its group, corpora, splits and what cleaning and leak removal did."""
    return {
        "group": plan.group, "name": f"{lang}-{TARGET}",
        "corpora": [label for label, _ in sources.pool],
        "missing_corpora": sources.missing, "splits": task_splits,
        "eval_splits": (["test"] if "test" in task_splits else []) + list(read.evals[lang]),
        "cleaning": read.pools[lang][2], "eval_cleaning": read.eval_stats[lang], "leak_removed": leaked,
    }


def _manifest(cfg: DataConfig, tasks: dict[str, Any], vocabulary: dict[str, Any],
              subsets: dict[str, tuple[dict[str, np.ndarray], dict[str, Any]]]) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "seed": cfg.seed,
        "languages": {group: cfg.languages(group) for group in ("train", "valid", "test")},
        "tasks": tasks,
        **vocabulary,
        "finetune": {"tokens": list(cfg.finetune.tokens), "draws": cfg.finetune.draws,
                     "unit": "English tokens (sacrebleu 13a)",
                     "subsets": {lang: record for lang, (_, record) in subsets.items()},
                     "files": {lang: f"tasks/{lang}/finetune.npz" for lang in subsets}},
        "cleaning": {"max_words": cfg.clean.max_words, "max_chars": cfg.clean.max_chars,
                     "max_ratio": cfg.clean.max_ratio},
    }


def _pretrained_tokenizer(cfg: DataConfig) -> Any:
    """The tokenizer of ``data.tokenizer.from_pretrained`` (None: train SentencePiece)."""
    from metanmt.models.seq2seq import load_tokenizer

    source = cfg.tokenizer.from_pretrained
    if source is not None and not isinstance(source, str):
        raise MetaNMTError(f"data.tokenizer.from_pretrained must be a directory or hub id, not {source!r}")
    return None if source is None else load_tokenizer(source)


def _up_to_date(out: Path, cache_key: str, config_hash: str, overwrite: bool, report: _Reporter) -> bool:
    """Whether ``out`` already holds this build; an error if it holds something a build must not replace."""
    existing = read_manifest(out) if out.is_dir() else None
    if existing is not None and existing.get("cache_key") == cache_key:
        report.say(f"{out} is up to date (same config and source files): reusing it")
        return True
    if out.exists() and not overwrite:
        if not out.is_dir():
            raise MetaNMTError(f"{out} exists and is not a directory")
        if existing is None and any(out.iterdir()):
            raise MetaNMTError(f"{out} is not empty and holds no prepared data; choose another --output-dir "
                               "or pass --overwrite")
        if existing is not None and existing.get("config_hash") != config_hash:
            raise MetaNMTError(f"{out} holds data prepared from a different config (data section "
                               f"{str(existing.get('config_hash'))[:12]} vs {config_hash[:12]}); pass "
                               "--overwrite to replace it, or choose another --output-dir")
        if existing is not None:
            report.say(f"source files changed since {out} was prepared: rebuilding it")
    return False


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> str:
    """Write the manifest (stamped with metanmt's version) and its summary table; return the summary."""
    from metanmt import __version__

    manifest["metanmt_version"] = __version__
    summary = _summary(manifest)
    text = json.dumps(manifest, indent=1, ensure_ascii=False) + "\n"
    (folder / MANIFEST).write_text(text, encoding="utf-8")
    (folder / SUMMARY).write_text(summary, encoding="utf-8")
    return summary


def prepare(config: str | Path | Mapping[str, Any], data_root: str | Path | None, output_dir: str | Path,
            overwrite: bool = False, progress: bool = True,
            on_summary: Callable[[str], None] | None = None) -> Path:
    """Prepare the data of ``config`` (a YAML path or a loaded config with a ``data:`` key) in ``output_dir``.

    Returns the output folder. Reuses it as is when it already holds this config built from the same
    source files; rebuilds it when a source changed; refuses a folder that holds a different config or
    anything else unless ``overwrite``. ``on_summary`` receives the summary table when a build finishes.
    """
    started = time.perf_counter()
    cfg = load_config(config)
    root = None if data_root is None else Path(data_root).expanduser()
    if root is not None and not root.is_dir():
        raise MetaNMTError(f"data root {root} is not a directory")
    out = Path(output_dir).expanduser()
    report = _Reporter(progress)
    resolved = _resolve(cfg, root)
    report.say("hashing source files")
    sources, keyed = _fingerprint(resolved, root)
    config_hash = _digest(cfg.section)
    tokenizer = _pretrained_tokenizer(cfg)
    identity = {} if tokenizer is None else {"tokenizer": families.tokenizer_identity(tokenizer)}
    cache_key = _digest({"format_version": FORMAT_VERSION, "data": cfg.section, "sources": keyed, **identity})

    if _up_to_date(out, cache_key, config_hash, overwrite, report):
        return out

    with atomic_dir(out) as tmp:
        manifest = _build(cfg, resolved, tmp, report, tokenizer)
        manifest.update({"cache_key": cache_key, "config_hash": config_hash, "config": cfg.section,
                         "data_root": None if root is None else str(root.resolve()), "sources": sources,
                         "build_seconds": round(time.perf_counter() - started, 1)})
        summary = _write_manifest(tmp, manifest)
    report.say(f"done in {time.perf_counter() - started:.1f} s: {out}")
    if on_summary is not None:
        on_summary(summary)
    return out
