"""Mailgun's Messages API: one POST per batch of up to 1,000 recipients.

Batch sending is `to` listing every recipient, comma-separated, plus `recipient-variables`, a
JSON object keyed by each plain address; `%recipient.KEY%` in the parts is replaced by that
recipient's KEY, and Mailgun sends every recipient a message of their own. A header whose value
is a recipient variable (`h:List-Unsubscribe: %recipient.list_unsubscribe%`) is filled in the
same way: Mailgun
documents recipient variables for the whole message, and django-anymail carries per-recipient
headers exactly so. Mailgun answers with one id for the whole batch and writes its own
Message-ID, so ours is not sent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import quote

import requests

from mailer.core.json_text import text_at
from mailer.delivery.base import Outcome, Outgoing, Result
from mailer.delivery.http import (
    HttpBackend,
    Payload,
    basic_auth,
    for_all,
    form_payload,
    json_answer,
    reply_address,
    sender_address,
    succeeded,
)
from mailer.render.message import MessageTemplate, idna_address, mailbox

UNSUBSCRIBE_VARIABLE = "list_unsubscribe"
"""The recipient variable holding the whole List-Unsubscribe value."""


def recipient_variable(variable: str) -> str:
    return f"%recipient.{variable}%"


class MailgunBackend(HttpBackend):
    name = "mailgun"
    batch_size = 1000
    credentials = "[delivery.mailgun] api_key"

    def __init__(
        self,
        endpoint: str,
        domain: str,
        api_key: str,
        timeout: float = 30.0,
        connections: int = 4,
    ) -> None:
        super().__init__(timeout, connections)
        self.url = f"{endpoint.rstrip('/')}/{quote(domain, safe='')}/messages"
        self.auth = basic_auth("api", api_key)

    def payload(self, template: MessageTemplate, batch: Sequence[Outgoing]) -> Payload:
        text, html = template.parts_with(recipient_variable)
        fields = [("from", mailbox(*sender_address(template), linesep=""))]
        # One `to` field listing everybody, as Mailgun allows: a form part per recipient costs
        # more to build than the rest of the request.
        fields.append(
            (
                "to",
                ", ".join(mailbox(o.recipient.name, o.recipient.email, linesep="") for o in batch),
            )
        )
        fields += [("subject", template.rendered.subject), ("text", text), ("html", html)]
        fields.append(("recipient-variables", json.dumps(recipient_variables(template, batch))))
        fields.append(("h:List-Unsubscribe", recipient_variable(UNSUBSCRIBE_VARIABLE)))
        fields += [(f"h:{name}", value) for name, value in template.shared_headers().items()]
        reply_to = reply_address(template)
        if reply_to:
            fields.append(("h:Reply-To", mailbox(*reply_to, linesep="")))
        return form_payload(self.url, fields, self.auth)

    def results(self, response: requests.Response, batch: Sequence[Outgoing]) -> list[Result]:
        answer = json_answer(response)
        if not succeeded(response):
            return for_all(batch, self.refused(response, text_at(answer, "message")))
        batch_id = text_at(answer, "id")
        if not batch_id:
            return for_all(batch, self.malformed(response))
        return for_all(batch, Result(Outcome.SENT, message_id=batch_id))


def recipient_variables(
    template: MessageTemplate, batch: Sequence[Outgoing]
) -> dict[str, dict[str, str]]:
    """Each recipient's personal values and List-Unsubscribe, keyed by the address as `to`
    writes it (domain in IDNA), which is how Mailgun matches them."""
    return {
        idna_address(o.recipient.email): {
            **template.personal_values(o.recipient),
            UNSUBSCRIBE_VARIABLE: template.list_headers(o.recipient)["List-Unsubscribe"],
        }
        for o in batch
    }
