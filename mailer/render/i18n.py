"""The languages readers get: gettext catalogs for every string of the theme, the feeds and the
email, and CLDR's dates, lists and writing direction, all through Babel.

Catalogs live in mailer/locale/<language>/LC_MESSAGES/mailer.po, compiled beside it to mailer.mo
(the .mo is what is read, and what the wheel ships). A language without a catalog still gets its
own dates and list separators, with the texts in English.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import babel
import babel.dates
import babel.lists
import babel.units
from babel.support import NullTranslations, Translations

from mailer.core.languages import locale_of

LOCALE_FOLDER = Path(__file__).resolve().parent.parent / "locale"
DOMAIN = "mailer"


def catalogued() -> list[str]:
    """The languages whose catalogs ship with mailer."""
    return sorted(p.parent.parent.name for p in LOCALE_FOLDER.glob(f"*/LC_MESSAGES/{DOMAIN}.mo"))


@dataclass(frozen=True)
class Language:
    """One language's texts and conventions, as the templates and feeds use them."""

    code: str
    """As written in config or front matter, the form `lang` and `hreflang` take (`pt-BR`)."""
    locale: babel.Locale
    translations: NullTranslations

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, number: int) -> str:
        return self.translations.ngettext(singular, plural, number)

    @property
    def direction(self) -> str:
        """`rtl` or `ltr`, for the `dir` attribute."""
        return str(self.locale.text_direction).lower()

    @property
    def name(self) -> str:
        """The language's own name for itself ("italiano"), to offer a version in it."""
        return str(self.locale.get_display_name(self.locale) or self.code)

    def long_date(self, value: dt.date) -> str:
        """17 September 2025, 17 settembre 2025: CLDR's long date of the language."""
        return str(babel.dates.format_date(value, format="long", locale=self.locale))

    def file_size(self, size: int) -> str:
        """471 kB, 1,2 MB: a file's size as the language writes it (decimal units, as file
        managers and browsers show them)."""
        big = size >= 1_000_000
        unit, value = ("digital-megabyte", size / 1e6) if big else ("digital-kilobyte", size / 1e3)
        shown = round(value, 1) if value < 10 else round(value)
        return str(babel.units.format_unit(shown, unit, length="short", locale=self.locale))

    def names(self, names: Sequence[str]) -> str:
        """ "A and B", "A e B", "A, B and C": CLDR's list of the language."""
        return str(babel.lists.format_list(list(names), locale=self.locale))


@functools.cache
def language(code: str) -> Language:
    """The language of a code, with its catalog when one ships (cached: catalogs are read once)."""
    locale = locale_of(code)
    found = Translations.load(str(LOCALE_FOLDER), [str(locale), locale.language], DOMAIN)
    return Language(code=code, locale=locale, translations=found)
