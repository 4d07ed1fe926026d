"""The signed links in emails: confirm, unsubscribe and preferences.

A token carries a subscriber's id (never the address), signed with the newsletter's secret and a
salt per purpose, so an unsubscribe token cannot confirm anybody, and with its time of signing, so
that it can expire.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer


class Purpose(StrEnum):
    CONFIRM = "confirm"
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"


MAX_AGE = {
    Purpose.CONFIRM: dt.timedelta(days=7),
    # Long enough for an old issue found in an inbox still to unsubscribe its reader in one click.
    Purpose.UNSUBSCRIBE: dt.timedelta(days=730),
    Purpose.PREFERENCES: dt.timedelta(days=730),
}


class InvalidLink(Exception):
    """A token that was forged, altered, meant for another purpose, or has expired."""

    def __init__(self, message: str, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


class Links:
    def __init__(self, site_url: str, secret: str) -> None:
        self.site_url = site_url
        self.serializers = {
            purpose: URLSafeTimedSerializer(secret, salt=f"mailer-{purpose.value}")
            for purpose in Purpose
        }

    def token(self, purpose: Purpose, subscriber_id: int) -> str:
        return str(self.serializers[purpose].dumps(subscriber_id))

    def url(self, purpose: Purpose, subscriber_id: int) -> str:
        return f"{self.site_url}{purpose.value}/{self.token(purpose, subscriber_id)}"

    def subscriber_id(self, purpose: Purpose, token: str) -> int:
        """The subscriber a token names; InvalidLink when it is not one we signed, or too old."""
        max_age = int(MAX_AGE[purpose].total_seconds())
        try:
            value = self.serializers[purpose].loads(token, max_age=max_age)
        except SignatureExpired:
            raise InvalidLink("this link has expired", expired=True) from None
        except BadSignature:
            raise InvalidLink("this link is not valid") from None
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidLink("this link is not valid")
        return value
