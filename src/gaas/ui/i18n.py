"""Texts of the web interface through a translation catalogue.

English is the source language: every text in the templates and pages is written in English
and passed through ``_()``. Another language is a JSON file ``locales/<code>.json`` mapping
each English text to its translation (texts missing from it stay English). To start one:

    python -m gaas.ui.i18n > src/gaas/ui/locales/fr.json    # every text, untranslated

then translate the values. Texts may carry named placeholders: ``_("%(n)s open", n=3)``.
"""

from __future__ import annotations

import json
import re
import sys
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).parent
LOCALES = HERE / "locales"
SOURCE_LANGUAGE = "en"
LANGUAGE_NAMES = {"en": "English", "fr": "Français", "es": "Español", "pt": "Português", "sw": "Kiswahili",
                  "ar": "العربية", "de": "Deutsch"}


@lru_cache
def catalogue(language: str) -> dict[str, str]:
    path = LOCALES / f"{language}.json"
    if language == SOURCE_LANGUAGE or not path.is_file():
        return {}
    return {k: v for k, v in json.loads(path.read_text(encoding="utf-8")).items() if isinstance(v, str) and v}


def available_languages() -> list[str]:
    found = sorted(p.stem for p in LOCALES.glob("*.json")) if LOCALES.is_dir() else []
    return [SOURCE_LANGUAGE, *[code for code in found if code != SOURCE_LANGUAGE]]


def base_language(language: str | None) -> str:
    """'fr-CA' -> 'fr' when only 'fr' is shipped; unknown languages fall back to English."""
    if not language:
        return SOURCE_LANGUAGE
    shipped = available_languages()
    if language in shipped:
        return language
    short = language.split("-")[0]
    return short if short in shipped else SOURCE_LANGUAGE


class Translator:
    def __init__(self, language: str | None) -> None:
        self.language = base_language(language)
        self.messages = catalogue(self.language)

    def __call__(self, message: str, **values: object) -> str:
        text = self.messages.get(message, message)
        if values:
            try:
                return text % values
            except (KeyError, ValueError, TypeError):
                return message % values
        return text


_CALL = re.compile(r"""(?:\b_|\.t)\(\s*(?P<q>["'])(?P<text>(?:\\.|(?!(?P=q)).)*)(?P=q)""")


def extract() -> list[str]:
    """Every text passed to _() in the templates and the UI's Python files, in order of appearance."""
    found: dict[str, None] = {}
    files = sorted((HERE / "templates").rglob("*.html")) + sorted(HERE.rglob("*.py"))
    for path in files:
        for match in _CALL.finditer(path.read_text(encoding="utf-8")):
            text = match["text"].encode().decode("unicode_escape") if "\\" in match["text"] else match["text"]
            found.setdefault(text, None)
    from gaas.ui.web import FLASHES

    for text in [*sorted(FLASHES), *_declared()]:
        found.setdefault(text, None)
    return list(found)


def _declared() -> list[str]:
    """Texts declared as data (list titles, columns, filters, administration fields): the templates
    translate them when they show them."""
    from gaas.ui.pages import LISTS
    from gaas.ui.pages.admin import KINDS

    texts: list[str] = []
    for spec in LISTS.values():
        texts += [spec.title, *([spec.search] if spec.search else []), *(c.title for c in spec.columns)]
        for f in spec.filters:
            texts.append(f.title)
            if isinstance(f.options, list):
                texts += [label for _, label in f.options]
    for kind in KINDS.values():
        texts += [kind.title, *(f.label for f in kind.fields), *(f.hint for f in kind.fields if f.hint),
                  *(f.blank for f in kind.fields if f.blank)]
    return texts


if __name__ == "__main__":
    json.dump({text: "" for text in extract()}, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")
