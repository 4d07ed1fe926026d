"""The `http` backend: mailer's own JSON batch format, for any service that accepts it.

The format is documented in docs/http-backend.md: the parts once with `{{field}}` placeholders,
then every recipient with their values and headers; the answer gives a status per recipient.
Requests carry a bearer token, an HMAC-SHA256 signature of timestamp and body, or both.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import time
from collections.abc import Sequence
from typing import Any

import requests

from mailer.core.json_text import text_at
from mailer.delivery.base import Outcome, Outgoing, Result
from mailer.delivery.http import (
    HttpBackend,
    Payload,
    bearer,
    for_all,
    json_answer,
    json_payload,
    reply_address,
    sender_address,
    succeeded,
)
from mailer.render.message import MessageTemplate

STATUSES = {
    "sent": Outcome.SENT,
    "retry": Outcome.RETRY,
    "failed": Outcome.FAILED,
    "bounced": Outcome.BOUNCED,
}


def variable(field: str) -> str:
    return "{{" + field + "}}"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=` and the hex HMAC-SHA256, keyed with the secret, of `<timestamp>.<body>`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def contact(name: str, address: str) -> dict[str, str]:
    return {"email": address, "name": name}


class GenericHttpBackend(HttpBackend):
    name = "http"
    batch_size = 1000
    credentials = "[delivery.http] token and signing_secret"

    def __init__(
        self,
        url: str,
        token: str = "",
        signing_secret: str = "",
        timeout: float = 30.0,
        connections: int = 4,
    ) -> None:
        super().__init__(timeout, connections)
        self.url = url
        self.auth = bearer(token) if token else {}
        self.signing_secret = signing_secret

    def payload(self, template: MessageTemplate, batch: Sequence[Outgoing], label: str) -> Payload:
        # Nothing asks the service about a batch afterwards: the label is not sent.
        text, html = template.parts_with(variable)
        reply_to = reply_address(template)
        body = {
            "from": contact(*sender_address(template)),
            "reply_to": contact(*reply_to) if reply_to else None,
            "subject": template.rendered.subject,
            "text": text,
            "html": html,
            "headers": template.shared_headers(),
            "recipients": [
                {
                    "email": o.recipient.email,
                    "name": o.recipient.name,
                    "message_id": o.message_id,
                    "variables": template.personal_values(o.recipient),
                    "headers": {
                        "List-Unsubscribe": template.list_headers(o.recipient)["List-Unsubscribe"]
                    },
                }
                for o in batch
            ],
        }
        payload = json_payload(self.url, body, self.auth)
        if not self.signing_secret:
            return payload
        timestamp = str(int(time.time()))
        signed = {
            "X-Mailer-Timestamp": timestamp,
            "X-Mailer-Signature": signature(self.signing_secret, timestamp, payload.body),
        }
        return dataclasses.replace(payload, headers={**payload.headers, **signed})

    def results(self, response: requests.Response, batch: Sequence[Outgoing]) -> list[Result]:
        answer = json_answer(response)
        if not succeeded(response):
            return for_all(batch, self.refused(response, text_at(answer, "error")))
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list) or len(results) != len(batch):
            return for_all(batch, self.malformed(response))
        return [
            self.result(response, one, outgoing)
            for one, outgoing in zip(results, batch, strict=True)
        ]

    def result(self, response: requests.Response, one: Any, outgoing: Outgoing) -> Result:
        """One recipient's result; one that names another address or an unknown status is
        malformed, and so FAILED."""
        status = text_at(one, "status")
        if status not in STATUSES:
            return self.malformed(response)
        if text_at(one, "email").casefold() != outgoing.recipient.email.casefold():
            return self.malformed(response)
        outcome = STATUSES[status]
        reason = text_at(one, "reason")
        if outcome is Outcome.SENT:
            return Result(outcome, message_id=text_at(one, "id") or outgoing.message_id)
        wait = one.get("retry_after")
        if (
            outcome is Outcome.RETRY
            and isinstance(wait, int | float)
            and not isinstance(wait, bool)
        ):
            return Result(outcome, reason=reason, retry_after=max(0.0, float(wait)))
        return Result(outcome, reason=reason)
