"""Postmark's batch API: one POST to /email/batch per batch of up to 500 messages.

/email/batch substitutes nothing, so each message is filled in for its recipient here. Postmark
answers 200 even when some messages are refused, with one result per message in request order,
so every result is checked: ErrorCode 0 is sent, 406 an inactive recipient (a hard bounce or a
spam complaint, so the subscriber is marked bounced), anything else fails that message alone.
A 422 refuses the whole request.

Every message of a batch carries the batch's label as its `Tag`, so that a batch whose answer
never came can be looked up afterwards in Postmark's outbound message search (GET
/messages/outbound?tag=…&count=…&offset=…): a message found there is one Postmark took. Nothing
in Postmark's documentation says how soon a message is searchable; mailer waits half an hour
(`settle`) before it takes a recipient Postmark does not know for one it never had.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import requests

from mailer.core.json_text import text_at
from mailer.delivery.base import BackendError, Outcome, Outgoing, Reconciler, Result
from mailer.delivery.http import (
    HttpBackend,
    Payload,
    for_all,
    json_answer,
    json_payload,
    reply_address,
    sender_address,
    succeeded,
)
from mailer.render.message import MessageTemplate, idna_address, mailbox

INACTIVE_RECIPIENT = 406
PAGE = 500
"""Messages per page of the search: the most it gives, as many as a batch holds."""


class PostmarkBackend(HttpBackend, Reconciler):
    name = "postmark"
    batch_size = 500
    credentials = "[delivery.postmark] server_token"
    settle = dt.timedelta(minutes=30)

    def __init__(
        self,
        endpoint: str,
        server_token: str,
        message_stream: str = "broadcast",
        timeout: float = 30.0,
        connections: int = 4,
    ) -> None:
        super().__init__(timeout, connections)
        self.url = f"{endpoint.rstrip('/')}/email/batch"
        self.search_url = f"{endpoint.rstrip('/')}/messages/outbound"
        self.auth = {"X-Postmark-Server-Token": server_token, "Accept": "application/json"}
        self.message_stream = message_stream

    def payload(self, template: MessageTemplate, batch: Sequence[Outgoing], label: str) -> Payload:
        shared: dict[str, Any] = {
            "From": mailbox(*sender_address(template), linesep=""),
            "Subject": template.rendered.subject,
            "MessageStream": self.message_stream,
            "Tag": label,
        }
        reply_to = reply_address(template)
        if reply_to:
            shared["ReplyTo"] = mailbox(*reply_to, linesep="")
        messages = []
        for outgoing in batch:
            recipient = outgoing.recipient
            text, html = template.personal_parts(recipient)
            headers = template.list_headers(recipient)
            messages.append(
                {
                    **shared,
                    "To": mailbox(recipient.name, recipient.email, linesep=""),
                    "TextBody": text,
                    "HtmlBody": html,
                    "Headers": [{"Name": name, "Value": value} for name, value in headers.items()],
                }
            )
        return json_payload(self.url, messages, self.auth, label)

    def results(self, response: requests.Response, batch: Sequence[Outgoing]) -> list[Result]:
        answer = json_answer(response)
        if not succeeded(response):
            return for_all(batch, self.refused(response, error(answer)))
        if not isinstance(answer, list) or len(answer) != len(batch):
            return for_all(batch, self.malformed(response))
        return [self.result(response, one) for one in answer]

    def result(self, response: requests.Response, one: Any) -> Result:
        """One message's result from the batch answer."""
        code = one.get("ErrorCode") if isinstance(one, dict) else None
        if not isinstance(code, int):
            return self.malformed(response)
        if code == 0:
            message_id = text_at(one, "MessageID")
            if not message_id:
                return self.malformed(response)
            return Result(Outcome.SENT, message_id=message_id)
        if code == INACTIVE_RECIPIENT:
            return Result(Outcome.BOUNCED, reason=text_at(one, "Message"))
        return Result(Outcome.FAILED, reason=error(one))

    def accepted(self, batch: str, addresses: Sequence[str]) -> set[str]:
        by_address = {idna_address(address).lower(): address for address in addresses}
        taken: set[str] = set()
        offset = 0
        while True:
            params = {"tag": batch, "count": str(PAGE), "offset": str(offset)}
            answer = self.ask(self.search_url, params, self.auth)
            found = answer.get("Messages") if isinstance(answer, dict) else None
            total = answer.get("TotalCount") if isinstance(answer, dict) else None
            if not isinstance(found, list) or not isinstance(total, int):
                raise BackendError(
                    f"malformed answer from postmark's message search: {str(answer)[:200]}",
                    temporary=False,
                )
            for message in found:
                taken.update(by_address[r] for r in _recipients(message, batch) if r in by_address)
            offset += PAGE
            if not found or offset >= total:
                return taken


def error(answer: Any) -> str:
    """`ErrorCode: Message` from a Postmark error object, or "" when it is not one."""
    if isinstance(answer, dict) and "ErrorCode" in answer:
        return f"{answer['ErrorCode']}: {text_at(answer, 'Message')}"
    return ""


def _recipients(message: Any, batch: str) -> list[str]:
    """The recipients (lower case) of a message the search found, if it is of `batch` (the
    filter is checked again: a wrong "sent" would lose somebody)."""
    if not isinstance(message, dict) or text_at(message, "Tag") != batch:
        return []
    recipients = message.get("Recipients")
    if not isinstance(recipients, list):
        return []
    return [r.lower() for r in recipients if isinstance(r, str)]
