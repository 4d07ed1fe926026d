"""A subscriber's whole path in a real browser (headless Chromium) against a real server:
subscribe on the form, confirm from the message in the outbox, receive an issue, unsubscribe
from its link. The database shows each step.
"""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from pathlib import Path

from mailer.core.addresses import Candidate
from mailer.core.lifecycle import Reason, Status
from mailer.web import create_app
from mailer.web.service import EXTENSION
from tests.conftest import Folder, Run, png
from tests.test_browser import CONTRAST, CONTRASTS, chromium
from tests.web_server import serving

SITE = "https://www.example.org"
ADDRESS = "grace.hopper@example.org"


def messages_to(folder: Folder, address: str) -> list[EmailMessage]:
    found = []
    for path in sorted((folder.path / "outbox").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        if message["To"].addresses[0].addr_spec == address:
            found.append(message)
    return found


def test_subscribe_confirm_and_unsubscribe_in_a_browser(
    folder: Folder, run: Run, tmp_path: Path
) -> None:
    newsletter = folder.newsletter()
    subscribers = newsletter.store.subscribers
    app = create_app(newsletter)

    with serving(app) as base, chromium() as browser:
        page = browser.new_page()
        page.goto(f"{base}/commentaries/subscribe")
        trap = page.locator("#website").bounding_box()  # the honeypot is out of sight
        assert trap is None or trap["x"] + trap["width"] <= 0
        page.fill("#email", ADDRESS)
        page.fill("#name", "Grace Hopper")
        page.click("button[type=submit]")
        page.wait_for_selector("text=Check your inbox")
        assert app.extensions[EXTENSION].signups.drain(60) == 0  # recorded, message sent
        grace = subscribers.find(ADDRESS)
        assert grace is not None and grace.status == Status.PENDING

        (confirmation,) = messages_to(folder, ADDRESS)
        text = confirmation.get_body(("plain",))
        assert text is not None
        link = re.search(r"https://\S+/confirm/\S+", str(text.get_content()))
        assert link
        page.goto(link[0].replace(SITE, base))
        page.wait_for_selector("text=Confirm your subscription")
        assert subscribers.get(grace.id).status == Status.PENDING  # type: ignore[union-attr]
        page.keyboard.press("Tab")  # the button is reached and pressed from the keyboard
        while page.evaluate("document.activeElement.tagName") != "BUTTON":
            page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        page.wait_for_selector("text=You are subscribed")
        assert subscribers.get(grace.id).status == Status.ACTIVE  # type: ignore[union-attr]

        sent = run("send", "--yes")
        assert sent.exit_code == 0, sent.output
        (issue,) = [
            m for m in messages_to(folder, ADDRESS) if m["Subject"] != confirmation["Subject"]
        ]
        header = re.fullmatch(r"<(https://[^>]+)>", str(issue["List-Unsubscribe"]))
        assert header
        html = issue.get_body(("html",))
        assert html is not None and header[1] in str(html.get_content())

        page.goto(header[1].replace(SITE, base))
        page.wait_for_selector("text=Stop sending")
        assert subscribers.get(grace.id).status == Status.ACTIVE  # type: ignore[union-attr]
        page.click("button:has-text('Unsubscribe')")
        page.wait_for_selector("text=You are unsubscribed")

    after = subscribers.get(grace.id)
    assert after is not None and after.status == Status.UNSUBSCRIBED
    steps = [(c.old_status, c.new_status, c.reason) for c in subscribers.history(grace.id)]
    assert steps == [
        ("pending", "active", "confirmation"),
        ("active", "unsubscribed", "unsubscribe page"),
    ]
    assert after.joined.reason == "form"


def test_a_lost_preferences_link_is_asked_for_by_keyboard_on_a_phone(
    folder: Folder, tmp_path: Path
) -> None:
    newsletter = folder.newsletter()
    newsletter.store.subscribers.merge(
        [Candidate(ADDRESS, "", frozenset({"commentaries"}))],
        status=Status.ACTIVE,
        reason=Reason.IMPORT,
    )
    app = create_app(newsletter)

    with serving(app) as base, chromium() as browser:
        page = browser.new_page(viewport={"width": 375, "height": 740})
        page.goto(f"{base}/commentaries/preferences/")
        page.wait_for_selector("text=Lost it?")
        # Nothing wider than the phone: no sideways scrolling.
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        while page.evaluate("document.activeElement.id") != "email":
            page.keyboard.press("Tab")
        page.keyboard.type(ADDRESS)
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.tagName") == "BUTTON"
        page.keyboard.press("Enter")
        page.wait_for_selector("text=Check your inbox")
        assert app.extensions[EXTENSION].signups.drain(60) == 0  # looked up, message sent

        (message,) = messages_to(folder, ADDRESS)
        text = message.get_body(("plain",))
        assert text is not None
        link = re.search(r"https://\S+/preferences/\S+", str(text.get_content()))
        assert link
        page.goto(link[0].replace(SITE, base))
        page.wait_for_selector(f"text={ADDRESS}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 375


DARK_PAGES = ("archive/", "archive/stalemate-to-escalation/", "subscribe")


def test_the_archive_and_subscription_pages_keep_a_4_5_contrast_in_light_and_dark_mode(
    folder: Folder, run: Run
) -> None:
    """As the email's check does (test_browser.py, contrast.js): every visible text against the
    background painted under it, in both colour schemes, on pages served by the service."""
    assert run("build").exit_code == 0
    app = create_app(folder.newsletter())
    image = png(300, 60)
    with serving(app) as base, chromium() as browser:
        page = browser.new_page(viewport={"width": 375, "height": 740})
        page.route(  # the logo and images, answered locally (no network)
            f"{SITE}/**",
            lambda route: route.fulfill(status=200, content_type="image/png", body=image),
        )
        for path in DARK_PAGES:
            page.goto(f"{base}/commentaries/{path}")
            scheme = page.get_attribute("meta[name=color-scheme]", "content")
            assert scheme == "light dark", path
            backgrounds = {}
            for mode in ("light", "dark"):
                page.emulate_media(color_scheme=mode)
                texts = page.evaluate(CONTRASTS)
                assert len(texts) > 10, (path, texts)
                low = [t for t in texts if t["ratio"] < CONTRAST]
                assert not low, f"{path}, {mode}: text below {CONTRAST}:1: {low}"
                backgrounds[mode] = page.evaluate(
                    "() => getComputedStyle(document.querySelector('main')).backgroundColor"
                )
            assert backgrounds["light"] != backgrounds["dark"], f"{path}: dark mode changed nothing"
