"""The sending journal: each message's fate on disk the moment it is known, before the next one.

The send log in the database is written once per batch, which is cheap; a send killed in the
middle of a batch would then send the whole batch again. So each sending thread also appends one
line per message to a file of its own as soon as the backend has answered (one `write`: once it
returns, the line outlives the process, whatever kills it). When a batch is in the database, its
lines are dropped. The next run folds what dead senders left into the send log before it takes
anything over, so after a crash at most the one message per connection between its answer and
its line goes twice.

A live writer holds an flock on its file; only files nobody holds are folded. Lines cost about as
much as a system call each, much less than a commit per message.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

from mailer.store.campaigns import DeliveryRecord, DeliveryState

SUFFIX = ".journal"
_LINE = json.JSONEncoder(separators=(",", ":")).encode
"""One encoder for every line: json.dumps with separators makes a new one each call."""

IntoSendLog = Callable[[int, str, list[DeliveryRecord]], object]
"""Writes what became of deliveries of a campaign claimed by a worker (Campaigns.record)."""


class Entries:
    """One sending thread's journal file, open for appending and locked while it lives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Made under a hidden name and renamed once locked, so that nobody folds it in between.
        hidden = path.with_name(f".{path.name}.new")
        self.fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        os.rename(hidden, path)
        self.written = False

    def add(self, campaign_id: int, outcome: DeliveryRecord) -> None:
        line = [
            campaign_id,
            outcome.subscriber_id,
            outcome.state.value,
            outcome.attempts,
            outcome.message_id,
            outcome.error,
            outcome.not_before.isoformat() if outcome.not_before else None,
            outcome.bounced,
            outcome.batch,
        ]
        os.write(self.fd, _LINE(line).encode() + b"\n")
        self.written = True

    def clear(self) -> None:
        """The lines so far are in the database: drop them."""
        if self.written:
            os.ftruncate(self.fd, 0)
            self.written = False

    def close(self) -> None:
        """Remove the file if every line reached the database; else leave it to be folded."""
        if not self.written:
            self.path.unlink(missing_ok=True)
        os.close(self.fd)


class Journal:
    """The folder of journal files, one per sending thread (named after it)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @contextlib.contextmanager
    def entries(self, worker: str) -> Iterator[Entries]:
        self.folder.mkdir(parents=True, exist_ok=True)
        entries = Entries(self.folder / (urllib.parse.quote(worker, safe="") + SUFFIX))
        try:
            yield entries
        finally:
            entries.close()

    def fold(self, record: IntoSendLog) -> int:
        """Write what dead senders journaled into the send log, then forget it; how many."""
        if not self.folder.is_dir():
            return 0
        folded = 0
        for path in sorted(self.folder.glob(f"*{SUFFIX}")):
            with contextlib.suppress(FileNotFoundError), path.open("rb") as file:
                try:
                    fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its sender is alive and will record it itself
                worker = urllib.parse.unquote(path.name.removesuffix(SUFFIX))
                for campaign_id, outcomes in _read(file.read()).items():
                    record(campaign_id, worker, outcomes)
                    folded += len(outcomes)
                path.unlink()
        return folded


def _read(data: bytes) -> dict[int, list[DeliveryRecord]]:
    """The outcomes in a journal file by campaign; a line cut short by a crash is left out."""
    found: dict[int, list[DeliveryRecord]] = {}
    for line in data.splitlines():
        try:
            # A line written before deliveries had batches has no batch at its end.
            campaign_id, subscriber_id, state, attempts, message_id, error, when, *rest = (
                json.loads(line)
            )
            outcome = DeliveryRecord(
                subscriber_id,
                DeliveryState(state),
                attempts,
                message_id,
                error,
                dt.datetime.fromisoformat(when) if when else None,
                *rest[:2],
            )
        except ValueError:
            continue
        found.setdefault(campaign_id, []).append(outcome)
    return found
