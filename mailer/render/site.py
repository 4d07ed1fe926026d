"""The web archive: an index of every published commentary and a page for each one.

These are the "view in browser" targets, so a page's path is the commentary's `archive_url`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mailer.content.commentary import Commentary
from mailer.core.config import NewsletterSettings
from mailer.render.furniture import Furniture
from mailer.render.theme import Theme

ARCHIVE = "archive"


def render_site(
    commentaries: Sequence[Commentary],
    theme: Theme,
    newsletter: NewsletterSettings,
    furniture: Furniture,
    versions: Mapping[str, Sequence[Commentary]],
    latest: Mapping[str, Sequence[Commentary]],
) -> dict[str, bytes]:
    """Archive pages by path in the output folder; `commentaries` newest first; `versions`, each
    one's other languages by slug, and `latest` the commentaries before each."""
    shared: dict[str, Any] = {
        "newsletter": newsletter,
        "site_css": theme.source("site.css"),
        "versions": versions,
        "latest": latest,
        "furniture": furniture,
    }
    pages = {
        f"{ARCHIVE}/index.html": theme.render("archive.html", commentaries=commentaries, **shared)
    }
    for commentary in commentaries:
        pages[f"{ARCHIVE}/{commentary.slug}/index.html"] = theme.render(
            "commentary.html", language=commentary.language, commentary=commentary, **shared
        )
    return {path: page.encode("utf-8") for path, page in pages.items()}
