"""The offline demo corpus: X->English pairs from the gettext catalogs that ship inside Django's wheel.

Django ships human-translated ``.po`` catalogs (about 900 UI messages: admin, auth, forms, dates,
language names) for about 90 locales, including all 18 meta-training languages of Gu et al. (2018),
ro/lv and fi/tr/ko. The catalogs are BSD-licensed like Django. Needs ``pip install 'metanmt[demo]'``
(Django for the catalogs, polib to parse them).

Each translated, non-fuzzy entry gives one pair (``msgstr`` -> ``msgid``; for plural entries the
singular forms ``msgstr[0]`` -> ``msgid``). Markup is made translatable text: HTML tags are removed,
entities unescaped, numeric placeholders (``%(count)d``) become a number (``1`` in plural entries,
whose singular form is used, ``3`` elsewhere) and string placeholders (``%(name)s``, ``%s``, ``{}``)
become ``X``, so word order around them survives in both languages.
"""

from __future__ import annotations

import html
import importlib.util
import re
from pathlib import Path
from typing import Any, ClassVar

from metanmt.data.corpora import Corpus, ParallelText
from metanmt.data.languages import template_fields
from metanmt.errors import MetaNMTError

_NUMERIC = re.compile(r"%(?:\([^)]*\))?[-+ #0]*\d*(?:\.\d+)?[dife]")
_STRING = re.compile(r"%(?:\([^)]*\))?[-+ #0]*\d*[sr]|\{[^{}\s]*\}")
_BREAK = re.compile(r"<\s*(?:br|/?p|/?li|/?ul|/?div)\b[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")


def strip_markup(text: str, number: str = "3") -> str:
    """A catalog message as plain text: placeholders filled in, HTML removed, whitespace normalised."""
    text = _NUMERIC.sub(number, text)
    text = _STRING.sub("X", text)
    text = text.replace("%%", "%")
    text = _BREAK.sub(" ", text)
    text = _TAG.sub("", text)
    return " ".join(html.unescape(text).split())


def catalog_pairs(path: Path) -> list[tuple[str, str]]:
    """(translation, English) pairs of one ``.po`` file: translated, non-fuzzy, non-obsolete entries.

    Entries whose translation is a copy of a multi-word English message are left out: those are
    untranslated strings, not translations (single words such as "OK" or "Email" are kept).
    """
    polib = _require("polib")
    try:
        catalog = polib.pofile(str(path))
    except (OSError, ValueError) as err:
        raise MetaNMTError(f"cannot parse the gettext catalog {path}: {err}") from None
    pairs = []
    for entry in catalog.translated_entries():
        if entry.msgid_plural:
            english, translation = strip_markup(entry.msgid, "1"), strip_markup(entry.msgstr_plural[0], "1")
        else:
            english, translation = strip_markup(entry.msgid), strip_markup(entry.msgstr)
        if not english or not translation:
            continue
        if translation == english and len(english.split()) > 1:
            continue
        pairs.append((translation, english))
    return pairs


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MetaNMTError(
            f"the Django demo corpus needs the '{module}' package: pip install 'metanmt[demo]'"
        ) from None


def django_root() -> Path:
    """The installed Django package folder (found without importing Django)."""
    spec = importlib.util.find_spec("django")
    if spec is None or not spec.submodule_search_locations:
        raise MetaNMTError("the Django demo corpus needs Django's translation catalogs: pip install "
                           "'metanmt[demo]'")
    return Path(next(iter(spec.submodule_search_locations)))


class DjangoCorpus(Corpus):
    """All ``.po`` catalogs of one locale in an installed Django (or under ``root``, a Django source tree)."""

    kind = "django"
    licence: ClassVar[str] = "BSD-3-Clause (Django)"
    defaults: ClassVar[dict[str, Any]] = {"root": None, "domains": ["django", "djangojs"]}

    def _root(self) -> Path:
        root = self.options["root"]
        return django_root() if root is None else self.resolve(str(root))

    def files(self, lang: str) -> list[Path]:
        code = template_fields(lang).get("django")
        if code is None:
            return []
        root = self._root()
        found = [path for domain in self.options["domains"]
                 for path in root.glob(f"**/locale/{code}/LC_MESSAGES/{domain}.po")]
        return sorted(found, key=lambda p: p.relative_to(root).as_posix())

    def covers(self, lang: str) -> bool:
        return bool(self.files(lang))

    def read(self, lang: str) -> ParallelText:
        files = self.files(lang)
        if not files:
            raise self._missing(lang)
        src: list[str] = []
        tgt: list[str] = []
        for path in files:
            for translation, english in catalog_pairs(path):
                src.append(translation)
                tgt.append(english)
        return ParallelText(src, tgt, f"django:{template_fields(lang)['django']}")

    def where(self, lang: str) -> str:
        code = template_fields(lang).get("django", "<no Django locale>")
        return f"{self._root()}/**/locale/{code}/LC_MESSAGES/*.po"
