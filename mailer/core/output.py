"""Writing generated files so that a reader never sees half of one and a failure loses nothing.

Each file is written to a temporary name beside its target and renamed over it, so a full disk or a
crash leaves the previous file whole. A folder is replaced as one set: every new file is written
first, and only once all of them are on disk are they renamed into place, so that a full disk
never leaves an index linking a page that was not written. A file whose bytes have not changed is
left alone, keeping its modification time (and so the ETag and Last-Modified the web service
derives from it). Files a previous build wrote and this one does not are removed; nothing else in
the folder is touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import re
import secrets
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path

from mailer.core.errors import OutputError

MANIFEST = ".mailer-build"
GENERATION = ".mailer-generation"
"""Rewritten last by every build that changed a file: a server holding built files in memory
knows from this one file that they are current (mailer.web.files)."""


@dataclass
class Written:
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def write_atomically(path: Path, data: bytes, private: bool = False) -> None:
    """Replace `path` with `data` in one step; on any failure the old file stays as it was.

    A `private` file (a message with its personal links) is readable by its owner alone, and so
    is a folder made for it; other files are readable by everyone, like the web archive."""
    try:
        os.replace(_stage(path, data, private), path)
    except OSError as error:
        raise _unwritten(path, error) from None


def _unwritten(path: Path | str, error: OSError) -> OutputError:
    return OutputError(
        f"cannot write {path}: {error.strerror or error}; what was there is unchanged. Free "
        "some space or fix the folder's permissions, then run again"
    )


def _stage(path: Path, data: bytes, private: bool = False) -> Path:
    """`data` on disk under a temporary name beside `path`, ready to be renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700 if private else 0o777)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o600 if private else 0o644)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return Path(temporary)


def stage_unflushed(
    path: Path | str, data: bytes, private: bool = False, filesystem: int | None = None
) -> str:
    """`data` written under a hidden temporary name beside `path`, not waited for:
    `flush_together`, given the same `filesystem`, finishes a set of them at once.

    Where one syncfs will flush the set, the files' writing is left to it: it writes them all
    in one pass, neighbouring files' pages merged into large writes. Starting each file's
    writing as it is written made the disk take five times as many smaller ones (42 KB on
    average against 215 KB for 49 KB messages), and the outbox sent 4,181-4,843 messages/s
    against 6,163-6,625 without. Where each file will have its own fsync, its writing is begun
    at once, so that the fsyncs wait for writes already under way.

    Paths are taken and given as text too: a message's two Path objects and their conversions
    were an eighth of the time the outbox's sending threads held the interpreter lock."""
    target = os.fspath(path)
    folder, name = os.path.split(target)
    unique = f"{os.getpid():x}-{_UNIQUE}{next(_staged):x}"  # the process id: a fork's differs
    temporary = os.path.join(folder, f".{name}.{unique}.tmp")
    mode = 0o600 if private else 0o644
    try:
        try:
            handle = os.open(temporary, _NEW_FILE, mode)
        except FileNotFoundError:
            Path(folder).mkdir(parents=True, exist_ok=True, mode=0o700 if private else 0o777)
            handle = os.open(temporary, _NEW_FILE, mode)
    except OSError as error:
        raise _unwritten(target, error) from None
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(handle, view) :]
        if not _one_syncfs(filesystem):
            _start_writeback(handle)
    except OSError as error:
        os.unlink(temporary)
        raise _unwritten(target, error) from None
    finally:
        os.close(handle)
    return temporary


def flush_together(
    paths: Sequence[Path | str], filesystem: int | None = None, cached: bool = True
) -> None:
    """Wait until every one of these files is on disk (their writing begun by stage_unflushed,
    the waits overlap).

    `filesystem`, a handle of a folder on the files' filesystem opened before they were written:
    where Linux has syncfs(2) and it reports write errors (5.8 on), one syncfs of that
    filesystem does it, which costs about what one file's fsync does; elsewhere one fsync each.
    The handle must predate the writing: syncfs reports the write errors that happened since its
    handle was opened, and none from before.

    Not `cached`: once on disk, the files' pages leave the page cache (where the system can be
    told so), for files that nobody here reads again (see mailer.delivery.outbox)."""
    forget = None if cached else _forget_pages
    synced = bool(paths) and _one_syncfs(filesystem)
    if synced:
        assert _syncfs is not None and filesystem is not None
        if _syncfs(filesystem) != 0:
            error = ctypes.get_errno()
            raise _unwritten(paths[0], OSError(error, os.strerror(error))) from None
        if forget is None:
            return
    for path in paths:
        handle = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if not synced:
                os.fsync(handle)
        except OSError as error:
            raise _unwritten(path, error) from None
        else:
            if forget is not None:
                forget(handle)
        finally:
            os.close(handle)


def _one_syncfs(filesystem: int | None) -> bool:
    """Whether flush_together, given `filesystem`, flushes its files with one syncfs."""
    return filesystem is not None and _syncfs is not None


def flush_folder(folder: Path, handle: int) -> None:
    """Make the names renamed into `folder` (open as `handle`, from open_folder) outlive a
    power cut: its own fsync."""
    try:
        os.fsync(handle)
    except OSError as error:
        raise OutputError(f"cannot write {folder}: {error.strerror or error}") from None


def open_folder(folder: Path) -> int:
    """A handle of `folder`: what flush_together and os.fsync take."""
    return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
_UNIQUE = f"{secrets.token_hex(4)}-"
_staged = itertools.count()
"""Temporary names unique without a system call each (next() on a count is atomic)."""


def _linux_sync_file_range() -> Callable[[int], object]:
    """Linux's sync_file_range(SYNC_FILE_RANGE_WRITE): start writing a file's pages to disk
    without waiting; elsewhere nothing (the fsync that follows is what makes a file durable)."""
    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return lambda handle: None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    write = 2  # SYNC_FILE_RANGE_WRITE
    return lambda handle: call(handle, 0, 0, write)


_start_writeback = _linux_sync_file_range()


def _forget(handle: int) -> None:
    """Drop an open file's pages, on disk already, from the page cache."""
    os.posix_fadvise(handle, 0, 0, os.POSIX_FADV_DONTNEED)


_forget_pages: Callable[[int], None] | None = _forget if hasattr(os, "posix_fadvise") else None
"""Where the system has posix_fadvise(2) (not macOS), what flush_together drops pages with."""


def reports_write_errors(release: str) -> bool:
    """Whether a Linux kernel of this release (`os.uname().release`) has syncfs(2) tell the
    write errors it met: from 5.8 on; before, it said nothing of them, so an fsync of each file
    is the only way to know that they are on disk."""
    found = re.match(r"(\d+)\.(\d+)", release)
    return found is not None and (int(found[1]), int(found[2])) >= (5, 8)


def _linux_syncfs() -> Callable[[int], int] | None:
    """Linux's syncfs(2), where it reports write errors; None elsewhere."""
    if sys.platform != "linux" or not reports_write_errors(os.uname().release):
        return None
    try:
        call = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int]
    call.restype = ctypes.c_int
    return call


_syncfs = _linux_syncfs()


def write_folder(folder: Path, files: Iterable[tuple[str, bytes]]) -> Written:
    """Make `folder` hold `files` (relative path and bytes, taken one at a time: only the names
    are kept), touching only what changed: all of them or, when one cannot be written (or the
    files stop coming with an error), none. A name given twice keeps its first bytes."""
    written = Written()
    staged: list[tuple[str, Path]] = []
    names: set[str] = set()
    name = ""
    try:
        for name, data in files:
            if name in names:
                continue
            names.add(name)
            target = folder / name
            if target.is_file() and target.read_bytes() == data:
                written.unchanged.append(name)
                continue
            staged.append((stage_unflushed(target, data), target))
            written.changed.append(name)
        flush_together([temporary for temporary, _ in staged])
    except BaseException as error:
        for temporary, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        if isinstance(error, OSError):
            raise _unwritten(folder / name, error) from None
        raise
    for temporary, target in staged:  # a rename takes no room: the set goes in whole
        os.replace(temporary, target)
    written.changed.sort()
    written.unchanged.sort()
    _remove_unlisted(folder, names, written)
    if written.changed or written.removed or not (folder / GENERATION).is_file():
        write_atomically(folder / GENERATION, secrets.token_hex(16).encode("ascii") + b"\n")
    return written


def _remove_unlisted(folder: Path, files: Set[str], written: Written) -> None:
    """Remove what a previous build wrote and this one does not, and list this one's files."""
    manifest = folder / MANIFEST
    previous = manifest.read_text(encoding="utf-8").splitlines() if manifest.is_file() else []
    for name in previous:
        if name not in files and _inside(folder, name):
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()
                written.removed.append(name)
                _remove_empty_parents(folder, (folder / name).parent)
    listing = "".join(f"{name}\n" for name in sorted(files)).encode("utf-8")
    if not manifest.is_file() or manifest.read_bytes() != listing:
        write_atomically(manifest, listing)


def _inside(folder: Path, name: str) -> bool:
    return (folder / name).resolve().is_relative_to(folder.resolve())


def _remove_empty_parents(folder: Path, directory: Path) -> None:
    while directory != folder and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent
