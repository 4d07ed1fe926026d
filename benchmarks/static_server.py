"""The ceiling for benchmarks/web_static.py: the built files from memory, on waitress, in WSGI.

    python benchmarks/static_server.py PUBLIC_FOLDER PORT THREADS

Answers /commentaries/rss.xml and /commentaries/archive/ with the bytes of the build, an ETag,
Last-Modified and Cache-Control, and 304 to a matching If-None-Match: what a Python server on
waitress can do at the least cost.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

import waitress

ETAG = '"0123456789abcdef0123456789abcdef"'
SHARED = [
    ("ETag", ETAG),
    ("Last-Modified", "Wed, 17 Sep 2025 00:00:00 GMT"),
    ("Cache-Control", "public, max-age=300"),
]


def main() -> None:
    folder, port, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    files: dict[str, tuple[bytes, str]] = {}
    for route, path, kind in (
        ("/commentaries/rss.xml", "rss.xml", "application/rss+xml; charset=utf-8"),
        ("/commentaries/archive/", "archive/index.html", "text/html; charset=utf-8"),
    ):
        with open(f"{folder}/{path}", "rb") as stream:
            files[route] = (stream.read(), kind)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        found = files.get(environ["PATH_INFO"])
        if found is None:
            start_response("404 Not Found", [("Content-Length", "0")])
            return [b""]
        if environ.get("HTTP_IF_NONE_MATCH") == ETAG:
            start_response("304 Not Modified", SHARED)
            return [b""]
        data, kind = found
        start_response(
            "200 OK", [("Content-Type", kind), ("Content-Length", str(len(data))), *SHARED]
        )
        return [data]

    waitress.serve(app, host="127.0.0.1", port=port, threads=threads, ident="static")


if __name__ == "__main__":
    main()
