"""Training configuration: dataclasses filled from the YAML file that also holds the ``data`` section.

One YAML drives the pipeline: ``data`` (read by ``metanmt prepare``), ``model``, ``meta``, ``train``,
``finetune`` and ``eval``. Unknown keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from metanmt.errors import MetaNMTError
from metanmt.models.lora import LORA_PATTERNS, LoraSettings

if TYPE_CHECKING:
    from metanmt.meta import MetaConfig

OUTER_PARAMS = ("adapters", "all")
# The systems: name -> the name reports print. "multimeta" pre-trains then meta-learns: meta-training
# started from the MultiNMT run's checkpoint at ``train.pretrain_share`` of the budget, for the rest of it.
SYSTEMS = {"metanmt": "MetaNMT", "multinmt": "MultiNMT", "multimeta": "MultiNMT+MetaNMT"}


@dataclass
class ModelConfig:
    preset: str = "tiny"  # tiny | compact | small | base (metanmt.models.seq2seq.PRESETS)
    # a pretrained seq2seq model to start from instead of random weights: an HF checkpoint directory or hub id
    # of any family in metanmt.models.families (Marian/OPUS-MT, mBART-50, M2M-100, NLLB-200, T5/mT5)
    init_from: str | None = None
    dropout: float = 0.1
    norm: str = "post"  # post (MarianMT) | pre (pre-norm, mBART layout)
    init_std: float | None = None  # std of the random weights; None: d_model ** -0.5 (see build_model)


@dataclass
class MetaSection:
    """Meta-training (MetaNMT). Defaults follow Gu et al. (2018): first-order MAML, one inner Adam step."""

    algorithm: str = "fomaml"
    inner_steps: int = 1
    inner_lr: float = 1e-3
    inner_optimizer: str = "adam"
    # parameter name patterns adapted in the inner loop, or "lora": LoRA adapters (settings in ``lora``)
    fast_params: list[str] | str = field(default_factory=lambda: ["*"])
    lora: LoraSettings = field(default_factory=LoraSettings)
    # with fast_params "lora": what the outer loop (and the baseline, for the same trainable weights) trains:
    # "adapters" (their initialisation; the pretrained weights stay fixed) or "all" (adapters and base
    # weights)
    outer_params: str = "adapters"
    meta_batch: int = 4  # tasks per meta-step (split across processes)
    support_tokens: int = 1000  # target tokens per support batch
    query_tokens: int = 1000  # target tokens per query batch
    # the cross-entropy over chunks of tokens, never the whole [tokens, vocabulary] logits, twice
    # differentiable (metanmt.models.chunked_loss): second-order MAML on large vocabularies fits in far less
    # memory (benchmarks/meta_step_large.md); the same loss up to rounding. Marian, mBART, M2M-100, NLLB.
    chunked_loss: bool = False
    # second-order MAML: recompute each inner step in the backward sweep, so that the support pass's graph
    # and the query pass are never alive together (metanmt.meta.MetaConfig; benchmarks/meta_step_large.md)
    recompute: bool = False
    # each support and query batch in this many pieces of sentences, one piece's activations (and with
    # recompute one piece's second-order graph) alive at a time; the pieces' losses weighted by their target
    # tokens: the same meta-gradient up to rounding (metanmt.meta.micro; benchmarks/meta_step_large.md)
    micro_batches: int = 1
    # with recompute and micro_batches: the last this many support pieces of each inner step keep their
    # second-order graph from the inner loop instead of being recomputed in the backward sweep (less time, one
    # piece's graph more memory each; benchmarks/meta_step_large.md)
    keep_pieces: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.lora, dict):
            self.lora = _section(LoraSettings, self.lora, "meta.lora")
        if isinstance(self.fast_params, str) and self.fast_params != "lora":
            raise MetaNMTError("meta.fast_params must be a list of name patterns or 'lora', not "
                               f"{self.fast_params!r}")
        if self.outer_params not in OUTER_PARAMS:
            raise MetaNMTError(f"meta.outer_params must be one of {', '.join(OUTER_PARAMS)}, "
                               f"not {self.outer_params!r}")

    @property
    def uses_lora(self) -> bool:
        return self.fast_params == "lora"

    def fast_patterns(self) -> tuple[str, ...]:
        """The inner loop's parameter name patterns (the adapter weights with ``lora``)."""
        return LORA_PATTERNS if self.uses_lora else tuple(self.fast_params)

    def core_config(self, grad_clip: float | None) -> MetaConfig:
        """The episodic core's settings: every field both configs declare passes on by name (this section
        only changes defaults, to Gu et al.'s), the fast parameters as patterns."""
        from metanmt.meta import MetaConfig

        shared = {f.name for f in dataclasses.fields(MetaConfig)} & {f.name for f in dataclasses.fields(self)}
        values = {name: getattr(self, name) for name in shared}
        return MetaConfig(**{**values, "fast_params": self.fast_patterns()}, grad_clip=grad_clip)


@dataclass
class TrainSection:
    """Shared by meta-training and the multilingual baseline, so both get the same budget and selection."""

    steps: int = 200  # meta-steps; the baseline processes the same number of target tokens
    lr: float = 5e-4
    warmup_steps: int = 50
    grad_clip: float = 1.0
    temperature: float = 1.0  # task sampling p ~ size^(1/T)
    eval_every: int = 50
    save_every: int = 50
    seed: int = 1
    mixed_precision: str = "no"  # no | bf16 | fp16 (accelerate)
    # multimeta: the share of the budget trained as MultiNMT before meta-learning takes over
    pretrain_share: float = 0.5
    # fix glibc's mmap threshold at 1 MiB (metanmt.memory.bound_heap): meta-training's RSS stays flat instead
    # of growing to ~1.7x the baseline's, for ~30% more CPU per meta-step (~7% with GLIBC_TUNABLES=
    # glibc.malloc.hugetlb=1 in the environment: benchmarks/rss.md). Only on glibc's allocator: tcmalloc,
    # which the metanmt command preloads where installed, keeps the RSS flat on its own and costs less CPU
    bound_heap: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.pretrain_share < 1.0:
            raise MetaNMTError("train.pretrain_share must lie strictly between 0 and 1, not "
                               f"{self.pretrain_share}")

    def pretrain_steps(self) -> int:
        """The meta-steps of the budget that multimeta spends as MultiNMT (the checkpoint it starts from)."""
        return round(self.steps * self.pretrain_share)


@dataclass
class FinetuneSection:
    lr: float = 3e-4
    batch_tokens: int = 1000
    max_steps: int = 200
    eval_every: int = 20
    patience: int = 3  # evaluations without dev-loss improvement before stopping
    params: str = "all"  # all | emb_enc | emb | lora (the model's LoRA adapters, or fresh ones)
    valid_steps: int = 20  # fine-tuning steps of the in-training validation (fixed, no early stopping)
    # linear warm-up of the early-stopped fine-tunes (held-out languages, the rate choice below): a fresh
    # Adam's first steps at the full rate can undo what a multilingual model knows before the first check
    warmup_steps: int = 0
    # rates tried per system on the validation languages (metanmt.train.validation); empty: always ``lr``
    lr_grid: list[float] = field(default_factory=list)
    tune_tokens: int = 4000  # fine-tuning tokens of each validation language used to choose the rate


@dataclass
class EvalSection:
    beam: int = 4
    length_penalty: float = 0.6
    batch_size: int = 64  # sentences per beam-search batch (larger on a GPU)
    valid_sentences: int = 100  # dev sentences decoded for model selection during training
    valid_beam: int = 1
    ood_draws: int = 1  # out-of-domain test sets are decoded for this many draws of each size...
    ood_max_sentences: int | None = None  # ...and at most this many sentences (None: all)


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    meta: MetaSection = field(default_factory=MetaSection)
    train: TrainSection = field(default_factory=TrainSection)
    finetune: FinetuneSection = field(default_factory=FinetuneSection)
    eval: EvalSection = field(default_factory=EvalSection)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> TrainConfig:
        sections = {f.name: f.type for f in dataclasses.fields(cls)}
        kwargs = {}
        for f in dataclasses.fields(cls):
            values = raw.get(f.name) or {}
            kwargs[f.name] = _section(type(getattr(cls(), f.name)), values, f"{source}: '{f.name}'")
        extra = sorted(set(raw) - set(sections) - {"data"})
        if extra:
            raise MetaNMTError(f"{source}: unknown top-level section(s): {', '.join(extra)}")
        return cls(**kwargs)

    @classmethod
    def load(cls, path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> TrainConfig:
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            raise MetaNMTError(f"cannot read config {path}: {err}") from err
        for section, values in (overrides or {}).items():
            raw.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})
        return cls.from_dict(raw, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self, *exclude: str) -> str:
        """Hash of the settings that define a run (resume refuses a directory made with other settings).

        ``exclude`` names sections (``"eval"``) or single fields (``"train.steps"``) left out of the hash.
        """
        d = {k: v for k, v in self.to_dict().items() if k not in exclude}
        for name in exclude:
            section, _, key = name.partition(".")
            if key and section in d:
                d[section] = {k: v for k, v in d[section].items() if k != key}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _section(section_cls: type, values: dict[str, Any], where: str) -> Any:
    """``section_cls(**values)``, an unknown key being an error that names the known ones."""
    known = {x.name for x in dataclasses.fields(section_cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise MetaNMTError(f"{where}: unknown key(s) {', '.join(unknown)} "
                           f"(known: {', '.join(sorted(known))})")
    return section_cls(**values)
