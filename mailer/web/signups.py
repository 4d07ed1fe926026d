"""Subscribe requests, recorded and answered with a confirmation message after the HTTP answer;
requests for a fresh preferences link, answered with one the same way.

The subscribe form tells everybody the same thing, whoever the address belongs to; if it also
did the work while the person waits, the time it took would tell: a new address is stored and
sent a message, an active one is only looked up (and a known address is sent a preferences
link, an unknown one nothing). So the request is handed to one thread of this
process through a bounded queue, and the answer goes out at once, as quickly either way. A full
queue is refused at once (503, the same for every address). Nothing is dropped silently: a
request that fails is logged with its address redacted, and one still waiting when the process
stops is logged too (counted, not named).
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
from dataclasses import dataclass

from mailer.app.confirmation import ConfirmationMail, PersonalMail, PreferencesLinkMail
from mailer.core.addresses import Candidate
from mailer.core.lifecycle import Status
from mailer.delivery.base import BackendError, Outcome
from mailer.store.database import Store
from mailer.store.subscribers import Subscriber
from mailer.store.subscribing import request_subscription
from mailer.web import redact

MAX_WAITING = 1000
"""Requests waiting for the thread; more are refused (503) until it catches up."""

STOP_WAIT = 30.0
"""Seconds a stopping process gives the thread to finish the requests queued."""

log = logging.getLogger("mailer.web")


@dataclass(frozen=True)
class SignUp:
    """One accepted subscribe request: who asked, through which form, from where."""

    candidate: Candidate
    detail: str
    ip: str

    @property
    def email(self) -> str:
        return self.candidate.email


@dataclass(frozen=True)
class LinkRequest:
    """One accepted request for a fresh preferences link, for an address already normalised."""

    email: str


LINKED = frozenset({Status.PENDING, Status.ACTIVE, Status.UNSUBSCRIBED})
"""Who is sent a preferences link on asking: not an address that bounced (the link would not
arrive) nor one that complained (we send it nothing more)."""


class SignUps:
    """The queue of subscribe and preferences-link requests and the thread that works through
    it, started on the first request (so that an app that never takes one starts no thread)."""

    def __init__(
        self,
        store: Store,
        confirmation: ConfirmationMail,
        preferences: PreferencesLinkMail,
        limit: int = MAX_WAITING,
    ) -> None:
        self.store = store
        self.confirmation = confirmation
        self.preferences = preferences
        self.waiting: queue.Queue[SignUp | LinkRequest] = queue.Queue(limit)
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def submit(self, sign_up: SignUp | LinkRequest) -> bool:
        """Queue the request; False when the queue is full (nothing is queued)."""
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="mailer-signups", daemon=True)
                self.thread.start()
                atexit.register(self.stop)
        try:
            self.waiting.put_nowait(sign_up)
        except queue.Full:
            log.error("subscribe: %d requests are waiting; this one was refused", MAX_WAITING)
            return False
        return True

    def drain(self, timeout: float) -> int:
        """Wait up to `timeout` seconds until every request queued so far is handled; the
        number still waiting or being handled."""
        done = self.waiting.all_tasks_done
        with done:
            done.wait_for(lambda: not self.waiting.unfinished_tasks, timeout)
            return self.waiting.unfinished_tasks

    def stop(self) -> None:
        """When the process ends: finish what is queued, and say if something could not be."""
        left = self.drain(STOP_WAIT)
        if left:
            log.error(
                "subscribe: the service stopped with %d requests not handled; those people "
                "got no confirmation message and may subscribe again",
                left,
            )

    def _run(self) -> None:
        while True:
            sign_up = self.waiting.get()
            try:
                self.handle(sign_up)
            except Exception as error:  # the thread must outlive any one request
                # The type only: a database error's text can hold the address in clear.
                log.error(
                    "%s: the request for %s failed (%s); nothing was sent",
                    _kind(sign_up),
                    redact.address(sign_up.email),
                    type(error).__name__,
                )
            finally:
                self.waiting.task_done()

    def handle(self, sign_up: SignUp | LinkRequest) -> None:
        """Record a subscribe request and send the confirmation message when the address needs
        one; send a preferences link to an address we hold that may have one."""
        shown = redact.address(sign_up.email)
        if isinstance(sign_up, LinkRequest):
            found = self.store.subscribers.find(sign_up.email)
            if found is None or found.status not in LINKED:
                log.info("preferences: %s is unknown, bounced or complained; no link sent", shown)
                return
            self.send(self.preferences, found, shown, "preferences", "preferences link")
            return
        subscriber = request_subscription(self.store, sign_up.candidate, sign_up.detail, sign_up.ip)
        if subscriber is None:
            log.info("subscribe: %s is active, complained or erased; no message sent", shown)
            return
        self.send(self.confirmation, subscriber, shown, "subscribe", "confirmation message")

    def send(
        self, mail: PersonalMail, subscriber: Subscriber, shown: str, kind: str, what: str
    ) -> None:
        try:
            result = mail.send(subscriber)
        except BackendError as error:
            log.error("%s: the %s to %s failed: %s", kind, what, shown, error)
            return
        if result.outcome != Outcome.SENT:
            log.error(
                "%s: the %s to %s was not sent (%s): %s",
                kind,
                what,
                shown,
                result.outcome.value,
                result.reason,
            )
            return
        log.info("%s: %s sent to %s", kind, what, shown)


def _kind(sign_up: SignUp | LinkRequest) -> str:
    return "preferences" if isinstance(sign_up, LinkRequest) else "subscribe"
