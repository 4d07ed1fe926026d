"""A real WSGI server on a loopback port, for the web tests: waitress, threads, in a thread."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from waitress import wasyncore
from waitress.server import create_server


@contextlib.contextmanager
def serving(app: Any, threads: int = 4) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 at a free port; yields `http://127.0.0.1:PORT`."""
    server: Any = create_server(
        app, host="127.0.0.1", port=0, threads=threads, ident="mailer", asyncore_loop_timeout=0.1
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
