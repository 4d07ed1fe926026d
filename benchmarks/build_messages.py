"""Building complete personalised messages: mailer's way against the naive way, same run.

mailer renders and inlines the issue once, then per recipient signs two links and splices the
personal values into pre-encoded parts. The naive way runs Jinja2, premailer and the email
package for every recipient. Both make the bytes a subscriber receives, for the repository's
longest example commentary, on one core.

    python benchmarks/build_messages.py [--recipients 20000] [--naive 60]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path

from mailer.app.newsletter import Newsletter
from mailer.render.email import issue_parts
from mailer.render.inlining import inline_css

REPOSITORY = Path(__file__).resolve().parent.parent


def newsletter() -> Newsletter:
    os.environ.setdefault("MAILER_SECRET", "benchmark-secret-0123456789")
    return Newsletter.load(REPOSITORY / "config.example.toml")


LINK_SECRET = "0123456789abcdef0123456789abcdef"
"""As long as a subscriber's own (schema.new_link_secret), so that signing costs the same."""


def longest_slug(letter: Newsletter) -> str:
    published = letter.commentaries().published()
    return max(published, key=lambda c: len(c.text)).slug


def fast(letter: Newsletter, slug: str, count: int) -> float:
    issue = letter.issue([slug])
    started = time.perf_counter()
    template = letter.message_template(letter.render(issue), "commentaries")
    for number in range(count):
        recipient = letter.recipient(
            number, LINK_SECRET, f"reader{number}@example.org", f"Reader {number}"
        )
        template.personalise(recipient)
    return count / (time.perf_counter() - started)


def naive(letter: Newsletter, slug: str, count: int) -> float:
    issue = letter.issue([slug])
    theme, settings, furniture = letter.theme, letter.config.newsletter, letter.furniture
    started = time.perf_counter()
    for number in range(count):
        recipient = letter.recipient(
            number, LINK_SECRET, f"reader{number}@example.org", f"Reader {number}"
        )
        html, text = issue_parts(issue, theme, settings, furniture, "", recipient)
        html = inline_css(html)
        message = EmailMessage(policy=SMTP)
        message["From"] = settings.sender
        message["To"] = f"{recipient.name} <{recipient.email}>"
        message["Subject"] = issue.subject
        message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
        message["Message-ID"] = make_msgid(domain="example.org")
        message["List-Unsubscribe"] = f"<{recipient.unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        message.as_bytes()
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--naive", type=int, default=60)
    args = parser.parse_args()
    letter = newsletter()
    slug = longest_slug(letter)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(
        f"commentary: {slug} ({len(letter.commentaries().issue([slug]).lead.text.split())} words)"
    )
    naive_rate = naive(letter, slug, args.naive)
    fast_rate = fast(letter, slug, args.recipients)
    print(f"naive (Jinja2 + premailer + EmailMessage per recipient): {naive_rate:,.0f} messages/s")
    print(f"mailer (render once, personalise per recipient):       {fast_rate:,.0f} messages/s")
    print(f"ratio: {fast_rate / naive_rate:,.0f}x")


if __name__ == "__main__":
    main()
