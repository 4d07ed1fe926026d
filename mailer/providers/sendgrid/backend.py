"""SendGrid's v3 Mail Send API: one POST per batch of up to 1,000 personalizations.

Each recipient is a personalization of their own: `to`, the `substitutions` that fill the
substitution tags (`-field-`) of the content, and their List-Unsubscribe in `headers`. The
headers every recipient shares go once at the top, beside `reply_to` (Reply-To is a header
SendGrid reserves). `content` lists text/plain before text/html, as SendGrid requires.
SendGrid answers 202 with the batch's id in X-Message-Id, and writes its own Message-ID.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import requests

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
from mailer.render.message import MessageTemplate, Recipient, idna_address


def tag(field: str) -> str:
    """SendGrid's substitution tag for a field, as its documentation writes them."""
    return f"-{field}-"


def email_object(name: str, address: str) -> dict[str, str]:
    found = {"email": idna_address(address)}
    if name:
        found["name"] = name
    return found


class SendgridBackend(HttpBackend):
    name = "sendgrid"
    batch_size = 1000
    credentials = "[delivery.sendgrid] api_key"

    def __init__(
        self, endpoint: str, api_key: str, timeout: float = 30.0, connections: int = 4
    ) -> None:
        super().__init__(timeout, connections)
        self.url = f"{endpoint.rstrip('/')}/mail/send"
        self.auth = bearer(api_key)

    def payload(self, template: MessageTemplate, batch: Sequence[Outgoing], label: str) -> Payload:
        # Nothing asks the service about a batch afterwards: the label is not sent.
        text, html = template.parts_with(tag)
        body: dict[str, Any] = {
            "personalizations": [personalization(template, o.recipient) for o in batch],
            "from": email_object(*sender_address(template)),
            "subject": template.rendered.subject,
            "content": [
                {"type": "text/plain", "value": text},
                {"type": "text/html", "value": html},
            ],
            "headers": template.shared_headers(),
        }
        reply_to = reply_address(template)
        if reply_to:
            body["reply_to"] = email_object(*reply_to)
        return json_payload(self.url, body, self.auth)

    def results(self, response: requests.Response, batch: Sequence[Outgoing]) -> list[Result]:
        if succeeded(response):
            batch_id = response.headers.get("X-Message-Id", "")
            return [Result(Outcome.SENT, message_id=batch_id or o.message_id) for o in batch]
        answer = json_answer(response)
        errors = answer.get("errors") if isinstance(answer, dict) else None
        messages = [
            str(error["message"])
            for error in (errors if isinstance(errors, list) else [])
            if isinstance(error, dict) and error.get("message")
        ]
        return for_all(batch, self.refused(response, "; ".join(messages)))


def personalization(template: MessageTemplate, recipient: Recipient) -> dict[str, Any]:
    values = template.personal_values(recipient)
    return {
        "to": [email_object(recipient.name, recipient.email)],
        "substitutions": {tag(field): value for field, value in values.items()},
        "headers": {"List-Unsubscribe": template.list_headers(recipient)["List-Unsubscribe"]},
    }
