"""Being asked to stop: SIGTERM (what systemd, Docker and `kill` send) or Ctrl-C.

A process that sends mail, asked to stop, finishes the batches it has in hand, records them and
ends, instead of dying with messages in flight. A kill is safe too (the sending journal and the
leases see to that, see mailer.sending.journal), but the messages in flight at that moment go
again at the next run, up to one per connection: a service restarted for a deploy in the middle
of a campaign should send nobody anything twice. Asked a second time, the process stops at once,
as it did before.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

ASKING = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def asked_to_stop(interrupt: bool = False) -> Iterator[threading.Event]:
    """An event set when this process is asked to stop, while inside. With `interrupt`, the
    first asking also raises KeyboardInterrupt in the main thread, to end a loop that ends no
    other way (the web server's). The handlers from before are put back on the way out.
    Outside the main thread, where Python cannot catch signals, the event is never set."""
    asked = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield asked
        return
    before = {number: signal.getsignal(number) for number in ASKING}

    def restore() -> None:
        for number, handler in before.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)

    def ask(number: int, _frame: FrameType | None) -> None:
        if asked.is_set():  # asked again: what the handler from before does, at once
            restore()
            os.kill(os.getpid(), number)
            return
        asked.set()
        if interrupt:
            raise KeyboardInterrupt

    for number in ASKING:
        signal.signal(number, ask)
    try:
        yield asked
    finally:
        restore()
