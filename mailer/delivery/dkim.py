"""DKIM signatures (dkimpy) for the backends that hand over whole messages: outbox and smtp.

The signature covers From, To, Subject, Date, Message-ID and the list headers, List-Unsubscribe
and List-Unsubscribe-Post among them (RFC 8058 asks for both to be signed).
"""

from __future__ import annotations

from pathlib import Path

import dkim

from mailer.core.errors import ConfigError, Problem

SIGNED_HEADERS = (
    b"From",
    b"To",
    b"Subject",
    b"Date",
    b"Message-ID",
    b"Reply-To",
    b"List-Id",
    b"List-Unsubscribe",
    b"List-Unsubscribe-Post",
    b"MIME-Version",
    b"Content-Type",
)


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
            include_headers=list(SIGNED_HEADERS),
            linesep=b"\r\n",
        )
        return bytes(header) + message
