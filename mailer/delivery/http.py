"""The HTTP layer every provider backend shares: one requests Session, timeouts, the
classification of failures that concern the whole batch, and the steps of a batch send.

A provider module is then only a payload builder and a response parser (see mailgun.py):
`payload` turns the batch into one request, `results` turns the answer into one Result per
recipient. Everything else (checking recipients, posting, failures of the whole batch, reading
JSON answers) is written once, here.

Each batch gets a label of its own, which a provider that can be asked later about what it took
(a Reconciler) sends with the batch, as a tag: an answer that never came is then asked about.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any

import requests
import urllib3
from urllib3 import encode_multipart_formdata

from mailer.delivery.base import (
    Backend,
    BackendError,
    Outcome,
    Outgoing,
    Result,
    Settled,
    label_prefix,
    unheard,
)
from mailer.render.message import HeaderInjection, MessageTemplate, header_safe

TEMPORARY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


@dataclass(frozen=True)
class Payload:
    """One request carrying a whole batch, as a provider wants it."""

    url: str
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    label: str = ""
    """The batch's label when the request carries it (the service can be asked about it)."""


def json_payload(url: str, value: Any, headers: dict[str, str], label: str = "") -> Payload:
    body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Payload(url, body, "application/json", headers, label)


def form_payload(
    url: str, fields: Sequence[tuple[str, str]], headers: dict[str, str], label: str = ""
) -> Payload:
    """multipart/form-data: a field may repeat (several `to`), and long HTML stays as it is
    instead of growing by percent-encoding."""
    body, content_type = encode_multipart_formdata(list(fields))
    return Payload(url, body, content_type, headers, label)


def batch_label(service: str) -> str:
    """A label no other batch has: `mailer-`, the service's name, `-` and 16 hex digits (a tag
    every service takes)."""
    return f"{label_prefix(service)}{secrets.token_hex(8)}"


def basic_auth(user: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {pair}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sender_address(template: MessageTemplate) -> tuple[str, str]:
    """(name, address) of the sender, as config.toml's `from` has it."""
    return parseaddr(template.sender.address)


def reply_address(template: MessageTemplate) -> tuple[str, str] | None:
    """(name, address) of Reply-To, or None when replies go to the sender."""
    return parseaddr(template.sender.reply_to) if template.sender.reply_to else None


def for_all(batch: Sequence[Outgoing], result: Result) -> list[Result]:
    return [result] * len(batch)


def json_answer(response: requests.Response) -> Any:
    """The answer's JSON, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def succeeded(response: requests.Response) -> bool:
    return 200 <= response.status_code < 300


def header_problem(outgoing: Outgoing) -> str:
    """Why this recipient cannot be put in a header (a line break in a name, address or URL),
    or "" when nothing is wrong."""
    person = outgoing.recipient
    try:
        header_safe(person.name, "the name")
        header_safe(person.email, "the address")
        header_safe(person.unsubscribe_url, "the unsubscribe URL")
        header_safe(outgoing.message_id, "the Message-ID")
    except HeaderInjection as error:
        return str(error)
    return ""


class Unanswered(Exception):
    """The whole request went and its answer did not come whole (a read time-out, a body cut
    short of its length): the service may have taken the batch, so it is not sent again."""


class HttpBackend(Backend):
    """Base of the provider backends: `post` raises BackendError for what fails the batch."""

    name = "http"
    batch_size = 1000
    credentials = "the API key"
    """Where the secret `post` sends comes from, for the message when it is refused."""

    def __init__(self, timeout: float = 30.0, connections: int = 4) -> None:
        self.timeout = timeout
        self.connections = connections
        self.session: requests.Session | None = None

    def open(self) -> None:
        self._opened()

    def _opened(self) -> requests.Session:
        if self.session is None:
            self.session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(
                pool_connections=self.connections, pool_maxsize=self.connections, max_retries=0
            )
            self.session.mount("https://", adapter)
            self.session.mount("http://", adapter)
        return self.session

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def send(
        self, template: MessageTemplate, batch: Sequence[Outgoing], settled: Settled = unheard
    ) -> list[Result]:
        """One request for the batch. A recipient whose name, address or links would forge a
        header is FAILED here and never reaches the service; the rest go in one request."""
        refusals = [header_problem(outgoing) for outgoing in batch]
        ready = [outgoing for outgoing, refusal in zip(batch, refusals, strict=True) if not refusal]
        answered: list[Result] = []
        if ready:
            payload = self.payload(template, ready, batch_label(self.name))
            try:
                answered = self.results(self.post(payload), ready)
            except Unanswered as error:
                answered = [
                    Result(
                        Outcome.UNCERTAIN,
                        message_id=outgoing.message_id,
                        reason=str(error),
                        batch=payload.label,
                    )
                    for outgoing in ready
                ]
            if len(answered) != len(ready):  # a provider module broke its contract
                raise RuntimeError(
                    f"{self.name}: {len(answered)} results for {len(ready)} messages"
                )
        given = iter(answered)
        results = [
            Result(Outcome.FAILED, reason=refusal) if refusal else next(given)
            for refusal in refusals
        ]
        for outgoing, result in zip(batch, results, strict=True):
            settled(outgoing, result)
        return results

    def payload(self, template: MessageTemplate, batch: Sequence[Outgoing], label: str) -> Payload:
        """The request that hands the whole batch to the service; with `label` when the service
        can be asked about the batch by it later."""
        raise NotImplementedError

    def results(self, response: requests.Response, batch: Sequence[Outgoing]) -> list[Result]:
        """One Result per recipient, in order, from an answer `post` did not raise for."""
        raise NotImplementedError

    def post(self, payload: Payload) -> requests.Response:
        """POST, returning the response unless the failure concerns the whole batch: a network
        error, a timeout, 429 or 5xx (temporary), refused credentials or a wrong address
        (permanent)."""
        session = self.session or self._opened()
        url = payload.url
        headers = {"Content-Type": payload.content_type, **payload.headers}
        try:
            response = session.post(url, data=payload.body, headers=headers, timeout=self.timeout)
        except requests.ReadTimeout:
            raise Unanswered(
                f"{self.name}: the whole request went to {url}, but no answer came within "
                f"{self.timeout:g} s"
            ) from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
            raise Unanswered(
                f"{self.name}: the whole request went to {url}, but the answer was cut short"
            ) from None
        except requests.Timeout:
            raise BackendError(
                f"{self.name}: no answer from {url} within {self.timeout:g} s", temporary=True
            ) from None
        except requests.ConnectionError as error:
            # requests reports a time-out in the middle of the answer's body as a connection
            # error: the request had gone whole all the same.
            if error.args and isinstance(error.args[0], urllib3.exceptions.ReadTimeoutError):
                raise Unanswered(
                    f"{self.name}: the whole request went to {url}, but its answer stopped "
                    f"coming for {self.timeout:g} s"
                ) from None
            raise BackendError(
                f"{self.name}: cannot reach {url}: {error}", temporary=True
            ) from None
        except requests.RequestException as error:
            raise BackendError(
                f"{self.name}: cannot reach {url}: {error}", temporary=True
            ) from None
        if response.status_code in TEMPORARY_STATUSES:
            raise BackendError(
                f"{self.name}: {url} answered {response.status_code} {_excerpt(response)}",
                temporary=True,
                retry_after=retry_after(response.headers.get("Retry-After")),
            )
        if response.status_code in (401, 403):
            raise BackendError(
                f"{self.name}: {url} refused the credentials ({response.status_code} "
                f"{_excerpt(response)}); check {self.credentials} in config.toml and the "
                "environment",
                temporary=False,
            )
        if response.status_code == 404:
            raise BackendError(
                f"{self.name}: {url} does not exist (404 {_excerpt(response)}); check the "
                "endpoint (and domain) in config.toml",
                temporary=False,
            )
        return response

    def ask(self, url: str, params: dict[str, str] | None, headers: dict[str, str]) -> Any:
        """GET a JSON answer from the service (a question, safe to repeat): BackendError for
        anything but a 2xx that is JSON."""
        session = self.session or self._opened()
        try:
            response = session.get(url, params=params, headers=headers, timeout=self.timeout)
        except requests.RequestException as error:
            raise BackendError(f"{self.name}: cannot ask {url}: {error}", temporary=True) from None
        if not succeeded(response):
            raise BackendError(
                f"{self.name}: {url} answered {response.status_code} {_excerpt(response)}",
                temporary=response.status_code in TEMPORARY_STATUSES,
                retry_after=retry_after(response.headers.get("Retry-After")),
            )
        answer = json_answer(response)
        if answer is None:
            raise BackendError(
                f"malformed answer from {self.name} at {url}: {_excerpt(response) or 'empty'}",
                temporary=False,
            )
        return answer

    def refused(self, response: requests.Response, reason: str = "") -> Result:
        """The service refused the message: FAILED, with its reason or the start of its answer."""
        because = reason or _excerpt(response) or response.reason
        return Result(
            Outcome.FAILED, reason=f"{self.name} answered {response.status_code}: {because}"
        )

    def malformed(self, response: requests.Response) -> Result:
        """An answer we cannot read: the message may or may not have gone, so it is FAILED
        (recorded, never retried, never taken for sent)."""
        return Result(
            Outcome.FAILED,
            reason=f"malformed answer from {self.name} ({response.status_code}): "
            f"{_excerpt(response) or 'empty'}",
        )


def _excerpt(response: requests.Response) -> str:
    return " ".join(response.text.split())[:300]
