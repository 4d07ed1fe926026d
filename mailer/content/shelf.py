"""The commentaries folder as last read, kept by whoever reads it often: `mailer serve`'s
scheduler at every look, the console at every page.

A file is parsed again only when it changed, or when one of the places where an image or PDF it
names was looked for changed (a file added, replaced or removed there), so that a look at 500
commentaries costs a few stat calls each, not 500 Markdown renderings. What is kept is each
commentary's metadata (`Commentary.without_body`), so memory grows with the number of files,
not with their text; with its body, only the few asked for last (the console's previews).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from mailer.content.commentary import Collection, Commentary, Site, load_folder, reading
from mailer.content.files import Stamp, stamp
from mailer.core.errors import Problem

WHOLE = 16
"""Commentaries kept with their bodies: the most recently asked for whole."""


@dataclass(frozen=True)
class _Kept:
    own: Stamp | None
    looked: dict[Path, Stamp | None]
    commentary: Commentary | None
    problems: list[Problem]

    def current(self, own: Stamp | None) -> bool:
        return (
            own is not None
            and own == self.own
            and all(stamp(p) == was for p, was in self.looked.items())
        )


class Shelf:
    """Commentaries read from their files, each kept until its file or a file beside it
    changes. Shared by threads: two may parse the same changed file at once, harmlessly."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self._kept: dict[Path, _Kept] = {}
        self._whole: OrderedDict[Path, _Kept] = OrderedDict()
        self._lock = threading.Lock()
        self.parsed = 0
        """How many files were parsed (not found kept): what a look cost."""

    def read(self, path: Path) -> tuple[Commentary | None, list[Problem]]:
        """The commentary in `path` without its body, or None with its problems."""
        own = stamp(path)  # before reading: a change while it is read shows at the next look
        with self._lock:
            kept = self._kept.get(path)
        if kept is None or not kept.current(own):
            kept = self._parse(path, own)[0]
        return kept.commentary, list(kept.problems)

    def whole(self, path: Path) -> tuple[Commentary | None, list[Problem]]:
        """The commentary in `path` with its body, or None with its problems."""
        own = stamp(path)
        with self._lock:
            kept = self._whole.get(path)
            if kept is not None:
                self._whole.move_to_end(path)
        if kept is None or not kept.current(own):
            kept = self._parse(path, own)[1]
            with self._lock:
                self._whole[path] = kept
                self._whole.move_to_end(path)
                while len(self._whole) > WHOLE:
                    self._whole.popitem(last=False)
        return kept.commentary, list(kept.problems)

    def _parse(self, path: Path, own: Stamp | None) -> tuple[_Kept, _Kept]:
        """Read the file, keeping its metadata; what was kept, and the commentary whole."""
        found = reading(path, self.site)
        whole = _Kept(own, found.looked, found.commentary, found.problems)
        commentary = found.commentary.without_body() if found.commentary else None
        kept = _Kept(own, found.looked, commentary, found.problems)
        with self._lock:
            self._kept[path] = kept
            self.parsed += 1
        return kept, whole

    def folder(self, folder: Path) -> Collection:
        """Every commentary of the folder without its body (as `load_folder(bodies=False)`),
        those of files gone or renamed let go."""
        present: set[Path] = set()

        def read(path: Path) -> tuple[Commentary | None, list[Problem]]:
            present.add(path)
            return self.read(path)

        collection = load_folder(folder, self.site, reader=read)  # kept without bodies already
        with self._lock:
            for path in [p for p in self._kept if p.parent == folder and p not in present]:
                del self._kept[path]
                self._whole.pop(path, None)
        return collection
