"""The web archive: an index of every published commentary and a page for each one.

These are the "view in browser" targets, so a page's path is the commentary's `archive_url`.
"""

from __future__ import annotations

from collections.abc import Sequence

from mailer.content.commentary import Commentary
from mailer.core.config import NewsletterSettings
from mailer.render.theme import Theme

ARCHIVE = "archive"


def render_site(
    commentaries: Sequence[Commentary], theme: Theme, newsletter: NewsletterSettings
) -> dict[str, bytes]:
    """Archive pages by path in the output folder; `commentaries` newest first."""
    shared = {"newsletter": newsletter, "site_css": theme.source("site.css")}
    pages = {
        f"{ARCHIVE}/index.html": theme.render("archive.html", commentaries=commentaries, **shared)
    }
    for commentary in commentaries:
        pages[f"{ARCHIVE}/{commentary.slug}/index.html"] = theme.render(
            "commentary.html", commentary=commentary, **shared
        )
    return {path: page.encode("utf-8") for path, page in pages.items()}
