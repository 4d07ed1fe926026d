"""When the storage misbehaves: a locked database, a full disk, a database not migrated."""

from __future__ import annotations

import errno
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailer.core import output
from tests.conftest import SECRET, Folder, Run

MAILER = Path(sys.executable).parent / "mailer"


def mailer(
    folder: Folder, *args: str, limit_file_size: int = 0
) -> subprocess.CompletedProcess[str]:
    """The real console script, optionally with the system refusing files over a size."""

    def limit() -> None:  # runs in the child: writes past the limit fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_size, limit_file_size))

    return subprocess.run(
        [str(MAILER), "--config", str(folder.config_path), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "MAILER_SECRET": SECRET},
        preexec_fn=limit if limit_file_size else None,
        check=False,
        timeout=120,
    )


def test_a_database_locked_by_another_process_is_waited_for(folder: Folder, run: Run) -> None:
    assert run("subscribers", "add", "first@example.org").exit_code == 0
    database = folder.path / "subscribers" / "mailer.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            f"c = sqlite3.connect({str(database)!r}, isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(3)\n"
            "c.execute('COMMIT')\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    started = time.monotonic()
    result = mailer(folder, "subscribers", "add", "second@example.org")
    waited = time.monotonic() - started
    holder.wait()
    assert result.returncode == 0, result.stderr
    assert waited >= 2.0, "the command did not wait for the lock"
    rows = sqlite3.connect(database).execute("SELECT email FROM subscribers ORDER BY id").fetchall()
    assert rows == [("first@example.org",), ("second@example.org",)]


def test_a_full_disk_while_building_leaves_the_old_feeds_whole(folder: Folder, run: Run) -> None:
    assert run("build").exit_code == 0
    before = folder.output_files()
    path = folder.commentaries / "2025-11-05-sahel-after-the-juntas.md"
    path.write_text(path.read_text(encoding="utf-8") + "\nOne more paragraph.\n", encoding="utf-8")

    result = mailer(folder, "build", limit_file_size=4096)

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "cannot write" in result.stderr and "unchanged" in result.stderr
    after = folder.output_files()
    assert after == before, "a feed or page was changed or lost"
    leftovers = [p for p in folder.output.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_database_from_before_a_migration_names_db_upgrade(folder: Folder) -> None:
    database = folder.path / "subscribers" / "mailer.db"
    database.unlink()  # the folder's new database, replaced by one from before a migration
    connection = sqlite3.connect(database)
    connection.executescript(
        "CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY);"
        "CREATE TABLE subscribers (id INTEGER PRIMARY KEY, email TEXT);"
    )
    connection.close()
    result = mailer(folder, "subscribers", "list")
    assert result.returncode == 2
    assert "mailer db upgrade" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_disk_that_fills_up_part_way_through_a_build_leaves_the_old_site_whole(
    folder: Folder, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new commentary changes several files (its page, the archive index, the feeds); the
    disk fills up at the last of them. Replaced one at a time, the index already linked a page
    that was never written; replaced as one set, nothing changed."""
    assert run("build").exit_code == 0
    before = folder.output_files()
    lead = folder.commentaries / "2025-11-05-sahel-after-the-juntas.md"
    newer = folder.commentaries / "2025-12-01-after-the-summit.md"
    newer.write_text(
        lead.read_text(encoding="utf-8")
        .replace("2025-11-05", "2025-12-01")
        .replace("Sahel", "Summit", 1),
        encoding="utf-8",
    )
    staged: list[Path] = []
    real_stage = output.stage_unflushed

    def stage_until_full(path: Path, data: bytes, private: bool = False) -> Path:
        if len(staged) == 2:  # two files on disk, then no more room
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        staged.append(path)
        return real_stage(path, data, private)

    monkeypatch.setattr(output, "stage_unflushed", stage_until_full)

    result = run("build")

    assert result.exit_code == 1, result.output
    assert "No space left on device" in result.output and "unchanged" in result.output
    assert len(staged) == 2, "the disk did not fill up part-way through"
    assert folder.output_files() == before, "the old site was changed"
    assert [p for p in folder.output.rglob("*") if p.name.endswith(".tmp")] == []
