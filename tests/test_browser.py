"""The email in a real browser: no sideways scrolling on a phone, a 600 px column on a desktop."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from tests.conftest import Folder, skip_or_fail

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NARROW_WIDTHS = (375, 600)
WIDE = 800
HEIGHT = 800
COLUMN = 600


def personalised_html(folder: Folder) -> str:
    newsletter = folder.newsletter()
    commentaries = newsletter.commentaries().commentaries
    longest = max(commentaries, key=lambda c: len(c.html)).slug
    rendered = newsletter.render(newsletter.issue([longest]))
    data = newsletter.message_template(rendered, "commentaries").personalise(
        newsletter.preview_recipient()
    )
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html = message.get_body(("html",))
    assert html is not None
    return str(html.get_content())


def measure(page: Any, width: int) -> dict[str, float]:
    page.set_viewport_size({"width": width, "height": HEIGHT})
    return dict(
        page.evaluate(
            """() => ({
                inner: window.innerWidth,
                document: document.documentElement.scrollWidth,
                body: document.body.scrollWidth,
                container: document.querySelector('.container').getBoundingClientRect().width,
            })"""
        )
    )


def test_the_email_never_scrolls_sideways_and_keeps_a_600px_column(
    folder: Folder, tmp_path: Path
) -> None:
    if not CHROMIUM.is_file():
        skip_or_fail(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("the playwright package is not installed")
    page_file = tmp_path / "email.html"
    page_file.write_text(personalised_html(folder), encoding="utf-8")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport={"width": WIDE, "height": HEIGHT})
            page.goto(page_file.as_uri())
            for width in NARROW_WIDTHS:
                seen = measure(page, width)
                assert seen["inner"] == width
                assert seen["document"] <= seen["inner"], f"scrolls sideways at {width}: {seen}"
                assert seen["body"] <= seen["inner"], f"body scrolls sideways at {width}: {seen}"
                assert seen["container"] <= min(width, COLUMN), seen
            seen = measure(page, WIDE)
            assert seen["document"] <= seen["inner"], seen
            assert seen["container"] <= COLUMN, f"the column is wider than 600 px: {seen}"
        finally:
            browser.close()
