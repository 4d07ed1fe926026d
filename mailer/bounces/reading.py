"""What a message in the bounce mailbox says: a bounce (hard or soft), a complaint, a delay
warning, or nothing we can read.

Recognising a bounce is flufl.bounce's work: Mailman's detectors for RFC 3464 delivery status
notifications and for the formats servers invented before or beside it (Exim, qmail, Yahoo,
Exchange, Postfix's older one…), kept up with the mail it meets. What it does not say, we read
from the standard parts ourselves: how bad a failure is (the DSN's Status), a feedback report
(RFC 5965), and whom it is about. That comes only from what mailer signed or made: the VERP token
of the address the bounce was sent to (or, in a feedback report, the Return-Path of the original)
and the original's Message-ID. The addresses a bounce names are never trusted on their own, so a
forged bounce marks nobody.
"""

from __future__ import annotations

import datetime as dt
import email
import email.errors
import email.header
import email.policy
import email.utils
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from email.message import Message
from enum import StrEnum

from flufl.bounce import all_failures

from mailer.core.events import Kind, Severity

ADDRESSED_TO = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")
"""Headers of a bounce that may hold the address it was sent to: the VERP address, for ours."""
SOFT_STATUSES = ("4.", "5.2.2")
"""DSN status codes of a failure that may pass: temporary ones, and a full mailbox (which RFC
3463 calls permanent, though mailboxes get emptied)."""
_MESSAGE_ID = re.compile(r"^Message-ID:[ \t]*(<[^>\s]+>)", re.I | re.M)


class Verdict(StrEnum):
    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    DELAY = "delay"
    """A warning that delivery is still being tried: nothing to record."""
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class Report:
    """What one message of the bounce mailbox says."""

    verdict: Verdict
    event_id: str
    """The report's own Message-ID, else a hash of it: the same message read twice is one event."""
    subject: str
    severity: Severity | None = None
    reason: str = ""
    at: dt.datetime | None = None
    addressed_to: tuple[str, ...] = ()
    """Addresses the report was sent to, and the original's Return-Path: where VERP tokens are."""
    original_message_id: str = ""
    detail: dict[str, str] = field(default_factory=dict)
    """What is kept with the event: the report's sender, subject, date, status, format."""

    @property
    def kind(self) -> Kind:
        return Kind.COMPLAINED if self.verdict is Verdict.COMPLAINT else Kind.BOUNCED


def read_report(data: bytes) -> Report:
    """Read one message; never raises on bad input (an unreadable message says UNREADABLE)."""
    message = email.message_from_bytes(data, policy=email.policy.compat32)
    own_id = _header(message, "Message-ID") or "sha256:" + hashlib.sha256(data).hexdigest()
    subject = _header(message, "Subject")
    originals = _originals(message)
    detail = {
        "from": _header(message, "From"),
        "subject": subject,
        "date": _header(message, "Date"),
    }
    unreadable = Report(
        Verdict.UNREADABLE,
        event_id=own_id,
        subject=subject,
        reason="not a bounce we recognise",
        at=_date(message),
        addressed_to=tuple(_addresses(message, originals)),
        original_message_id=_original_message_id(message, originals),
        detail=detail,
    )
    feedback = _part(message, "message/feedback-report")
    if feedback is not None:
        report = _first_block(feedback)
        feedback_type = (report.get("Feedback-Type", "") if report else "").strip().lower()
        detail.update(format="feedback report", feedback_type=feedback_type)
        mail_from = [str(report.get("Original-Mail-From", ""))] if report else []
        return replace(
            unreadable,
            verdict=Verdict.COMPLAINT,
            reason=feedback_type or "abuse",
            addressed_to=unreadable.addressed_to + tuple(_bare(mail_from)),
        )
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # a detector that trips on odd input: the message stays for a person
        return replace(unreadable, reason="no bounce detector could read it")
    if not permanent:
        return replace(unreadable, verdict=Verdict.DELAY, reason="") if temporary else unreadable
    statuses = _failed_statuses(message)
    hard = not statuses or any(not code.startswith(SOFT_STATUSES) for code, _ in statuses)
    reason = next((why or code for code, why in statuses), "permanent failure")
    detail.update(format="delivery status notification" if statuses else "bounce", status=reason)
    return replace(
        unreadable,
        verdict=Verdict.BOUNCE,
        severity=Severity.HARD if hard else Severity.SOFT,
        reason=reason,
    )


def _header(message: Message, name: str) -> str:
    value = message.get(name)
    if value is None:
        return ""
    try:
        text = str(email.header.make_header(email.header.decode_header(str(value))))
    except (email.errors.HeaderParseError, LookupError, UnicodeError, ValueError):
        text = str(value)  # an encoded word we cannot decode: shown as written
    return " ".join(text.split())


def _date(message: Message) -> dt.datetime | None:
    try:
        when = email.utils.parsedate_to_datetime(_header(message, "Date"))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _part(message: Message, content_type: str) -> Message | None:
    return next((p for p in message.walk() if p.get_content_type() == content_type), None)


def _first_block(part: Message) -> Message | None:
    """The first header block of a message/* part (its payload is a list of them)."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    return None


def _originals(message: Message) -> list[Message]:
    """The headers of the original message a report returns: an attached message/rfc822 or
    text/rfc822-headers part."""
    found = []
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            block = _first_block(part)
            if block is not None:
                found.append(block)
        elif content_type == "text/rfc822-headers":
            text = part.get_payload(decode=True)
            if isinstance(text, bytes):
                found.append(email.message_from_bytes(text, policy=email.policy.compat32))
    return found


def _original_message_id(message: Message, originals: list[Message]) -> str:
    for original in originals:
        found = _header(original, "Message-ID")
        if found:
            return found
    # Formats that quote the original in their text (Exim's) rather than attach it.
    for part in message.walk():
        if part is message or part.get_content_maintype() != "text":
            continue
        text = part.get_payload(decode=True)
        if isinstance(text, bytes):
            quoted = _MESSAGE_ID.search(text.decode("utf-8", "replace"))
            if quoted:
                return quoted[1]
    if not message.is_multipart():
        body = message.get_payload(decode=True)
        if isinstance(body, bytes):
            quoted = _MESSAGE_ID.search(body.decode("utf-8", "replace"))
            if quoted:
                return quoted[1]
    return ""


def _addresses(message: Message, originals: list[Message]) -> list[str]:
    values = [v for name in ADDRESSED_TO for v in message.get_all(name, [])]
    values += [v for original in originals for v in original.get_all("Return-Path", [])]
    return _bare(str(v) for v in values)


def _bare(values: Iterable[str]) -> list[str]:
    return [address for _, address in email.utils.getaddresses(list(values)) if address]


def _failed_statuses(message: Message) -> list[tuple[str, str]]:
    """(Status, Diagnostic-Code) of each recipient a DSN reports as failed."""
    found = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        for block in blocks if isinstance(blocks, list) else []:
            if not isinstance(block, Message):
                continue
            action = str(block.get("Action", "")).strip().lower()
            if action.startswith(("fail", "error")):
                status = str(block.get("Status", "")).split()[:1]
                diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())
                found.append((status[0] if status else "", diagnostic))
    return found
