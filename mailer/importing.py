"""CSV import of subscribers: streamed, any size, every bad row reported with its line.

The file needs an `email` column; `name`, `lists` (names separated by `;`) and `status` (as an
export writes it) are optional. Rows
are checked one by one and committed in batches; a bad row is skipped and reported as
`FILE:LINE: reason`, the good ones go in. A file that cannot be used at all (not text, not CSV, no
email column) is refused before anything is stored.
"""

from __future__ import annotations

import csv
import functools
import io
import multiprocessing
import queue
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import IO, NamedTuple

from mailer.addresses import AddressBook, InvalidAddress, clean_name
from mailer.errors import MailerError, Problem
from mailer.lifecycle import Reason, Status
from mailer.store.lists import check_name
from mailer.store.subscribers import Candidate, Merged, Subscribers

BATCH = 20000
csv.field_size_limit(1 << 20)
_NOT_UTF8 = re.compile("[\udc80-\udcff]")
"""Bytes that are not UTF-8 arrive as these lone surrogates (errors="surrogateescape")."""


class Row(NamedTuple):
    email: str
    name: str
    lists: str
    status: str
    values: list[str]


class UnusableFile(MailerError):
    """The file is not a CSV of subscribers at all; nothing was imported."""


@dataclass
class ImportReport:
    merged: Merged = field(default_factory=Merged)
    rejected: list[Problem] = field(default_factory=list)
    rows: int = 0


@dataclass
class _Batch:
    """What the reader sends the writer: checked rows, the rejected ones, and how far it got.

    The checked rows travel as columns of plain strings and numbers, which pickle several
    times faster than a tuple per row; each distinct set of lists travels once.
    """

    emails: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    statuses: list[Status | None] = field(default_factory=list)
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
            )
        )


def import_csv(
    path: Path,
    subscribers: Subscribers,
    *,
    lists: Sequence[str],
    default_list: str,
    progress: Callable[[int], None] = lambda _: None,
) -> ImportReport:
    """Import `path`: every row joins its own lists and `lists`, or `default_list` if none.

    A separate process reads and checks the rows while this one writes the previous batch, so
    that both cores work (threads would take turns: both halves are mostly Python).
    """
    extra = frozenset(check_name(name) for name in lists)
    report = ImportReport()
    context = multiprocessing.get_context("fork")  # a copy of this process: nothing re-imported
    channel: multiprocessing.Queue[_Batch | MailerError | None] = context.Queue(maxsize=2)
    reader = context.Process(
        target=_read, args=(path, extra, default_list, channel), name="mailer-import-reader"
    )
    reader.start()
    try:
        position = 0
        while (batch := _receive(channel, reader)) is not None:
            report.rows += batch.rows
            report.rejected += batch.rejected
            if batch.emails:
                report.merged += _merge(subscribers, batch.candidates(), path)
            progress(batch.position - position)
            position = batch.position
    finally:
        reader.kill()
        reader.join()
    return report


def _receive(
    channel: multiprocessing.Queue[_Batch | MailerError | None], reader: BaseProcess
) -> _Batch | None:
    while True:
        try:
            message = channel.get(timeout=1)
        except queue.Empty:
            if not reader.is_alive():
                raise MailerError(
                    "the CSV reader stopped unexpectedly; nothing more was imported"
                ) from None
            continue
        if isinstance(message, MailerError):
            raise message
        return message


def _read(
    path: Path,
    extra: frozenset[str],
    default_list: str,
    channel: multiprocessing.Queue[_Batch | MailerError | None],
) -> None:
    """The reader process: checked batches into `channel`, then None or the error that stops it."""
    try:
        book = AddressBook()
        with path.open("rb") as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
            batch = _Batch()
            for line, row in _rows(text, path):
                batch.rows += 1
                candidate = _candidate(row, line, book, extra, default_list)
                if isinstance(candidate, str):
                    batch.rejected.append(Problem(path, line, candidate))
                else:
                    batch.add(candidate)
                if batch.rows == BATCH:
                    batch.position = raw.tell()
                    channel.put(batch)
                    batch = _Batch()
            batch.position = raw.tell()
            channel.put(batch)
        channel.put(None)
    except MailerError as error:
        channel.put(error)


def _merge(subscribers: Subscribers, batch: list[Candidate], path: Path) -> Merged:
    return subscribers.merge(
        batch,
        status=Status.ACTIVE,
        reason=Reason.IMPORT,
        detail=f"import of {path.name}",
        replace_names=False,
    )


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
                    values,
                ),
            )
        line = reader.line_num + 1


def _at(values: list[str], index: int | None) -> str:
    return values[index] if index is not None and index < len(values) else ""


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
    except (InvalidAddress, ValueError) as error:
        return str(error)
    return Candidate(
        email=email,
        name=name,
        lists=(named | extra) or frozenset({default_list}),
        line=line,
        status=status,
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
    return frozenset(check_name(name) for name in field.split(";") if name.strip())
