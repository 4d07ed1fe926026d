"""Every script in benchmarks/ still runs to its last figure, at a tiny size.

The README's Performance figures come from these scripts, and a script that no longer runs
cannot measure them again: four of them had stopped (a configuration naming a logo they did not
copy, a link signature and an import that had changed) without any test noticing. The figures
printed at these sizes mean nothing and are not asserted (no test asserts a time); what is
checked is that each script gets to its last line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_URL, skip_or_fail

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
RUNS = {
    "build_messages.py": (["--recipients", "200", "--naive", "2"], "ratio: "),
    "check_build.py": (["--commentaries", "12"], "check / build: "),
    "send_campaign.py": (
        ["--smtp", "200", "--outbox", "200", "--http", "300", "--small", "100", "--large", "300"],
        "peak memory: 100 recipients",
    ),
    "web_static.py": (["--seconds", "1", "--connections", "4"], "lines mailer serve logged"),
    "web_load.py": (
        ["--subscribers", "20", "--feed-requests", "20"],
        "unsubscribes recorded: 20 of 20, once each: True",
    ),
    "console_pages.py": (
        ["--commentaries", "8", "--subscribers", "100", "--requests", "2"],
        "load average at the end",
    ),
    "import_subscribers.py": (
        ["--rows", "300", "--baseline-rows", "100", "--postgres", "{postgres}"],
        "PostgreSQL, straightforward",
    ),
    "search_subscribers.py": (
        ["--people", "300", "--postgres", "{postgres}"],
        "PostgreSQL console pages, median over the searches",
    ),
    "workers.py": (["--recipients", "200", "--database", "{postgres}"], "4 workers"),
}
"""Each script's arguments and what its last figure line starts with."""


def test_every_benchmark_is_covered() -> None:
    scripts = {path.name for path in BENCHMARKS.glob("*.py")}
    helpers = {"example.py", "static_server.py", "web_burst.py"}  # run by the others
    assert scripts - helpers == set(RUNS)


@pytest.mark.parametrize("script", sorted(RUNS))
def test_a_benchmark_runs_to_its_last_figure(script: str, tmp_path: Path) -> None:
    arguments, last = RUNS[script]
    if any("{postgres}" in argument for argument in arguments) and not POSTGRES_URL:
        skip_or_fail("MAILER_TEST_POSTGRES_URL is not set, so this benchmark cannot run")
    if script == "web_static.py" and shutil.which("wrk") is None:
        skip_or_fail("wrk is not installed (apt-get install wrk)")
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script)]
        + [argument.format(postgres=POSTGRES_URL) for argument in arguments],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        check=False,
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    assert any(line.startswith(last) for line in lines), done.stdout
