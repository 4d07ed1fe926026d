"""Complete MIME messages, one per recipient, from an issue rendered once.

Compiling a MessageTemplate does the costly part once: the headers every recipient shares and the
quoted-printable encoding of both parts. Personalising then only encodes the few personal values and
joins bytes. Each personal value is spliced in between quoted-printable soft line breaks (`=` at a
line's end), which decoders remove, so the static text around it can be encoded in advance while
every line stays within the 76 characters the encoding allows.

Nothing from a commentary, the configuration or a subscriber reaches a header with a CR or LF in it:
`header_safe` refuses them before anything is built.
"""

from __future__ import annotations

import binascii
import datetime as dt
import functools
import hashlib
import html
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr
from typing import NamedTuple

from mailer.core.urls import ascii_url
from mailer.render.email import PERSONAL_FIELDS, RenderedMessage

CRLF = b"\r\n"
SOFT_BREAK = b"=\r\n"
END_OF_DATA = b".\r\n"
"""What ends a message in SMTP's DATA, after its last line's CRLF."""
MAX_LINE = 998
"""Octets a line may hold, CRLF aside (RFC 5322)."""
MAX_WORD = 75
"""Characters an RFC 2047 encoded word may hold."""
SHORT_NAME = MAX_LINE // 2
"""A quoted name this long leaves room on its line for the header's name and an address."""


class HeaderInjection(ValueError):
    """A value bound for a header holds a line break."""


class Recipient(NamedTuple):
    email: str
    name: str
    unsubscribe_url: str
    preferences_url: str


@dataclass(frozen=True)
class Sender:
    """Who the issue is from, and the list it goes to."""

    address: str
    """`Name <address@domain>` as in config.toml's `from`."""
    list_name: str
    list_label: str
    """The list's name as a dot-atom label, e.g. `commentaries`; List-Id is label.sender-domain."""
    reply_to: str = ""
    unsubscribe_mailto: str = ""
    feedback_id: str = ""

    @property
    def domain(self) -> str:
        return idna_address(parseaddr(self.address)[1]).rpartition("@")[2]


def header_safe(value: str, what: str) -> str:
    """The value, unless it holds a line break: CR and LF, and every other character Python
    splits lines at (form feed, \\x1c-\\x1e, NEL, U+2028, U+2029), where email.header would
    start a new header line."""
    if value and value.splitlines() != [value]:
        raise HeaderInjection(
            f"{what} holds a line break, which could forge mail headers: {value!r}"
        )
    return value


def idna_address(address: str) -> str:
    """The address with its domain in ASCII (IDNA), which every mail server understands."""
    if address.isascii():
        return address
    local, _, domain = address.rpartition("@")
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return address


def mailbox(name: str, address: str, linesep: str = "\r\n") -> str:
    """`Name <address>` with the name RFC 2047-encoded when it is not ASCII.

    An internationalised domain is written in IDNA; a non-ASCII local part stays UTF-8, which only
    servers offering SMTPUTF8 accept. The name is folded where it is long (see `phrase`); with
    `linesep=""` its words are joined by spaces instead, for a service that writes the header.
    """
    header_safe(name, "a name")
    header_safe(address, "an address")
    address = idna_address(address)
    if not name:
        return address
    if address.isascii():
        # The common case, and the fast one: a quoted name, or one encoded word unfolded.
        short = formataddr((name, address), "utf-8")
        limit = SHORT_NAME if name.isascii() else MAX_WORD + len(address) + 3
        if len(short) <= limit:
            return short
    return f"{phrase(name, linesep)} <{address}>"


def phrase(text: str, linesep: str = "\r\n") -> str:
    """A display name on its own (as List-Id has it): quoted if ASCII and short, else RFC 2047
    words, folded with CRLF. formataddr never folds and Header.encode() folds with a bare LF
    unless told otherwise: either way a long name made a line over the 998 octets SMTP allows."""
    header_safe(text, "a name")
    if text.isascii() and len(text) <= SHORT_NAME:
        return '"{}"'.format(text.replace("\\", "\\\\").replace('"', '\\"'))
    return Header(text, "utf-8").encode(linesep=linesep)


def encoded(name: str, value: str) -> bytes:
    """A whole header line, folded, encoded as RFC 2047 words only where the text is not ASCII
    (or holds a word too long to fold, which encoded words can split anywhere)."""
    header_safe(value, name)
    charset = "us-ascii" if value.isascii() else "utf-8"
    line = Header(value, charset, header_name=name).encode(linesep="\r\n")
    if max(map(len, line.split("\r\n"))) > MAX_LINE - len(name) - 2:
        line = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
    return f"{name}: {line}".encode("ascii") + CRLF


def quoted_printable(text: str) -> bytes:
    return binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", CRLF)


def dot_stuffed(piece: bytes) -> bytes:
    """A piece of a message that starts at the beginning of a line, as SMTP's DATA carries it:
    a dot starting a line doubled (RFC 5321 section 4.5.2)."""
    stuffed = piece.replace(b"\n.", b"\n..")
    return b"." + stuffed if stuffed[:1] == b"." else stuffed


class _Part:
    """One body part: static text encoded in advance, personal values spliced in per recipient."""

    def __init__(self, rendered: RenderedMessage, text: str, escape: Callable[[str], str]) -> None:
        pieces = rendered.placeholder_pattern.split(text)
        self.statics = [quoted_printable(piece) for piece in pieces[0::2]]
        # Every static piece starts a line (after the part's head or a soft line break), and so
        # does every value: each can be dot-stuffed on its own, the static ones once.
        self.stuffed_statics = [dot_stuffed(static) for static in self.statics]
        self.fields = pieces[1::2]
        self.escape = escape

    def fill(self, values: dict[str, str], out: list[bytes], stuffed: bool = False) -> None:
        """The part for these values, appended to `out` as pieces (dot-stuffed if asked)."""
        statics = self.stuffed_statics if stuffed else self.statics
        out.append(statics[0])
        for field, static in zip(self.fields, statics[1:], strict=True):
            value = quoted_printable(self.escape(values[field]))
            out += (SOFT_BREAK, dot_stuffed(value) if stuffed else value, SOFT_BREAK, static)


class MessageTemplate:
    """The issue as a message, ready to be personalised for each recipient."""

    def __init__(
        self,
        rendered: RenderedMessage,
        sender: Sender,
        *,
        clock: Callable[[], float] = time.time,
        unique: Callable[[], str] | None = None,
    ) -> None:
        self.rendered = rendered
        self.sender = sender
        self.clock = clock
        # Unique without a system call per message: a random prefix for this template and a
        # counter (next() on itertools.count is atomic, so sending threads can share it).
        prefix, counter = secrets.token_hex(6), itertools.count()
        self.unique = unique or (lambda: f"{prefix}{next(counter):x}")
        self._dated: tuple[int, str] = (-1, "")
        """The Date header's value and its second: formatted once a second, not per message."""
        self.domain = sender.domain
        content = f"{rendered.html}\0{rendered.text}".replace(rendered.marker, "")
        digest = hashlib.sha256(content.encode()).hexdigest()
        self.boundary = f"=_mailer_{digest[:28]}"
        """Derived from the content so that a build is repeatable; `=_` never occurs in
        quoted-printable text, so the boundary cannot appear in a part."""
        self.head_from, self.head_subject, self.head_rest = self._shared_headers()
        self.text = _Part(rendered, rendered.text, escape=str)
        self.html = _Part(rendered, rendered.html, escape=lambda v: html.escape(v, quote=True))
        self.text_head = (
            f"--{self.boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        ).encode("ascii")
        self.html_head = (
            f"\r\n--{self.boundary}\r\nContent-Type: text/html; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        ).encode("ascii")
        self.tail = f"\r\n--{self.boundary}--\r\n".encode("ascii")

    def _shared_headers(self) -> tuple[bytes, bytes, bytes]:
        """From; Subject; then the rest. To goes after From, Date and Message-ID after Subject."""
        sender = self.sender
        name, address = parseaddr(header_safe(sender.address, "the sender"))
        head_from = f"From: {mailbox(name, address)}\r\n".encode("ascii")
        head_subject = encoded("Subject", self.rendered.subject)
        lines = []
        if sender.reply_to:
            reply_name, reply_address = parseaddr(header_safe(sender.reply_to, "reply_to"))
            lines.append(f"Reply-To: {mailbox(reply_name, reply_address)}\r\n".encode("ascii"))
        list_id = f"<{header_safe(sender.list_label, 'the list')}.{self.domain}>"
        lines.append(f"List-Id: {phrase(sender.list_name)} {list_id}\r\n".encode("ascii"))
        lines.append(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
        if sender.feedback_id:
            lines.append(
                f"Feedback-ID: {header_safe(sender.feedback_id, 'feedback_id')}\r\n".encode()
            )
        lines.append(b"MIME-Version: 1.0\r\n")
        lines.append(
            f'Content-Type: multipart/alternative; boundary="{self.boundary}"\r\n'.encode("ascii")
        )
        return head_from, head_subject, b"".join(lines)

    # What HTTP providers need: they take the parts with their own placeholders, substitute each
    # recipient's values themselves, and write the headers from fields of their own.

    def parts_with(self, variable: Callable[[str], str]) -> tuple[str, str]:
        """(text, html) with each personal field written as `placeholder(field)` in the text
        part and `placeholder(field + "_html")` in the HTML, for `personal_values` to fill."""
        pattern = self.rendered.placeholder_pattern
        text = pattern.sub(lambda found: variable(found[1]), self.rendered.text)
        html = pattern.sub(lambda found: variable(found[1] + "_html"), self.rendered.html)
        return text, html

    def personal_parts(self, recipient: Recipient) -> tuple[str, str]:
        """(text, html) filled in for one recipient, for services that substitute nothing."""
        return self.parts_with(self.personal_values(recipient).__getitem__)

    def personal_values(self, recipient: Recipient) -> dict[str, str]:
        """Each personal field the parts use, as text (`field`) and, HTML-escaped, as
        `field_html`: what a provider substitutes into parts_with's placeholders."""
        values: dict[str, str] = {}
        for field in self._fields_in_text:
            values[field] = getattr(recipient, field)
        for field in self._fields_in_html:
            values[field + "_html"] = html.escape(getattr(recipient, field), quote=True)
        return values

    @functools.cached_property
    def _fields_in_text(self) -> tuple[str, ...]:
        used = set(self.rendered.placeholder_pattern.findall(self.rendered.text))
        return tuple(field for field in PERSONAL_FIELDS if field in used)

    @functools.cached_property
    def _fields_in_html(self) -> tuple[str, ...]:
        used = set(self.rendered.placeholder_pattern.findall(self.rendered.html))
        return tuple(field for field in PERSONAL_FIELDS if field in used)

    def list_headers(self, recipient: Recipient) -> dict[str, str]:
        """List-Unsubscribe (the recipient's own), List-Unsubscribe-Post, List-Id, Feedback-ID."""
        return {"List-Unsubscribe": self._list_unsubscribe(recipient), **self.shared_headers()}

    def shared_headers(self) -> dict[str, str]:
        """The list headers every recipient gets alike: List-Unsubscribe-Post, List-Id and
        Feedback-ID, as header values ready to write (ASCII, encoded where needed)."""
        return dict(self._shared_list_headers)

    @functools.cached_property
    def _shared_list_headers(self) -> dict[str, str]:
        # One entry per header, its folds undone (a CRLF followed by a space continues a line).
        head = self.head_rest.decode("ascii").replace("\r\n ", " ").split("\r\n")
        return dict(
            line.split(": ", 1)
            for line in head
            if line.startswith(("List-Id:", "List-Unsubscribe-Post:", "Feedback-ID:"))
        )

    def _list_unsubscribe(self, recipient: Recipient) -> str:
        unsubscribe = ascii_url(header_safe(recipient.unsubscribe_url, "the unsubscribe URL"))
        value = f"<{unsubscribe}>"
        if self.sender.unsubscribe_mailto:
            value += f", <mailto:{self.sender.unsubscribe_mailto}>"
        return value

    def message_id(self) -> str:
        return f"<{int(self.clock())}.{self.unique()}@{self.domain}>"

    def date(self) -> str:
        """Now as a Date header value (RFC 5322), formatted once per second."""
        second = int(self.clock())
        dated = self._dated  # one read and one write: threads sharing the template may race
        if dated[0] != second:
            moment = dt.datetime.fromtimestamp(second, dt.UTC)
            dated = self._dated = (second, format_datetime(moment))
        return dated[1]

    def personalise(self, recipient: Recipient, message_id: str | None = None) -> bytes:
        """The complete message for one recipient, CRLF line endings, ready for SMTP."""
        return b"".join(self._pieces(recipient, message_id, stuffed=False))

    def transmitted(self, recipient: Recipient, message_id: str | None = None) -> bytes:
        """The message as SMTP's DATA carries it: dot-stuffed, ending with the final dot. The
        issue's static text was stuffed once; only the personal values are, per recipient."""
        return b"".join(self._pieces(recipient, message_id, stuffed=True))

    def _pieces(self, recipient: Recipient, message_id: str | None, stuffed: bool) -> list[bytes]:
        # Header lines never start with a dot (a name, or the space of a fold): only the parts'
        # pieces are stuffed.
        values = {field: getattr(recipient, field) for field in PERSONAL_FIELDS}
        to = f"To: {mailbox(recipient.name, recipient.email)}\r\n".encode()
        dated = (
            f"Date: {self.date()}\r\n"
            f"Message-ID: {message_id or self.message_id()}\r\n"
            f"List-Unsubscribe: {self._list_unsubscribe(recipient)}\r\n"
        ).encode("ascii")
        out = [self.head_from, to, self.head_subject, dated, self.head_rest, CRLF, self.text_head]
        self.text.fill(values, out, stuffed)
        out.append(self.html_head)
        self.html.fill(values, out, stuffed)
        out.append(self.tail)
        if stuffed:
            out.append(END_OF_DATA)
        return out
