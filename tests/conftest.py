"""Fixtures shared by several test files: a tiny MarianMT with a SentencePiece model trained on given text."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest


def train_marian_spm(folder: Path, lines: Sequence[str], vocab_size: int, **options: Any) -> Path:
    """A SentencePiece model with Marian's special ids (pad 0, eos 1, unk 2, no bos) trained on ``lines``."""
    import sentencepiece as spm

    (folder / "corpus.txt").write_text("\n".join(lines), encoding="utf-8")
    settings = {"character_coverage": 1.0, **options}
    spm.SentencePieceTrainer.train(input=str(folder / "corpus.txt"), model_prefix=str(folder / "sp"),
                                   vocab_size=vocab_size, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   minloglevel=2, **settings)
    return folder / "sp.model"


@pytest.fixture(scope="session")
def tiny_marian() -> Callable[..., tuple[Any, Any]]:
    """``tiny_marian(folder, lines, vocab_size, dropout=0.0)``: (model, tokenizer) of the ``tiny`` preset,
    seeded with 0, its tokenizer trained on ``lines`` (written to ``folder``)."""

    def build(folder: Path, lines: Sequence[str], vocab_size: int, dropout: float = 0.0) -> tuple[Any, Any]:
        import torch

        from metanmt.models.seq2seq import build_model, build_tokenizer

        tokenizer = build_tokenizer(train_marian_spm(folder, lines, vocab_size), folder / "tok")
        torch.manual_seed(0)
        return build_model("tiny", len(tokenizer), dropout=dropout), tokenizer

    return build
