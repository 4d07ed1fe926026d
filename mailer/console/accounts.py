"""Staff accounts: one-time password links, argon2 password hashes, TOTP, throttled sign-in.

The command line (`mailer staff`) and the console's pages both come here, so an account made or
reset either way is the same. Times come from an injectable clock so that expiry is testable.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mailer.core.addresses import AddressBook, InvalidAddress
from mailer.core.errors import RequestError
from mailer.store.database import Store
from mailer.store.staff import Account, Role

Clock = Callable[[], dt.datetime]
LINK_LIFETIME = dt.timedelta(hours=48)
MINIMUM_PASSWORD_LENGTH = 12
MAXIMUM_PASSWORD_LENGTH = 1024
"""argon2 hashes any length; a megabyte password would only cost the server time."""
THROTTLE_WINDOW = dt.timedelta(minutes=15)
ACCOUNT_FAILURES = 5
"""Failed sign-ins for one account in the window before it is refused without checking."""
NETWORK_FAILURES = 20
"""Failed sign-ins from one client network (an IPv4 /24, an IPv6 /64) in the window."""


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def token_hash(token: str) -> str:
    """How a link or session token is kept: a hash, so the database alone opens nothing."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def network_of(address: str) -> str:
    """The client network throttling counts: an IPv4 /24 or an IPv6 /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:45]
    prefix = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


class SignInRefused(RequestError):
    """Wrong address, password or code; the message never says which."""


class Throttled(RequestError):
    """Too many failed sign-ins lately for this account or from this network."""


@dataclass
class Accounts:
    store: Store
    console_url: str
    """The console's absolute address, ending in `/`: password links start with it."""
    clock: Clock = utc_now
    hasher: PasswordHasher = field(default_factory=PasswordHasher)

    def add(self, email: str, role: Role) -> tuple[Account, str]:
        """A new account and its one-time link to set a password."""
        try:
            address = AddressBook().normalise(email)
        except InvalidAddress as error:
            raise RequestError(str(error)) from None
        token = secrets.token_urlsafe(32)
        account = self.store.staff.add(
            address, role, token_hash(token), self.clock() + LINK_LIFETIME
        )
        return account, self.link(token)

    def new_link(self, account: Account) -> str:
        """A fresh one-time password link (a forgotten password); the old link stops working."""
        token = secrets.token_urlsafe(32)
        self.store.staff.set_link(account, token_hash(token), self.clock() + LINK_LIFETIME)
        return self.link(token)

    def link(self, token: str) -> str:
        return f"{self.console_url}password/{token}"

    def by_link(self, token: str) -> Account | None:
        return self.store.staff.by_link(token_hash(token), self.clock())

    def set_password(self, account: Account, password: str) -> None:
        if len(password) < MINIMUM_PASSWORD_LENGTH:
            raise RequestError(
                f"the password must be at least {MINIMUM_PASSWORD_LENGTH} characters; a few "
                "unrelated words make a good one"
            )
        if len(password) > MAXIMUM_PASSWORD_LENGTH:
            raise RequestError(f"the password must be under {MAXIMUM_PASSWORD_LENGTH} characters")
        self.store.staff.set_password(account, self.hasher.hash(password))

    def sign_in(self, email: str, password: str, code: str, client: str) -> Account:
        """The account these credentials open, or SignInRefused / Throttled."""
        now = self.clock()
        network = network_of(client)
        failures = self.store.login_failures
        by_account, by_network = failures.since(email, network, now - THROTTLE_WINDOW)
        if by_account >= ACCOUNT_FAILURES or by_network >= NETWORK_FAILURES:
            raise Throttled(
                "too many failed sign-ins lately; wait 15 minutes and try again, or ask an "
                "admin for a new password link"
            )
        account = self.store.staff.find(email.strip())
        if not self._password_matches(account, password) or account is None:
            failures.add(email.strip(), network, now)
            raise SignInRefused("the address, password or code is not right")
        if account.totp_secret and not self.code_matches(account.totp_secret, code):
            failures.add(email.strip(), network, now)
            raise SignInRefused("the address, password or code is not right")
        failures.clear(account.email)
        return account

    def _password_matches(self, account: Account | None, password: str) -> bool:
        if len(password) > MAXIMUM_PASSWORD_LENGTH:
            return False
        # An unknown address costs the same hashing as a known one: timing tells nothing.
        stored = account.password_hash if account else None
        try:
            return self.hasher.verify(stored or self._stand_in, password) and bool(stored)
        except (VerificationError, InvalidHashError):
            return False

    @cached_property
    def _stand_in(self) -> str:
        return self.hasher.hash(secrets.token_urlsafe(16))

    def code_matches(self, secret: str, code: str) -> bool:
        """A TOTP code of this secret, allowing one 30-second step of clock drift."""
        code = "".join(code.split())
        return code.isdigit() and pyotp.TOTP(secret).verify(
            code, for_time=self.clock(), valid_window=1
        )
