"""`mailer check` beside `mailer build` on a large folder: time and peak memory of each.

A newsletter folder of --commentaries commentaries (the repository's examples, copied under new
dates and slugs) in a temporary directory; `mailer check` and `mailer build` run there as a person
runs them, each as a process of its own, measured by wall time, CPU time (user + system: on a
shared machine the wall time follows the load more than the work) and peak resident memory. Build
is the baseline: check should cost no more than 1.5 times as much.

    python benchmarks/check_build.py [--commentaries 5000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from example import example_folder

REPOSITORY = Path(__file__).resolve().parent.parent
SECRET = "benchmark-secret-0123456789"


def make_folder(root: Path, count: int) -> None:
    example_folder(root, commentaries=False)
    folder = root / "commentaries"
    folder.mkdir()
    examples = [
        (path.read_text(encoding="utf-8"), REPOSITORY / "commentaries" / path.stem[11:])
        for path in sorted((REPOSITORY / "commentaries").glob("*.md"))
    ]
    published = [(text, beside) for text, beside in examples if "draft = true" not in text]
    start = dt.date(2010, 1, 1)
    for number in range(count):
        day = start + dt.timedelta(days=number)
        text, beside = published[number % len(published)]
        (folder / f"{day.isoformat()}-piece-{number}.md").write_text(text, encoding="utf-8")
        if beside.is_dir():  # its images and PDF, which the build publishes beside its page
            shutil.copytree(beside, folder / f"piece-{number}")


def measure(command: list[str], root: Path) -> tuple[float, float, float]:
    """(seconds, CPU seconds, peak resident megabytes) of one run of the command in the folder."""
    environment = {**os.environ, "MAILER_SECRET": SECRET}
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=root, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert process.stderr is not None
    problems = process.stderr.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{problems[:2000]}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commentaries", type=int, default=5000)
    options = parser.parse_args()
    mailer = [sys.executable, "-m", "mailer"]
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        make_folder(root, options.commentaries)
        print(
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
            f"{options.commentaries:,} commentaries"
        )
        build_time, build_cpu, build_memory = measure([*mailer, "build"], root)
        check_time, check_cpu, check_memory = measure([*mailer, "check"], root)
        print(
            f"mailer build: {build_time:6.1f} s (CPU {build_cpu:6.1f} s), "
            f"peak memory {build_memory:5.0f} MB (baseline)"
        )
        print(
            f"mailer check: {check_time:6.1f} s (CPU {check_cpu:6.1f} s), "
            f"peak memory {check_memory:5.0f} MB"
        )
        print(f"check / build: {check_time / build_time:.2f}x (CPU {check_cpu / build_cpu:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
