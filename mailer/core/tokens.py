"""The signed links in emails: confirm, unsubscribe and preferences.

A token names a subscriber by id (never by address) and the day it was made, and carries a MAC of
both, keyed with the newsletter's secret and the link's purpose: an unsubscribe token cannot
confirm anybody, a changed id or day breaks the signature, and an old token expires. Every issue
carries two tokens per recipient, a million recipients two million, so the MAC is keyed BLAKE2s
(RFC 7693's keyed mode, a MAC by design; under a microsecond each, HMAC-SHA256 costs 2.5) made
with the standard library directly rather than through a serializer.

Format: `<id in hex>.<day in hex>.<16-byte BLAKE2s MAC, base64url without padding>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable
from enum import StrEnum


class Purpose(StrEnum):
    CONFIRM = "confirm"
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"


MAX_AGE_DAYS = {
    Purpose.CONFIRM: 7,
    # Long enough for an old issue found in an inbox still to unsubscribe its reader in one click.
    Purpose.UNSUBSCRIBE: 730,
    Purpose.PREFERENCES: 730,
}
_TOKEN = re.compile(r"^([0-9a-f]{1,15})\.([0-9a-f]{1,8})\.([A-Za-z0-9_-]{22})$")
_DAY = 86_400


class InvalidLink(Exception):
    """A token that was forged, altered, meant for another purpose, or has expired."""

    def __init__(self, message: str, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


class Links:
    def __init__(self, site_url: str, secret: str, clock: Callable[[], float] = time.time) -> None:
        self.site_url = site_url
        self.clock = clock
        self.keys = {
            purpose: hashlib.sha256(f"mailer-{purpose.value}\0{secret}".encode()).digest()
            for purpose in Purpose
        }
        self.prefixes = {purpose: f"{site_url}{purpose.value}/" for purpose in Purpose}

    def _signature(self, purpose: Purpose, subscriber_id: int, day: int) -> str:
        mac = hashlib.blake2s(
            f"{subscriber_id:x}.{day:x}".encode(), key=self.keys[purpose], digest_size=16
        ).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def token(self, purpose: Purpose, subscriber_id: int) -> str:
        day = int(self.clock()) // _DAY
        return f"{subscriber_id:x}.{day:x}.{self._signature(purpose, subscriber_id, day)}"

    def url(self, purpose: Purpose, subscriber_id: int) -> str:
        return self.prefixes[purpose] + self.token(purpose, subscriber_id)

    def subscriber_id(self, purpose: Purpose, token: str) -> int:
        """The subscriber a token names; InvalidLink when it is not one we signed, or too old."""
        found = _TOKEN.match(token)
        if not found:
            raise InvalidLink("this link is not valid")
        subscriber_id, day = int(found.group(1), 16), int(found.group(2), 16)
        expected = f"{subscriber_id:x}.{day:x}.{self._signature(purpose, subscriber_id, day)}"
        if not hmac.compare_digest(expected, token):  # the whole token: no other spelling passes
            raise InvalidLink("this link is not valid")
        if int(self.clock()) // _DAY - day > MAX_AGE_DAYS[purpose]:
            raise InvalidLink("this link has expired", expired=True)
        return subscriber_id
