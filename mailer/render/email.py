"""An issue rendered once: Jinja2 runs here, and the CSS inliner (render.inlining) is called from
here alone.

What differs between subscribers (name, address, unsubscribe and preferences links) is left in the
HTML and text as placeholders, made of characters the HTML parser behind premailer leaves alone and
carrying a random marker so that no commentary text can ever look like one.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mailer.content.commentary import Commentary, Issue
from mailer.core.config import DIGEST_SUBJECT, NewsletterSettings
from mailer.core.errors import Problem
from mailer.render import i18n
from mailer.render.furniture import Furniture
from mailer.render.inlining import inline_css, inlined_size_at_most
from mailer.render.theme import Theme

PERSONAL_FIELDS = ("name", "email", "unsubscribe_url", "preferences_url")
GMAIL_CLIP_BYTES = 100 * 1024
"""Gmail clips a message's HTML at about 102 KB; we warn before that."""


@dataclass(frozen=True)
class RenderedMessage:
    """A message's subject, HTML and plain text, with placeholders for personal fields."""

    subject: str
    html: str
    text: str
    marker: str

    def placeholder(self, field: str) -> str:
        return _placeholder(self.marker, field)

    @property
    def placeholder_pattern(self) -> re.Pattern[str]:
        fields = "|".join(PERSONAL_FIELDS)
        return re.compile(f"{self.marker}({fields})x")


@dataclass(frozen=True)
class RenderedIssue(RenderedMessage):
    """The issue's subject, inlined HTML and plain text, with placeholders for personal fields."""

    issue: Issue

    def size_warning(self) -> Problem | None:
        return _size_warning(self.issue, len(self.html.encode("utf-8")))


def _size_warning(issue: Issue, size: int) -> Problem | None:
    """The warning of an issue whose inlined HTML is `size` bytes, if Gmail would clip it."""
    if size <= GMAIL_CLIP_BYTES:
        return None
    return Problem(
        issue.lead.path,
        None,
        f"the HTML email is {size / 1024:.0f} KB; Gmail clips messages over about 102 KB, "
        "hiding the end and the unsubscribe link: shorten the commentary",
        warning=True,
    )


def _placeholder(marker: str, field: str) -> str:
    """A personal field in rendered text: letters and digits only, which the HTML parser
    behind premailer leaves alone (it would percent-encode braces or spaces in a link)."""
    return f"{marker}{field}x"


class _Placeholders:
    """What the templates see as `recipient`: every personal field is its placeholder."""

    def __init__(self, marker: str) -> None:
        for field in PERSONAL_FIELDS:
            setattr(self, field, _placeholder(marker, field))


def render_issue(
    issue: Issue, theme: Theme, newsletter: NewsletterSettings, furniture: Furniture
) -> RenderedIssue:
    marker = "mlr" + secrets.token_hex(6)
    html, text = issue_parts(issue, theme, newsletter, furniture, marker)
    return RenderedIssue(
        issue=issue, subject=issue.subject, html=inline_css(html), text=text, marker=marker
    )


def issue_size_warning(
    issue: Issue, theme: Theme, newsletter: NewsletterSettings, furniture: Furniture
) -> Problem | None:
    """What `render_issue(...).size_warning()` says, with the same template errors raised, but
    inlining the CSS only when the email could be too large without it telling otherwise
    (`inlined_size_at_most`): `mailer check` of thousands of commentaries inlines almost none."""
    marker = "mlr" + secrets.token_hex(6)
    html, _text = issue_parts(issue, theme, newsletter, furniture, marker)
    if inlined_size_at_most(html) <= GMAIL_CLIP_BYTES:
        return None
    return _size_warning(issue, len(inline_css(html).encode("utf-8")))


def issue_parts(
    issue: Issue,
    theme: Theme,
    newsletter: NewsletterSettings,
    furniture: Furniture,
    marker: str,
    recipient: object = None,
) -> tuple[str, str]:
    """The issue's HTML before its CSS is inlined, and its plain text: each personal field the
    marker's placeholder, or `recipient`'s own value (one reader's whole message, rendered as a
    naive sender would per reader: the baseline of benchmarks/build_messages.py)."""
    context = {
        "newsletter": newsletter,
        "issue": issue,
        "lead": issue.lead,
        "furniture": furniture,
        "view_url": issue.lead.archive_url,
        "recipient": recipient or _Placeholders(marker),
        "css": theme.source("email.css"),
        "dark_css": theme.source("email-dark.css"),
    }
    language = issue.lead.language
    html = theme.render("email.html", language=language, **context)
    text = theme.render("email.txt", language=language, **context)
    return html, text


def render_confirmation(
    theme: Theme,
    newsletter: NewsletterSettings,
    confirm_url: str,
    lists: Sequence[str],
    valid_days: int,
    language: str = "",
) -> RenderedMessage:
    """The message asking someone to confirm a subscription (double opt-in): a text and an HTML
    part with the confirmation link, in `language` (theirs; default: the newsletter's)."""
    speaking = i18n.language(language or newsletter.language)
    return _personal_message(
        theme,
        "confirm_email",
        speaking.gettext("Confirm your subscription to %(newsletter)s")
        % {"newsletter": newsletter.name},
        speaking.code,
        newsletter=newsletter,
        confirm_url=confirm_url,
        lists=list(lists),
        valid_days=valid_days,
    )


def render_preferences_link(
    theme: Theme, newsletter: NewsletterSettings, preferences_url: str, language: str = ""
) -> RenderedMessage:
    """The message that answers someone who asked for their preferences link again, in
    `language` (theirs; default: the newsletter's)."""
    speaking = i18n.language(language or newsletter.language)
    return _personal_message(
        theme,
        "preferences_email",
        speaking.gettext("Your preferences link for %(newsletter)s")
        % {"newsletter": newsletter.name},
        speaking.code,
        newsletter=newsletter,
        preferences_url=preferences_url,
    )


def digest_subject(
    newsletter: NewsletterSettings, template: str, lead: Commentary, count: int
) -> str:
    """The digest's subject line, [schedule] digest_subject filled in; left at its default, it
    is said in the language of the digest's lead (with the singular for one commentary)."""
    if template == DIGEST_SUBJECT:
        template = i18n.language(lead.language).ngettext(
            "{name}: {count} commentary this week", "{name}: {count} commentaries this week", count
        )
    return template.format(name=newsletter.name, title=lead.title, count=count)


def render_welcome(
    theme: Theme, newsletter: NewsletterSettings, language: str = ""
) -> RenderedMessage:
    """The welcome email a subscriber receives once they confirmed, in `language` (theirs;
    default: the newsletter's): rendered once for a campaign of them, their links left as
    placeholders."""
    speaking = i18n.language(language or newsletter.language)
    marker = "mlr" + secrets.token_hex(6)
    context: dict[str, Any] = {
        "newsletter": newsletter,
        "recipient": _Placeholders(marker),
        "archive_url": f"{newsletter.site_url}archive/",
    }
    code = speaking.code
    return RenderedMessage(
        subject=speaking.gettext("Welcome to %(newsletter)s") % {"newsletter": newsletter.name},
        html=theme.render("welcome_email.html", language=code, language_code=code, **context),
        text=theme.render("welcome_email.txt", language=code, **context),
        marker=marker,
    )


def _personal_message(
    theme: Theme, template: str, subject: str, language: str, **context: Any
) -> RenderedMessage:
    """A message made for one person from the theme's `<template>.html` and `.txt`, in
    `language`: it needs no placeholders, and its HTML carries its few styles inline already."""
    return RenderedMessage(
        subject=subject,
        html=theme.render(f"{template}.html", language=language, language_code=language, **context),
        text=theme.render(f"{template}.txt", language=language, **context),
        marker="mlr" + secrets.token_hex(6),
    )
