"""Feeds and archive pages from `mailer serve`, beside a static server on the same waitress.

The example newsletter is built in a temporary folder and served twice on loopback ports, each by
a process of its own: by `mailer serve` as a person runs it, and by a tiny WSGI application that
answers the same bytes from memory with the same validators (the most a Python server on
waitress can do: the ceiling). wrk (Debian's package) loads each in turn with the same
connections: `GET /rss.xml` (200), the same with If-None-Match (304), and the archive index.

    python benchmarks/web_static.py [--seconds 10] [--connections 32] [--threads N]

It prints requests per second and the 99th percentile of latency for both, and mailer's share.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from example import example_folder

REPOSITORY = Path(__file__).resolve().parent.parent
SECRET = "benchmark-secret-0123456789"
PREFIX = "/commentaries"
ROW = "{:24} {:>13} {:>8} {:>13} {:>8} {:>7}"

STATIC_SERVER = REPOSITORY / "benchmarks" / "static_server.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_up(url: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            answer = requests.get(url, timeout=2)
            if answer.status_code == 200:
                return answer.headers["ETag"]
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"nothing answered at {url}")


def wrk(url: str, seconds: int, connections: int, etag: str = "") -> tuple[float, float]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if etag:
        command[1:1] = ["-H", f"If-None-Match: {etag}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    found = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", output)
    assert found, output
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
    if "Non-2xx or 3xx responses" in output or rate == 0:
        raise SystemExit(f"errors from {url}:\n{output}")
    return rate, float(found.group(1)) * scale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--threads", type=int, default=0, help="mailer serve --threads (0: its default)"
    )
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        example_folder(root)
        environment = {**os.environ, "MAILER_SECRET": SECRET}
        mailer = [sys.executable, "-m", "mailer", "--config", str(root / "config.toml")]
        subprocess.run([*mailer, "build"], env=environment, check=True, capture_output=True)
        mailer_port, static_port = free_port(), free_port()
        serve = [*mailer, "serve", "--port", str(mailer_port)]
        if options.threads:
            serve += ["--threads", str(options.threads)]
        threads = options.threads or 4
        log_path = root / "serve.log"
        log = log_path.open("wb")  # a pipe nobody reads would stall the server once full
        servers = [
            subprocess.Popen(serve, env=environment, stdout=subprocess.DEVNULL, stderr=log),
            subprocess.Popen(
                [
                    sys.executable,
                    str(STATIC_SERVER),
                    str(root / "public"),
                    str(static_port),
                    str(threads),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
        ]
        try:
            bases = {
                "mailer": f"http://127.0.0.1:{mailer_port}",
                "static": f"http://127.0.0.1:{static_port}",
            }
            etags = {
                name: wait_until_up(base + PREFIX + "/rss.xml") for name, base in bases.items()
            }
            machine = f"{platform.machine()}, {os.cpu_count()} cores"
            print(f"{machine}, Python {platform.python_version()}; wrk -c{options.connections}")
            print(f"for {options.seconds} s each; the static app on {threads} threads")
            print(
                ROW.format("request", "mailer req/s", "p99 ms", "static req/s", "p99 ms", "share")
            )
            for label, path, conditional in (
                ("GET /rss.xml (200)", "/rss.xml", False),
                ("GET /rss.xml (304)", "/rss.xml", True),
                ("GET /archive/ (200)", "/archive/", False),
            ):
                measured = {
                    name: wrk(
                        base + PREFIX + path,
                        options.seconds,
                        options.connections,
                        etags[name] if conditional else "",
                    )
                    for name, base in bases.items()
                }
                (ours, our_p99), (theirs, their_p99) = measured["mailer"], measured["static"]
                print(
                    ROW.format(
                        label,
                        f"{ours:,.0f}",
                        f"{our_p99:.1f}",
                        f"{theirs:,.0f}",
                        f"{their_p99:.1f}",
                        f"{ours / theirs:.0%}",
                    )
                )
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                server.wait(timeout=30)
        log.close()
        if servers[0].returncode not in (0, -15):
            print(log_path.read_text()[-3000:])
        log_lines = [
            line
            for line in log_path.read_text().splitlines()
            if " /commentaries/" in line or "queue" in line.lower()
        ]
        print(f"lines mailer serve logged about requests or its queue: {len(log_lines)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
