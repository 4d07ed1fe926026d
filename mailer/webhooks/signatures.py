"""What the HMAC-signed webhooks share: the freshness window and constant-time comparison."""

from __future__ import annotations

import hashlib
import hmac

from mailer.webhooks.base import NotConfigured, Refused

MAX_AGE = 300
"""Seconds a signed request stays acceptable: older ones are refused as stale, so a captured
request cannot be replayed later."""
MAX_SKEW = 60
"""Seconds a timestamp may lie in the future (the sender's clock running ahead of ours)."""


def check_fresh(timestamp: str, now: float) -> None:
    """Refuse a timestamp (Unix seconds) that is not a number, too old or too far ahead."""
    try:
        seconds = float(timestamp)
    except (TypeError, ValueError):
        raise Refused("the signature's timestamp is not a number") from None
    if seconds != seconds or now - seconds > MAX_AGE:  # NaN, or too old
        raise Refused(f"stale timestamp: signed more than {MAX_AGE} seconds ago")
    if seconds - now > MAX_SKEW:
        raise Refused(f"timestamp more than {MAX_SKEW} seconds in the future")


def hmac_sha256_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def equal_in_constant_time(given: str, expected: str) -> bool:
    """Compare in constant time (bytes, since compare_digest refuses non-ASCII text)."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def require(secret: str, what: str) -> str:
    """The configured secret, or NotConfigured naming the setting when it is empty."""
    if not secret:
        raise NotConfigured(f"set {what}")
    return secret
