"""The translation model: an HF MarianMT transformer built from a size preset and the shared spm model.

Checkpoints are ordinary ``save_pretrained`` directories (model + tokenizer) so they load with
``AutoModelForSeq2SeqLM.from_pretrained`` / ``AutoTokenizer.from_pretrained``; metanmt adds ``metanmt.json``
(provenance: which system, language, fine-tuning size...). Training may also start from any pretrained
seq2seq checkpoint with its own tokenizer (:mod:`metanmt.models.families`).
"""

from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sentencepiece as spm

from metanmt.atomic import atomic_dir
from metanmt.errors import MetaNMTError
from metanmt.models.lora import LORA_PATTERNS

PAD_ID, EOS_ID, UNK_ID = 0, 1, 2
INFO_FILE = "metanmt.json"


@dataclass(frozen=True)
class Preset:
    d_model: int
    layers: int
    heads: int
    ffn: int
    max_positions: int = 256


PRESETS: dict[str, Preset] = {
    "tiny": Preset(d_model=64, layers=2, heads=4, ffn=128),  # tests: seconds on a CPU
    # most learning per CPU-second (offline config)
    "compact": Preset(d_model=128, layers=3, heads=4, ffn=512),
    "small": Preset(d_model=256, layers=3, heads=4, ffn=1024),  # CPU benchmarks
    "base": Preset(d_model=512, layers=6, heads=8, ffn=2048),  # Gu et al. (2018), for GPUs
}


def build_tokenizer(spm_path: str | Path, out_dir: str | Path | None = None):
    """A MarianTokenizer over one shared SentencePiece model (source X and target English share it)."""
    from transformers import MarianTokenizer

    quiet_hf()
    spm_path = Path(spm_path)
    if not spm_path.is_file():
        raise MetaNMTError(f"SentencePiece model not found: {spm_path}")
    sp = spm.SentencePieceProcessor(model_file=str(spm_path))
    if (sp.pad_id(), sp.eos_id(), sp.unk_id()) != (PAD_ID, EOS_ID, UNK_ID):
        raise MetaNMTError(
            f"{spm_path}: expected pad/eos/unk ids {PAD_ID}/{EOS_ID}/{UNK_ID}, "
            f"got {sp.pad_id()}/{sp.eos_id()}/{sp.unk_id()}"
        )
    work = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="metanmt-tok-"))
    work.mkdir(parents=True, exist_ok=True)
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    (work / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    return MarianTokenizer(
        source_spm=str(spm_path), target_spm=str(spm_path), vocab=str(work / "vocab.json"),
        unk_token="<unk>", eos_token="</s>", pad_token="<pad>",
    )


NORMS = ("post", "pre")  # where the layer norms sit: after each sub-layer (Marian) or before it (mBART)


def build_model(preset: str, vocab_size: int, attn_implementation: str = "sdpa", dropout: float = 0.1,
                norm: str = "post", init_std: float | None = None):
    """A randomly initialised transformer of the given size preset with tied embeddings.

    ``norm="post"`` is MarianMT (post-norm, sinusoidal positions); ``norm="pre"`` is the same size as an
    mBART (pre-norm, learned positions), which stays stable at larger learning rates and starts using its
    source after fewer updates (benchmarks/regime_sweep). Both are plain HF seq2seq models.
    """
    from transformers import MarianConfig, MarianMTModel, MBartConfig, MBartForConditionalGeneration

    if preset not in PRESETS:
        raise MetaNMTError(f"unknown model preset {preset!r}; known: {', '.join(PRESETS)}")
    if norm not in NORMS:
        raise MetaNMTError(f"unknown model norm {norm!r}; choose one of {', '.join(NORMS)}")
    p = PRESETS[preset]
    common = {
        "vocab_size": vocab_size, "d_model": p.d_model, "encoder_layers": p.layers,
        "decoder_layers": p.layers,
        "encoder_attention_heads": p.heads, "decoder_attention_heads": p.heads, "encoder_ffn_dim": p.ffn,
        "decoder_ffn_dim": p.ffn, "max_position_embeddings": p.max_positions, "dropout": dropout,
        "activation_function": "gelu", "scale_embedding": True, "pad_token_id": PAD_ID,
        "eos_token_id": EOS_ID,
        "forced_eos_token_id": EOS_ID, "bos_token_id": None, "tie_word_embeddings": True,
        # HF's default init_std 0.02 suits d_model ~1000; at 64-256 it keeps every attention uniform and the
        # model learns to ignore its source (benchmarks/regime_sweep/README.md). d_model^-0.5 is fairseq's
        # embedding scale and Xavier's for the square projections.
        "init_std": p.d_model ** -0.5 if init_std is None else init_std,
    }
    if norm == "pre":  # mBART starts decoding from the last label token (EOS): say so to generate()
        config = MBartConfig(**common, decoder_start_token_id=EOS_ID)
        model_cls = MBartForConditionalGeneration
    else:
        config = MarianConfig(**common, decoder_start_token_id=PAD_ID, share_encoder_decoder_embeddings=True)
        model_cls = MarianMTModel
    config._attn_implementation = attn_implementation
    return model_cls(config)


def quiet_hf() -> None:
    """HF shows a progress bar for every shard it reads or writes (noise for our small, frequent checkpoints),
    and MarianTokenizer recommends sacremoses, whose punctuation normalisation our SentencePiece-encoded
    training data never had: we deliberately do without it. Called before every load, save and LoRA wrap."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message="Recommended: pip install sacremoses")
    # peft asks every model it wraps through an API transformers renamed: a warning per wrap, not ours to fix
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.* is deprecated")


def save_checkpoint(model, tokenizer, path: str | Path, info: dict[str, Any] | None = None,
                    extra_files: dict[str, Any] | None = None, texts: dict[str, str] | None = None) -> Path:
    """Write model + tokenizer (+ ``metanmt.json``, extra torch files and text files such as a model card
    ``README.md``) atomically to ``path``.

    Everything goes to a temporary sibling directory first, which then replaces ``path`` by rename, so a
    crash never leaves a half-written checkpoint where a good one was.
    """
    import torch

    from metanmt.models.lora import is_lora, save_lora

    quiet_hf()
    with atomic_dir(path) as tmp:
        if is_lora(model):
            save_lora(model, tmp)
        else:
            model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / INFO_FILE).write_text(json.dumps(info or {}, indent=2, sort_keys=True), encoding="utf-8")
        for name, obj in (extra_files or {}).items():
            torch.save(obj, tmp / name)
        for name, text in (texts or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
    return Path(path)


def load_checkpoint(path: str | Path, attn_implementation: str | None = None):
    """Load ``(model, tokenizer, info)`` from a checkpoint directory or a Hugging Face hub id (downloaded
    when not cached: needs internet), with a clear error if it is broken. A checkpoint with an ``adapter/``
    comes back with its LoRA adapter (:mod:`metanmt.models.lora`); generation is set to produce English."""
    from transformers import AutoModelForSeq2SeqLM

    from metanmt.models.families import set_english_target
    from metanmt.models.lora import load_lora

    local = Path(path)
    quiet_hf()
    if local.exists() or not _looks_like_hub_id(str(path)):
        if not (local / "config.json").is_file():
            raise MetaNMTError(f"{local} is not a metanmt/HF checkpoint directory (no config.json)")
        _check_seq2seq(local)
    try:
        kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
        model = AutoModelForSeq2SeqLM.from_pretrained(path, **kwargs)
    except Exception as err:  # HF raises many types for truncated/corrupt files, unknown or offline hub ids
        raise MetaNMTError(f"cannot load checkpoint {path}: {type(err).__name__}: {err}") from err
    tokenizer = load_tokenizer(path)
    _check_vocabulary(model, tokenizer, path)
    set_english_target(model, tokenizer)
    info_file = local / INFO_FILE
    info = json.loads(info_file.read_text(encoding="utf-8")) if info_file.is_file() else {}
    return load_lora(model, local), tokenizer, info


def load_tokenizer(path: str | Path):
    """The tokenizer saved in a checkpoint directory or of a hub id (a MetaNMTError if it cannot be read)."""
    from transformers import AutoTokenizer

    from metanmt.models.families import family_of

    quiet_hf()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as err:  # missing files, corrupt vocabularies, offline hub ids
        raise MetaNMTError(f"cannot load the tokenizer of {path}: {type(err).__name__}: {err}") from err
    family_of(tokenizer)  # refuse a tokenizer whose language tags metanmt does not know, naming the known
    return tokenizer


def _looks_like_hub_id(name: str) -> bool:
    """``org/name`` or ``name``: what ``from_pretrained`` would look up on the hub."""
    return name.count("/") <= 1 and not name.startswith((".", "/", "~"))


def _check_vocabulary(model, tokenizer, path: str | Path) -> None:
    """Every id the tokenizer makes must have an embedding; Marian tables match their tokenizer exactly."""
    from metanmt.models.families import family_of, tokenizer_size

    rows = model.get_input_embeddings().num_embeddings
    size = len(tokenizer) if family_of(tokenizer).exact_vocab else tokenizer_size(tokenizer)
    if size > rows or (family_of(tokenizer).exact_vocab and size != rows):
        raise MetaNMTError(f"checkpoint {path}: tokenizer has {size} pieces but the model vocabulary is "
                           f"{rows}")


def _check_seq2seq(path: Path) -> None:
    """Refuse a checkpoint of another kind (BERT, GPT...) with a message, not a transformers traceback."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES

    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise MetaNMTError(f"cannot load checkpoint {path}: config.json is unreadable ({err})") from None
    kind = config.get("model_type") if isinstance(config, dict) else None
    if kind not in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES:
        raise MetaNMTError(f"{path} holds a {kind!r} model, not a sequence-to-sequence (encoder-decoder) "
                           f"translation model such as MarianMT or mBART")


def set_decoding(model, num_beams: int = 4, length_penalty: float = 0.6) -> None:
    """Store ``metanmt translate``'s decoding in the model's generation config.

    A plain ``from_pretrained(...).generate()`` then decodes the same way (``generation_config.json`` in
    the checkpoint).
    """
    from metanmt.models.families import max_positions

    config = model.generation_config
    config.num_beams, config.length_penalty, config.do_sample = num_beams, length_penalty, False
    config.max_length = max_positions(model.config)  # the decoder start token + max_positions - 1


# Parameter groups fine-tuned / adapted (Gu et al. 2018 compare all, embeddings+encoder, embeddings only;
# "lora" trains LoRA adapters only, metanmt.models.lora). Patterns hold for every family and for adapted
# models ("model.shared.weight" in Marian/mBART, "shared.weight" in T5, "base_model.model.model.shared..."
# under peft).
PARAM_GROUPS: dict[str, tuple[str, ...]] = {
    "all": ("*",),
    "emb_enc": ("*shared.*", "*encoder.*"),
    "emb": ("*shared.*",),
    "lora": LORA_PATTERNS,
}
