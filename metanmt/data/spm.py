"""The shared SentencePiece model: temperature-sampled training text, fixed special ids, encoding."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from metanmt.data.config import SpmConfig
from metanmt.data.sampling import temperature_probabilities
from metanmt.errors import MetaNMTError

PAD_ID, EOS_ID, UNK_ID = 0, 1, 2  # BOS is disabled (-1); every stored sequence ends with EOS


def sample_training_text(texts: dict[str, Sequence[str]], total: int, temperature: float,
                         seed: int) -> tuple[list[str], dict[str, int]]:
    """Draw about ``total`` sentences, language ``l`` with probability ∝ n_l^(1/temperature).

    A language whose quota exceeds its data is repeated (all sentences, then a random rest), which is
    how small languages get their share of the vocabulary. Returns the shuffled sentences and the
    number drawn per language.
    """
    texts = {lang: list(sentences) for lang, sentences in texts.items() if sentences}
    probabilities = temperature_probabilities({lang: len(s) for lang, s in texts.items()}, temperature)
    rng = np.random.default_rng(seed)
    drawn: list[str] = []
    counts: dict[str, int] = {}
    for lang, sentences in texts.items():
        quota = max(1, round(total * probabilities[lang]))
        full, rest = divmod(quota, len(sentences))
        index = np.concatenate([np.tile(np.arange(len(sentences)), full),
                                rng.choice(len(sentences), size=rest, replace=False)])
        drawn.extend(sentences[i] for i in index)
        counts[lang] = quota
    order = rng.permutation(len(drawn))
    return [drawn[i] for i in order], counts


def train_spm(sentences: Sequence[str], cfg: SpmConfig, seed: int, model_path: Path) -> Path:
    """Train the shared model on ``sentences``; writes ``model_path`` and the ``.vocab`` beside it.

    Ids are fixed for every model: ``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2, no BOS. ``hard_vocab_limit`` is off
    so a tiny corpus yields a smaller vocabulary instead of failing; the real size is in the model. The
    model is written from memory (not via ``model_prefix``, which the model file would record), so the
    same input gives a byte-identical file.
    """
    import sentencepiece as spm

    spm.set_random_generator_seed(seed)
    buffer = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=buffer,
            vocab_size=cfg.vocab_size,
            model_type=cfg.model_type,
            character_coverage=cfg.character_coverage,
            byte_fallback=cfg.byte_fallback,
            pad_id=PAD_ID, pad_piece="<pad>",
            eos_id=EOS_ID, eos_piece="</s>",
            unk_id=UNK_ID, unk_piece="<unk>",
            bos_id=-1,
            hard_vocab_limit=False,
            input_sentence_size=0,
            shuffle_input_sentence=False,
            num_threads=cfg.threads,
            minloglevel=2,
        )
    except RuntimeError as err:  # e.g. a vocabulary smaller than the characters it must cover
        raise MetaNMTError(f"SentencePiece training failed (data.spm: vocab_size {cfg.vocab_size}, "
                           f"character_coverage {cfg.character_coverage}): {err}") from None
    model_path.write_bytes(buffer.getvalue())
    _write_vocab(buffer.getvalue(), model_path.with_suffix(".vocab"))
    return model_path


def _write_vocab(model_proto: bytes, path: Path) -> None:
    """The ``.vocab`` file SentencePiece writes beside a model: one ``piece<TAB>score`` line per id."""
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_proto=model_proto)
    vocab = "".join(f"{processor.id_to_piece(i)}\t{processor.get_score(i):g}\n"
                    for i in range(processor.get_piece_size()))
    path.write_text(vocab, encoding="utf-8")


def encode(processor: object, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of ``texts`` (each ending with EOS) as one flat int32 array plus int64 offsets (n + 1)."""
    pieces = processor.encode(list(texts), out_type=int, add_eos=True)  # type: ignore[attr-defined]
    lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.fromiter((t for p in pieces for t in p), dtype=np.int32, count=int(offsets[-1]))
    return ids, offsets
