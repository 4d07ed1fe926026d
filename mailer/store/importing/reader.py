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
import itertools
import json
import pickle
import re
import sys
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, NamedTuple

from mailer.core.addresses import (
    AddressBook,
    Candidate,
    InvalidAddress,
    clean_list_name,
    clean_name,
)
from mailer.core.errors import MailerError, Problem
from mailer.core.languages import language_code
from mailer.core.lifecycle import Frequency, Status
from mailer.store.importing.columns import BadHeader, Columns, columns_of
from mailer.store.importing.detection import Detected, delimiter_of, encoding_name, encoding_of

if TYPE_CHECKING:
    from _csv import Reader as CsvReader

BATCH = 20000
csv.field_size_limit(1 << 20)
_NOT_DECODED = re.compile("[\udc80-\udcff]")
"""Bytes not valid in the file's encoding arrive as lone surrogates (errors="surrogateescape")."""


class UnusableFile(MailerError):
    """The file is not a CSV of subscribers at all; nothing was imported."""


class Row(NamedTuple):
    email: str
    name: str
    lists: str
    status: str
    language: str
    frequency: str
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
    frequencies: list[Frequency | Mapping[str, Frequency] | None] = field(default_factory=list)
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
        self.frequencies.append(candidate.frequency)

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
                self.frequencies,
            )
        )


@dataclass(frozen=True)
class Reading:
    """What staff said about the file (`--encoding`, `--delimiter`, `--map`); None: detect it."""

    encoding: str | None = None
    delimiter: str | None = None
    mapping: Mapping[str, str] = field(default_factory=dict)


DETECT = Reading()
"""Staff said nothing about the file: everything is detected."""


@dataclass(frozen=True)
class Layout:
    """How the file is being read, sent before the first batch so that staff are told."""

    detected: Detected
    columns: Columns

    def describe(self) -> str:
        return f"{self.detected.describe()}; {self.columns.describe()}"


def batches(
    path: Path,
    extra: frozenset[str],
    default_list: str,
    reading: Reading = DETECT,
    size: int = BATCH,
) -> Generator[Layout | Batch, None, None]:
    """How the file is read, then its rows, checked, `size` at a time; UnusableFile if it is no
    CSV of subscribers.

    Every row joins its own lists and `extra`, or `default_list` when that leaves none.
    """
    book = AddressBook()
    with path.open("rb") as raw:
        # The text wrapper is held until the end: collected, it would close the file.
        detected, _text, reader = _opened(raw, reading)
        encoding = detected.encoding
        columns = _columns(_header(reader, path), reading.mapping, path, detected)
        yield Layout(detected, columns)
        batch = Batch()
        for line, row in _rows(reader, columns):
            batch.rows += 1
            candidate = _candidate(row, line, book, extra, default_list, encoding)
            if isinstance(candidate, str):
                batch.rejected.append(Problem(path, line, candidate))
            else:
                batch.add(candidate)
            if batch.rows == size:
                batch.position = raw.tell()
                yield batch
                batch = Batch()
        batch.position = raw.tell()
        yield batch


def header_of(path: Path, reading: Reading = DETECT) -> tuple[Detected, list[str]]:
    """How the file is read and its header cells, whatever they hold (for staff to map them
    when no column is recognised); UnusableFile if it is not CSV."""
    with path.open("rb") as raw:
        detected, _text, reader = _opened(raw, reading)
        return detected, _header(reader, path)


def _opened(raw: IO[bytes], reading: Reading) -> tuple[Detected, IO[str], CsvReader]:
    """The file's encoding and separator, found unless given, and a CSV reader of it."""
    encoding = reading.encoding or encoding_of(raw)
    text = io.TextIOWrapper(raw, encoding=encoding, errors="surrogateescape", newline="")
    first = text.readline()
    detected = Detected(
        encoding,
        reading.delimiter or delimiter_of(first),
        frozenset(part for part in ("encoding", "delimiter") if getattr(reading, part)),
    )
    return detected, text, csv.reader(itertools.chain([first], text), delimiter=detected.delimiter)


def _columns(
    header: list[str], mapping: Mapping[str, str], path: Path, detected: Detected
) -> Columns:
    if _NOT_DECODED.search("".join(header)):
        raise UnusableFile(
            f"{path}:1: is not {encoding_name(detected.encoding)} text; import with "
            "--encoding cp1252 (or the encoding it was saved in), or save it as UTF-8 CSV"
        )
    try:
        return columns_of(header, mapping)
    except BadHeader as error:
        found = ", ".join(repr(c) for c in header[:5]) or "nothing"
        raise UnusableFile(
            f"{path}:1: {error} (the first line, {detected.describe()}, holds {found}); "
            "name the columns email,name,lists, give the separator with --delimiter, or map a "
            "column with --map COLUMN=FIELD"
        ) from None


def _header(reader: CsvReader, path: Path) -> list[str]:
    try:
        return next(reader, None) or []
    except (csv.Error, UnicodeError) as error:
        raise UnusableFile(f"{path}: is not a CSV file ({error})") from None


def _rows(reader: CsvReader, columns: Columns) -> Iterator[tuple[int, Row | str]]:
    """(first line of the record, its cells or why it cannot be read) for each data row."""
    at = columns.at.get
    email_at, name_at, lists_at, status_at = at("email"), at("name"), at("lists"), at("status")
    first_at, last_at, language_at = at("first_name"), at("last_name"), at("language")
    frequency_at = at("frequency")
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
            name = _at(values, name_at)
            if not name.strip() and (first_at is not None or last_at is not None):
                name = f"{_at(values, first_at).strip()} {_at(values, last_at).strip()}"
            yield (
                line,
                Row(
                    _at(values, email_at),
                    name.strip(),
                    _at(values, lists_at),
                    _at(values, status_at),
                    _at(values, language_at),
                    _at(values, frequency_at),
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
    row: Row | str,
    line: int,
    book: AddressBook,
    extra: frozenset[str],
    default_list: str,
    encoding: str,
) -> Candidate | str:
    """The row as a person to add, or the reason it is rejected."""
    if isinstance(row, str):
        return row
    if _NOT_DECODED.search("".join(row.values)):
        return (
            f"this line is not {encoding_name(encoding)} text "
            "(--encoding gives the file's encoding)"
        )
    try:
        email = book.normalise(row.email)
        name = clean_name(row.name) if row.name else ""
        named = _list_names(row.lists) if row.lists else frozenset()
        status = _status(row.status) if row.status else None
        language = language_code(row.language.strip()) if row.language.strip() else ""
        frequency = _frequency(row.frequency, row.lists) if row.frequency.strip() else None
    except (InvalidAddress, ValueError) as error:
        return str(error)
    return Candidate(
        email=email,
        name=name,
        lists=(named | extra) or frozenset({default_list}),
        line=line,
        status=status,
        language=language,
        frequency=frequency,
    )


def _status(cell: str) -> Status:
    """A `status` cell, as an export writes it: a row that left stays out when imported."""
    try:
        return Status(cell.strip().lower())
    except ValueError:
        choices = ", ".join(s.value for s in Status)
        raise ValueError(f"the status '{cell.strip()}' is not one of: {choices}") from None


@functools.lru_cache(maxsize=1024)
def _frequency(cell: str, lists: str) -> Frequency | Mapping[str, Frequency]:
    """A `frequency` cell: how often the row's person gets the row's lists, or, separated by
    `;`, each list of the `lists` cell in its order (as an export writes someone whose lists
    differ). Most rows of a file repeat a few, hence the cache (nobody changes what it gives)."""
    chosen = [_one_frequency(part) for part in cell.split(";")]
    if len(chosen) == 1:
        return chosen[0]
    names = [clean_list_name(name) for name in lists.split(";") if name.strip()]
    if len(names) != len(chosen):
        raise ValueError(
            f"the frequency '{cell.strip()}' gives {len(chosen)} frequencies but the lists "
            f"column names {len(names)}; give one for all the lists, or one per list in the "
            "order of the lists column"
        )
    return dict(zip(names, chosen, strict=True))


def _one_frequency(cell: str) -> Frequency:
    try:
        return Frequency(cell.strip().lower())
    except ValueError:
        choices = ", ".join(f.value for f in Frequency)
        raise ValueError(f"the frequency '{cell.strip()}' is not one of: {choices}") from None


@functools.lru_cache(maxsize=1024)
def _list_names(field: str) -> frozenset[str]:
    """The lists of a `lists` cell; most rows of a file repeat a few, hence the cache."""
    return frozenset(clean_list_name(name) for name in field.split(";") if name.strip())


def main() -> None:
    """`python -m mailer.store.importing.reader FILE SETTINGS`, SETTINGS being JSON with the
    default list, the extra lists and the Reading: the Layout and pickled batches on stdout,
    then None, or the UnusableFile that stopped the reading."""
    path, settings = sys.argv[1:]
    given = json.loads(settings)
    reading = Reading(given["encoding"], given["delimiter"], given["mapping"])
    out = sys.stdout.buffer
    try:
        for message in batches(
            Path(path), frozenset(given["extra"]), given["default_list"], reading
        ):
            pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
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
