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
import operator
import pickle
import re
import sys
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

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
        check = _RowCheck(columns, book, extra, default_list, encoding)
        batch = Batch()
        for line, values in _records(reader):
            batch.rows += 1
            problem = values if isinstance(values, str) else check.into(batch, values, line)
            if problem:
                batch.rejected.append(Problem(path, line, problem))
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


def _records(reader: CsvReader) -> Iterator[tuple[int, list[str] | str]]:
    """(first line of the record, its cells or why it cannot be read) for each record that
    holds anything but blanks."""
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
            yield line, values
        line = reader.line_num + 1


class _RowCheck:
    """Each row of cells checked: into the batch as a person to add, or the reason it is
    rejected. Done once per row of the file, so the common row (every cell there, none
    starting with `'`, decoded) takes a short path; the others the general one, alike in
    what they give."""

    def __init__(
        self,
        columns: Columns,
        book: AddressBook,
        extra: frozenset[str],
        default_list: str,
        encoding: str,
    ) -> None:
        self.book, self.extra, self.encoding = book, extra, encoding
        self.default = frozenset({default_list})
        at = columns.at.get
        positions = [at(f) for f in _FIELDS]
        self.joined_names = at("first_name") is not None or at("last_name") is not None
        self.shortest = max(p for p in positions if p is not None) + 1
        # A field the file lacks is read from a cell appended to the row, holding "".
        self.cells = operator.itemgetter(*(-1 if p is None else p for p in positions))
        self.positions = positions
        self.lists: dict[str, frozenset[str]] = {}
        """The lists a row joins, by its `lists` cell (bounded like the caches below)."""

    def into(self, batch: Batch, values: list[str], line: int) -> str:
        """Add the row's person to `batch`; or why the row is rejected (empty when it is not)."""
        joined = "".join(values)
        if _NOT_DECODED.search(joined):
            return (
                f"this line is not {encoding_name(self.encoding)} text "
                "(--encoding gives the file's encoding)"
            )
        if len(values) >= self.shortest:
            values.append("")
            cells: tuple[str, ...] = self.cells(values)
        else:
            cells = tuple(
                values[p] if p is not None and p < len(values) else "" for p in self.positions
            )
        if "'" in joined:
            cells = tuple(map(as_written, cells))
        email, name, lists, status, language, frequency, first, last = cells
        if self.joined_names and not name.strip():
            name = f"{first.strip()} {last.strip()}"
        try:
            email = self.book.normalise(email)
            name = clean_name(name) if name else ""  # clean_name strips it
            joins = self._joins(lists)
            chosen_status = _status(status) if status else None
            language = language_code(language.strip()) if language.strip() else ""
            chosen = _frequency(frequency, lists) if frequency.strip() else None
        except (InvalidAddress, ValueError) as error:
            return str(error)
        batch.emails.append(email)
        batch.names.append(name)
        batch.groups.append(batch.list_sets.setdefault(joins, len(batch.list_sets)))
        batch.lines.append(line)
        batch.statuses.append(chosen_status)
        batch.languages.append(language)
        batch.frequencies.append(chosen)
        return ""

    def _joins(self, cell: str) -> frozenset[str]:
        """The lists a row with this `lists` cell joins: its own and the extra ones, or the
        default list when that leaves none."""
        joins = self.lists.get(cell)
        if joins is None:
            named = _list_names(cell) if cell else frozenset()
            if len(self.lists) >= _CACHED:
                self.lists.clear()
            joins = self.lists[cell] = (named | self.extra) or self.default
        return joins


_FIELDS = ("email", "name", "lists", "status", "language", "frequency", "first_name", "last_name")
"""The fields a row's cells are read into, in the order _RowCheck unpacks them."""
_CACHED = 1024


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


def _status(cell: str) -> Status:
    """A `status` cell, as an export writes it: a row that left stays out when imported."""
    try:
        return Status(cell.strip().lower())
    except ValueError:
        choices = ", ".join(s.value for s in Status)
        raise ValueError(f"the status '{cell.strip()}' is not one of: {choices}") from None


@functools.lru_cache(maxsize=_CACHED)
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


@functools.lru_cache(maxsize=_CACHED)
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
