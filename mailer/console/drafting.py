"""A commentary as the editor's form holds it, and back to the file the folder keeps.

The commentaries folder stays the one source of truth: the form is turned into the same
front matter and Markdown a person would type, checked by the very reader `mailer check` uses,
and written in one step. Each check problem is traced back to the field or body line it is about.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import threading
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mailer.content.commentary import FIELDS, Commentary, Site, read_bytes, source
from mailer.core.errors import Problem
from mailer.core.output import write_atomically

LISTS = ("authors", "summary")
"""Fields the form holds one item a line."""
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$")
_HAS_NO = re.compile(r"has no (\w+);")
_saving = threading.Lock()
"""One save at a time in this process, so that comparing versions and writing is one step."""


@dataclass
class Draft:
    values: dict[str, str]
    """Each front matter field as the form shows it (lists one item a line, tags by commas)."""
    body: str

    @classmethod
    def from_form(cls, form: Mapping[str, str]) -> Draft:
        values = {name: form.get(name, "").replace("\r\n", "\n").strip() for name in FIELDS}
        values["draft"] = "on" if form.get("draft") else ""
        return cls(values, form.get("body", "").replace("\r\n", "\n"))

    @classmethod
    def from_text(cls, text: str, path: Path) -> Draft | Problem:
        found = source(text, path)
        if isinstance(found, Problem):
            return found
        data, body = found
        values = {name: _shown(name, data.get(name)) for name in FIELDS}
        return cls(values, body.lstrip("\n"))

    def text(self) -> Written:
        """The file's text, and where each field and the body landed in it."""
        lines = ["+++"]
        fields: dict[int, str] = {}
        for name in FIELDS:
            value = _toml(name, self.values.get(name, ""))
            if value is not None:
                fields[len(lines) + 1] = name
                lines.append(f"{name} = {value}")
        lines.append("+++")
        lines.append("")
        body = self.body.strip("\n") + "\n"
        return Written("\n".join(lines) + "\n" + body, fields, len(lines) + 1)


@dataclass(frozen=True)
class Written:
    text: str
    fields: dict[int, str]
    """Line number → the field written on it."""
    body_line: int
    """The file line of the body's first line."""


@dataclass
class Checked:
    commentary: Commentary | None
    by_field: dict[str, list[str]] = field(default_factory=dict)
    by_body_line: list[tuple[int, str]] = field(default_factory=list)
    """(line of the body, as the editor numbers it from 1, message)."""
    other: list[str] = field(default_factory=list)

    @property
    def errors(self) -> bool:
        return self.commentary is None

    @property
    def count(self) -> int:
        return sum(map(len, self.by_field.values())) + len(self.by_body_line) + len(self.other)


def check(draft: Draft, target: Path, site: Site) -> Checked:
    """Read the draft as `mailer check` would read it saved as `target` (finding the images and
    PDF beside it), problems placed on the form; nothing is written."""
    written = draft.text()
    commentary, problems = read_bytes(written.text.encode("utf-8"), target, site)
    checked = Checked(commentary)
    for problem in problems:
        message = f"{'Warning: ' if problem.warning else ''}{problem.message}"
        missing = _HAS_NO.search(problem.message)
        if problem.line in written.fields:
            checked.by_field.setdefault(written.fields[problem.line], []).append(message)
        elif missing and missing[1] in FIELDS:
            checked.by_field.setdefault(missing[1], []).append(message)
        elif problem.line is not None and problem.line >= written.body_line:
            checked.by_body_line.append((problem.line - written.body_line + 1, message))
        else:
            checked.other.append(message)
    return checked


def version(path: Path) -> str:
    """What a file was when someone opened it: compared again when they save."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return ""


class Conflict(Exception):
    """Someone else saved the file after this person opened it."""


def save(path: Path, draft: Draft, started_from: str) -> str:
    """Write the draft over `path` if nobody changed it since `started_from`; its new version."""
    data = draft.text().text.encode("utf-8")
    with _saving:
        if version(path) != started_from:
            raise Conflict(path.name)
        write_atomically(path, data)
    return hashlib.sha256(data).hexdigest()


def file_name(draft: Draft) -> str:
    """A new commentary's file: `2025-09-17-a-title-in-few-words.md`."""
    words = unicodedata.normalize("NFKD", draft.values.get("title", "")).encode("ascii", "ignore")
    slug = "-".join(re.findall(r"[a-z0-9]+", words.decode().lower())[:8]) or "untitled"
    date = draft.values.get("date", "")[:10]
    return f"{date}-{slug}.md" if re.match(r"^\d{4}-\d{2}-\d{2}$", date) else f"{slug}.md"


def _shown(name: str, value: object) -> str:
    if value is None:
        return ""
    if name == "draft":
        return "on" if value is True else ""
    if isinstance(value, list):
        joiner = ", " if name == "tags" else "\n"
        return joiner.join(str(item) for item in value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return str(value)


def _toml(name: str, value: str) -> str | None:
    """The field as TOML, None when left empty. A value of the wrong kind is written as text,
    so that the check names the field, as it would in a file typed by hand."""
    if not value:
        return None
    if name == "draft":
        return "true"
    if name in LISTS or name == "tags":
        separator = "\n" if name in LISTS else ","
        items = [item.strip() for item in value.split(separator) if item.strip()]
        return "[" + ", ".join(_string(item) for item in items) + "]"
    if name == "date" and _DATE.match(value) and _is_time(value):
        return value
    if name == "pdf_size" and value.isdigit():
        return value
    return _string(value)


def _is_time(value: str) -> bool:
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _string(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, but for DEL, which TOML wants escaped."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
