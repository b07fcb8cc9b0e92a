"""The language registry: ISO 639-1 codes and each corpus's own code for them, in one place.

Configs name languages by ISO 639-1 code (``ro``); readers ask :func:`corpus_code` for the code a
corpus uses in its file names (FLORES ``ron_Latn``, NTREX ``ron``, Tatoeba ``ron``, Django ``ro``).
English is the target side of every task.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from metanmt.errors import MetaNMTError

TARGET = "en"

# The corpora that have per-language codes. Corpora keyed by ISO 639-1 itself (WMT, Europarl,
# OPUS-100, the Korean news corpus) need no column.
CODE_SYSTEMS = ("flores", "ntrex", "tatoeba_laser", "tatoeba_challenge", "django")
# The ``{...}`` fields that user path/name templates may use (see :func:`template_fields`).
TEMPLATE_FIELDS = ("lang", "pair", *CODE_SYSTEMS)


@dataclass(frozen=True)
class Language:
    """One language and the code each corpus gives it (``None``: the corpus lacks it)."""

    iso: str
    name: str
    flores: str | None
    ntrex: str | None
    tatoeba_laser: str | None
    tatoeba_challenge: str | None
    django: str | None


# iso, name, FLORES-200, NTREX-128, LASER Tatoeba, Tatoeba Challenge, Django locale
_TABLE = [
    ("en", "English", "eng_Latn", "eng", "eng", "eng", "en"),
    # the 18 meta-training languages of Gu et al. (2018)
    ("bg", "Bulgarian", "bul_Cyrl", "bul", "bul", "bul", "bg"),
    ("cs", "Czech", "ces_Latn", "ces", "ces", "ces", "cs"),
    ("da", "Danish", "dan_Latn", "dan", "dan", "dan", "da"),
    ("de", "German", "deu_Latn", "deu", "deu", "deu", "de"),
    ("el", "Greek", "ell_Grek", "ell", "ell", "ell", "el"),
    ("es", "Spanish", "spa_Latn", "spa", "spa", "spa", "es"),
    ("et", "Estonian", "est_Latn", "est", "est", "est", "et"),
    ("fr", "French", "fra_Latn", "fra", "fra", "fra", "fr"),
    ("hu", "Hungarian", "hun_Latn", "hun", "hun", "hun", "hu"),
    ("it", "Italian", "ita_Latn", "ita", "ita", "ita", "it"),
    ("lt", "Lithuanian", "lit_Latn", "lit", "lit", "lit", "lt"),
    ("nl", "Dutch", "nld_Latn", "nld", "nld", "nld", "nl"),
    ("pl", "Polish", "pol_Latn", "pol", "pol", "pol", "pl"),
    ("pt", "Portuguese", "por_Latn", "por", "por", "por", "pt"),
    ("sk", "Slovak", "slk_Latn", "slk", "slk", None, "sk"),
    ("sl", "Slovenian", "slv_Latn", "slv", "slv", "slv", "sl"),
    ("sv", "Swedish", "swe_Latn", "swe", "swe", "swe", "sv"),
    ("ru", "Russian", "rus_Cyrl", "rus", "rus", "rus", "ru"),
    # held-out languages of Gu et al. (2018)
    ("ro", "Romanian", "ron_Latn", "ron", "ron", "ron", "ro"),
    ("lv", "Latvian", "lvs_Latn", "lav", "lvs", "lav", "lv"),
    ("fi", "Finnish", "fin_Latn", "fin", "fin", "fin", "fi"),
    ("tr", "Turkish", "tur_Latn", "tur", "tur", "tur", "tr"),
    ("ko", "Korean", "kor_Hang", "kor", "kor", "kor", "ko"),
    # low-resource languages
    ("af", "Afrikaans", "afr_Latn", "afr", "afr", "afr", "af"),
    ("sw", "Swahili", "swh_Latn", "swa", "swh", "swa", "sw"),
    ("is", "Icelandic", "isl_Latn", "isl", "isl", "isl", "is"),
    ("ga", "Irish", "gle_Latn", "gle", "gle", "gle", "ga"),
    ("cy", "Welsh", "cym_Latn", "cym", "cym", "cym", "cy"),
    ("mt", "Maltese", "mlt_Latn", "mlt", None, "mlt", None),
    ("eu", "Basque", "eus_Latn", "eus", "eus", "eus", "eu"),
    ("gl", "Galician", "glg_Latn", "glg", "glg", "glg", "gl"),
    ("ne", "Nepali", "npi_Deva", "nep", None, None, "ne"),
    ("si", "Sinhala", "sin_Sinh", "sin", None, None, None),
    ("km", "Khmer", "khm_Khmr", "khm", "khm", "khm", "km"),
    # other languages with FLORES, NTREX, LASER Tatoeba and Django data
    ("ar", "Arabic", "arb_Arab", "arb", "ara", None, "ar"),
    ("be", "Belarusian", "bel_Cyrl", "bel", "bel", None, "be"),
    ("ca", "Catalan", "cat_Latn", "cat", "cat", None, "ca"),
    ("he", "Hebrew", "heb_Hebr", "heb", "heb", None, "he"),
    ("hi", "Hindi", "hin_Deva", "hin", "hin", None, "hi"),
    ("hr", "Croatian", "hrv_Latn", "hrv", "hrv", None, "hr"),
    ("hy", "Armenian", "hye_Armn", "hye", "hye", None, "hy"),
    ("id", "Indonesian", "ind_Latn", "ind", "ind", None, "id"),
    ("ja", "Japanese", "jpn_Jpan", "jpn", "jpn", None, "ja"),
    ("ka", "Georgian", "kat_Geor", "kat", "kat", None, "ka"),
    ("mk", "Macedonian", "mkd_Cyrl", "mkd", "mkd", None, "mk"),
    ("sq", "Albanian", "als_Latn", "sqi", "sqi", None, "sq"),
    ("uk", "Ukrainian", "ukr_Cyrl", "ukr", "ukr", None, "uk"),
    ("nb", "Norwegian Bokmål", "nob_Latn", "nob", "nob", None, "nb"),
    ("vi", "Vietnamese", "vie_Latn", "vie", "vie", None, "vi"),
    ("zh", "Chinese (Simplified)", "zho_Hans", "zho-CN", "cmn", None, "zh_Hans"),
]

LANGUAGES: dict[str, Language] = {row[0]: Language(*row) for row in _TABLE}

# The default task split of Gu et al. (2018).
META_TRAIN_DEFAULT = ("bg", "cs", "da", "de", "el", "es", "et", "fr", "hu", "it", "lt", "nl", "pl", "pt",
                      "sk", "sl", "sv", "ru")
VALID_DEFAULT = ("ro", "lv")
TEST_DEFAULT = ("fi", "tr", "ko")


def language(code: str) -> Language:
    """The registry entry of an ISO 639-1 code; an unknown code is an error listing the known ones."""
    try:
        return LANGUAGES[code]
    except KeyError:
        raise MetaNMTError(
            f"unknown language code {code!r}; known ISO 639-1 codes: {', '.join(sorted(LANGUAGES))}"
        ) from None


def source_language(code: str) -> Language:
    """Like :func:`language`, but refuses English, which is the target side of every task."""
    if code == TARGET:
        raise MetaNMTError("'en' cannot be a source language: English is the target side of every task")
    return language(code)


_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")


def language_tag(tag: str) -> str:
    """Check the tag of a language the user brings data for: any ISO 639-1/639-3 code or BCP-47-looking tag
    (``ast``, ``qu``, ``gsw-CH``) is accepted as is; it is recorded, not looked up in the registry."""
    if not _TAG.fullmatch(tag):
        raise MetaNMTError(f"--lang {tag!r} is not a language tag: give an ISO 639-1/639-3 code such as 'qu' "
                           "or 'ast', or a BCP-47 tag such as 'gsw-CH'")
    if tag.split("-")[0].lower() in (TARGET, "eng"):
        raise MetaNMTError(f"--lang {tag!r}: English is the target side of every task, not a source language")
    return tag


def corpus_code(code: str, system: str) -> str | None:
    """The code that ``system`` (one of :data:`CODE_SYSTEMS`) uses for ``code``, or None if it lacks it."""
    if system not in CODE_SYSTEMS:
        raise MetaNMTError(f"unknown code system {system!r}; known: {', '.join(CODE_SYSTEMS)}")
    return getattr(language(code), system)


def template_fields(code: str) -> dict[str, str]:
    """Values for ``{...}`` fields in user path/name templates: ``{lang}``, ``{pair}``, ``{flores}``, ...

    ``{pair}`` is the alphabetical ISO pair with English (``de-en``, ``en-ro``), as Europarl and OPUS-100
    name their configurations; fields a corpus lacks are left out, so using one fails clearly.
    """
    lang = language(code)
    fields = {"lang": code, "pair": "-".join(sorted((code, TARGET)))}
    for system in CODE_SYSTEMS:
        value = getattr(lang, system)
        if value is not None:
            fields[system] = value
    return fields
