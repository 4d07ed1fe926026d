"""The expected output, byte for byte: one email (headers, text, HTML) and the three feeds.

When the theme or a feed changes on purpose, regenerate with
`pytest tests/test_golden.py --update-golden` and review `git diff tests/golden`.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailer.render.message import MessageTemplate, Recipient
from tests.conftest import Folder

GOLDEN = Path(__file__).parent / "golden"
SENT_AT = 1_760_000_000.0  # 2025-10-09T08:53:20Z
READER = Recipient(
    email="reader@example.org",
    name="Reader",
    unsubscribe_url="https://www.example.org/commentaries/unsubscribe/GOLDEN-UNSUBSCRIBE",
    preferences_url="https://www.example.org/commentaries/preferences/GOLDEN-PREFERENCES",
)


def compare(name: str, actual: bytes, update: bool) -> None:
    path = GOLDEN / name
    if update:
        path.write_bytes(actual)
        return
    assert path.exists(), f"{path} is missing: run pytest {__file__} --update-golden"
    assert actual.decode("utf-8") == path.read_text(encoding="utf-8"), (
        f"{name} differs from the golden file; if the change is intended, run "
        "pytest tests/test_golden.py --update-golden and review git diff tests/golden"
    )


def golden_message(folder: Folder) -> bytes:
    newsletter = folder.newsletter()
    rendered = newsletter.render(
        newsletter.issue(["stalemate-to-escalation", "mediterranean-energy"])
    )
    compiled = MessageTemplate(
        rendered, newsletter.sender("commentaries"), clock=lambda: SENT_AT, unique=lambda: "golden"
    )
    return compiled.personalise(READER)


def test_the_email_matches_its_golden_files(folder: Folder, update_golden: bool) -> None:
    data = golden_message(folder)
    head = data.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    parts = {}
    for subtype in ("plain", "html"):
        body = message.get_body((subtype,))
        assert isinstance(body, EmailMessage)
        parts[subtype] = body.get_content().replace("\r\n", "\n").encode("utf-8")
    compare("email.headers", head.replace(b"\r\n", b"\n"), update_golden)
    compare("email.txt", parts["plain"], update_golden)
    compare("email.html", parts["html"], update_golden)


@pytest.mark.parametrize("name", ["rss.xml", "atom.xml", "feed.json"])
def test_the_feeds_match_their_golden_files(folder: Folder, update_golden: bool, name: str) -> None:
    newsletter = folder.newsletter()
    files = dict(newsletter.render_files(newsletter.commentaries()))
    compare(name, files[name], update_golden)
