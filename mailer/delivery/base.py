"""The backend interface: open, send a batch, close; a result for every recipient.

A backend knows how to hand messages to one kind of service. It knows nothing of campaigns,
subscribers or the database: the campaign engine gives it a batch and records what it says.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import NamedTuple, Self

from mailer.core.errors import MailerError
from mailer.render.message import MessageTemplate, Recipient


class Outcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    """A temporary failure (SMTP 4xx, HTTP 429 or 5xx, a dropped connection): try again later."""
    FAILED = "failed"
    """A permanent failure for this message only (SMTP 5xx, HTTP 4xx, a policy refusal)."""
    BOUNCED = "bounced"
    """A hard bounce: the mailbox or domain does not exist (SMTP 5.1.x); the subscriber is
    marked bounced and gets nothing more."""
    UNCERTAIN = "uncertain"
    """The message was handed over whole (SMTP: the final dot went; HTTP: the whole request) and
    no answer came: it may have been accepted. Never sent again unless somebody asks."""


class Result(NamedTuple):
    outcome: Outcome
    message_id: str = ""
    """The id the service gave the message (our Message-ID where the service has none)."""
    reason: str = ""
    retry_after: float | None = None
    """Seconds the service asked us to wait (Retry-After), for a RETRY."""
    batch: str = ""
    """The label its batch went under, by which the service can be asked about it afterwards
    (see Reconciler), for an UNCERTAIN result of a backend that labels its batches."""


class Outgoing(NamedTuple):
    """One recipient's message within a batch."""

    subscriber_id: int
    recipient: Recipient
    message_id: str
    """The Message-ID header we give it: `<unique@sender-domain>`."""
    envelope_sender: str = ""
    """The address bounces of this message return to (SMTP's MAIL FROM); empty: the issue's
    sender."""


Settled = Callable[[Outgoing, Result], None]
"""Told each message's result as soon as it is known, before the next message is handed over
(the engine writes it to the sending journal)."""


def unsigned(data: bytes) -> bytes:
    """What a backend's `sign` is when nothing signs messages: they go as they are (a backend
    that knows this can skip building the message a signature would need)."""
    return data


def unheard(outgoing: Outgoing, result: Result) -> None:
    """Where results go when nobody needs them one by one (a test message)."""


class BackendError(MailerError):
    """The whole batch failed: nothing in it was sent.

    `temporary` failures (the server is down, 5xx, a timeout) are retried; a permanent one
    (authentication refused, the account disabled) pauses the campaign: sending the rest of the
    list would only fail the same way.
    """

    exit_code = 1

    def __init__(self, message: str, *, temporary: bool, retry_after: float | None = None):
        super().__init__(message)
        self.temporary = temporary
        self.retry_after = retry_after


class Backend(abc.ABC):
    """Hands batches to one kind of service. A context manager, as Django's mail backends are:
    the engine opens it before the first batch and closes it after the last, and one opened
    backend sends any number of batches."""

    name: str
    batch_size: int
    """The most recipients one `send` takes (a provider's batch API limit)."""

    def open(self) -> None:  # noqa: B027  (most backends have nothing to get ready)
        """Get ready to send: a folder, an HTTP session. A connection to a server may wait for
        the first message, so that a server that is down is judged like any failed send."""

    @abc.abstractmethod
    def send(
        self, template: MessageTemplate, batch: Sequence[Outgoing], settled: Settled = unheard
    ) -> list[Result]:
        """Hand the batch over; one Result per Outgoing, in order, each also given to `settled`
        as soon as it is known. Raises BackendError when nothing could be handed over at all."""

    def close(self) -> None:  # noqa: B027
        """Let go of what open and send took (connections, sessions)."""

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def label_prefix(service: str) -> str:
    """How the labels of a service's batches begin: a batch is asked about only of the service
    it went to (the backend may have changed since)."""
    return f"mailer-{service}-"


class Reconciler(abc.ABC):
    """Asks the service, after the fact, which recipients of a labelled batch it took: what an
    UNCERTAIN result really was. A provider whose service can be asked declares one."""

    name: str
    settle: dt.timedelta
    """How long after a hand-over the service's record of it is complete: a recipient it does
    not know by then never reached it."""

    def sent_through(self, batch: str) -> bool:
        """Whether the batch labelled so went to this service (only then can it be asked)."""
        return batch.startswith(label_prefix(self.name))

    @abc.abstractmethod
    def accepted(self, batch: str, addresses: Sequence[str]) -> set[str]:
        """Which of `addresses` (as given) the service took in the batch labelled `batch`.
        Raises BackendError when it cannot be asked or its answer cannot be read."""

    @abc.abstractmethod
    def close(self) -> None:
        """Let go of what asking took (an HTTP session)."""
