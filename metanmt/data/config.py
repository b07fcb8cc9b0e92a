"""The ``data:`` section of a config: task split, corpora, cleaning, SentencePiece, fine-tuning subsets.

One YAML file drives the whole pipeline; only its top-level ``data:`` mapping belongs to ``prepare`` and
only that mapping (with the source files' hashes) enters the cache key. Every mapping is checked for
unknown keys, so a typo is an error rather than a silently ignored setting. Example::

    data:
      seed: 1
      tasks:
        train: {languages: [de, fr], corpora: [tatoeba_challenge, ntrex128], max_pairs: 4000, dev_pairs: 100}
        valid: {languages: [ro], corpora: [tatoeba_challenge, ntrex128], test_pairs: 500, dev_pairs: 200,
                eval_sets: {test_wmt: wmt_newstest, test_flores: flores200}}
        test:  {languages: [fi], ...}
      clean: {max_words: 100, max_chars: 600, max_ratio: 3.0}
      spm: {vocab_size: 8000, model_type: unigram, temperature: 5.0, sentences: 200000}
      # or, instead of training SentencePiece, a pretrained model's tokenizer (directory or hub id):
      # tokenizer: {from_pretrained: facebook/nllb-200-distilled-600M}
      finetune: {tokens: [0, 4000, 16000], draws: 3}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metanmt.data.languages import source_language
from metanmt.data.readers import make_corpus
from metanmt.errors import MetaNMTError

GROUPS = ("train", "valid", "test")
IN_DOMAIN_SPLITS = ("train", "dev", "test")
_SPLIT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SPM_TYPES = ("unigram", "bpe", "char", "word")


@dataclass(frozen=True)
class CorpusSpec:
    """One corpus entry: its reader ``kind``, a ``label`` (defaults to the kind) and reader options."""

    kind: str
    label: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LanguagePlan:
    """What ``prepare`` does for one language, with the group settings and per-language overrides merged."""

    lang: str
    group: str
    corpora: tuple[CorpusSpec, ...]
    max_pairs: int | None
    dev_pairs: int
    test_pairs: int
    test_from: str | None
    eval_sets: dict[str, CorpusSpec]


@dataclass(frozen=True)
class CleanConfig:
    """Cleaning filters. ``max_ratio`` bounds a pair's character-length ratio *relative to its language's
    median ratio*, so scripts with denser characters (Korean, Chinese) are not filtered wholesale."""

    max_words: int = 100
    max_chars: int = 600
    max_ratio: float = 3.0


@dataclass(frozen=True)
class SpmConfig:
    """The shared SentencePiece model; ``sentences`` drawn with language probability ∝ n^(1/temperature)."""

    vocab_size: int = 8000
    model_type: str = "unigram"
    character_coverage: float = 0.9995
    byte_fallback: bool = True
    temperature: float = 5.0
    sentences: int = 200_000
    threads: int = 2


@dataclass(frozen=True)
class TokenizerConfig:
    """``from_pretrained``: encode with this Hugging Face tokenizer (a directory or hub id) instead of
    training SentencePiece; training then starts from a model that uses it (``model.init_from``)."""

    from_pretrained: str | None = None


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning subsets of valid/test languages: English token budgets (sacrebleu 13a tokens) x draws."""

    tokens: tuple[int, ...] = (0, 4000, 16000, 40000, 160000)
    draws: int = 5


@dataclass(frozen=True)
class DataConfig:
    """The parsed ``data:`` section. ``section`` is the raw mapping, hashed into the cache key."""

    seed: int
    plans: dict[str, LanguagePlan]
    clean: CleanConfig
    spm: SpmConfig
    finetune: FinetuneConfig
    section: dict[str, Any]
    tokenizer: TokenizerConfig = TokenizerConfig()

    def languages(self, group: str) -> list[str]:
        """The languages of ``group`` (train, valid or test), in config order."""
        return [lang for lang, plan in self.plans.items() if plan.group == group]


def _check_keys(mapping: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(mapping) - set(allowed))
    if unknown:
        raise MetaNMTError(f"{where}: unknown key(s) {unknown}; allowed: {list(allowed)}")


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MetaNMTError(f"{where} must be a mapping, not {type(value).__name__}")
    return dict(value)


def _int(value: Any, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise MetaNMTError(f"{where} must be an integer >= {minimum}, not {value!r}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise MetaNMTError(f"{where} must be a positive number, not {value!r}")
    return float(value)


def _dataclass_from(cls: type, value: Any, where: str) -> Any:
    """Build a flat settings dataclass from a mapping, type-checking each field against its default."""
    mapping = _mapping(value, where)
    names = tuple(cls.__dataclass_fields__)
    _check_keys(mapping, names, where)
    default = cls()
    kwargs: dict[str, Any] = {}
    for name, given in mapping.items():
        expected = getattr(default, name)
        here = f"{where}.{name}"
        if isinstance(expected, bool):
            if not isinstance(given, bool):
                raise MetaNMTError(f"{here} must be true or false, not {given!r}")
            kwargs[name] = given
        elif isinstance(expected, int):
            kwargs[name] = _int(given, here, minimum=1)
        elif isinstance(expected, float):
            kwargs[name] = _number(given, here)
        else:
            kwargs[name] = given
    return cls(**kwargs)


def corpus_spec(value: Any, where: str) -> CorpusSpec:
    """A corpus entry: a kind name (``flores200``) or a mapping ``{corpus: KIND, label: ..., **options}``."""
    if isinstance(value, str):
        kind, label, options = value, value, {}
    else:
        options = _mapping(value, where)
        if "corpus" not in options:
            raise MetaNMTError(f"{where} needs a 'corpus:' key naming the reader")
        kind = str(options.pop("corpus"))
        label = str(options.pop("label", kind))
    make_corpus(kind, options, None)  # checks the kind and the option names now, not halfway through
    return CorpusSpec(kind, label, options)


_GROUP_KEYS = ("languages", "corpora", "max_pairs", "dev_pairs", "test_pairs", "test_from", "eval_sets",
               "per_language")
_OVERRIDE_KEYS = ("corpora", "max_pairs", "dev_pairs", "test_pairs", "test_from", "eval_sets")


def _plan(lang: str, group: str, settings: dict[str, Any], where: str) -> LanguagePlan:
    corpora_value = settings.get("corpora") or []
    if isinstance(corpora_value, (str, Mapping)):
        corpora_value = [corpora_value]
    corpora = tuple(corpus_spec(c, f"{where}.corpora[{i}]") for i, c in enumerate(corpora_value))
    if not corpora:
        raise MetaNMTError(f"{where}: no corpora listed for {lang!r} (set 'corpora:')")
    labels = [c.label for c in corpora]
    if len(set(labels)) != len(labels):
        raise MetaNMTError(f"{where}: corpus labels must differ, got {labels}; add 'label:' to tell them "
                           "apart")
    eval_sets = {}
    for name, spec in _mapping(settings.get("eval_sets"), f"{where}.eval_sets").items():
        if not _SPLIT_NAME.match(str(name)) or name in IN_DOMAIN_SPLITS:
            raise MetaNMTError(f"{where}.eval_sets: {name!r} is not a valid split name (lowercase letters, "
                               f"digits, '_'; not one of {list(IN_DOMAIN_SPLITS)})")
        eval_sets[str(name)] = corpus_spec(spec, f"{where}.eval_sets.{name}")
    max_pairs = settings.get("max_pairs")
    test_pairs = _int(settings.get("test_pairs", 0), f"{where}.test_pairs")
    test_from = settings.get("test_from", labels[0])
    if test_pairs and test_from not in labels:
        raise MetaNMTError(f"{where}.test_from: {test_from!r} is not one of the corpora {labels}")
    return LanguagePlan(
        lang=lang,
        group=group,
        corpora=corpora,
        max_pairs=None if max_pairs is None else _int(max_pairs, f"{where}.max_pairs", minimum=1),
        dev_pairs=_int(settings.get("dev_pairs", 0), f"{where}.dev_pairs"),
        test_pairs=test_pairs,
        test_from=test_from if test_pairs else None,
        eval_sets=eval_sets,
    )


def _group_plans(group: str, value: Any) -> list[LanguagePlan]:
    where = f"data.tasks.{group}"
    settings = _mapping(value, where)
    _check_keys(settings, _GROUP_KEYS, where)
    languages = settings.pop("languages", None) or []
    if isinstance(languages, str) or not isinstance(languages, list):
        raise MetaNMTError(f"{where}.languages must be a list of ISO 639-1 codes")
    for lang in languages:
        source_language(str(lang))
    overrides = _mapping(settings.pop("per_language", None), f"{where}.per_language")
    stray = sorted(set(overrides) - set(map(str, languages)))
    if stray:
        raise MetaNMTError(f"{where}.per_language names {stray}, which are not in {where}.languages")
    plans = []
    for lang in map(str, languages):
        override = _mapping(overrides.get(lang), f"{where}.per_language.{lang}")
        _check_keys(override, _OVERRIDE_KEYS, f"{where}.per_language.{lang}")
        plans.append(_plan(lang, group, {**settings, **override}, f"{where}[{lang}]"))
    return plans


def _finetune(value: Any) -> FinetuneConfig:
    mapping = _mapping(value, "data.finetune")
    _check_keys(mapping, ("tokens", "draws"), "data.finetune")
    default = FinetuneConfig()
    tokens = mapping.get("tokens", list(default.tokens))
    if not isinstance(tokens, list) or not tokens:
        raise MetaNMTError("data.finetune.tokens must be a non-empty list of English token counts")
    sizes = tuple(sorted({_int(t, "data.finetune.tokens[]") for t in tokens}))
    return FinetuneConfig(tokens=sizes,
                          draws=_int(mapping.get("draws", default.draws), "data.finetune.draws", 1))


def load_config(config: str | Path | Mapping[str, Any]) -> DataConfig:
    """Parse the ``data:`` section of a YAML file (path) or of an already-loaded config mapping.

    Other top-level keys (``model``, ``meta``, ``train``, ...) belong to other commands and are ignored.
    """
    full, where = _read_mapping(config)
    if "data" not in full:
        raise MetaNMTError(f"{where} has no top-level 'data:' section (the settings of 'metanmt prepare')")
    section = _mapping(full["data"], "data")
    _check_keys(section, ("seed", "tasks", "clean", "spm", "tokenizer", "finetune"), "data")
    plans = _language_plans(_mapping(section.get("tasks"), "data.tasks"))
    spm = _dataclass_from(SpmConfig, section.get("spm"), "data.spm")
    if spm.model_type not in _SPM_TYPES:
        raise MetaNMTError(f"data.spm.model_type must be one of {list(_SPM_TYPES)}, not {spm.model_type!r}")
    return DataConfig(
        seed=_int(section.get("seed", 1), "data.seed"),
        plans=plans,
        clean=_dataclass_from(CleanConfig, section.get("clean"), "data.clean"),
        spm=spm,
        finetune=_finetune(section.get("finetune")),
        section=section,
        tokenizer=_dataclass_from(TokenizerConfig, section.get("tokenizer"), "data.tokenizer"),
    )


def _read_mapping(config: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The whole config as a mapping, and how errors name it (its path)."""
    if isinstance(config, Mapping):
        return dict(config), "the config"
    import yaml

    path = Path(config)
    try:
        full = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise MetaNMTError(f"cannot read config {path}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise MetaNMTError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(full, Mapping):
        raise MetaNMTError(f"{path} must hold a YAML mapping")
    return dict(full), str(path)


def _language_plans(tasks: Mapping[str, Any]) -> dict[str, LanguagePlan]:
    """Every language of ``data.tasks`` with its plan; a language may sit in one group only."""
    _check_keys(tasks, GROUPS, "data.tasks")
    plans: dict[str, LanguagePlan] = {}
    for group in GROUPS:
        for plan in _group_plans(group, tasks.get(group)):
            if plan.lang in plans:
                raise MetaNMTError(f"language {plan.lang!r} is listed in both "
                                   f"data.tasks.{plans[plan.lang].group} and data.tasks.{group}")
            plans[plan.lang] = plan
    if not any(plan.group == "train" for plan in plans.values()):
        raise MetaNMTError("data.tasks.train.languages is empty: meta-training needs at least one language")
    return plans
