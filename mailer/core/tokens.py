"""The signed links in emails (confirm, unsubscribe, preferences), the signed envelope sender
that bounces return to (VERP), and the counted links of an issue.

A token names a subscriber by id (never by address) and the day it was made, and carries a MAC
keyed with the newsletter's secret and the link's purpose: an unsubscribe token cannot confirm
anybody, a changed id or day breaks the signature, and an old token expires. The MAC has two
halves. The first covers id and day and is checked before any look-up, so a made-up link never
costs a query nor tells which ids exist. The second also covers the subscriber's own
`link_secret`, random and stored with them when they came in: a link made for one person never
acts on another who later holds the same id (a restored backup, a re-import, an id reused).

Every issue carries two tokens per recipient, a million recipients two million, so the MAC is
keyed BLAKE2s (RFC 7693's keyed mode, a MAC by design), each half continued from a hash already
keyed, under a microsecond a token; HMAC-SHA256 would cost several times more.

Format: `<id in hex>.<day in hex>.<8 + 8 bytes of MAC, base64url without padding>`. Tokens made
before the second half existed were one 16-byte MAC of id and day; an unsubscribe link of that
form still works for a subscriber who came in before the day it was made, so that the issues
already in inboxes keep their one-click unsubscribe.

A bounce token goes into an address's local part, which some mail servers lower-case on the way:
its MAC is lower-case hex (`<id>.<day>.<32 hex digits>`, the local part `bounces+…` stays under
64 characters). A counted link names a campaign and a link, never a person: one MAC of both.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parseaddr
from enum import StrEnum


class Purpose(StrEnum):
    CONFIRM = "confirm"
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"
    BOUNCE = "bounce"


MAX_AGE_DAYS = {
    Purpose.CONFIRM: 7,
    # Long enough for an old issue found in an inbox still to unsubscribe its reader in one click.
    Purpose.UNSUBSCRIBE: 730,
    Purpose.PREFERENCES: 730,
    # Bounces come within days; a complaint (a feedback report) may come weeks later.
    Purpose.BOUNCE: 90,
}
_TOKEN = re.compile(r"^([0-9a-f]{1,15})\.([0-9a-f]{1,8})\.([A-Za-z0-9_-]{22})$")
_BOUNCE_TOKEN = re.compile(r"^([0-9a-f]{1,15})\.([0-9a-f]{1,8})\.([0-9a-f]{32})$")
_DAY = 86_400
_HALF = 8


class InvalidLink(Exception):
    """A token that was forged, altered, meant for another purpose, or has expired."""

    def __init__(self, message: str, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True)
class Link:
    """A token we signed, read: whom it names, and what is still to check against their row."""

    purpose: Purpose
    subscriber_id: int
    day: int
    signed: str
    """`id.day`, as the MAC covers it."""
    bound: bytes
    """The MAC's second half; empty for a token of the older, unbound form."""


class Links:
    def __init__(self, site_url: str, secret: str, clock: Callable[[], float] = time.time) -> None:
        self.site_url = site_url
        self.clock = clock
        self.keys = {
            purpose: hashlib.sha256(f"mailer-{purpose.value}\0{secret}".encode()).digest()
            for purpose in Purpose
        }
        self.keyed = {
            purpose: hashlib.blake2s(key=key, digest_size=_HALF)
            for purpose, key in self.keys.items()
        }
        self.prefixes = {purpose: f"{site_url}{purpose.value}/" for purpose in Purpose}
        self.click_key = hashlib.sha256(f"mailer-click\0{secret}".encode()).digest()

    def _half(self, purpose: Purpose, message: bytes) -> bytes:
        mac = self.keyed[purpose].copy()
        mac.update(message)
        return mac.digest()

    def token(self, purpose: Purpose, subscriber_id: int, link_secret: str) -> str:
        day = int(self.clock()) // _DAY
        signed = f"{subscriber_id:x}.{day:x}"
        mac = self._half(purpose, signed.encode()) + self._bound(purpose, signed, link_secret)
        return f"{signed}.{_spelt(purpose, mac)}"

    def _bound(self, purpose: Purpose, signed: str, link_secret: str) -> bytes:
        return self._half(purpose, f"{signed}.{link_secret}".encode())

    def url(self, purpose: Purpose, subscriber_id: int, link_secret: str) -> str:
        return self.prefixes[purpose] + self.token(purpose, subscriber_id, link_secret)

    def read(self, purpose: Purpose, token: str) -> Link:
        """The link a token is, checked as far as it can be without the subscriber's row;
        InvalidLink when it is not one we signed for this purpose, or too old."""
        bounce = purpose is Purpose.BOUNCE
        found = (_BOUNCE_TOKEN if bounce else _TOKEN).match(token)
        if not found:
            raise InvalidLink("this link is not valid")
        subscriber_id, day = int(found.group(1), 16), int(found.group(2), 16)
        signed = f"{subscriber_id:x}.{day:x}"
        text = found.group(3)
        mac = bytes.fromhex(text) if bounce else base64.urlsafe_b64decode(text + "==")
        if f"{signed}.{_spelt(purpose, mac)}" != token:  # one spelling only
            raise InvalidLink("this link is not valid")
        if hmac.compare_digest(mac[:_HALF], self._half(purpose, signed.encode())):
            bound = mac[_HALF:]
        elif purpose is Purpose.UNSUBSCRIBE and hmac.compare_digest(mac, self._unbound(signed)):
            bound = b""
        else:
            raise InvalidLink("this link is not valid")
        if int(self.clock()) // _DAY - day > MAX_AGE_DAYS[purpose]:
            raise InvalidLink("this link has expired", expired=True)
        return Link(purpose, subscriber_id, day, signed, bound)

    def _unbound(self, signed: str) -> bytes:
        """The older form's MAC: id and day alone."""
        key = self.keys[Purpose.UNSUBSCRIBE]
        return hashlib.blake2s(signed.encode(), key=key, digest_size=16).digest()

    def names(self, link: Link, link_secret: str, created_at: dt.datetime) -> bool:
        """Whether the link was made for the subscriber holding this row. A token of the older
        form names whoever held the id when it was made: someone who came in before that day."""
        if not link.bound:
            return created_at.timestamp() // _DAY < link.day
        expected = self._bound(link.purpose, link.signed, link_secret)
        return hmac.compare_digest(link.bound, expected)

    def bounce_address(self, base: str, subscriber_id: int, link_secret: str) -> str:
        """The VERP envelope sender for one subscriber: `bounces@example.org` becomes
        `bounces+TOKEN@example.org`."""
        local, _, domain = parseaddr(base)[1].rpartition("@")
        return f"{local}+{self.token(Purpose.BOUNCE, subscriber_id, link_secret)}@{domain}"

    def bounced(self, base: str, address: str) -> Link | None:
        """The link a VERP address of `base` carries (still to check against the subscriber's
        row with `names`); None for any other address, a token we did not sign (a forged
        bounce), or one too old."""
        local, _, domain = parseaddr(base)[1].lower().rpartition("@")
        got_local, _, got_domain = address.strip().strip("<>").lower().rpartition("@")
        prefix = f"{local}+"
        if got_domain != domain or not got_local.startswith(prefix):
            return None
        try:
            return self.read(Purpose.BOUNCE, got_local.removeprefix(prefix))
        except InvalidLink:
            return None

    def click_url(self, campaign_id: int, link_id: int) -> str:
        """The counted form of a link of a campaign's issue: the same for every recipient."""
        return f"{self.site_url}r/{campaign_id}/{link_id}/{self._click_mac(campaign_id, link_id)}"

    def valid_click(self, campaign_id: int, link_id: int, signature: str) -> bool:
        expected = self._click_mac(campaign_id, link_id).encode("ascii")
        return hmac.compare_digest(expected, signature.encode("utf-8"))

    def _click_mac(self, campaign_id: int, link_id: int) -> str:
        mac = hashlib.blake2s(
            f"{campaign_id:x}.{link_id:x}".encode(), key=self.click_key, digest_size=16
        ).digest()
        return _text(mac)


def _spelt(purpose: Purpose, mac: bytes) -> str:
    return mac.hex() if purpose is Purpose.BOUNCE else _text(mac)


def _text(mac: bytes) -> str:
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")
