"""CSV import of subscribers: streamed, any size, every bad row reported with its line.

The file needs an `email` column; `name` and `lists` (names separated by `;`) are optional. Rows
are checked one by one and committed in batches; a bad row is skipped and reported as
`FILE:LINE: reason`, the good ones go in. A file that cannot be used at all (not text, not CSV, no
email column) is refused before anything is stored.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NamedTuple

from mailer.addresses import AddressBook, InvalidAddress, clean_name
from mailer.errors import MailerError, Problem
from mailer.lifecycle import Reason, Status
from mailer.store.lists import check_name
from mailer.store.subscribers import Candidate, Merged, Subscribers

BATCH = 5000
csv.field_size_limit(1 << 20)
_NOT_UTF8 = re.compile("[\udc80-\udcff]")
"""Bytes that are not UTF-8 arrive as these lone surrogates (errors="surrogateescape")."""


class Row(NamedTuple):
    email: str
    name: str
    lists: str
    values: list[str]


class UnusableFile(MailerError):
    """The file is not a CSV of subscribers at all; nothing was imported."""


@dataclass
class ImportReport:
    merged: Merged = field(default_factory=Merged)
    rejected: list[Problem] = field(default_factory=list)
    rows: int = 0


class _CountingReader(io.RawIOBase):
    """Passes bytes through, counting them, so a progress bar can follow a stream."""

    def __init__(self, raw: IO[bytes], progress: Callable[[int], None]) -> None:
        self.raw = raw
        self.progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        self.progress(count or 0)
        return int(count or 0)


def import_csv(
    path: Path,
    subscribers: Subscribers,
    *,
    lists: Sequence[str],
    default_list: str,
    progress: Callable[[int], None] = lambda _: None,
) -> ImportReport:
    """Import `path`: every row joins its own lists and `lists`, or `default_list` if none."""
    extra = frozenset(check_name(name) for name in lists)
    report = ImportReport()
    book = AddressBook()
    with path.open("rb") as raw:
        text = io.TextIOWrapper(
            io.BufferedReader(_CountingReader(raw, progress)),
            encoding="utf-8-sig",
            errors="surrogateescape",
            newline="",
        )
        rows = _rows(text, path)
        batch: list[Candidate] = []
        for line, row in rows:
            report.rows += 1
            candidate = _candidate(row, line, book, extra, default_list)
            if isinstance(candidate, str):
                report.rejected.append(Problem(path, line, candidate))
                continue
            batch.append(candidate)
            if len(batch) >= BATCH:
                report.merged += _merge(subscribers, batch, path)
                batch = []
        if batch:
            report.merged += _merge(subscribers, batch, path)
    return report


def _merge(subscribers: Subscribers, batch: list[Candidate], path: Path) -> Merged:
    return subscribers.merge(
        batch, status=Status.ACTIVE, reason=Reason.IMPORT, detail=f"import of {path.name}"
    )


def _rows(text: IO[str], path: Path) -> Iterator[tuple[int, Row]]:
    """(first line of the record, its email, name and lists) for each data row."""
    reader = csv.reader(text)
    try:
        header = next(reader, None)
    except (csv.Error, UnicodeError) as error:
        raise UnusableFile(f"{path}: is not a CSV file ({error})") from None
    columns = [name.strip().lower() for name in header or []]
    if _NOT_UTF8.search("".join(columns)):
        raise UnusableFile(f"{path}:1: is not UTF-8 text; save it as UTF-8 CSV and import again")
    if "email" not in columns:
        found = ", ".join(repr(c) for c in columns[:5]) or "nothing"
        raise UnusableFile(
            f"{path}:1: there is no 'email' column (the first line holds {found}); "
            "the first line must name the columns: email,name,lists"
        )
    email_at = columns.index("email")
    name_at = columns.index("name") if "name" in columns else None
    lists_at = columns.index("lists") if "lists" in columns else None
    line = reader.line_num + 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise UnusableFile(f"{path}:{reader.line_num}: is not a CSV file ({error})") from None
        if values and "".join(values).strip():
            yield (
                line,
                Row(_at(values, email_at), _at(values, name_at), _at(values, lists_at), values),
            )
        line = reader.line_num + 1


def _at(values: list[str], index: int | None) -> str:
    return values[index] if index is not None and index < len(values) else ""


def _candidate(
    row: Row, line: int, book: AddressBook, extra: frozenset[str], default_list: str
) -> Candidate | str:
    """The row as a person to add, or the reason it is rejected."""
    if _NOT_UTF8.search("".join(row.values)):
        return "this line is not UTF-8 text"
    try:
        email = book.normalise(row.email)
        name = clean_name(row.name) if row.name else ""
        named = _list_names(row.lists) if row.lists else frozenset()
    except (InvalidAddress, ValueError) as error:
        return str(error)
    return Candidate(
        email=email, name=name, lists=(named | extra) or frozenset({default_list}), line=line
    )


@functools.lru_cache(maxsize=1024)
def _list_names(field: str) -> frozenset[str]:
    """The lists of a `lists` cell; most rows of a file repeat a few, hence the cache."""
    return frozenset(check_name(name) for name in field.split(";") if name.strip())
