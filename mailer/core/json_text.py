"""Reading text out of JSON that came from outside (a provider's answer or event)."""

from __future__ import annotations

from typing import Any


def text_at(value: Any, *path: str) -> str:
    """The text (or number, as text) at `path` in nested objects; "" when it is not there."""
    for name in path:
        if not isinstance(value, dict):
            return ""
        value = value.get(name)
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, str | int | float):
        return str(value)
    return ""
