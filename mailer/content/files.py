"""Files beside the text: the images and the PDF a commentary names by a bare file name.

A name is looked up in a folder named after the commentary's slug, then beside the file itself.
Each file found is measured (size, type, an image's width) and published by the build under a
name made of its content's hash, so that a corrected file gets a new address and no cache ever
serves the old one; the email and feeds link its absolute URL.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

FOLDER = "files"
"""Where the build publishes them, in the output folder and under site_url."""
COLUMN = 536
"""The default theme's text column in the email: 600 px less 32 px of padding on each side."""
WIDEST_IMAGE = 2 * 600
"""Wider than a high-density screen shows the 600 px email: only more to download."""
PDF_TYPE = "application/pdf"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


Stamp = tuple[int, int, int]
"""A file as it is on disk now: time of change (ns), size, inode (a file replaced by renaming
another over it is a new inode even within the same tick of the clock)."""


def stamp(path: Path) -> Stamp | None:
    """What `path` is now, None when it is not a file (missing, or a folder)."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(found.st_mode):
        return None
    return found.st_mtime_ns, found.st_size, found.st_ino


class FileProblem(ValueError):
    """A named file that is missing or cannot be used; the message says which and why."""


@dataclass(frozen=True)
class LocalFile:
    source: Path
    published: str
    """Its path in the output folder, `files/<hash>/<name>`."""
    url: str
    size: int
    media_type: str
    width: int = 0
    """An image's width in pixels (0 for a PDF)."""

    @property
    def shown_width(self) -> int:
        """The width attribute the email gives it: Outlook ignores max-width."""
        return min(self.width, COLUMN)


def is_local(reference: str) -> bool:
    """True for a bare file name or relative path (`map.png`, `img/map.png`), which names a
    file beside the commentary; not for a URL, a site path (`/x.png`) or a fragment."""
    value = reference.strip()
    return bool(value) and not _SCHEME.match(value) and value[0] not in "/#?"


@dataclass
class Beside:
    """The files one commentary names, found next to it and measured once each."""

    commentary: Path
    slug: str
    site_url: str
    found: dict[str, LocalFile] = field(default_factory=dict)
    looked: dict[Path, Stamp | None] = field(default_factory=dict)
    """Every place a file was looked for, with what was there (None: nothing): reading the
    commentary again gives the same only while each is still so."""

    def image(self, name: str) -> LocalFile:
        found = self._file(name)
        if found.media_type not in IMAGE_TYPES:
            raise FileProblem(f"'{name}' is not an image a mail client shows: use PNG, JPEG or GIF")
        return found

    def pdf(self, name: str) -> LocalFile:
        return self._file(name)

    def _file(self, name: str) -> LocalFile:
        if name not in self.found:
            self.found[name] = measure(self._locate(name), self.site_url)
        return self.found[name]

    def _locate(self, name: str) -> Path:
        folder = self.commentary.parent
        for candidate in (folder / self.slug / name, folder / name):
            self.looked[candidate] = stamp(candidate)  # before measuring: a change shows later
            resolved = candidate.resolve()
            if folder.resolve() not in resolved.parents:
                raise FileProblem(f"'{name}' is outside the commentaries folder")
            if self.looked[candidate] is not None:
                return resolved
        raise FileProblem(
            f"'{name}' is not there: put it beside {self.commentary.name} or in a folder "
            f"{folder.name}/{self.slug}/"
        )


def measure(path: Path, site_url: str) -> LocalFile:
    """The file as the build publishes it: its address made of its content's hash, its size,
    type and (an image's) width."""
    data = path.read_bytes()
    media_type = _media_type(path, data)
    digest = hashlib.sha256(data).hexdigest()[:16]
    published = f"{FOLDER}/{digest}/{path.name}"
    width = _width(path, path.name) if media_type.startswith("image/") else 0
    return LocalFile(path, published, site_url + published, len(data), media_type, width)


def _media_type(path: Path, data: bytes) -> str:
    if data.startswith(b"%PDF-"):
        return PDF_TYPE
    guessed = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if guessed == PDF_TYPE:
        raise FileProblem(f"'{path.name}' is named .pdf but is not a PDF")
    return guessed


def _width(path: Path, name: str) -> int:
    from PIL import Image, UnidentifiedImageError  # reads only the header, to measure

    try:
        with Image.open(path) as image:
            return int(image.width)
    except (UnidentifiedImageError, OSError):
        raise FileProblem(
            f"'{name}' cannot be read as an image; save it again as PNG or JPEG"
        ) from None
