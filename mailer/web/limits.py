"""What one request and one connection may take, for the app and for the server in front of it.

Flask's limit applies only once the server hands the request over; waitress, left to its
defaults, first takes a body of up to 1 GiB (spooled to disk), keeps a silent connection for
120 s and stops accepting at 100 connections, so a few slow clients could hold the door shut.
`mailer serve` gives waitress these limits; docs/web.md gives them for `waitress-serve`.
"""

from __future__ import annotations

from typing import TypedDict

MAX_REQUEST_BYTES = 10 * 1024 * 1024
"""Larger requests get 413: a form is tiny, a provider's batch of webhook events is not."""
CHANNEL_TIMEOUT = 10
"""Seconds a connection may stay silent (a client sending nothing more) before it is closed."""
CLEANUP_INTERVAL = 2
"""Seconds between waitress's looks for silent connections (its default, 30, would let a silent
connection stay up to 40 s)."""
CONNECTION_LIMIT = 500
"""Connections open at once; more wait in the listen queue. Well below the usual limit of 1,024
open files."""


class ServerLimits(TypedDict):
    max_request_body_size: int
    channel_timeout: int
    cleanup_interval: int
    connection_limit: int


SERVER_LIMITS: ServerLimits = {
    # waitress refuses a body of this size or more (>=), Flask one over MAX_REQUEST_BYTES (>).
    "max_request_body_size": MAX_REQUEST_BYTES + 1,
    "channel_timeout": CHANNEL_TIMEOUT,
    "cleanup_interval": CLEANUP_INTERVAL,
    "connection_limit": CONNECTION_LIMIT,
}
"""Keyword arguments for waitress.serve and waitress.server.create_server."""
