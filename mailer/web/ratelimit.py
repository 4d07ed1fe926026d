"""A sliding-window limit on how often one key (an address, a client) may do something.

Keys are what one person can vary least: an address by its mailbox (`address_key`), a client by
its network (`client_key`), so that plus tags, dots and a fresh source address per request do not
each get a fresh allowance.

Counted in this process's memory: each process of a server that runs several (gunicorn workers)
keeps its own count, so the effective limit is the limit times the number of processes. Threads
share one count. Nothing survives a restart, which is fine for a limit meant to slow abuse down.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import deque
from collections.abc import Callable

IPV4_NETWORK = 24
IPV6_NETWORK = 64
"""Client addresses counted together: a /24 of IPv4, a /64 of IPv6 (what one site is given)."""
DOTLESS_DOMAINS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}
"""Domains whose mailboxes ignore dots in the local part, as the one domain they are."""

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
                self.new_keys += 1
                if self.new_keys >= _PRUNE_EVERY:
                    self._prune(now)  # before the new key is in: it is idle, so it would go
                events = self.events[key] = deque()
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


def address_key(address: str) -> str:
    """The mailbox an address reaches, as far as can be told from outside: lower-cased, without
    a `+tag`, and for Gmail without dots and with googlemail.com as gmail.com. Only for
    counting: nothing is stored under this form."""
    local, _, domain = address.lower().rpartition("@")
    local = local.split("+", 1)[0]
    if domain in DOTLESS_DOMAINS:
        local, domain = local.replace(".", ""), DOTLESS_DOMAINS[domain]
    return f"{local}@{domain}"


def client_key(ip: str) -> str:
    """The network a client address belongs to (an IPv4-mapped IPv6 address as IPv4); text that
    is not an address is its own key."""
    try:
        parsed = ipaddress.ip_address(ip.partition("%")[0])  # without an IPv6 zone
    except ValueError:
        return ip
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    prefix = IPV4_NETWORK if parsed.version == 4 else IPV6_NETWORK
    return str(ipaddress.ip_network((parsed, prefix), strict=False))
