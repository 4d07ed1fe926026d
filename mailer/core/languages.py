"""Language codes as config and front matter write them (`it`, `en-GB`, `pt_BR`), checked
against CLDR's locales through Babel."""

from __future__ import annotations

from collections.abc import Sequence

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


def best_match(asked: Sequence[str], offered: Sequence[str]) -> str | None:
    """The offered language (as spelled in `offered`) that best answers `asked`, a browser's
    languages most wanted first (`it-IT`, `en`): the first asked that one offered equals, or
    else shares its language with (`it-IT` takes `it`, `en-US` takes `en-GB`); None if none.
    Not Babel's `negotiate_locale`: it gives `en-US` nothing when `en-GB` is offered, and
    answers in the browser's spelling (`IT` for offered `it`), which no catalog is named."""
    spelled = {code.lower().replace("_", "-"): code for code in offered}
    primary = {key.split("-")[0]: code for key, code in reversed(spelled.items())}
    for tag in (a.lower().replace("_", "-") for a in asked):
        found = spelled.get(tag) or primary.get(tag.split("-")[0])
        if found:
            return found
    return None
