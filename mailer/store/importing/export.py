"""Subscribers written as CSV, for `mailer subscribers export` and the console's download.

The columns are the ones an import reads back; a cell a spreadsheet would run as a formula is
written with a leading `'` (reader.spreadsheet_safe), which an import takes off again.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import IO

from mailer.store.importing.reader import spreadsheet_safe
from mailer.store.subscribers import Subscriber

EXPORT_COLUMNS = (
    "email",
    "name",
    "status",
    "lists",
    "created_at",
    "updated_at",
    "language",
    "frequency",
)


def export_row(subscriber: Subscriber) -> list[str]:
    return [
        spreadsheet_safe(subscriber.email),
        spreadsheet_safe(subscriber.name),
        subscriber.status.value,
        spreadsheet_safe(";".join(subscriber.lists)),
        subscriber.created_at.isoformat(timespec="seconds"),
        subscriber.updated_at.isoformat(timespec="seconds"),
        subscriber.language,
        _frequency_cell(subscriber),
    ]


def _frequency_cell(subscriber: Subscriber) -> str:
    """One frequency for all the person's lists, or one per list in the order of `lists`."""
    chosen = [subscriber.frequency(name).value for name in subscriber.lists]
    return chosen[0] if len(set(chosen)) == 1 else ";".join(chosen)


def write_csv(stream: IO[str], subscribers: Iterable[Subscriber]) -> int:
    """The header and a row per subscriber on `stream`; how many subscribers were written."""
    written = 0

    def counted() -> Iterator[Subscriber]:
        nonlocal written
        for subscriber in subscribers:
            written += 1
            yield subscriber

    for chunk in csv_chunks(counted()):
        stream.write(chunk)
    return written


def csv_chunks(subscribers: Iterable[Subscriber], rows: int = 2000) -> Iterator[str]:
    """The same CSV as text a few thousand rows at a time, for a download streamed as it is
    read (memory stays flat however many subscribers there are)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    for count, subscriber in enumerate(subscribers, 1):
        writer.writerow(export_row(subscriber))
        if count % rows == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
