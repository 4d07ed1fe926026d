"""The email in a real browser: no sideways scrolling on a phone, a 600 px column on a desktop."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Folder, png, skip_or_fail

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


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (a playwright Browser), closed afterwards; skipped without one."""
    if not CHROMIUM.is_file():
        skip_or_fail(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("the playwright package is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def personalised_html(folder: Folder, slug: str = "") -> str:
    """The HTML part of the issue of `slug` (default: the longest example) as a reader gets it."""
    newsletter = folder.newsletter()
    commentaries = newsletter.commentaries().commentaries
    slug = slug or max(commentaries, key=lambda c: len(c.html)).slug
    rendered = newsletter.render(newsletter.issue([slug]))
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
    page_file = tmp_path / "email.html"
    page_file.write_text(personalised_html(folder), encoding="utf-8")

    with chromium() as browser:
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


# A real commentary, as writers send them: a bare URL far wider than a phone, a wide image, notes.

LONG_URL = "https://www.example.org/reports/" + "-sanctions-enforcement" * 6 + "-2025.html"
WIDE_IMAGE = "https://www.example.org/commentaries/archive/stalemate-to-escalation/front.png"
CONTRAST = 4.5


def stalemate_with_what_writers_type(folder: Folder) -> str:
    """The stalemate example's email, with a long bare URL and a wide image added to its body."""
    path = folder.commentaries / "2025-09-17-stalemate-to-escalation.md"
    text = path.read_text(encoding="utf-8")
    opening = "Three and a half years after"
    assert len(LONG_URL) >= 170
    added = f"The data: {LONG_URL}\n\n![The front line in September]({WIDE_IMAGE})\n\n"
    path.write_text(text.replace(opening, added + opening, 1), encoding="utf-8")
    return personalised_html(folder, "stalemate-to-escalation")


def email_page(browser: Any, tmp_path: Path, html: str) -> Any:
    """A page of `browser` showing the email as a file, its images answered locally (no
    network)."""
    page = browser.new_page(viewport={"width": 375, "height": HEIGHT})
    image = png(1600, 900)
    page.route(
        "https://www.example.org/**",
        lambda route: route.fulfill(status=200, content_type="image/png", body=image),
    )
    page_file = tmp_path / "email.html"
    page_file.write_text(html, encoding="utf-8")
    page.goto(page_file.as_uri())
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    return page


def test_a_long_url_a_wide_image_and_footnotes_keep_the_email_as_wide_as_a_phone(
    folder: Folder, tmp_path: Path
) -> None:
    html = stalemate_with_what_writers_type(folder)
    assert LONG_URL in html and "footnote-ref" in html
    with chromium() as browser:
        page = email_page(browser, tmp_path, html)
        seen = measure(page, 375)
        image = page.evaluate(
            "() => { const i = [...document.images].find(i => i.src.endsWith('front.png'));"
            " return {natural: i.naturalWidth, shown: i.getBoundingClientRect().width}; }"
        )
    assert image["natural"] == 1600, "the wide image did not load, so proved nothing"
    assert image["shown"] <= 375, image
    assert seen["document"] == seen["inner"] == 375, f"the page is wider than the phone: {seen}"
    assert seen["body"] <= 375, seen


CONTRASTS = (Path(__file__).parent / "contrast.js").read_text(encoding="utf-8")


@pytest.mark.parametrize("slug", ["stalemate-to-escalation", "sahel-after-the-juntas"])
def test_every_text_keeps_a_4_5_contrast_in_light_and_dark_mode(
    folder: Folder, tmp_path: Path, slug: str
) -> None:
    """The stalemate example with what writers type; the newest, with "Latest in this series"."""
    html = stalemate_with_what_writers_type(folder)
    if slug != "stalemate-to-escalation":
        html = personalised_html(folder, slug)
        assert "latest-item" in html
    backgrounds = {}
    with chromium() as browser:
        page = email_page(browser, tmp_path, html)
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            texts = page.evaluate(CONTRASTS)
            assert len(texts) > 40, texts
            low = [t for t in texts if t["ratio"] < CONTRAST]
            assert not low, f"{scheme}: text below {CONTRAST}:1: {low}"
            backgrounds[scheme] = page.evaluate(
                "() => getComputedStyle(document.querySelector('.container')).backgroundColor"
            )
    assert backgrounds["light"] != backgrounds["dark"], "dark mode changed nothing"
