"""What a series prints around every commentary, in the email and on the archive pages: its logo,
the publisher's blurb, the editor, ISSN, phone and website ([series] in config.toml)."""

from __future__ import annotations

from dataclasses import dataclass

from mailer.content.files import LocalFile
from mailer.core.config import SeriesSettings


@dataclass(frozen=True)
class Furniture:
    series: SeriesSettings
    logo: LocalFile | None = None

    @property
    def colophon(self) -> bool:
        """Whether there is anything to print in the colophon at all."""
        s = self.series
        texts = (s.about, *s.about_translations.values())
        return any((*texts, s.editor, s.editor_address, s.issn, s.phone, s.website))
