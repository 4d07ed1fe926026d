"""TOML text with its line numbers kept, so every error can say `file:line`.

tomllib reports a parse error's line only inside its message ("… (at line 3, column 7)"), and says
nothing of where a key stands once parsed; both are recovered here from the text itself.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mailer.core.errors import Problem

_AT_LINE = re.compile(r"\(at (?:line (\d+), column \d+|end of document)\)")
_DATE_LINE = re.compile(r"^\s*date\s*=")
_TABLE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def parse(text: str, path: Path, first_line: int = 1) -> dict[str, Any] | Problem:
    """The parsed table, or the problem that stops it; `first_line` is where the text starts."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        found = _AT_LINE.search(message)
        lines = text.splitlines() or [""]
        at = int(found.group(1)) - 1 if found and found.group(1) else len(lines) - 1
        reason = _AT_LINE.sub("", message).strip().rstrip(".")
        shown = lines[min(at, len(lines) - 1)].strip()
        hint = "; dates are written like 2025-09-17" if _DATE_LINE.match(shown) else ""
        return Problem(
            path,
            first_line + at,
            f"this is not valid TOML: {reason[:1].lower()}{reason[1:]} in `{shown}`{hint}",
        )


def _bare_key(name: str) -> str:
    return name.strip().strip('"').strip("'")


def key_line(text: str, table: Sequence[str], key: str | None, first_line: int = 1) -> int:
    """The line where `key` is set inside `[table]` (or where the table starts when key is None).

    Falls back to the table's header, then to the first line, when the key is written in a form this
    simple scan does not follow (an inline table, a dotted key).
    """
    wanted = ".".join(table)
    current = ""
    table_line = first_line
    key_pattern = re.compile(rf"""^\s*["']?{re.escape(key)}["']?\s*=""") if key else None
    for number, line in enumerate(text.splitlines(), start=first_line):
        header = _TABLE.match(line)
        if header:
            current = ".".join(_bare_key(part) for part in header.group(1).split("."))
            if key and current == ".".join((*table, key)):  # the key is a table of its own
                return number
            if current == wanted:
                table_line = number
                if key_pattern is None:
                    return number
            continue
        if current == wanted and key_pattern and key_pattern.match(line):
            return number
    return table_line
