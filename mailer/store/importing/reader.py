"""Reading a CSV of subscribers: rows checked and gathered into batches, with line numbers.

This module runs as its own small process during an import
(`python -m mailer.store.importing.reader`), streaming pickled batches to the importing
process, which writes them to the database meanwhile: both halves of an import are mostly
Python, so two processes keep both cores busy where threads would take turns. It imports
nothing of the database, so the process stays small.
"""

from __future__ import annotations

import csv
import functools
import io
import pickle
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NamedTuple

from mailer.core.addresses import (
    AddressBook,
    Candidate,
    InvalidAddress,
    clean_list_name,
    clean_name,
)
from mailer.core.errors import MailerError, Problem
from mailer.core.languages import language_code
from mailer.core.lifecycle import Status

BATCH = 20000
csv.field_size_limit(1 << 20)
_NOT_UTF8 = re.compile("[\udc80-\udcff]")
"""Bytes that are not UTF-8 arrive as these lone surrogates (errors="surrogateescape")."""


class UnusableFile(MailerError):
    """The file is not a CSV of subscribers at all; nothing was imported."""


class Row(NamedTuple):
    email: str
    name: str
    lists: str
    status: str
    language: str
    values: list[str]


@dataclass
class Batch:
    """What the reader sends the writer: checked rows, the rejected ones, and how far it got.

    The checked rows travel as columns of plain strings and numbers, which pickle several
    times faster than a tuple per row; each distinct set of lists travels once.
    """

    emails: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    statuses: list[Status | None] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    list_sets: dict[frozenset[str], int] = field(default_factory=dict)
    rejected: list[Problem] = field(default_factory=list)
    rows: int = 0
    position: int = 0

    def add(self, candidate: Candidate) -> None:
        self.emails.append(candidate.email)
        self.names.append(candidate.name)
        self.groups.append(self.list_sets.setdefault(candidate.lists, len(self.list_sets)))
        self.lines.append(candidate.line)
        self.statuses.append(candidate.status)
        self.languages.append(candidate.language)

    def candidates(self) -> list[Candidate]:
        sets = list(self.list_sets)
        return list(
            map(
                Candidate,
                self.emails,
                self.names,
                [sets[g] for g in self.groups],
                self.lines,
                self.statuses,
                self.languages,
            )
        )


def batches(path: Path, extra: frozenset[str], default_list: str) -> Iterator[Batch]:
    """The file's rows, checked, BATCH at a time; UnusableFile if it is no CSV of subscribers.

    Every row joins its own lists and `extra`, or `default_list` when that leaves none.
    """
    book = AddressBook()
    with path.open("rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
        batch = Batch()
        for line, row in _rows(text, path):
            batch.rows += 1
            candidate = _candidate(row, line, book, extra, default_list)
            if isinstance(candidate, str):
                batch.rejected.append(Problem(path, line, candidate))
            else:
                batch.add(candidate)
            if batch.rows == BATCH:
                batch.position = raw.tell()
                yield batch
                batch = Batch()
        batch.position = raw.tell()
        yield batch


def _rows(text: IO[str], path: Path) -> Iterator[tuple[int, Row | str]]:
    """(first line of the record, its cells or why it cannot be read) for each data row."""
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
    status_at = columns.index("status") if "status" in columns else None
    language_at = columns.index("language") if "language" in columns else None
    line = reader.line_num + 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as error:  # the reader goes on with the next record
            yield line, f"this line is not valid CSV ({error})"
            line = reader.line_num + 1
            continue
        if values and "".join(values).strip():
            yield (
                line,
                Row(
                    _at(values, email_at),
                    _at(values, name_at),
                    _at(values, lists_at),
                    _at(values, status_at),
                    _at(values, language_at),
                    values,
                ),
            )
        line = reader.line_num + 1


def _at(values: list[str], index: int | None) -> str:
    return as_written(values[index]) if index is not None and index < len(values) else ""


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet takes a cell for a formula by (OWASP, CSV injection)."""
_ESCAPED = frozenset([*FORMULA_STARTS, "'"])


def spreadsheet_safe(cell: str) -> str:
    """A cell as an export writes it. One that a spreadsheet would run as a formula gets a
    leading `'`, which spreadsheets take for "this is text"; so does one beginning with `'`
    and one of those characters or another `'`, so that `as_written` can tell them apart."""
    if cell.startswith(FORMULA_STARTS) or (cell[:1] == "'" and cell[1:2] in _ESCAPED):
        return "'" + cell
    return cell


def as_written(cell: str) -> str:
    """A cell as it was before `spreadsheet_safe`: importing an export gives back the people
    it was made from."""
    return cell[1:] if cell[:1] == "'" and cell[1:2] in _ESCAPED else cell


def _candidate(
    row: Row | str, line: int, book: AddressBook, extra: frozenset[str], default_list: str
) -> Candidate | str:
    """The row as a person to add, or the reason it is rejected."""
    if isinstance(row, str):
        return row
    if _NOT_UTF8.search("".join(row.values)):
        return "this line is not UTF-8 text"
    try:
        email = book.normalise(row.email)
        name = clean_name(row.name) if row.name else ""
        named = _list_names(row.lists) if row.lists else frozenset()
        status = _status(row.status) if row.status else None
        language = language_code(row.language.strip()) if row.language.strip() else ""
    except (InvalidAddress, ValueError) as error:
        return str(error)
    return Candidate(
        email=email,
        name=name,
        lists=(named | extra) or frozenset({default_list}),
        line=line,
        status=status,
        language=language,
    )


def _status(cell: str) -> Status:
    """A `status` cell, as an export writes it: a row that left stays out when imported."""
    try:
        return Status(cell.strip().lower())
    except ValueError:
        choices = ", ".join(s.value for s in Status)
        raise ValueError(f"the status '{cell.strip()}' is not one of: {choices}") from None


@functools.lru_cache(maxsize=1024)
def _list_names(field: str) -> frozenset[str]:
    """The lists of a `lists` cell; most rows of a file repeat a few, hence the cache."""
    return frozenset(clean_list_name(name) for name in field.split(";") if name.strip())


def main() -> None:
    """`python -m mailer.store.importing.reader FILE DEFAULT_LIST [LIST...]`: pickled batches
    on stdout, then None, or the UnusableFile that stopped the reading."""
    path, default_list, *extra = sys.argv[1:]
    out = sys.stdout.buffer
    try:
        for batch in batches(Path(path), frozenset(extra), default_list):
            pickle.dump(batch, out, protocol=pickle.HIGHEST_PROTOCOL)
            out.flush()
        pickle.dump(None, out)
    except UnusableFile as error:
        pickle.dump(error, out)
    out.flush()


if __name__ == "__main__":
    # Run the module under its own name, so that pickled batches name
    # mailer.store.importing.reader.Batch (which the importing process can load), not
    # __main__.Batch.
    from mailer.store.importing import reader

    reader.main()
