"""CSV import of subscribers: streamed, any size, every bad row reported with its line.

The file needs an `email` column; `name`, `lists` (names separated by `;`) and `status` (as an
export writes it) are optional. Rows are checked by a reader process (reader.py) and committed
here in batches; a bad row is skipped and reported as `FILE:LINE: reason`, the good ones go in.
A file that cannot be used at all (not text, not CSV, no email column) is refused before
anything is stored.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from mailer.core.addresses import clean_list_name
from mailer.core.errors import MailerError, Problem
from mailer.core.lifecycle import Reason, Status
from mailer.store.importing.reader import Batch
from mailer.store.subscribers import Merged, Subscribers


@dataclass
class ImportReport:
    merged: Merged = field(default_factory=Merged)
    rejected: list[Problem] = field(default_factory=list)
    rows: int = 0


def import_csv(
    path: Path,
    subscribers: Subscribers,
    *,
    lists: Sequence[str],
    default_list: str,
    progress: Callable[[int], None] = lambda _: None,
) -> ImportReport:
    """Import `path`: every row joins its own lists and `lists`, or `default_list` if none."""
    extra = [clean_list_name(name) for name in lists]
    report = ImportReport()
    reader = subprocess.Popen(
        [sys.executable, "-m", "mailer.store.importing.reader", str(path), default_list, *extra],
        stdout=subprocess.PIPE,
    )
    if reader.stdout is None:  # stdout=PIPE always gives one
        raise RuntimeError("the CSV reader has no output")
    try:
        position = 0
        for batch in _received(reader.stdout):
            report.rows += batch.rows
            report.rejected += batch.rejected
            if batch.emails:
                report.merged += subscribers.merge(
                    batch.candidates(),
                    status=Status.ACTIVE,
                    reason=Reason.IMPORT,
                    detail=f"import of {path.name}",
                    replace_names=False,
                )
            progress(batch.position - position)
            position = batch.position
    finally:
        reader.kill()
        reader.wait()
    return report


def _received(stream: IO[bytes]) -> Iterator[Batch]:
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
