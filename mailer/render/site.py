"""The web archive: an index of every published commentary and a page for each one.

These are the "view in browser" targets, so a page's path is the commentary's `archive_url`.
Pages are made one at a time, each from its commentary read whole just for it, so a build of
thousands holds one page and one body at a time besides the index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
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
    whole: Callable[[Commentary], Commentary] = lambda commentary: commentary,
) -> Iterator[tuple[str, bytes]]:
    """Archive pages (path in the output folder, bytes), one at a time; `commentaries` newest
    first, as metadata will do; `whole` gives one back with its body for its page; `versions`,
    each one's other languages by slug, and `latest` the commentaries before each."""
    shared: dict[str, Any] = {
        "newsletter": newsletter,
        "site_css": theme.source("site.css"),
        "versions": versions,
        "latest": latest,
        "furniture": furniture,
    }
    index = theme.render("archive.html", commentaries=commentaries, **shared)
    yield f"{ARCHIVE}/index.html", index.encode("utf-8")
    for commentary in commentaries:
        yield page(whole(commentary), theme, shared)


def page(commentary: Commentary, theme: Theme, shared: Mapping[str, Any]) -> tuple[str, bytes]:
    """One commentary's page: its path in the output folder and its bytes."""
    html = theme.render(
        "commentary.html", language=commentary.language, commentary=commentary, **shared
    )
    return f"{ARCHIVE}/{commentary.slug}/index.html", html.encode("utf-8")
