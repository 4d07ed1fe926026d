"""What every console page shares, made once when the console is mounted."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit, urlunsplit

from flask import current_app

from mailer.app.newsletter import Newsletter
from mailer.console.accounts import Accounts, Clock
from mailer.console.counting import Counts
from mailer.content.shelf import Shelf
from mailer.core.config import Config

EXTENSION = "mailer.console"


def console_path(config: Config) -> str:
    """The console's path on the host, without the final `/`: `/commentaries/console`."""
    path = config.console.path.strip()
    if not path.startswith("/"):
        path = urlsplit(config.newsletter.site_url).path.rstrip("/") + "/" + path
    return "/" + path.strip("/")


def console_url(config: Config) -> str:
    """The console's absolute address, ending in `/`, as password links give it."""
    site = urlsplit(config.newsletter.site_url)
    return urlunsplit((site.scheme, site.netloc, console_path(config) + "/", "", ""))


@dataclass
class Console:
    newsletter: Newsletter
    accounts: Accounts
    path: str
    key: bytes
    """Keys the CSRF tokens of console forms (derived from the newsletter's secret)."""
    clock: Clock
    shelf: Shelf
    counts: Counts

    @classmethod
    def make(cls, newsletter: Newsletter, clock: Clock) -> Console:
        config = newsletter.config
        secret = newsletter.secret()
        return cls(
            newsletter=newsletter,
            accounts=Accounts(newsletter.store, console_url(config), clock),
            path=console_path(config),
            key=hashlib.sha256(f"mailer-console-csrf\0{secret}".encode()).digest(),
            clock=clock,
            shelf=newsletter.shelf,  # the scheduler's too: a file changed is read once
            counts=Counts(newsletter.store, clock),
        )

    @property
    def idle(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.newsletter.config.console.idle_minutes)

    def sign(self, value: str) -> str:
        return hmac.new(self.key, value.encode("ascii", "replace"), "sha256").hexdigest()


def console() -> Console:
    """The console of the app handling the current request."""
    return cast(Console, current_app.extensions[EXTENSION])
