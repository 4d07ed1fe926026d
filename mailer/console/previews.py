"""What a subscriber receives, made by the same renderer as `mailer send` and `mailer preview`,
and the checks that matter before sending it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import cast

from mailer.app.newsletter import Newsletter
from mailer.content.commentary import Commentary, Issue
from mailer.render.email import GMAIL_CLIP_BYTES
from mailer.render.message import MessageTemplate, Recipient

TEST_MARK = "[Test] "
"""Starts the subject of a test message, so that nobody takes it for the issue."""


@dataclass(frozen=True)
class Check:
    passed: bool
    text: str


@dataclass(frozen=True)
class Email:
    subject: str
    html: str
    text: str
    headers: list[tuple[str, str]]
    template: MessageTemplate


def email_of(
    newsletter: Newsletter, commentary: Commentary, recipient: Recipient, test: bool = False
) -> Email:
    """The issue of this commentary as `recipient` receives it (a test: marked in the subject)."""
    rendered = newsletter.render(Issue((commentary,)))
    if test:
        rendered = dataclasses.replace(rendered, subject=TEST_MARK + rendered.subject)
    template = newsletter.message_template(rendered, newsletter.config.delivery.list)
    message = email.message_from_bytes(template.personalise(recipient), policy=email.policy.default)
    return Email(
        subject=rendered.subject,
        html=_part(message, "html"),
        text=_part(message, "plain"),
        headers=[(name, str(value)) for name, value in message.items()],
        template=template,
    )


def _part(message: EmailMessage, subtype: str) -> str:
    body = message.get_body(preferencelist=(subtype,))
    return str(cast(EmailMessage, body).get_content()) if body is not None else ""


class _Links(HTMLParser):
    """The images and links of the email's HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.images_without_alt: list[str] = []
        self.plain_links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img" and not (values.get("alt") or "").strip():
            self.images_without_alt.append(values.get("src") or "")
        for name in ("href", "src"):
            if (values.get(name) or "").startswith("http://"):
                self.plain_links.append(values[name] or "")


def checks(preview: Email, commentary: Commentary, now: dt.datetime) -> list[Check]:
    size = len(preview.html.encode("utf-8"))
    found = _Links()
    found.feed(preview.html)
    result = [
        Check(
            size <= GMAIL_CLIP_BYTES,
            f"The HTML is {size / 1024:.0f} KB; Gmail clips messages over about 102 KB.",
        ),
        Check(
            not found.images_without_alt,
            "Every image has a description."
            if not found.images_without_alt
            else "Images without a description: " + ", ".join(found.images_without_alt),
        ),
        Check(
            not found.plain_links,
            "Every link uses https."
            if not found.plain_links
            else "Links that are not https: " + ", ".join(sorted(set(found.plain_links))),
        ),
    ]
    if commentary.pdf:
        result.append(
            Check(
                bool(commentary.pdf_size),
                "The PDF's size is known."
                if commentary.pdf_size
                else "The PDF's size is missing: set pdf_size, or the email cannot show it.",
            )
        )
    if commentary.draft:
        result.append(Check(False, "This is a draft: untick Draft before it can be sent."))
    embargoed = commentary.date > now
    result.append(
        Check(
            not embargoed,
            f"Embargoed until {commentary.date:%Y-%m-%d %H:%M %Z}."
            if embargoed
            else "Not under embargo.",
        )
    )
    return result
