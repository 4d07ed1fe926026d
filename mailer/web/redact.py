"""What the logs may say about a person or a link: enough to follow a case, not to read it."""

from __future__ import annotations


def address(email: str) -> str:
    """`alice@example.org` → `a***@example.org`."""
    local, at, domain = email.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def token(value: str) -> str:
    """A signed token by its first six characters, which name it in a log but cannot be used."""
    return f"{value[:6]}…"
