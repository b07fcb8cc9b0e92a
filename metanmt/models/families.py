"""Pretrained model families and how each is told the source language: the one place that knows it.

metanmt names languages by ISO code (``de``). mBART-50 wants ``de_DE``, M2M-100 ``de`` (token ``__de__``),
NLLB-200 ``deu_Latn`` (the FLORES-200 code of metanmt's registry), T5/mT5 a task prefix; Marian (OPUS-MT X->en
models and metanmt's own checkpoints) needs nothing for English targets. Encoding a source sentence and
forcing English as the first generated token go through :func:`encode` and :func:`set_english_target`
only, so the data preparation, fine-tuning, evaluation and translation of every family agree.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from metanmt.data.languages import LANGUAGES
from metanmt.errors import MetaNMTError

DEFAULT_MAX_POSITIONS = 512  # models with relative positions (T5) have no table size to read


@dataclass(frozen=True)
class Family:
    """``tokenizers``: class names that identify the family; ``english``: the tokenizer's ``tgt_lang``
    code for English (None: the family has no language codes); ``prefix``: a task prompt before each
    source (``{name}``: the language's English name); ``lora_targets``: its attention projections that LoRA
    adapts (peft knows no default for Marian, mBART or M2M-100); ``exact_vocab``: the tokenizer and the
    embedding table have the same size (other families pad the table)."""

    name: str
    tokenizers: tuple[str, ...]
    english: str | None = None
    prefix: str = ""
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    exact_vocab: bool = False


FAMILIES = (
    Family("marian", ("MarianTokenizer",), exact_vocab=True),
    Family("mbart50", ("MBart50Tokenizer", "MBart50TokenizerFast"), english="en_XX"),
    Family("m2m100", ("M2M100Tokenizer",), english="en"),
    Family("nllb", ("NllbTokenizer", "NllbTokenizerFast"), english="eng_Latn"),
    Family("t5", ("T5Tokenizer", "T5TokenizerFast"), prefix="translate {name} to English: ",
           lora_targets=("q", "v")),
)


def family_of(tokenizer: Any) -> Family:
    """The family of a tokenizer, by its class; an unknown one is an error naming the supported ones."""
    kind = type(tokenizer).__name__
    for family in FAMILIES:
        if kind in family.tokenizers:
            return family
    known = ", ".join(f"{f.name} ({f.tokenizers[0]})" for f in FAMILIES)
    raise MetaNMTError(f"no language-tag convention for a {kind}: metanmt supports {known}")


def language_codes(tokenizer: Any) -> dict[str, int]:
    """The tokenizer's language codes and their ids (mBART-50 and M2M-100 keep a table; NLLB has them as
    special tokens)."""
    table = getattr(tokenizer, "lang_code_to_id", None)
    if table:
        return dict(table)
    if family_of(tokenizer).english is None:
        return {}
    codes = [t for t in tokenizer.all_special_tokens if not t.startswith("<")]
    return {t: tokenizer.convert_tokens_to_ids(t) for t in codes}


def source_code(tokenizer: Any, lang: str) -> str:
    """The tokenizer's code for ``lang``: the registry's FLORES-200 code (NLLB), else the only code that is
    ``lang`` or starts with ``lang_`` (``de`` -> ``de_DE``; ``ast`` -> ``ast_Latn``)."""
    codes = language_codes(tokenizer)
    entry = LANGUAGES.get(lang)
    if entry is not None and entry.flores in codes:
        return entry.flores
    found = [c for c in codes if c == lang or c.split("_")[0] == lang]
    if len(found) != 1:
        what = f"several codes ({', '.join(found)})" if found else "no code"
        raise MetaNMTError(f"the {family_of(tokenizer).name} tokenizer has {what} for language {lang!r} (its "
                           f"codes look like {', '.join(sorted(codes)[:6])}...)")
    return found[0]


def encode(tokenizer: Any, lang: str | None, sources: Sequence[str], targets: Sequence[str] | None = None,
           max_length: int | None = None) -> tuple[list[list[int]], list[list[int]] | None]:
    """Token ids of ``sources`` (in language ``lang``) and of their English ``targets``, tagged the way the
    tokenizer's family expects; each sequence ends with EOS. ``lang`` may be None only for untagged
    families (Marian)."""
    family = family_of(tokenizer)
    if (family.english is not None or family.prefix) and lang is None:
        raise MetaNMTError(f"a {family.name} model must be told the source language (give --lang)")
    if family.english is not None:
        tokenizer.src_lang, tokenizer.tgt_lang = source_code(tokenizer, lang), family.english
    if family.prefix:
        entry = LANGUAGES.get(lang)
        sources = [family.prefix.format(name=entry.name if entry else lang) + s for s in sources]
    cut = {"truncation": True, "max_length": max_length} if max_length else {}
    src = tokenizer(list(sources), **cut)["input_ids"]
    tgt = None if targets is None else tokenizer(text_target=list(targets), **cut)["input_ids"]
    return src, tgt


def set_english_target(model: Any, tokenizer: Any) -> None:
    """Make ``generate`` start every translation with the English code (``forced_bos_token_id``).

    It goes in the generation config a checkpoint saves, so a plain ``from_pretrained(...).generate()``
    translates to English.
    """
    english = family_of(tokenizer).english
    if english is not None:
        model.generation_config.forced_bos_token_id = language_codes(tokenizer)[english]


def tokenizer_size(tokenizer: Any) -> int:
    """One more than the largest id the tokenizer can produce (M2M-100's codes lie beyond ``len()``)."""
    return max([len(tokenizer), *(i + 1 for i in language_codes(tokenizer).values())])


def tokenizer_identity(tokenizer: Any) -> str:
    """A hash of what the ids mean: the tokenizer's class, vocabulary and language codes (the prepared
    data's cache key and the check that a model was trained with the data's tokenizer)."""
    content = [type(tokenizer).__name__, sorted(tokenizer.get_vocab().items()),
               sorted(language_codes(tokenizer).items()),
               family_of(tokenizer).prefix]
    return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()[:16]


def max_positions(config: Any) -> int:
    """The longest sequence the model takes (its position table; relative-position models: 512)."""
    return getattr(config, "max_position_embeddings", None) or DEFAULT_MAX_POSITIONS
