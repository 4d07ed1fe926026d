"""Mailgun's Messages API: one POST per batch of up to 1,000 recipients.

Batch sending is `to` listing every recipient, comma-separated, plus `recipient-variables`, a
JSON object keyed by each plain address; `%recipient.KEY%` in the parts is replaced by that
recipient's KEY, and Mailgun sends every recipient a message of their own. A header whose value
is a recipient variable (`h:List-Unsubscribe: %recipient.list_unsubscribe%`) is filled in the
same way: Mailgun
documents recipient variables for the whole message, and django-anymail carries per-recipient
headers exactly so. Mailgun answers with one id for the whole batch and writes its own
Message-ID, so ours is not sent.

Each batch is tagged with its label (`o:tag`, and the user variable `v:mailer-batch`), so that a
batch whose answer never came can be looked up in Mailgun's events API afterwards: GET
/v3/<domain>/events filtered by that tag and by the events that mean Mailgun took a message
(`accepted`, `delivered`, `failed`), page after page (`paging.next`) until a page has no items.
Mailgun's own advice on polling is that its record of the last half hour may still be
incomplete, hence the half hour of `settle`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from mailer.core.json_text import text_at
from mailer.delivery.base import BackendError, Outcome, Outgoing, Reconciler, Result
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
BATCH_VARIABLE = "mailer-batch"
"""The user variable (`v:`) carrying the batch's label, beside its tag."""
TAKEN = ("accepted", "delivered", "failed")
"""The events saying that Mailgun took a message."""
PAGE = 300
"""Events per page: the most the events API gives."""
MOST_PAGES = 20
"""A batch of 1,000 recipients fills four pages of taking events; far more and the answer is not
about one batch."""


def recipient_variable(variable: str) -> str:
    return f"%recipient.{variable}%"


class MailgunBackend(HttpBackend, Reconciler):
    name = "mailgun"
    batch_size = 1000
    credentials = "[delivery.mailgun] api_key"
    settle = dt.timedelta(minutes=30)

    def __init__(
        self,
        endpoint: str,
        domain: str,
        api_key: str,
        timeout: float = 30.0,
        connections: int = 4,
    ) -> None:
        super().__init__(timeout, connections)
        domain_url = f"{endpoint.rstrip('/')}/{quote(domain, safe='')}"
        self.url = f"{domain_url}/messages"
        self.events_url = f"{domain_url}/events"
        self.auth = basic_auth("api", api_key)

    def payload(self, template: MessageTemplate, batch: Sequence[Outgoing], label: str) -> Payload:
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
        fields += [("o:tag", label), (f"v:{BATCH_VARIABLE}", label)]
        return form_payload(self.url, fields, self.auth, label)

    def results(self, response: requests.Response, batch: Sequence[Outgoing]) -> list[Result]:
        answer = json_answer(response)
        if not succeeded(response):
            return for_all(batch, self.refused(response, text_at(answer, "message")))
        batch_id = text_at(answer, "id")
        if not batch_id:
            return for_all(batch, self.malformed(response))
        return for_all(batch, Result(Outcome.SENT, message_id=batch_id))

    def accepted(self, batch: str, addresses: Sequence[str]) -> set[str]:
        by_address = {idna_address(address).lower(): address for address in addresses}
        taken: set[str] = set()
        url = self.events_url
        taking = " OR ".join(TAKEN)  # a filter expression of the events API
        params: dict[str, str] | None = {"tags": batch, "event": taking, "limit": str(PAGE)}
        for _ in range(MOST_PAGES):
            answer = self.ask(url, params, self.auth)
            items = answer.get("items") if isinstance(answer, dict) else None
            if not isinstance(items, list):
                raise BackendError(
                    f"malformed answer from mailgun's events API: {str(answer)[:200]}",
                    temporary=False,
                )
            if not items:
                return taken
            recipients = (_taken_by(event, batch) for event in items)
            taken.update(by_address[r] for r in recipients if r in by_address)
            url, params = self._next_page(answer), None
        raise BackendError(
            f"mailgun's events API gave more than {MOST_PAGES} pages for batch {batch}",
            temporary=False,
        )

    def _next_page(self, answer: Any) -> str:
        """The next page's URL, which must be on the events API itself: the key goes with it."""
        url = text_at(answer, "paging", "next")
        if urlsplit(url)[:3] != urlsplit(self.events_url)[:3]:
            raise BackendError(
                f"mailgun's events API gave a next page elsewhere ({url[:200]!r}): not followed",
                temporary=False,
            )
        return url


def _taken_by(event: Any, batch: str) -> str:
    """The recipient (lower case) of an event saying Mailgun took a message of `batch`, or ""
    for any other event (the filter is checked again: a wrong "sent" would lose somebody)."""
    tags = event.get("tags") if isinstance(event, dict) else None
    ours = (isinstance(tags, list) and batch in tags) or text_at(
        event, "user-variables", BATCH_VARIABLE
    ) == batch
    if not ours or text_at(event, "event") not in TAKEN:
        return ""
    return text_at(event, "recipient").lower()


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
