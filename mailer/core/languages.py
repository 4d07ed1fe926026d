"""Language codes as config and front matter write them (`it`, `en-GB`, `pt_BR`), checked
against CLDR's locales through Babel."""

from __future__ import annotations

import babel


def language_code(language: str) -> str:
    """The code as given, once CLDR knows it; ValueError naming it otherwise."""
    locale_of(language)
    return language


def locale_of(language: str) -> babel.Locale:
    """The CLDR locale of a language tag; ValueError naming it when CLDR does not know it."""
    try:
        return babel.Locale.parse(language.replace("-", "_"))
    except (ValueError, babel.UnknownLocaleError):
        raise ValueError(
            f"'{language}' is not a language code that mailer knows, like en, it or pt-BR"
        ) from None
