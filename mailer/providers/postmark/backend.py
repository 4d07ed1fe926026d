"""Postmark's batch API: one POST to /email/batch per batch of up to 500 messages.

/email/batch substitutes nothing, so each message is filled in for its recipient here. Postmark
answers 200 even when some messages are refused, with one result per message in request order,
so every result is checked: ErrorCode 0 is sent, 406 an inactive recipient (a hard bounce or a
spam complaint, so the subscriber is marked bounced), anything else fails that message alone.
A 422 refuses the whole request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import requests

from mailer.core.json_text import text_at
from mailer.delivery.base import Outcome, Outgoing, Result
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
from mailer.render.message import MessageTemplate, mailbox

INACTIVE_RECIPIENT = 406


class PostmarkBackend(HttpBackend):
    name = "postmark"
    batch_size = 500
    credentials = "[delivery.postmark] server_token"

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
        self.auth = {"X-Postmark-Server-Token": server_token, "Accept": "application/json"}
        self.message_stream = message_stream

    def payload(self, template: MessageTemplate, batch: Sequence[Outgoing]) -> Payload:
        shared: dict[str, Any] = {
            "From": mailbox(*sender_address(template), linesep=""),
            "Subject": template.rendered.subject,
            "MessageStream": self.message_stream,
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
        return json_payload(self.url, messages, self.auth)

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


def error(answer: Any) -> str:
    """`ErrorCode: Message` from a Postmark error object, or "" when it is not one."""
    if isinstance(answer, dict) and "ErrorCode" in answer:
        return f"{answer['ErrorCode']}: {text_at(answer, 'Message')}"
    return ""
