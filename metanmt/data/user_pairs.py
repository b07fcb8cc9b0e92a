"""The user's own X->English pairs for fine-tuning: read, cleaned, split, drawn and encoded.

This is the path for a language the prepared data never saw: the pairs come from two line-aligned files,
a TSV file or a Hugging Face dataset, are cleaned like ``metanmt prepare`` cleans test sets (normalised,
empty pairs dropped) and are encoded with the checkpoint's own tokenizer, so no SentencePiece model is
retrained and the checkpoint's vocabulary still fits. Without dev data, :data:`DEV_SHARE` of the pairs
(at least one) is held out with the seed.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metanmt.data.corpora import ParallelText, read_aligned, read_hf_rows, read_tsv, select_split
from metanmt.data.prepared import EncodedPairs
from metanmt.errors import MetaNMTError

DEV_SHARE = 0.1  # share of the training pairs held out for early stopping when no dev data is given
DATA_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class PairSource:
    """Where one set of pairs comes from; ``role`` (``train``/``dev``) names the command-line options."""

    role: str
    src: str | None = None
    tgt: str | None = None
    tsv: str | None = None
    hf: str | None = None
    hf_config: str | None = None
    hf_split: str = "train"
    src_field: str | None = None  # default: translation.<lang>
    tgt_field: str = "translation.en"

    @property
    def given(self) -> bool:
        return any((self.src, self.tgt, self.tsv, self.hf))

    def check(self) -> None:
        """One form only, and aligned files come in twos."""
        r = self.role
        forms = [name for name, used in ((f"--{r}-src/--{r}-tgt", self.src or self.tgt),
                                         (f"--{r}-tsv", self.tsv), (f"--{r}-hf", self.hf)) if used]
        if len(forms) > 1:
            raise MetaNMTError(f"give the {r} data one way, not as {' and '.join(forms)}")
        if bool(self.src) != bool(self.tgt):
            raise MetaNMTError(f"--{r}-src and --{r}-tgt go together: the source file and its English file")

    def describe(self) -> str:
        """Where the pairs are, for messages and the model card."""
        if self.hf:
            return f"hf:{self.hf}" + "".join(f",{k}={v}" for k, v in (("name", self.hf_config),
                                                                     ("split", self.hf_split)) if v)
        return str(self.tsv) if self.tsv else f"{self.src} | {self.tgt}"

    def read(self, lang: str) -> ParallelText:
        """The pairs as read, with the readers' errors (misaligned files, one-column rows, non-UTF-8)."""
        self.check()
        if self.tsv:
            return read_tsv(Path(self.tsv))
        if self.hf:
            return read_hf_rows(_load_hf(self), self.src_field or f"translation.{lang}", self.tgt_field,
                                self.hf)
        return read_aligned(Path(str(self.src)), Path(str(self.tgt)))


def _load_hf(source: PairSource) -> Any:
    """A dataset saved with ``save_to_disk``, a local data file (json/jsonl/csv/parquet), or a hub id."""
    import datasets

    path = Path(str(source.hf)).expanduser()
    try:
        if path.is_dir() and any((path / f).is_file() for f in ("dataset_dict.json", "state.json")):
            return select_split(datasets.load_from_disk(str(path)), source.hf_split, str(path))
        if path.is_file():
            if path.suffix not in DATA_FILE_BUILDERS:
                raise MetaNMTError(f"{path}: not a dataset file ({', '.join(DATA_FILE_BUILDERS)}); for "
                                   f"tab-separated text use --{source.role}-tsv")
            return datasets.load_dataset(DATA_FILE_BUILDERS[path.suffix], data_files=str(path),
                                         split=source.hf_split)
        return datasets.load_dataset(str(source.hf), name=source.hf_config, split=source.hf_split)
    except (OSError, ValueError, ConnectionError) as err:
        raise MetaNMTError(f"cannot load Hugging Face dataset {source.hf}: {err}") from None


@dataclass(frozen=True)
class UserDataRequest:
    """What ``metanmt finetune`` was asked to train on (``max_tokens=None``: all of it)."""

    lang: str
    train: PairSource
    dev: PairSource = field(default_factory=lambda: PairSource("dev"))
    max_tokens: int | None = None
    seed: int = 1


@dataclass(frozen=True)
class UserData:
    """Encoded training and dev pairs, with what the model card records about them."""

    train: EncodedPairs
    dev: EncodedPairs
    en_tokens: int  # English tokens of the training pairs, counted as ``metanmt prepare`` counts them
    sha256: str  # of the training pairs, see :func:`pairs_sha256`
    dev_sha256: str
    held_out: int  # dev pairs held out of the training data (0 when dev data was given)
    overlap: int  # dev pairs whose source sentence is also a training source


def read_pairs(source: PairSource, lang: str) -> tuple[list[str], list[str]]:
    """Cleaned pairs of one source; no pair left is an error naming where they came from."""
    from metanmt.data.prepare import clean_pairs

    text = source.read(lang)
    src, tgt, stats = clean_pairs(text, None)
    if not src:
        raise MetaNMTError(f"{text.origin}: no sentence pairs ({stats['read']} read, {stats['empty']} with "
                           "an empty side)")
    return src, tgt


def hold_out(n: int, seed: int, origin: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, dev) with :data:`DEV_SHARE` of ``n`` pairs, at least one, drawn with ``seed``."""
    if n < 2:
        raise MetaNMTError(f"{origin}: {n} pair cannot be split into training and dev data; give dev data")
    n_dev = max(1, round(DEV_SHARE * n))
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_dev:]), np.sort(order[:n_dev])


def draw_subset(lang: str, english: list[str], max_tokens: int, seed: int) -> np.ndarray:
    """Indices of a random subset of about ``max_tokens`` English tokens, as ``metanmt prepare`` draws."""
    from metanmt.data.prepare import finetune_subsets

    if max_tokens < 1:
        raise MetaNMTError(f"--max-tokens must be at least 1, got {max_tokens}")
    arrays, _ = finetune_subsets(lang, english, (max_tokens,), 1, seed, option="--max-tokens")
    chosen = arrays[f"tokens{max_tokens}_draw0"]
    if not len(chosen):
        raise MetaNMTError(f"--max-tokens {max_tokens} drew no pair with seed {seed}: the first pair drawn "
                           f"is longer; give a larger --max-tokens")
    return chosen


def count_overlap(dev_src: list[str], train_src: list[str]) -> int:
    """Dev pairs whose source also occurs in training (case and punctuation ignored, as for leakage)."""
    from metanmt.data.prepare import leak_key

    seen = {leak_key(s) for s in train_src}
    return sum(leak_key(s) in seen for s in dev_src)


def pairs_sha256(src: list[str], tgt: list[str]) -> str:
    """sha256 of the pairs as UTF-8 lines ``source<TAB>English<LF>``: anyone can recompute it."""
    digest = hashlib.sha256()
    for s, t in zip(src, tgt, strict=True):
        digest.update(f"{s}\t{t}\n".encode())
    return digest.hexdigest()


def encode_pairs(tokenizer: Any, src: list[str], tgt: list[str], max_length: int, name: str,
                 lang: str | None = None) -> EncodedPairs:
    """Ids as the checkpoint's tokenizer makes them for source language ``lang`` (each ends with EOS; language
    tags as its family wants, metanmt.models.families), cut to the model's positions."""
    from metanmt.models.families import encode

    src_ids, tgt_ids = encode(tokenizer, lang, src, tgt, max_length)
    return EncodedPairs.from_sequences(src_ids, tgt_ids, list(src), list(tgt), name=name)


def to_stderr(message: str) -> None:
    """Where notes and warnings go by default (stdout stays for results)."""
    print(message, file=sys.stderr)


def _train_and_dev(request: UserDataRequest, say: Callable[[str], None]
                   ) -> tuple[list[str], list[str], list[str], list[str], int]:
    """Training and dev pairs (src, tgt, dev src, dev tgt), and how many dev pairs were held out."""
    src, tgt = read_pairs(request.train, request.lang)
    if request.dev.given:
        return src, tgt, *read_pairs(request.dev, request.lang), 0
    keep, dev = hold_out(len(src), request.seed, request.train.describe())
    say(f"no dev data given: held out {len(dev)} of {len(src)} training pairs ({DEV_SHARE:.0%}, at least 1; "
        f"seed {request.seed}) for early stopping")
    return ([src[i] for i in keep], [tgt[i] for i in keep], [src[i] for i in dev], [tgt[i] for i in dev],
            len(dev))


def load_user_data(tokenizer: Any, request: UserDataRequest, max_length: int,
                   say: Callable[[str], None] = to_stderr) -> UserData:
    """Read, split, draw and encode the user's pairs; notes (held-out dev set, overlap) go to ``say``."""
    from metanmt.data.prepare import english_token_counts

    src, tgt, dev_src, dev_tgt, held_out = _train_and_dev(request, say)
    if request.max_tokens is not None:
        chosen = draw_subset(request.lang, tgt, request.max_tokens, request.seed)
        src, tgt = [src[i] for i in chosen], [tgt[i] for i in chosen]
    overlap = count_overlap(dev_src, src)
    if overlap:
        say(f"warning: {overlap} of {len(dev_src)} dev pairs have a source sentence that is also in the "
            "training data: the dev loss used for early stopping is optimistic")
    lang = request.lang
    return UserData(train=encode_pairs(tokenizer, src, tgt, max_length, f"{lang}-en/train", lang),
                    dev=encode_pairs(tokenizer, dev_src, dev_tgt, max_length, f"{lang}-en/dev", lang),
                    en_tokens=int(english_token_counts(tgt).sum()), sha256=pairs_sha256(src, tgt),
                    dev_sha256=pairs_sha256(dev_src, dev_tgt), held_out=held_out, overlap=overlap)
