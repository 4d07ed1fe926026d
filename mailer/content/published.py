"""What has been published: a permanent id for each commentary, and the fingerprint of its text.

`commentaries/published.toml` is written by `mailer build` and belongs with the commentaries
(commit it). A commentary's feed id is made once, when it is first built: a tag URI
(`tag:example.org,2025-11-20:slug`, RFC 4151) that no later change of site_url, slug or date
alters. Commentaries published before this record existed keep the id their feeds always gave
them, their archive URL, recorded as it was. The fingerprint lets `mailer check` notice a
published text that changed without an `updated` date, which feed readers need to see a
correction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from mailer.content.commentary import Commentary
from mailer.core.errors import Problem

FILE = "published.toml"


@dataclass(frozen=True)
class Entry:
    id: str
    text: str
    """sha256 of the commentary's Markdown body, front matter excluded."""
    updated: str = ""


@dataclass
class Record:
    path: Path
    entries: dict[str, Entry] = field(default_factory=dict)

    @classmethod
    def read(cls, folder: Path) -> Record:
        path = folder / FILE
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path)
        return cls(path, {slug: Entry(**values) for slug, values in data.items()})

    def id(self, commentary: Commentary) -> str:
        """Its permanent id: as recorded, or the one the next build will record."""
        known = self.entries.get(commentary.slug)
        return known.id if known else tag_uri(commentary)

    def corrections_unmarked(self, commentaries: Iterable[Commentary]) -> list[Problem]:
        """Published texts that changed while their `updated` did not."""
        found = []
        for commentary in commentaries:
            known = self.entries.get(commentary.slug)
            if known is None or known.text == fingerprint(commentary):
                continue
            if known.updated == _updated(commentary):
                found.append(
                    Problem(
                        commentary.path,
                        None,
                        "the text changed since it was published, but its `updated` date did "
                        f"not: add `updated = {dt.date.today().isoformat()}` to the front matter "
                        "so that feed readers show the correction",
                        warning=True,
                    )
                )
        return found

    def with_published(self, commentaries: Iterable[Commentary]) -> Record:
        """The record after publishing these: new ones get their id, every text its print."""
        entries = dict(self.entries)
        for commentary in commentaries:
            entries[commentary.slug] = Entry(
                self.id(commentary), fingerprint(commentary), _updated(commentary)
            )
        return Record(self.path, entries)

    def as_toml(self) -> bytes:
        lines = [
            "# Written by `mailer build`: each published commentary's permanent feed id and the\n"
            "# fingerprint of its text. Keep it with the commentaries; do not edit it.\n"
        ]
        for slug in sorted(self.entries):
            entry = self.entries[slug]
            # JSON strings are valid TOML basic strings for this text (ASCII, escaped).
            lines.append(
                f"\n[{json.dumps(slug)}]\nid = {json.dumps(entry.id)}\n"
                f"text = {json.dumps(entry.text)}\nupdated = {json.dumps(entry.updated)}\n"
            )
        return "".join(lines).encode("utf-8")


def tag_uri(commentary: Commentary) -> str:
    host = urlsplit(commentary.archive_url).hostname or "localhost"
    return f"tag:{host},{commentary.date.date().isoformat()}:{commentary.slug}"


def fingerprint(commentary: Commentary) -> str:
    return commentary.fingerprint or hashlib.sha256(commentary.source.encode("utf-8")).hexdigest()


def _updated(commentary: Commentary) -> str:
    return commentary.updated.isoformat() if commentary.updated else ""
