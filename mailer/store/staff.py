"""Staff accounts, their sessions and failed sign-ins: the console's people, in the database.

Secrets arrive here already hashed (mailer.console.accounts hashes passwords and tokens), so this
module knows nothing of how a password is checked, only where the hash lives.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update

from mailer.core.addresses import key
from mailer.core.errors import RequestError
from mailer.store.schema import login_failures, staff, staff_sessions


class Role(StrEnum):
    """What a person may do in the console; each role may do everything of the ones before it."""

    EDITOR = "editor"
    PUBLISHER = "publisher"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def may(self, needed: Role) -> bool:
        return self.rank >= needed.rank


@dataclass(frozen=True)
class Account:
    id: int
    email: str
    role: Role
    password_hash: str | None
    totp_secret: str | None
    created_at: dt.datetime


@dataclass(frozen=True)
class SignedIn:
    """A session as listed: never its token, which only the browser holds."""

    token_hash: str
    account: Account
    created_at: dt.datetime
    seen_at: dt.datetime
    address: str
    agent: str


_ACCOUNT_COLUMNS = (
    staff.c.id,
    staff.c.email,
    staff.c.role,
    staff.c.password_hash,
    staff.c.totp_secret,
    staff.c.created_at,
)


def _account(row: Any) -> Account:
    id_, email, role, password_hash, totp_secret, created_at = row
    return Account(id_, email, Role(role), password_hash, totp_secret, created_at)


class Staff:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, email: str, role: Role, link_hash: str, link_until: dt.datetime) -> Account:
        with self.engine.begin() as connection:
            if connection.scalar(select(staff.c.id).where(staff.c.email_key == key(email))):
                raise RequestError(
                    f"{email} already has a staff account; `mailer staff role` changes its role "
                    "and `mailer staff reset` gives a new password link"
                )
            connection.execute(
                insert(staff).values(
                    email=email,
                    email_key=key(email),
                    role=role.value,
                    link_hash=link_hash,
                    link_until=link_until,
                    created_at=dt.datetime.now(dt.UTC),
                )
            )
        found = self.find(email)
        if found is None:  # pragma: no cover - the row was written just above
            raise RuntimeError(f"the account {email} vanished")
        return found

    def find(self, email: str) -> Account | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(*_ACCOUNT_COLUMNS).where(staff.c.email_key == key(email))
            ).first()
        return _account(row) if row else None

    def named(self, email: str) -> Account:
        """The account of this address, or an error saying how to see the accounts there are."""
        found = self.find(email)
        if found is None:
            raise RequestError(f"there is no staff account {email}; `mailer staff list` shows them")
        return found

    def get(self, account_id: int) -> Account | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(*_ACCOUNT_COLUMNS).where(staff.c.id == account_id)
            ).first()
        return _account(row) if row else None

    def all(self) -> list[Account]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(*_ACCOUNT_COLUMNS).order_by(staff.c.email_key))
            return [_account(row) for row in rows]

    def admins(self) -> int:
        with self.engine.connect() as connection:
            return int(
                connection.scalar(
                    select(func.count()).select_from(staff).where(staff.c.role == Role.ADMIN.value)
                )
                or 0
            )

    def set_role(self, account: Account, role: Role) -> None:
        self._keep_an_admin(account, role)
        with self.engine.begin() as connection:
            connection.execute(update(staff).where(staff.c.id == account.id).values(role=role))

    def remove(self, account: Account) -> None:
        self._keep_an_admin(account, None)
        with self.engine.begin() as connection:
            connection.execute(
                delete(staff_sessions).where(staff_sessions.c.staff_id == account.id)
            )
            connection.execute(delete(staff).where(staff.c.id == account.id))

    def _keep_an_admin(self, account: Account, role: Role | None) -> None:
        if account.role == Role.ADMIN and role != Role.ADMIN and self.admins() == 1:
            raise RequestError(
                f"{account.email} is the only admin; make another account admin first, or "
                "nobody could manage accounts"
            )

    def set_link(self, account: Account, link_hash: str, until: dt.datetime) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(staff)
                .where(staff.c.id == account.id)
                .values(link_hash=link_hash, link_until=until)
            )

    def by_link(self, link_hash: str, now: dt.datetime) -> Account | None:
        """The account whose password link this is, while the link is still valid."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(*_ACCOUNT_COLUMNS).where(
                    staff.c.link_hash == link_hash, staff.c.link_until > now
                )
            ).first()
        return _account(row) if row else None

    def set_password(self, account: Account, password_hash: str) -> None:
        """A new password ends the link that set it and every session signed in before."""
        with self.engine.begin() as connection:
            connection.execute(
                update(staff)
                .where(staff.c.id == account.id)
                .values(password_hash=password_hash, link_hash=None, link_until=None)
            )
            connection.execute(
                delete(staff_sessions).where(staff_sessions.c.staff_id == account.id)
            )

    def set_totp(self, account: Account, secret: str | None) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(staff).where(staff.c.id == account.id).values(totp_secret=secret)
            )


class StaffSessions:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def open(
        self, account: Account, token_hash: str, now: dt.datetime, address: str, agent: str
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                insert(staff_sessions).values(
                    token_hash=token_hash,
                    staff_id=account.id,
                    created_at=now,
                    seen_at=now,
                    address=address,
                    agent=agent[:200],
                )
            )

    def current(self, token_hash: str, idle_since: dt.datetime) -> SignedIn | None:
        """The session of this token unless it has been idle since `idle_since` (then it ends)."""
        query = _sessions().where(staff_sessions.c.token_hash == token_hash)
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None:
            return None
        found = _signed_in(row)
        if found.seen_at <= idle_since:
            self.close(token_hash)
            return None
        return found

    def touch(self, token_hash: str, now: dt.datetime) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(staff_sessions)
                .where(staff_sessions.c.token_hash == token_hash)
                .values(seen_at=now)
            )

    def of(self, account: Account) -> list[SignedIn]:
        query = (
            _sessions()
            .where(staff_sessions.c.staff_id == account.id)
            .order_by(staff_sessions.c.seen_at.desc())
        )
        with self.engine.connect() as connection:
            return [_signed_in(row) for row in connection.execute(query)]

    def close(self, token_hash: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                delete(staff_sessions).where(staff_sessions.c.token_hash == token_hash)
            )

    def close_all(self, account: Account) -> int:
        with self.engine.begin() as connection:
            result = connection.execute(
                delete(staff_sessions).where(staff_sessions.c.staff_id == account.id)
            )
            return result.rowcount


def _sessions() -> Any:
    return select(
        staff_sessions.c.token_hash,
        *_ACCOUNT_COLUMNS,
        staff_sessions.c.created_at,
        staff_sessions.c.seen_at,
        staff_sessions.c.address,
        staff_sessions.c.agent,
    ).join(staff, staff.c.id == staff_sessions.c.staff_id)


def _signed_in(row: Any) -> SignedIn:
    token_hash, *account, created_at, seen_at, address, agent = row
    return SignedIn(token_hash, _account(account), created_at, seen_at, address, agent)


class LoginFailures:
    """Failed sign-ins, counted per account and per client network over a window."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, account: str, network: str, now: dt.datetime) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                insert(login_failures).values(account=key(account), network=network, at=now)
            )

    def since(self, account: str, network: str, start: dt.datetime) -> tuple[int, int]:
        """Failures for this account, and from this network, since `start`."""
        recent = login_failures.c.at > start
        with self.engine.begin() as connection:
            connection.execute(delete(login_failures).where(login_failures.c.at <= start))
            by_account = connection.scalar(
                select(func.count())
                .select_from(login_failures)
                .where(login_failures.c.account == key(account), recent)
            )
            by_network = connection.scalar(
                select(func.count())
                .select_from(login_failures)
                .where(login_failures.c.network == network, recent)
            )
        return int(by_account or 0), int(by_network or 0)

    def clear(self, account: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                delete(login_failures).where(login_failures.c.account == key(account))
            )
