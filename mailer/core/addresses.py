"""Email addresses and names as subscribers give them: validated, normalised, safe for headers.

Addresses are checked by email-validator (no DNS look-ups; internationalised addresses allowed).
It costs about 50 µs an address, too slow for a million-row import, so an address made only of
the plain characters every validator accepts, at a domain email-validator has already accepted,
is taken without asking again: the verdict on a domain does not depend on the local part.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from email_validator import EmailNotValidError, validate_email

from mailer.core.lifecycle import Frequency, Status

_PLAIN_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_PLAIN_DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}")
MAX_LENGTH = 254
MAX_LOCAL_LENGTH = 64
MAX_NAME_LENGTH = 200
MAX_LIST_NAME_LENGTH = 100


class InvalidAddress(ValueError):
    """An address that cannot receive mail; the message says why in plain words."""


@dataclass
class AddressBook:
    """Validates addresses, remembering which domains email-validator accepted."""

    good_domains: dict[str, str] = field(default_factory=dict)
    """Each domain email-validator accepted, as written (lower-cased) → as stored (Unicode)."""
    plain_domains: dict[str, str] = field(default_factory=dict)
    """Each plain domain (letters, digits, `-`), exactly as written, whose lower-cased form is
    in good_domains → as stored: an address at one is checked by its local part alone."""

    def normalise(self, raw: str) -> str:
        """The address as stored: trimmed, domain lower-cased (IDN kept in Unicode)."""
        address = raw.strip()
        # Neither part of a plain address holds `@`, so the last one divides them.
        local, _, domain = address.rpartition("@")
        stored = self.plain_domains.get(domain)
        if stored is None and _PLAIN_DOMAIN.fullmatch(domain):
            stored = self.good_domains.get(domain.lower())
            if stored is not None:
                self.plain_domains[domain] = stored
        if (
            stored is not None
            and len(address) <= MAX_LENGTH
            and len(local) <= MAX_LOCAL_LENGTH
            and _PLAIN_LOCAL.fullmatch(local)
        ):
            return f"{local}@{stored}"
        if not address:
            raise InvalidAddress("the address is empty")
        try:
            checked = validate_email(address, check_deliverability=False)
        except EmailNotValidError as error:
            raise InvalidAddress(f"'{address}' is not a valid email address: {error}") from None
        domain = checked.domain.lower()
        self.good_domains[checked.ascii_domain.lower()] = domain
        self.good_domains[domain] = domain
        return f"{checked.local_part}@{domain}"


def key(address: str) -> str:
    """What makes two addresses the same person: the whole address, lower-cased.

    Not case-folded: folding makes `straße@` and `strasse@` one person, and they are two
    mailboxes."""
    return address.lower()


class SuppressionHash:
    """The only trace an erased address leaves: enough to recognise it, not to read it.

    An HMAC-SHA256 of the address keyed with the newsletter's secret, so that nobody holding the
    database alone can find an address by hashing a list of them. Hashes made before it was
    keyed are plain SHA-256 (`unkeyed`), and are still checked. The secret is asked for only when
    an address is hashed, so that commands that hash nothing do not need it.
    """

    def __init__(self, secret: Callable[[], str]) -> None:
        self.secret = secret

    @functools.cached_property
    def _key(self) -> bytes:
        return hashlib.sha256(f"mailer-suppression\0{self.secret()}".encode()).digest()

    def __call__(self, address: str) -> str:
        return hmac.digest(self._key, key(address).encode("utf-8"), "sha256").hex()

    @staticmethod
    def unkeyed(address: str) -> str:
        return hashlib.sha256(key(address).encode("utf-8")).hexdigest()


def clean_name(raw: str) -> str:
    """A subscriber's name: any Unicode, but never a line break or other control character."""
    name = raw.strip()
    if name.isprintable() and len(name) <= MAX_NAME_LENGTH:  # the common case, checked in C
        return name
    bad = [c for c in name if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") and c != "\u200d"]
    if bad:
        shown = ", ".join(sorted({f"U+{ord(c):04X}" for c in bad}))
        raise ValueError(f"the name holds a line break or control character ({shown})")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"the name is longer than {MAX_NAME_LENGTH} characters")
    return name


def as_stored(raw: str) -> str:
    """The address as mailer stores it, for looking someone up; as typed if it is not valid."""
    try:
        return AddressBook().normalise(raw)
    except InvalidAddress:
        return raw.strip()


def clean_list_name(name: str) -> str:
    """A list name as typed: trimmed, one line, not empty, no `;` (the CSV separator)."""
    cleaned = name.strip()
    if not cleaned:
        raise ValueError("a list name cannot be empty")
    if ";" in cleaned or any(ord(c) < 32 or ord(c) == 127 for c in cleaned):
        raise ValueError(f"the list name {cleaned!r} holds ';' or a control character")
    if len(cleaned) > MAX_LIST_NAME_LENGTH:
        raise ValueError(f"a list name has at most {MAX_LIST_NAME_LENGTH} characters")
    return cleaned


class Candidate(NamedTuple):
    """One person to add or merge, already validated (an import row, a form, a staff command)."""

    email: str
    name: str
    lists: frozenset[str]
    line: int = 0
    status: Status | None = None
    """The status a row of an exported list carries; None takes the import's."""
    language: str = ""
    """The language they read; empty: the newsletter's (or, for someone known, unchanged)."""
    frequency: Frequency | Mapping[str, Frequency] | None = None
    """How often they get these lists (or each list by name, an export's row whose lists differ);
    None: immediate when new, else unchanged."""

    def frequency_on(self, list_name: str) -> Frequency | None:
        """How often they get this list of theirs; None: immediate when new, else unchanged."""
        chosen = self.frequency
        if chosen is None or isinstance(chosen, Frequency):  # most people: no ABC check
            return chosen
        return chosen.get(list_name)
