"""The outbox backend: how a batch's files reach the disk before the batch is recorded.

A batch's files are written under hidden names, flushed to disk together, renamed into place, and
the folder flushed. "Together" is one syncfs(2) of the outbox's filesystem where Linux reports
write errors through it (5.8 on), else an fsync per file; both are checked here by the system
calls the backend makes (the real ones, counted on their way through). What a kill at any moment
leaves is tests/test_faults.py's kill loop.
"""

from __future__ import annotations

import ctypes
import email
import email.policy
import errno
import mmap
import os
import sys
from pathlib import Path

import pytest

from mailer.core import output
from mailer.core.errors import OutputError
from mailer.delivery.base import Outcome, Outgoing
from mailer.delivery.outbox import OutboxBackend, file_name
from mailer.render.message import MessageTemplate
from tests.conftest import Folder

BATCH = 5


def batch_of(folder: Folder, count: int) -> tuple[MessageTemplate, list[Outgoing]]:
    newsletter = folder.newsletter()
    rendered = newsletter.render(newsletter.issue(["stalemate-to-escalation"]))
    template = newsletter.message_template(rendered, "commentaries")
    people = [
        Outgoing(
            n,
            newsletter.recipient(n, "", f"reader{n}@example.org", ""),
            template.message_id(),
        )
        for n in range(1, count + 1)
    ]
    return template, people


def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The handles os.fsync is called on from now (each still fsynced)."""
    called: list[int] = []
    real = os.fsync

    def counted(handle: int) -> None:
        called.append(handle)
        real(handle)

    monkeypatch.setattr(os, "fsync", counted)
    return called


def writebacks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The handles whose writing to disk is begun ahead of their flush from now (still begun)."""
    begun: list[int] = []
    real = output._start_writeback

    def counted(handle: int) -> object:
        begun.append(handle)
        return real(handle)

    monkeypatch.setattr(output, "_start_writeback", counted)
    return begun


def cached_pages(path: Path) -> int:
    """How many of the file's pages are in the page cache (mincore(2) over a mapping of it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int]
    libc.mmap.argtypes += [ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = path.stat().st_size
    pages = -(-size // mmap.PAGESIZE)
    handle = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, handle, 0)
        assert address not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
        try:
            found = (ctypes.c_ubyte * pages)()
            assert libc.mincore(address, size, found) == 0, os.strerror(ctypes.get_errno())
        finally:
            libc.munmap(address, size)
    finally:
        os.close(handle)
    return sum(page & 1 for page in found)


def sent_whole(outbox: Path, people: list[Outgoing]) -> None:
    """Every message is in the outbox under its name, whole, and nothing else is."""
    assert sorted(p.name for p in outbox.iterdir()) == sorted(file_name(o) for o in people)
    for outgoing in people:
        data = (outbox / file_name(outgoing)).read_bytes()
        message = email.message_from_bytes(data, policy=email.policy.default)
        assert message["Message-ID"] == outgoing.message_id
        assert message["To"] == outgoing.recipient.email
        assert message.get_body(("plain",)) is not None


@pytest.mark.skipif(output._syncfs is None, reason="no syncfs that reports write errors here")
def test_a_batch_is_flushed_by_one_syncfs_then_the_folder_fsync(
    folder: Folder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    template, people = batch_of(folder, BATCH)
    syncfs = output._syncfs
    assert syncfs is not None
    synced: list[int] = []

    def counted_syncfs(handle: int) -> int:
        synced.append(handle)
        return syncfs(handle)

    monkeypatch.setattr(output, "_syncfs", counted_syncfs)
    begun = writebacks(monkeypatch)
    with OutboxBackend(tmp_path / "outbox") as backend:
        fsynced = fsyncs(monkeypatch)
        results = backend.send(template, people)
        assert synced == [backend.handle] and fsynced == [backend.handle]

    # The syncfs writes the batch in one pass: a file's writing begun alone would split it up.
    assert begun == []

    assert [r.outcome for r in results] == [Outcome.SENT] * BATCH
    sent_whole(tmp_path / "outbox", people)


def test_where_syncfs_cannot_be_trusted_each_file_is_fsynced_then_the_folder(
    folder: Folder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a Linux before 5.8 (its syncfs says nothing of write errors) and other systems get."""
    template, people = batch_of(folder, BATCH)
    monkeypatch.setattr(output, "_syncfs", None)
    begun = writebacks(monkeypatch)
    settled: list[str] = []
    with OutboxBackend(tmp_path / "outbox") as backend:
        fsynced = fsyncs(monkeypatch)
        results = backend.send(template, people, lambda o, r: settled.append(o.message_id))
        assert len(fsynced) == BATCH + 1 and fsynced[-1] == backend.handle

    assert len(begun) == BATCH  # each file's writing under way before the fsyncs wait on them

    assert [r.outcome for r in results] == [Outcome.SENT] * BATCH
    assert settled == [o.message_id for o in people]
    sent_whole(tmp_path / "outbox", people)


@pytest.mark.parametrize(
    ("release", "trusted"),
    [
        ("5.7.19", False),
        ("4.19.0-26-amd64", False),
        ("5.8.0", True),
        ("5.15.0-91-generic", True),
        ("6.18.44-fc-v1098", True),
        ("10.0", True),
        ("", False),
    ],
)
def test_syncfs_is_trusted_from_linux_5_8_on(release: str, trusted: bool) -> None:
    assert output.reports_write_errors(release) is trusted


@pytest.mark.skipif(sys.platform != "linux", reason="syncfs is Linux's")
def test_this_linux_flushes_a_batch_with_syncfs() -> None:
    """The fast path is the one taken here (a kernel of 5.8 or later): the fallback is not
    silently what every test above runs."""
    assert output.reports_write_errors(os.uname().release)
    assert output._syncfs is not None


@pytest.mark.skipif(output._syncfs is None, reason="no syncfs that reports write errors here")
def test_a_failed_syncfs_says_which_file_could_not_be_written(tmp_path: Path) -> None:
    staged = output.stage_unflushed(tmp_path / "message.eml", b"Subject: hi\r\n\r\nhello\r\n")
    closed = output.open_folder(tmp_path)
    os.close(closed)  # syncfs fails on it (EBADF): the way out a write error takes

    with pytest.raises(OutputError, match=rf"cannot write {staged}: {os.strerror(errno.EBADF)}"):
        output.flush_together([staged], closed)


@pytest.mark.skipif(sys.platform != "linux", reason="mincore and posix_fadvise are Linux's here")
@pytest.mark.parametrize("syncfs", [True, False], ids=["one syncfs", "an fsync each"])
def test_a_batch_leaves_the_page_cache_once_on_disk_where_a_build_stays(
    folder: Folder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, syncfs: bool
) -> None:
    """Nobody here reads a sent message again: its pages would only push the database's and
    the archive's out of memory. A build's files stay, for the web service to read."""
    if not syncfs:
        monkeypatch.setattr(output, "_syncfs", None)
    template, people = batch_of(folder, BATCH)
    with OutboxBackend(tmp_path / "outbox") as backend:
        backend.send(template, people)

    outbox = tmp_path / "outbox"
    assert [cached_pages(outbox / file_name(o)) for o in people] == [0] * BATCH
    sent_whole(outbox, people)

    output.write_folder(tmp_path / "site", [("page.html", b"<p>archive</p>" * 2000)])
    assert cached_pages(tmp_path / "site" / "page.html") > 0


def test_a_backend_sent_to_without_open_opens_its_folder_itself(
    folder: Folder, tmp_path: Path
) -> None:
    template, people = batch_of(folder, 2)
    backend = OutboxBackend(tmp_path / "deep" / "outbox")
    try:
        backend.send(template, people)
    finally:
        backend.close()
    assert backend.handle is None
    sent_whole(tmp_path / "deep" / "outbox", people)
