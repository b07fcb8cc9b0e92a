"""Corpus readers: one interface over local files, the ``shared/data`` layouts and Hugging Face datasets.

A corpus is built from a config entry (a name, or a mapping with ``corpus:`` and options) and answers,
for an ISO 639-1 language code, whether it has X->English data (:meth:`Corpus.covers`), which local files
that data comes from (:meth:`Corpus.files`, hashed for the cache key) and the aligned sentences
themselves (:meth:`Corpus.read`). Relative paths are resolved against the data root.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from metanmt.data.languages import TARGET, TEMPLATE_FIELDS, template_fields
from metanmt.errors import MetaNMTError


@dataclass
class ParallelText:
    """Aligned X->English sentences as read, before cleaning; ``origin`` says where they came from."""

    src: list[str]
    tgt: list[str]
    origin: str

    def __len__(self) -> int:
        return len(self.src)


def read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 file, split on LF only (CRLF tolerated).

    ``str.splitlines`` would also split on U+2028, U+0085 and friends, which occur inside real sentences
    and would silently misalign parallel files.
    """
    try:
        data = path.read_bytes()
    except OSError as err:
        raise MetaNMTError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise MetaNMTError(f"{path}: line {line} is not valid UTF-8 "
                           f"({err.reason} at byte {err.start})") from None
    text = text.removeprefix("\ufeff")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def read_aligned(src_path: Path, tgt_path: Path, origin: str | None = None) -> ParallelText:
    """Two line-aligned files; a line-count mismatch is an error naming both files and their counts."""
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise MetaNMTError(
            f"misaligned parallel files: {src_path} has {len(src)} lines but {tgt_path} has {len(tgt)} lines"
        )
    return ParallelText(src, tgt, origin or f"{src_path} | {tgt_path}")


def read_tsv(path: Path, src_column: int = 0, tgt_column: int = 1, header: bool = False) -> ParallelText:
    """A tab-separated file with the source and English sentences in the given (0-based) columns."""
    lines = read_lines(path)
    start = 1 if header else 0
    need = max(src_column, tgt_column) + 1
    src: list[str] = []
    tgt: list[str] = []
    for number, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) < need:
            raise MetaNMTError(
                f"{path}: line {number} has {len(cells)} tab-separated column(s), expected at least {need}"
            )
        src.append(cells[src_column])
        tgt.append(cells[tgt_column])
    return ParallelText(src, tgt, str(path))


def _fill_template(template: str, lang: str, what: str) -> str | None:
    """``template`` with ``{lang}``-style fields filled in; None if it needs a code the language lacks."""
    fields = template_fields(lang)
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    unknown = names - set(TEMPLATE_FIELDS)
    if unknown:
        raise MetaNMTError(
            f"{what} {template!r} uses unknown field(s) {sorted(unknown)}; known: "
            f"{', '.join(TEMPLATE_FIELDS)}"
        )
    if not names <= set(fields):
        return None
    return template.format(**fields)


class Corpus:
    """Base class of all readers. ``options`` is the config entry minus ``corpus``/``label``."""

    kind: ClassVar[str] = ""
    licence: ClassVar[str] = "see the source"
    required: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, options: Mapping[str, Any], data_root: Path | None) -> None:
        unknown = set(options) - set(self.defaults) - set(self.required)
        if unknown:
            allowed = sorted(set(self.defaults) | set(self.required))
            raise MetaNMTError(f"corpus {self.kind!r}: unknown option(s) {sorted(unknown)}; allowed: "
                               f"{allowed}")
        missing = [key for key in self.required if key not in options]
        if missing:
            raise MetaNMTError(f"corpus {self.kind!r}: missing option(s) {missing}")
        self.options = {**self.defaults, **options}
        self.data_root = data_root

    def resolve(self, path: str) -> Path:
        """A config path: absolute as is, relative to the data root otherwise."""
        p = Path(path).expanduser()
        if p.is_absolute():
            return p
        if self.data_root is None:
            raise MetaNMTError(f"corpus {self.kind!r} reads {path!r}, a relative path: pass --data-root")
        return self.data_root / p

    def covers(self, lang: str) -> bool:
        """Whether this corpus has data for ``lang``."""
        raise NotImplementedError

    def files(self, lang: str) -> list[Path]:
        """The local files the data of ``lang`` is read from (hashed into the cache key)."""
        raise NotImplementedError

    def read(self, lang: str) -> ParallelText:
        """The aligned ``lang``->English sentences; an error if the corpus lacks ``lang``."""
        raise NotImplementedError

    def identity(self, lang: str) -> str:
        """What the data is when it has no local files (a hub dataset); empty for file-based corpora."""
        return ""

    def _missing(self, lang: str) -> MetaNMTError:
        return MetaNMTError(f"corpus {self.kind!r} has no {lang}-en data (looked for {self.where(lang)})")

    def where(self, lang: str) -> str:
        """Where the data of ``lang`` would be (paths or dataset id), for error messages."""
        return "a code for this language"


class AlignedFilesCorpus(Corpus):
    """A corpus whose X->English data is two line-aligned files per language."""

    def paths(self, lang: str) -> tuple[Path, Path] | None:
        """(source file, English file) of ``lang``, or None when the corpus has no code for it."""
        raise NotImplementedError

    def covers(self, lang: str) -> bool:
        paths = self.paths(lang)
        return paths is not None and paths[0].is_file() and paths[1].is_file()

    def files(self, lang: str) -> list[Path]:
        if not self.covers(lang):
            raise self._missing(lang)
        return list(self.paths(lang) or ())

    def read(self, lang: str) -> ParallelText:
        src_path, tgt_path = self.files(lang)
        return read_aligned(src_path, tgt_path, origin=f"{self.kind}:{src_path.name}")

    def where(self, lang: str) -> str:
        paths = self.paths(lang)
        return " and ".join(map(str, paths)) if paths else "a code for this language"


class TextCorpus(AlignedFilesCorpus):
    """User files: ``src`` and ``tgt`` are path templates, e.g. ``europarl/europarl-v7.{lang}-en.{lang}``."""

    kind = "text"
    required: ClassVar[tuple[str, ...]] = ("src", "tgt")

    def paths(self, lang: str) -> tuple[Path, Path] | None:
        src = _fill_template(self.options["src"], lang, "text corpus 'src'")
        tgt = _fill_template(self.options["tgt"], lang, "text corpus 'tgt'")
        return None if src is None or tgt is None else (self.resolve(src), self.resolve(tgt))


class TsvCorpus(Corpus):
    """A TSV file per language (``path`` template) with the source and English in two columns."""

    kind = "tsv"
    required: ClassVar[tuple[str, ...]] = ("path",)
    defaults: ClassVar[dict[str, Any]] = {"src_column": 0, "tgt_column": 1, "header": False}

    def _path(self, lang: str) -> Path | None:
        path = _fill_template(self.options["path"], lang, "tsv corpus 'path'")
        return None if path is None else self.resolve(path)

    def covers(self, lang: str) -> bool:
        path = self._path(lang)
        return path is not None and path.is_file()

    def files(self, lang: str) -> list[Path]:
        if not self.covers(lang):
            raise self._missing(lang)
        return [self._path(lang)]  # type: ignore[list-item]

    def read(self, lang: str) -> ParallelText:
        (path,) = self.files(lang)
        return read_tsv(path, int(self.options["src_column"]), int(self.options["tgt_column"]),
                        bool(self.options["header"]))

    def where(self, lang: str) -> str:
        return str(self._path(lang))


class Flores200(AlignedFilesCorpus):
    """FLORES-200 (``<root>/<split>/<code>.<split>``), multi-way parallel with ``eng_Latn``."""

    kind = "flores200"
    licence = "CC BY-SA 4.0"
    defaults: ClassVar[dict[str, Any]] = {"root": "flores200", "split": "devtest"}

    def paths(self, lang: str) -> tuple[Path, Path] | None:
        code, split = template_fields(lang).get("flores"), self.options["split"]
        if code is None:
            return None
        folder = self.resolve(self.options["root"]) / split
        return folder / f"{code}.{split}", folder / f"eng_Latn.{split}"


class Ntrex128(AlignedFilesCorpus):
    """NTREX-128: professional translations of the 1997 English sentences of WMT19 newstest (en-original)."""

    kind = "ntrex128"
    licence = "CC BY-SA 4.0"
    defaults: ClassVar[dict[str, Any]] = {"root": "ntrex128/NTREX-128"}

    def paths(self, lang: str) -> tuple[Path, Path] | None:
        code = template_fields(lang).get("ntrex")
        if code is None:
            return None
        folder = self.resolve(self.options["root"])
        return folder / f"newstest2019-ref.{code}.txt", folder / "newstest2019-src.eng.txt"


class TatoebaLaser(AlignedFilesCorpus):
    """LASER Tatoeba v1: up to 1000 Tatoeba pairs per language (``tatoeba.<xxx>-eng.{<xxx>,eng}``)."""

    kind = "tatoeba_laser"
    licence = "CC BY 2.0 FR"
    defaults: ClassVar[dict[str, Any]] = {"root": "tatoeba_laser/v1"}

    def paths(self, lang: str) -> tuple[Path, Path] | None:
        code = template_fields(lang).get("tatoeba_laser")
        if code is None:
            return None
        folder = self.resolve(self.options["root"])
        return folder / f"tatoeba.{code}-eng.{code}", folder / f"tatoeba.{code}-eng.eng"


class TatoebaChallenge(AlignedFilesCorpus):
    """Tatoeba Translation Challenge: ``<root>/<pair>/<prefix>.{<xxx>,eng}``, pair in alphabetical order."""

    kind = "tatoeba_challenge"
    licence = "CC BY 2.0 FR"
    defaults: ClassVar[dict[str, Any]] = {"root": "tatoeba_challenge/v2021-08-07",
                                          "prefix": "tatoeba-test-v2021-08-07"}

    def paths(self, lang: str) -> tuple[Path, Path] | None:
        code = template_fields(lang).get("tatoeba_challenge")
        if code is None:
            return None
        pair = f"{code}-eng" if code < "eng" else f"eng-{code}"
        folder = self.resolve(self.options["root"]) / pair
        prefix = self.options["prefix"]
        return folder / f"{prefix}.{code}", folder / f"{prefix}.eng"


class WmtNewstest(AlignedFilesCorpus):
    """WMT news test sets: ``<root>/<year>/<xx>-en/<prefix><year>.{xx,en}``.

    ``year`` is one year or a mapping language -> year; the default is the test year of Gu et al. (2018)
    (WMT16 for ro, WMT17 for lv/fi/tr) and the available sets for et (2018) and lt (2019).
    """

    kind = "wmt_newstest"
    licence = "WMT test sets, research use (no explicit licence)"
    defaults: ClassVar[dict[str, Any]] = {
        "root": "wmt_newstest", "prefix": "newstest",
        "year": {"ro": 2016, "lv": 2017, "fi": 2017, "tr": 2017, "et": 2018, "lt": 2019}}

    def paths(self, lang: str) -> tuple[Path, Path] | None:
        year = self.options["year"]
        if isinstance(year, Mapping):
            year = year.get(lang)
        if year is None:
            return None
        folder = self.resolve(self.options["root"]) / str(year) / f"{lang}-{TARGET}"
        stem = f"{self.options['prefix']}{year}"
        return folder / f"{stem}.{lang}", folder / f"{stem}.{TARGET}"


class KoreanNews(AlignedFilesCorpus):
    """Korean-English news parallel corpus v1 (Park et al. 2016): ``korean-english-park.<split>.{ko,en}``."""

    kind = "korean_news"
    licence = "CC BY-SA 3.0"
    defaults: ClassVar[dict[str, Any]] = {"root": "korean_parallel/korean-english-news-v1", "split": "test"}

    def paths(self, lang: str) -> tuple[Path, Path] | None:
        if lang != "ko":
            return None
        folder, split = self.resolve(self.options["root"]), self.options["split"]
        return folder / f"korean-english-park.{split}.ko", folder / f"korean-english-park.{split}.en"


def _field(row: Mapping[str, Any], dotted: str, where: str) -> str:
    value: Any = row
    for key in dotted.split("."):
        if not isinstance(value, Mapping) or key not in value:
            keys = sorted(value) if isinstance(value, Mapping) else type(value).__name__
            raise MetaNMTError(f"{where}: field {dotted!r} not found (at {key!r}; available: {keys})")
        value = value[key]
    if not isinstance(value, str):
        raise MetaNMTError(f"{where}: field {dotted!r} is {type(value).__name__}, not a string")
    return value


def read_hf_rows(dataset: Any, src_field: str, tgt_field: str, where: str) -> ParallelText:
    """The pairs of a Hugging Face dataset's rows; ``src_field``/``tgt_field`` are dotted paths into a row."""
    src, tgt = [], []
    for number, row in enumerate(dataset):
        src.append(_field(row, src_field, f"{where} row {number}"))
        tgt.append(_field(row, tgt_field, f"{where} row {number}"))
    return ParallelText(src, tgt, where)


def select_split(dataset: Any, split: str, where: str) -> Any:
    """One split of what ``load_from_disk`` returned (a ``DatasetDict`` or already a single ``Dataset``)."""
    import datasets

    if not isinstance(dataset, datasets.DatasetDict):
        return dataset
    if split not in dataset:
        raise MetaNMTError(f"{where} has no split {split!r}; it has {sorted(dataset)}")
    return dataset[split]


class HFCorpus(Corpus):
    """A Hugging Face dataset via ``datasets.load_dataset`` (hub, local builder + ``data_files``, local dir).

    Rows give the pair through ``src_field``/``tgt_field``, dotted paths into the row; the defaults read the
    ``translation: {xx: ..., en: ...}`` column of Europarl, WMT16/17 and OPUS-100. All string options are
    templates (``name: "{lang}-en"`` for WMT, ``"{pair}"`` for OPUS-100/Europarl, ``"sentence_{flores}"``).
    """

    kind = "hf"
    licence = "see the dataset card"
    required: ClassVar[tuple[str, ...]] = ("path",)
    defaults: ClassVar[dict[str, Any]] = {
        "name": None, "split": "train", "data_files": None, "revision": None,
        "src_field": "translation.{lang}", "tgt_field": f"translation.{TARGET}"}

    def _opt(self, key: str, lang: str) -> Any:
        value = self.options[key]
        if isinstance(value, str):
            return _fill_template(value, lang, f"hf option {key!r}")
        if isinstance(value, list):
            return [_fill_template(item, lang, f"hf option {key!r}") for item in value]
        return value

    def _local(self, value: str) -> Path | None:
        """``value`` as a local path when it is one (relative to the data root), else None (a hub id)."""
        p = Path(value).expanduser()
        if not p.is_absolute() and self.data_root is not None:
            p = self.data_root / p
        return p if p.exists() else None

    def _data_files(self, lang: str) -> list[Path]:
        files = self._opt("data_files", lang)
        if files is None:
            return []
        files = [files] if isinstance(files, str) else files
        if any(f is None for f in files):
            return []
        return [self.resolve(f) for f in files]

    def covers(self, lang: str) -> bool:
        if self._opt("path", lang) is None or self._opt("src_field", lang) is None:
            return False
        data_files = self._data_files(lang)
        if self.options["data_files"] is not None:
            return bool(data_files) and all(f.is_file() for f in data_files)
        return True

    def files(self, lang: str) -> list[Path]:
        if not self.covers(lang):
            raise self._missing(lang)
        local = self._local(self._opt("path", lang))
        found = []
        if local is not None and local.is_dir():
            found = sorted(p for p in local.rglob("*") if p.is_file())
        return found + self._data_files(lang)

    def identity(self, lang: str) -> str:
        keys = ("path", "name", "split", "revision")
        return "hf:" + ",".join(f"{k}={self._opt(k, lang)}" for k in keys if self._opt(k, lang) is not None)

    def _load(self, lang: str) -> Any:
        import datasets

        path = self._opt("path", lang)
        local = self._local(path)
        data_files = self._data_files(lang)
        kwargs = {"name": self._opt("name", lang), "split": self._opt("split", lang),
                  "revision": self._opt("revision", lang)}
        if data_files:
            kwargs["data_files"] = [str(f) for f in data_files]
        try:
            return datasets.load_dataset(str(local) if local is not None else path,
                                         **{k: v for k, v in kwargs.items() if v is not None})
        except (OSError, ValueError, ConnectionError) as err:
            raise MetaNMTError(f"cannot load Hugging Face dataset {self.identity(lang)}: {err}") from None

    def read(self, lang: str) -> ParallelText:
        if not self.covers(lang):
            raise self._missing(lang)
        return read_hf_rows(self._load(lang), self._opt("src_field", lang), self._opt("tgt_field", lang),
                            self.identity(lang))

    def where(self, lang: str) -> str:
        return self.identity(lang)


class HFDiskCorpus(HFCorpus):
    """A dataset saved with ``Dataset.save_to_disk`` (what ``data_scripts/hf_download.py`` writes)."""

    kind = "hf_disk"
    defaults: ClassVar[dict[str, Any]] = {"split": "train", "src_field": "translation.{lang}",
                                          "tgt_field": f"translation.{TARGET}"}

    def covers(self, lang: str) -> bool:
        path = self._opt("path", lang)
        return path is not None and self._opt("src_field", lang) is not None and self.resolve(path).is_dir()

    def files(self, lang: str) -> list[Path]:
        if not self.covers(lang):
            raise self._missing(lang)
        return sorted(p for p in self.resolve(self._opt("path", lang)).rglob("*") if p.is_file())

    def identity(self, lang: str) -> str:
        return f"hf_disk:{self._opt('path', lang)}"

    def _load(self, lang: str) -> Any:
        import datasets

        path = self.resolve(self._opt("path", lang))
        try:
            dataset = datasets.load_from_disk(str(path))
        except (OSError, ValueError) as err:
            raise MetaNMTError(f"cannot load the dataset saved at {path}: {err}") from None
        return select_split(dataset, self._opt("split", lang), str(path))

    def where(self, lang: str) -> str:
        return str(self.resolve(self._opt("path", lang) or self.options["path"]))
