"""A sliding-window limit on how often one key (an address, a client) may do something.

Counted in this process's memory: each process of a server that runs several (gunicorn workers)
keeps its own count, so the effective limit is the limit times the number of processes. Threads
share one count. Nothing survives a restart, which is fine for a limit meant to slow abuse down.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

_PRUNE_EVERY = 1024
"""Forget idle keys once this many new keys have been seen, so memory stays bounded."""


class SlidingWindow:
    """At most `limit` events per `window` seconds for each key."""

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.events: dict[str, deque[float]] = {}
        self.lock = threading.Lock()
        self.new_keys = 0

    def hit(self, key: str) -> int:
        """Count one event for `key`; 0 when allowed, else the seconds to wait (nothing counted)."""
        now = self.clock()
        with self.lock:
            events = self.events.get(key)
            if events is None:
                events = self.events[key] = deque()
                self.new_keys += 1
                if self.new_keys >= _PRUNE_EVERY:
                    self._prune(now)
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                return max(1, math.ceil(events[0] + self.window - now))
            events.append(now)
            return 0

    def _prune(self, now: float) -> None:
        self.new_keys = 0
        since = now - self.window
        idle = [k for k, events in self.events.items() if not events or events[-1] <= since]
        for k in idle:
            del self.events[k]
