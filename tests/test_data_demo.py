"""The offline demo corpus from Django's gettext catalogs, and the demo config end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from metanmt.data.demo import catalog_pairs, strip_markup
from metanmt.data.languages import META_TRAIN_DEFAULT, TEST_DEFAULT, VALID_DEFAULT
from metanmt.data.readers import make_corpus

polib = pytest.importorskip("polib", reason="the demo corpus needs the 'demo' extra (polib)")

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "metanmt" / "configs" / "demo.yaml"

PO = r'''
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"
"Plural-Forms: nplurals=3; plural=(n==1?0:(((n%100>19)||((n%100==0)&&(n!=0)))?2:1));\n"

msgid "Delete %(object_name)s"
msgstr "Șterge %(object_name)s"

#, fuzzy
msgid "Save"
msgstr "Salvează greșit"

msgid "Untranslated message"
msgstr ""

msgid "Change history: %s"
msgstr "Change history: %s"

msgid "OK"
msgstr "OK"

msgid "%(num)d year"
msgid_plural "%(num)d years"
msgstr[0] "%(num)d an"
msgstr[1] "%(num)d ani"
msgstr[2] "%(num)d de ani"

msgid "Ensure this value has at most %(limit_value)d characters."
msgstr "Asigurați-vă că această valoare are cel mult %(limit_value)d caractere."

msgid "<a href=\"%(url)s\">Log in</a> &amp; continue"
msgstr "<a href=\"%(url)s\">Autentificare</a> &amp; continuă"

msgctxt "abbrev. month"
msgid "Jan."
msgstr "ian."

#~ msgid "Obsolete"
#~ msgstr "Învechit"
'''


def test_strip_markup():
    assert strip_markup("Delete %(object_name)s") == "Delete X"
    assert strip_markup("%(count)d items, %s left, {name} and {}") == "3 items, X left, X and X"
    assert strip_markup("%(num)d year", "1") == "1 year"
    assert strip_markup("100%% <strong>done</strong><br/>now &lt;ok&gt;") == "100% done now <ok>"
    assert strip_markup("  a\n  b  ") == "a b"


def test_catalog_pairs(tmp_path):
    path = tmp_path / "locale" / "ro" / "LC_MESSAGES" / "django.po"
    path.parent.mkdir(parents=True)
    path.write_text(PO, encoding="utf-8")
    assert catalog_pairs(path) == [
        ("Șterge X", "Delete X"),
        ("OK", "OK"),  # a one-word copy is a valid translation; the copied sentence is not
        ("1 an", "1 year"),
        ("Asigurați-vă că această valoare are cel mult 3 caractere.",
         "Ensure this value has at most 3 characters."),
        ("Autentificare & continuă", "Log in & continue"),
        ("ian.", "Jan."),
    ]
    corpus = make_corpus("django", {"root": str(tmp_path), "domains": ["django"]}, None)
    assert corpus.covers("ro") and not corpus.covers("fi") and not corpus.covers("mt")
    assert len(corpus.read("ro")) == 6


def test_installed_django_catalogs_cover_the_paper_languages():
    pytest.importorskip("django", reason="the demo corpus needs the 'demo' extra (Django)")
    corpus = make_corpus("django", {}, None)
    for lang in META_TRAIN_DEFAULT + VALID_DEFAULT + TEST_DEFAULT:
        assert corpus.covers(lang), lang
    text = corpus.read("ko")
    assert len(text) > 600
    assert ("사용자 이름", "username") in set(zip(text.src, text.tgt))
    assert not any("%(" in s or "%(" in t for s, t in zip(text.src, text.tgt))


@pytest.mark.slow
def test_demo_config_prepares_offline(tmp_path):
    pytest.importorskip("django", reason="the demo corpus needs the 'demo' extra (Django)")
    from metanmt.data import PreparedData
    from metanmt.data.prepare import prepare

    data = PreparedData.load(prepare(DEMO_CONFIG, None, tmp_path / "demo", progress=False))
    assert data.train_langs == list(META_TRAIN_DEFAULT)
    assert data.valid_langs == ["ro", "lv"] and data.test_langs == ["ca", "nb", "uk"]
    assert all(len(data.pairs(lang, "train")) > 450 for lang in data.languages)
    assert data.eval_splits("uk") == ["test"] and len(data.pairs("uk", "test")) == 100
    biggest = max(data.finetune_sizes)
    assert all(len(data.finetune_subset(lang, biggest,
                                        d)) > 0 for lang in ("ro", "uk") for d in range(data.num_draws))
