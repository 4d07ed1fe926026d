"""URLs as headers need them."""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit


def ascii_url(url: str) -> str:
    """The URL as ASCII, which a header needs: the host in IDNA, the rest percent-encoded."""
    if url.isascii():
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        host = quote(host, safe="")
    netloc = host + (f":{parts.port}" if parts.port else "")
    safe = "/:@!$&'()*+,;=%~-._"
    return urlunsplit(
        (
            parts.scheme,
            netloc,
            quote(parts.path, safe=safe),
            quote(parts.query, safe=safe + "?"),
            quote(parts.fragment, safe=safe),
        )
    )
