"""Reading a folder written by ``metanmt prepare``: encoded pairs per language and split, subsets, spm model.

Arrays are loaded lazily, per (language, split), the first time they are asked for.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from metanmt.errors import MetaNMTError

MANIFEST = "manifest.json"


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of a prepared folder, or None if there is none."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise MetaNMTError(f"{path} is not a readable manifest: {err}") from None
    if not isinstance(manifest, dict):
        raise MetaNMTError(f"{path} is not a metanmt manifest")
    return manifest


def ragged(rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Id sequences as one flat int32 array plus int64 offsets (n + 1), the layout of every prepared split."""
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    flat = np.fromiter((t for r in rows for t in r), dtype=np.int32, count=int(offsets[-1]))
    return flat, offsets


def _gather(ids: np.ndarray, offsets: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows ``indices`` of a ragged (ids, offsets) array as a new ragged array."""
    lengths = offsets[indices + 1] - offsets[indices]
    new_offsets = np.zeros(len(indices) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    positions = np.repeat(offsets[indices] - new_offsets[:-1], lengths) + np.arange(new_offsets[-1])
    return ids[positions], new_offsets


class EncodedPairs:
    """Token ids (each sequence ends with EOS) and cleaned text of X->English pairs.

    ``src(i)``/``tgt(i)`` are views into flat int32 arrays; ``src_text``/``tgt_text`` are the cleaned
    sentences (BLEU references and translation inputs).
    """

    def __init__(self, src_ids: np.ndarray, src_offsets: np.ndarray, tgt_ids: np.ndarray,
                 tgt_offsets: np.ndarray, src_text: list[str], tgt_text: list[str], name: str = "") -> None:
        n = len(src_offsets) - 1
        if len(tgt_offsets) - 1 != n or len(src_text) != n or len(tgt_text) != n:
            raise MetaNMTError(f"{name or 'pairs'}: inconsistent sizes (src ids {n}, tgt ids "
                               f"{len(tgt_offsets) - 1}, src text {len(src_text)}, tgt text {len(tgt_text)})")
        self._src_ids, self._src_offsets = np.asarray(src_ids,
                                                      dtype=np.int32), np.asarray(src_offsets, np.int64)
        self._tgt_ids, self._tgt_offsets = np.asarray(tgt_ids,
                                                      dtype=np.int32), np.asarray(tgt_offsets, np.int64)
        self.src_text = src_text
        self.tgt_text = tgt_text
        self.name = name
        self.src_lengths = np.diff(self._src_offsets)
        self.tgt_lengths = np.diff(self._tgt_offsets)

    @classmethod
    def from_sequences(cls, src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]],
                       src_text: list[str] | None = None, tgt_text: list[str] | None = None,
                       name: str = "") -> EncodedPairs:
        """Pairs from lists of id sequences (as given: append EOS yourself), e.g. for tests and tools."""
        blank = [""] * len(src)
        return cls(*ragged(src), *ragged(tgt), src_text or blank, tgt_text or list(blank), name)

    def __len__(self) -> int:
        return len(self.src_lengths)

    def __repr__(self) -> str:
        return f"EncodedPairs({self.name!r}, {len(self)} pairs, {self.num_tgt_tokens} target tokens)"

    def src(self, i: int) -> np.ndarray:
        """Source token ids of pair ``i`` (int32, ends with EOS)."""
        return self._src_ids[self._src_offsets[i]:self._src_offsets[i + 1]]

    def tgt(self, i: int) -> np.ndarray:
        """English token ids of pair ``i`` (int32, ends with EOS)."""
        return self._tgt_ids[self._tgt_offsets[i]:self._tgt_offsets[i + 1]]

    @property
    def num_tgt_tokens(self) -> int:
        """Target (English) tokens in all pairs, EOS included."""
        return int(self._tgt_offsets[-1])

    @property
    def num_src_tokens(self) -> int:
        """Source tokens in all pairs, EOS included."""
        return int(self._src_offsets[-1])

    def subset(self, indices: Sequence[int] | np.ndarray, name: str | None = None) -> EncodedPairs:
        """The pairs at ``indices`` (in that order) as new, independent arrays."""
        index = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(index) and (index.min() < 0 or index.max() >= len(self)):
            raise MetaNMTError(f"{self.name or 'pairs'}: subset index out of range 0..{len(self) - 1}")
        src_ids, src_offsets = _gather(self._src_ids, self._src_offsets, index)
        tgt_ids, tgt_offsets = _gather(self._tgt_ids, self._tgt_offsets, index)
        return EncodedPairs(src_ids, src_offsets, tgt_ids, tgt_offsets, [self.src_text[i] for i in index],
                            [self.tgt_text[i] for i in index], self.name if name is None else name)


def _read_text(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise MetaNMTError(f"prepared data is damaged: cannot read {path} ({err})") from None
    return text.split("\n")[:-1]


class PreparedData:
    """A prepared folder: ``PreparedData.load(path)``."""

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self.manifest = manifest
        try:
            languages = manifest["languages"]
            self.train_langs: list[str] = list(languages["train"])
            self.valid_langs: list[str] = list(languages["valid"])
            self.test_langs: list[str] = list(languages["test"])
            # data encoded with a pretrained model's tokenizer has no SentencePiece model of its own
            self.pretrained_tokenizer: dict[str, Any] | None = manifest.get("tokenizer")
            spm = None if self.pretrained_tokenizer else manifest["spm"]
            self.spm_path: Path | None = root / spm["model"] if spm else None
            self.vocab_size: int = int(spm["vocab_size"] if spm else self.pretrained_tokenizer["size"])
            self.finetune_sizes: list[int] = [int(t) for t in manifest["finetune"]["tokens"]]
            self.num_draws: int = int(manifest["finetune"]["draws"])
            self._tasks: dict[str, Any] = manifest["tasks"]
        except (KeyError, TypeError) as err:
            raise MetaNMTError(f"{root / MANIFEST} is not a metanmt manifest (missing {err})") from None
        if self.spm_path is not None and not self.spm_path.is_file():
            raise MetaNMTError(f"prepared data is damaged: the SentencePiece model {self.spm_path} "
                               "is missing")
        self._pairs: dict[tuple[str, str], EncodedPairs] = {}
        self._subsets: dict[str, Any] = {}

    @classmethod
    def load(cls, root: str | Path) -> PreparedData:
        """Open a folder written by ``metanmt prepare``; a missing or corrupt one is a MetaNMTError."""
        path = Path(root).expanduser()
        manifest = read_manifest(path)
        if manifest is None:
            raise MetaNMTError(f"{path} holds no prepared data ({MANIFEST} not found); run 'metanmt prepare'")
        return cls(path, manifest)

    @property
    def languages(self) -> list[str]:
        """All languages: meta-training, then validation, then test."""
        return self.train_langs + self.valid_langs + self.test_langs

    def _task(self, lang: str) -> dict[str, Any]:
        if lang not in self._tasks:
            raise MetaNMTError(f"no language {lang!r} in {self.root}; it has {', '.join(self._tasks)}")
        return self._tasks[lang]

    def group(self, lang: str) -> str:
        """``train``, ``valid`` or ``test``: the role of ``lang`` in the task split."""
        return str(self._task(lang)["group"])

    def splits(self, lang: str) -> list[str]:
        """Every split of ``lang``: ``train``, ``dev``, and its test-like splits."""
        return list(self._task(lang)["splits"])

    def eval_splits(self, lang: str) -> list[str]:
        """Test-like splits of ``lang``: ``test`` (in-domain) first, then out-of-domain (``test_wmt``...)."""
        return list(self._task(lang)["eval_splits"])

    def pairs(self, lang: str, split: str) -> EncodedPairs:
        """The encoded pairs of ``lang`` in ``split`` (loaded once, then cached)."""
        task = self._task(lang)
        if split not in task["splits"]:
            raise MetaNMTError(f"{lang} has no split {split!r} in {self.root}; it has "
                               f"{', '.join(task['splits'])}")
        key = (lang, split)
        if key not in self._pairs:
            folder = self.root / "tasks" / lang
            arrays = self._npz(folder / f"{split}.npz", ("src_ids", "src_offsets", "tgt_ids", "tgt_offsets"))
            src_text = _read_text(folder / f"{split}.{lang}")
            tgt_text = _read_text(folder / f"{split}.en")
            pairs = EncodedPairs(arrays["src_ids"], arrays["src_offsets"], arrays["tgt_ids"],
                                 arrays["tgt_offsets"], src_text, tgt_text, name=f"{lang}-en/{split}")
            if len(pairs) != task["splits"][split]["pairs"]:
                raise MetaNMTError(f"prepared data is damaged: {folder / split}.* hold {len(pairs)} pairs, "
                                   f"the manifest says {task['splits'][split]['pairs']}")
            self._pairs[key] = pairs
        return self._pairs[key]

    @staticmethod
    def _npz(path: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
        try:
            with np.load(path) as archive:
                return {key: archive[key] for key in keys}
        except (OSError, ValueError, KeyError) as err:
            raise MetaNMTError(f"prepared data is damaged: cannot read {path} ({err})") from None

    def finetune_subset(self, lang: str, tokens: int, draw: int) -> EncodedPairs:
        """Draw ``draw`` of the fine-tuning subset of ``lang`` with about ``tokens`` English tokens.

        A subset of the language's ``train`` split; ``tokens=0`` gives an empty set. Subsets of one draw
        are nested (the 4K subset is inside the 16K one).
        """
        files = self.manifest["finetune"].get("files", {})
        if lang not in files:
            raise MetaNMTError(f"{lang!r} has no fine-tuning subsets; languages with subsets: "
                               f"{', '.join(files) or 'none'}")
        if tokens not in self.finetune_sizes:
            raise MetaNMTError(f"no fine-tuning subset of {tokens} tokens; sizes: {self.finetune_sizes}")
        if not 0 <= draw < self.num_draws:
            raise MetaNMTError(f"no fine-tuning draw {draw}; draws are 0..{self.num_draws - 1}")
        if lang not in self._subsets:
            path = self.root / files[lang]
            keys = [f"tokens{t}_draw{d}" for t in self.finetune_sizes for d in range(self.num_draws)]
            self._subsets[lang] = self._npz(path, keys)
        indices = self._subsets[lang][f"tokens{tokens}_draw{draw}"]
        return self.pairs(lang, "train").subset(indices, name=f"{lang}-en/finetune-{tokens}-draw{draw}")

    def tokenizer(self) -> Any:
        """The shared ``sentencepiece.SentencePieceProcessor`` (data prepared with metanmt's own model)."""
        import sentencepiece as spm

        if self.spm_path is None:
            raise MetaNMTError(f"{self.root} was encoded with "
                               f"{self.pretrained_tokenizer['from_pretrained']}'s "
                               "tokenizer, not a SentencePiece model of its own")
        return spm.SentencePieceProcessor(model_file=str(self.spm_path))
