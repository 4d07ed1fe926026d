"""Real WSGI servers on loopback ports, for the web tests: waitress in a thread of the test (with
the limits `mailer serve` sets), or `mailer serve` itself in a process of its own."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from waitress import wasyncore
from waitress.server import create_server

from mailer.web.limits import SERVER_LIMITS


@contextlib.contextmanager
def serving(app: Any, threads: int = 4) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 at a free port; yields `http://127.0.0.1:PORT`."""
    server: Any = create_server(
        app,
        host="127.0.0.1",
        port=0,
        threads=threads,
        ident="mailer",
        asyncore_loop_timeout=0.1,
        **SERVER_LIMITS,
    )
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.task_dispatcher.shutdown()
        # The listening socket and any kept-alive connection, closed by the server's own thread.
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(timeout=10)
        assert not thread.is_alive(), "the test server did not stop"


@dataclass
class Served:
    """A running `mailer serve`: where it listens, and (once it has stopped) what it printed."""

    port: int
    output: str = ""


@contextlib.contextmanager
def mailer_serve(config_path: Path, probe: str, threads: int = 2) -> Iterator[Served]:
    """Run `mailer serve` on a free port until `probe` (a path) answers; stopped afterwards."""
    with socket.socket() as free:  # a port free a moment ago
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    command = [sys.executable, "-m", "mailer", "--config", str(config_path), "serve"]
    server = subprocess.Popen(
        [*command, "--port", str(port), "--threads", str(threads)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    served = Served(port)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}{probe}", timeout=10)
                break
            except requests.ConnectionError:
                assert server.poll() is None and time.monotonic() < deadline, "it did not start"
                time.sleep(0.1)
        yield served
    finally:
        server.terminate()
        served.output, _ = server.communicate(timeout=30)
