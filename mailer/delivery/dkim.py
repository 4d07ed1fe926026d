"""DKIM signatures (dkimpy) for the backends that hand over whole messages: outbox and smtp.

The signature covers From, To, Subject, Date, Message-ID and the list headers, List-Unsubscribe
and List-Unsubscribe-Post among them (RFC 8058 asks for both to be signed). The headers a receiver
acts on are oversigned (RFC 6376 section 8.15): each is listed once more than it occurs, so the
signature also covers its absence, and a second List-Unsubscribe or From prepended in transit
breaks it instead of being shown by a client that reads the topmost one.
"""

from __future__ import annotations

from pathlib import Path

import dkim

from mailer.core.errors import ConfigError, Problem

OVERSIGNED_HEADERS = (
    b"From",
    b"To",
    b"Subject",
    b"Date",
    b"Message-ID",
    b"List-Id",
    b"List-Unsubscribe",
    b"List-Unsubscribe-Post",
)
SIGNED_HEADERS = (*OVERSIGNED_HEADERS, b"Reply-To", b"MIME-Version", b"Content-Type")


def signed_headers(message: bytes) -> list[bytes]:
    """The h= list for this message: each signed header as often as it occurs (at least once,
    which signs its absence), the oversigned ones once more than they occur."""
    headers, _ = dkim.rfc822_parse(message)
    present = [name.lower() for name, _ in headers]
    return [
        name
        for name in SIGNED_HEADERS
        for _ in range(_times_listed(name, present.count(name.lower())))
    ]


def _times_listed(name: bytes, occurrences: int) -> int:
    return occurrences + 1 if name in OVERSIGNED_HEADERS else max(occurrences, 1)


class Signer:
    def __init__(self, domain: str, selector: str, private_key: bytes) -> None:
        self.domain = domain.encode("ascii")
        self.selector = selector.encode("ascii")
        self.private_key = private_key

    @classmethod
    def from_file(cls, domain: str, selector: str, path: Path) -> Signer:
        try:
            key = path.read_bytes()
        except OSError as error:
            raise ConfigError(
                [Problem(path, None, f"the DKIM private key cannot be read: {error.strerror}")]
            ) from None
        return cls(domain, selector, key)

    def __call__(self, message: bytes) -> bytes:
        """The message with a DKIM-Signature header in front."""
        header = dkim.sign(
            message,
            self.selector,
            self.domain,
            self.private_key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=signed_headers(message),
            linesep=b"\r\n",
        )
        return bytes(header) + message
