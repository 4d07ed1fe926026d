"""CSV import of subscribers: streamed, any size, every bad row reported with its line.

The file needs an email column; a name (or a first and a last name), `lists` (names separated
by `;`) `status` (as an export writes it) and `frequency` (`immediate` or `weekly`, for the row's
lists, or one per list in the order of `lists`) are optional; columns.py knows their spellings,
detection.py how the file's encoding and separator are found. Rows are checked by a reader
process (reader.py) and committed here in batches; a bad row is skipped and reported as
`FILE:LINE: reason`, the good ones go in. A file that cannot be used at all (not text, not CSV,
no email column) is refused before anything is stored.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sqlalchemy import Engine

from mailer.core.addresses import Candidate, clean_list_name
from mailer.core.errors import MailerError, Problem, RequestError
from mailer.core.lifecycle import Reason, Status
from mailer.store.importing.reader import DETECT, Batch, Layout, Reading, batches
from mailer.store.lists import Lists, list_key, unknown_list
from mailer.store.subscribers import Merged, Subscribers


@dataclass
class ImportReport:
    layout: Layout | None = None
    """How the file was read (encoding, separator, columns); None if it could not be."""
    merged: Merged = field(default_factory=Merged)
    rejected: list[Problem] = field(default_factory=list)
    rows: int = 0


def import_csv(
    path: Path,
    subscribers: Subscribers,
    *,
    lists: Sequence[str],
    default_list: str,
    reading: Reading = DETECT,
    create_lists: bool = False,
    progress: Callable[[int], None] = lambda _: None,
) -> ImportReport:
    """Import `path`: every row joins its own lists and `lists`, or `default_list` if none.

    A list that does not exist is made only with `create_lists` (the default list always):
    otherwise `lists` naming one raises RequestError, and a row naming one is rejected, with the
    closest existing name, so that a typo makes no new list nobody sends to.
    """
    extra, check = _list_check(subscribers.engine, lists, default_list, create_lists)
    report = ImportReport()
    settings = {
        "default_list": default_list,
        "extra": extra,
        "encoding": reading.encoding,
        "delimiter": reading.delimiter,
        "mapping": dict(reading.mapping),
    }
    reader = subprocess.Popen(
        [sys.executable, "-m", "mailer.store.importing.reader", str(path), json.dumps(settings)],
        stdout=subprocess.PIPE,
    )
    if reader.stdout is None:  # stdout=PIPE always gives one
        raise RuntimeError("the CSV reader has no output")
    try:
        position = 0
        for message in _received(reader.stdout):
            if isinstance(message, Layout):
                report.layout = message
                continue
            report.rows += message.rows
            report.rejected += message.rejected
            candidates = message.candidates()
            if any(map(check.problem, message.list_sets)):
                candidates = check.keep(candidates, path, report.rejected)
            if candidates:
                report.merged += subscribers.merge(
                    candidates,
                    status=Status.ACTIVE,
                    reason=Reason.IMPORT,
                    detail=f"import of {path.name}",
                    replace_names=False,
                )
            progress(message.position - position)
            position = message.position
    finally:
        reader.kill()
        reader.wait()
    report.rejected.sort(key=lambda problem: problem.line or 0)
    return report


PREVIEW_ROWS = 20


@dataclass(frozen=True)
class Preview:
    """The first rows of a file as an import would take them, before anything is stored."""

    layout: Layout
    people: list[Candidate]
    rejected: list[Problem]
    rows: int


def preview(
    path: Path,
    engine: Engine,
    *,
    lists: Sequence[str],
    default_list: str,
    reading: Reading = DETECT,
    create_lists: bool = False,
    made: Sequence[str] = (),
    rows: int = PREVIEW_ROWS,
) -> Preview:
    """How `path` would be read and its first `rows` rows imported (as `import_csv` would,
    lists checked alike), read here rather than in a reader process: a few rows are quick.
    `made` names lists to be created before the import, taken as existing. UnusableFile when
    the file cannot be imported at all; RequestError for a list in `lists` that does not
    exist."""
    extra, check = _list_check(engine, lists, default_list, create_lists, made)
    read = batches(path, frozenset(extra), default_list, reading, size=rows)
    try:
        layout, first = next(read), next(read)
    finally:
        read.close()  # the file is closed now, not when the generator is collected
    if not isinstance(layout, Layout) or not isinstance(first, Batch):
        raise RuntimeError("the CSV reader gave its messages out of order")
    rejected = list(first.rejected)
    people = check.keep(first.candidates(), path, rejected)
    rejected.sort(key=lambda problem: problem.line or 0)
    return Preview(layout, people, rejected, first.rows)


def _list_check(
    engine: Engine,
    lists: Sequence[str],
    default_list: str,
    create_lists: bool,
    made: Sequence[str] = (),
) -> tuple[list[str], _ListCheck]:
    """The lists every row joins, checked, and the check of the lists each row names."""
    extra = [clean_list_name(name) for name in lists]
    check = _ListCheck(Lists(engine).by_key(), create_lists, {default_list, *made})
    for name in extra:
        if problem := check.problem(frozenset({name})):
            raise RequestError(problem)
    check.allowed.update(extra)
    return extra, check


@dataclass
class _ListCheck:
    """Whether the lists a row names exist, decided once per distinct set of lists."""

    known: dict[str, str]
    create: bool
    allowed: set[str]
    verdicts: dict[frozenset[str], str] = field(default_factory=dict)

    def problem(self, names: frozenset[str]) -> str:
        """Why a row naming these lists is refused; empty when it is not."""
        if self.create:
            return ""
        if names not in self.verdicts:
            missing = sorted(
                n for n in names if n not in self.allowed and list_key(n) not in self.known
            )
            self.verdicts[names] = (
                f"{unknown_list(missing[0], self.known.values())}: correct the name, or "
                "create the list (--create-lists creates every list a file names)"
                if missing
                else ""
            )
        return self.verdicts[names]

    def keep(
        self, candidates: list[Candidate], path: Path, rejected: list[Problem]
    ) -> list[Candidate]:
        """The candidates whose lists all exist; the others added to `rejected`."""
        kept = []
        for candidate in candidates:
            problem = self.problem(candidate.lists)
            if problem:
                rejected.append(Problem(path, candidate.line, problem))
            else:
                kept.append(candidate)
        return kept


def _received(stream: IO[bytes]) -> Iterator[Layout | Batch]:
    """The reader's batches, until its final None; its error raised here."""
    while True:
        try:
            message = pickle.load(stream)
        except EOFError:
            raise MailerError(
                "the CSV reader stopped unexpectedly; nothing more was imported"
            ) from None
        if message is None:
            return
        if isinstance(message, MailerError):
            raise message
        yield message
