"""The registry of corpus readers: a config entry's ``corpus:`` kind -> the class that reads it.

It sits apart from the readers themselves (:mod:`metanmt.data.corpora`, :mod:`metanmt.data.demo`) so that
those modules import each other in one direction only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from metanmt.data import corpora
from metanmt.data.corpora import Corpus
from metanmt.data.demo import DjangoCorpus
from metanmt.registry import lookup

READERS: dict[str, type[Corpus]] = {cls.kind: cls for cls in (
    corpora.TextCorpus, corpora.TsvCorpus, corpora.Flores200, corpora.Ntrex128, corpora.TatoebaLaser,
    corpora.TatoebaChallenge, corpora.WmtNewstest, corpora.KoreanNews, corpora.HFCorpus, corpora.HFDiskCorpus,
    DjangoCorpus)}


def make_corpus(kind: str, options: Mapping[str, Any], data_root: Path | None) -> Corpus:
    """The reader for a config entry; an unknown kind is an error listing the known ones."""
    return lookup(READERS, kind, "corpus")(options, data_root)
