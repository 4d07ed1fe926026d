"""Links of an issue's HTML sent through the click counter ([analytics] clicks).

Only the HTML part's links change, and each to the same URL for every recipient (the campaign
and the link, signed), so a click says which link was followed, never by whom. The personal
links (unsubscribe, preferences) and mailto links stay as they are; so does the plain-text part,
where a reader sees the address a link goes to.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import replace

from mailer.render.email import RenderedIssue

_HREF = re.compile(r'(<a\b[^>]*?\shref=")(https?://[^"]+)(")', re.I)


def counted_urls(rendered: RenderedIssue) -> list[str]:
    """The URLs of the HTML part's links that clicks are counted for, in order, each once."""
    found: dict[str, None] = {}
    for match in _HREF.finditer(rendered.html):
        if rendered.marker not in match[2]:
            found.setdefault(html.unescape(match[2]))
    return list(found)


def with_counted_links(
    rendered: RenderedIssue, link_ids: Mapping[str, int], click_url: Callable[[int], str]
) -> RenderedIssue:
    """The issue with each counted link (a URL in `link_ids`) going through `click_url`."""

    def counted(match: re.Match[str]) -> str:
        link_id = link_ids.get(html.unescape(match[2]))
        if link_id is None or rendered.marker in match[2]:
            return match[0]
        return match[1] + html.escape(click_url(link_id)) + match[3]

    return replace(rendered, html=_HREF.sub(counted, rendered.html))
