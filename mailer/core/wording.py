"""Words shared by what the command line prints and what the scheduler logs."""

from __future__ import annotations


def count(number: int, singular: str, plural: str = "") -> str:
    """`1 commentary`, `3 commentaries`."""
    return f"{number:,} {singular if number == 1 else plural or singular + 's'}"
