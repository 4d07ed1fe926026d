"""The files `mailer build` wrote (feeds, archive pages), served for conditional GET.

The ETag is a SHA-256 of the file's bytes, so it changes exactly when the content does; a build
leaves unchanged files untouched, so Last-Modified (the file's modification time) is stable too. A
file is hashed once per version (by modification time, size and inode) and a 304 answer is made
without reading it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading
from pathlib import Path
from typing import NamedTuple

from flask import Request, Response

FEEDS = {
    "rss.xml": "application/rss+xml; charset=utf-8",
    "atom.xml": "application/atom+xml; charset=utf-8",
    "feed.json": "application/feed+json; charset=utf-8",
}
PAGE = "text/html; charset=utf-8"
MAX_AGE = 300
"""Seconds a reader or proxy may keep a feed or page without asking again."""


class _Version(NamedTuple):
    modified_ns: int
    size: int
    inode: int


class BuiltFiles:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.etags: dict[str, tuple[_Version, str]] = {}
        self.lock = threading.Lock()

    def path(self, *parts: str) -> Path | None:
        """The file at these path parts inside the folder, or None: nothing outside the folder
        (no `..`, no absolute part, no symbolic link leading out) is ever served."""
        if any(
            not part or part in (".", "..") or "/" in part or "\\" in part or "\0" in part
            for part in parts
        ):
            return None
        path = self.folder.joinpath(*parts)
        try:
            resolved = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not resolved.is_relative_to(self.folder.resolve()) or not resolved.is_file():
            return None
        return resolved

    def response(self, request: Request, path: Path, content_type: str) -> Response | None:
        """The file as a response (200, or 304 when the client's copy is current); None if gone."""
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        etag = self._known_etag(path, _version(stat))
        if etag is not None and _fresh(request, etag, stat):
            return self._answer(request, None, content_type, etag, stat)
        try:
            with path.open("rb") as stream:  # the version read is the one the ETag names
                stat = os.fstat(stream.fileno())
                data = stream.read()
        except FileNotFoundError:
            return None
        etag = self._etag(path, _version(stat), data)
        return self._answer(request, data, content_type, etag, stat)

    def _known_etag(self, path: Path, version: _Version) -> str | None:
        with self.lock:
            known = self.etags.get(str(path))
        return known[1] if known and known[0] == version else None

    def _etag(self, path: Path, version: _Version, data: bytes) -> str:
        etag = self._known_etag(path, version)
        if etag is None:
            etag = hashlib.sha256(data).hexdigest()[:32]
            with self.lock:
                self.etags[str(path)] = (version, etag)
        return etag

    @staticmethod
    def _answer(
        request: Request, data: bytes | None, content_type: str, etag: str, stat: os.stat_result
    ) -> Response:
        """`data` None: a 304, the client's copy being current (and the file not even read)."""
        response = Response(data or b"", content_type=content_type)
        response.set_etag(etag)
        response.last_modified = dt.datetime.fromtimestamp(int(stat.st_mtime), dt.UTC)
        response.cache_control.public = True
        response.cache_control.max_age = MAX_AGE
        if data is None:
            response.status_code = 304  # werkzeug drops the body's headers from a 304
            return response
        response.make_conditional(request)  # a Range request, or validators the fast path missed
        return response


def _version(stat: os.stat_result) -> _Version:
    return _Version(stat.st_mtime_ns, stat.st_size, stat.st_ino)


def _fresh(request: Request, etag: str, stat: os.stat_result) -> bool:
    """The client's copy is current: If-None-Match names this ETag, or (without If-None-Match)
    If-Modified-Since is no earlier than the file's modification time (RFC 9110 §13.2.2)."""
    if request.method not in ("GET", "HEAD"):
        return False
    if request.if_none_match:
        return request.if_none_match.contains_weak(etag)
    since = request.if_modified_since
    return since is not None and since >= dt.datetime.fromtimestamp(int(stat.st_mtime), dt.UTC)
