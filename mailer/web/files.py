"""The files `mailer build` wrote (feeds, archive pages), served from memory for conditional GET.

Measured on the 2-core machine of the README (benchmarks/web_static.py): reading, hashing and
answering each file through Flask on every request held `GET /rss.xml` to a twentieth of what a
bare WSGI app on the same waitress answers. So each file is read and hashed once per build and
kept in memory; a plain GET or HEAD of a feed or archive page is answered by `Shortcut`, a WSGI
layer in front of Flask, with the same headers as every other answer. Everything else (a Range
request, a path that is no built file, other methods) goes on to Flask as before.

A build writes the marker `GENERATION` last whenever it changed anything (mailer.core.output), so
one stat of the marker tells that every file held is current. Without a marker (an output folder
built by an older mailer) each file's own stat is compared instead.

The ETag is a SHA-256 of the file's bytes, so it changes exactly when the content does; a build
leaves unchanged files untouched, so Last-Modified (the file's modification time) is stable too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from flask import Request, Response
from werkzeug.http import http_date, parse_date, parse_etags

from mailer.core.output import GENERATION
from mailer.web.headers import SECURITY_HEADERS

FEEDS = {
    "rss.xml": "application/rss+xml; charset=utf-8",
    "atom.xml": "application/atom+xml; charset=utf-8",
    "feed.json": "application/feed+json; charset=utf-8",
}
PAGE = "text/html; charset=utf-8"
MAX_AGE = 300
"""Seconds a reader or proxy may keep a feed or page without asking again."""
CACHE_CONTROL = f"public, max-age={MAX_AGE}"
HELD_BYTES = 64 * 1024 * 1024
"""The most file bytes held in memory; past it, files are read for each request."""
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
"""A slug, as a commentary's file name gives it: no `..`, no separator, nothing to escape."""


class _Version(NamedTuple):
    modified_ns: int
    size: int
    inode: int


@dataclass(frozen=True)
class Built:
    """One built file as served: its bytes and validators, and its answers' headers made once."""

    data: bytes
    etag: str
    modified: dt.datetime
    version: _Version
    content_type: str
    headers: list[tuple[str, str]]
    """200's headers; a 304 sends `headers[2:]` (no Content-Type or Content-Length)."""

    def fresh(self, if_none_match: str | None, if_modified_since: str | None) -> bool:
        """The client's copy is current: If-None-Match names this ETag, or (without
        If-None-Match) If-Modified-Since is no earlier than the file's time (RFC 9110 §13.2.2)."""
        if if_none_match:
            return parse_etags(if_none_match).contains_weak(self.etag)
        since = parse_date(if_modified_since) if if_modified_since else None
        return since is not None and since >= self.modified


def _version(stat: os.stat_result) -> _Version:
    return _Version(stat.st_mtime_ns, stat.st_size, stat.st_ino)


class BuiltFiles:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.held: dict[tuple[str, ...], Built] = {}
        self.held_bytes = 0
        self.generation: _Version | None = None
        self.lock = threading.Lock()

    def get(self, parts: tuple[str, ...], content_type: str) -> Built | None:
        """The file at these path parts inside the folder, current, or None: nothing outside
        the folder (no `..`, no absolute part, no symbolic link leading out) is ever served."""
        if not all(_SEGMENT.match(part) for part in parts):
            return None
        generation = self._generation()
        held = self.held.get(parts)
        if held is not None and (generation is not None or self._unchanged(parts, held)):
            return held
        return self._read(parts, content_type, generation)

    def _generation(self) -> _Version | None:
        """The marker's version, dropping every file held when a build changed it."""
        try:
            current: _Version | None = _version(os.stat(self.folder / GENERATION))
        except OSError:
            current = None
        if current != self.generation:
            with self.lock:
                if current != self.generation:
                    self.held, self.held_bytes, self.generation = {}, 0, current
        return current

    def _unchanged(self, parts: tuple[str, ...], held: Built) -> bool:
        try:
            return _version(os.stat(self.folder.joinpath(*parts))) == held.version
        except OSError:
            return False

    def _read(
        self, parts: tuple[str, ...], content_type: str, generation: _Version | None
    ) -> Built | None:
        path = self.folder.joinpath(*parts)
        try:
            resolved = path.resolve(strict=True)
            if not resolved.is_relative_to(self.folder.resolve()) or not resolved.is_file():
                return None
            with resolved.open("rb") as stream:  # the version read is the one the ETag names
                version = _version(os.fstat(stream.fileno()))
                data = stream.read()
        except (OSError, RuntimeError):
            return None
        etag = hashlib.sha256(data).hexdigest()[:32]
        modified = dt.datetime.fromtimestamp(version.modified_ns // 1_000_000_000, dt.UTC)
        built = Built(
            data,
            etag,
            modified,
            version,
            content_type,
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(data))),
                ("ETag", f'"{etag}"'),
                ("Last-Modified", http_date(modified)),
                ("Cache-Control", CACHE_CONTROL),
                *SECURITY_HEADERS.items(),
            ],
        )
        with self.lock:
            if self.generation == generation and self.held_bytes + len(data) <= HELD_BYTES:
                previous = self.held.get(parts)
                self.held_bytes += len(data) - (len(previous.data) if previous else 0)
                self.held[parts] = built
        return built

    def response(self, request: Request, built: Built) -> Response:
        """The file through Flask (a Range request, say): 200, or 304 when current."""
        response = Response(built.data, content_type=built.content_type)
        response.set_etag(built.etag)
        response.last_modified = built.modified
        response.cache_control.public = True
        response.cache_control.max_age = MAX_AGE
        if request.method in ("GET", "HEAD") and built.fresh(
            request.headers.get("If-None-Match"), request.headers.get("If-Modified-Since")
        ):
            response.status_code = 304  # werkzeug drops the body's headers from a 304
            response.set_data(b"")
            return response
        response.make_conditional(request, accept_ranges=True, complete_length=len(built.data))
        return response


def route(path: str) -> tuple[tuple[str, ...], str] | None:
    """The built file a path under the site names, with its type: `/rss.xml`, `/archive/`,
    `/archive/<slug>/`; None for any other path."""
    if path in ("/rss.xml", "/atom.xml", "/feed.json"):
        return (path[1:],), FEEDS[path[1:]]
    if path == "/archive/":
        return ("archive", "index.html"), PAGE
    if path.startswith("/archive/") and path.endswith("/") and path.count("/") == 3:
        return ("archive", path[9:-1], "index.html"), PAGE
    return None


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Shortcut:
    """A WSGI layer before Flask answering plain GET and HEAD of built files from memory."""

    def __init__(self, app: WsgiApp, files: BuiltFiles, prefix: str) -> None:
        self.app = app
        self.files = files
        self.prefix = prefix

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        method = environ["REQUEST_METHOD"]
        path: str = environ.get("PATH_INFO", "")
        if (
            method in ("GET", "HEAD")
            and "HTTP_RANGE" not in environ
            and path.startswith(self.prefix)
        ):
            found = route(path[len(self.prefix) :])
            built = self.files.get(*found) if found else None
            if built is not None:
                if built.fresh(
                    environ.get("HTTP_IF_NONE_MATCH"), environ.get("HTTP_IF_MODIFIED_SINCE")
                ):
                    start_response("304 Not Modified", built.headers[2:])
                    return [b""]
                start_response("200 OK", built.headers)
                return [b"" if method == "HEAD" else built.data]
        return self.app(environ, start_response)
