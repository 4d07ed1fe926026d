"""How large an email's inlined HTML can be, told without inlining: what lets `mailer check` skip
the inliner for every email that cannot reach Gmail's clipping limit.

The bound is checked against premailer's real output, on the theme's real emails and on a
stylesheet made of what the default theme does not use (ids, attributes, siblings, pseudo-classes).
"""

from __future__ import annotations

import pytest

from mailer.app.newsletter import Newsletter
from mailer.render.email import GMAIL_CLIP_BYTES, issue_parts
from mailer.render.inlining import inline_css, inlined_size_at_most
from tests.conftest import Folder, Run
from tests.test_email import EXAMPLE_SLUGS, KITCHEN_SINK, generated_commentary


def inlined_size(html: str) -> int:
    return len(inline_css(html).encode("utf-8"))


def email_html(newsletter: Newsletter, slug: str) -> str:
    """The issue's HTML as the theme renders it, before its CSS is inlined."""
    issue = newsletter.issue([slug])
    html, _text = issue_parts(
        issue, newsletter.theme, newsletter.config.newsletter, newsletter.furniture, "mlrtest"
    )
    return html


def test_the_bound_holds_for_every_example_and_a_kitchen_sink(folder: Folder) -> None:
    folder.write("commentaries/2025-11-20-kitchen-sink.md", KITCHEN_SINK)
    folder.image("commentaries/kitchen-sink/map.png", 800)
    folder.image("commentaries/chart.png", 400)
    newsletter = folder.newsletter()
    for slug in (*EXAMPLE_SLUGS, "kitchen-sink"):
        html = email_html(newsletter, slug)
        assert inlined_size(html) <= inlined_size_at_most(html), slug


def test_the_examples_are_found_small_enough_without_inlining(folder: Folder) -> None:
    folder.write("commentaries/2025-11-20-two-thousand.md", generated_commentary("gen", 2000))
    newsletter = folder.newsletter()
    for slug in (*EXAMPLE_SLUGS, "two-thousand"):
        assert inlined_size_at_most(email_html(newsletter, slug)) <= GMAIL_CLIP_BYTES, slug


@pytest.mark.parametrize("words", [8600, 8800, 25000])
def test_check_warns_exactly_when_the_inlined_email_is_too_large(
    folder: Folder, run: Run, words: int
) -> None:
    """8,600 words inline to just under the limit (102,071 bytes), 8,800 just over it: the
    shortcut must neither invent nor lose a warning there, nor change its figure."""
    path = folder.write("commentaries/2025-11-20-long.md", generated_commentary("gen", words))
    newsletter = folder.newsletter()
    issue = newsletter.issue(["long"])
    expected = newsletter.render(issue).size_warning()
    assert newsletter.size_warning(issue) == expected
    assert (expected is None) == (words == 8600)
    result = run("check")
    assert result.exit_code == 0, result.output
    warned = [line for line in result.output.splitlines() if "Gmail clips" in line]
    assert warned == ([] if expected is None else [str(expected)])
    assert expected is None or expected.path == path


UNUSUAL_THEME = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<style>
#main p { font-family: "A Very Long Font Family Name For Testing", "Another One", serif; }
#main > div p:first-child { text-align: center; margin: 0 !important; }
a[href^="https"] { color: #abc; background-color: #fff; text-decoration: underline; }
td + td { vertical-align: top; background: url("https://example.org/a.png?x=1&y=2"); }
.x ~ p, h2.title { letter-spacing: 0.01em; padding: 1px 2px 3px 4px; }
img { float: right; width: 100%; }
p:hover { color: red; }
* { box-sizing: border-box; }
@media only screen and (max-width: 600px) { #main p { font-size: 18px; } }
</style>
<style data-premailer="ignore">p { color: blue; }</style>
</head><body>
<div id="main">
<h2 class="title">Titolo «caffè» &amp; co</h2>
<div>{paragraphs}</div>
<table><tr><td>one</td><td style="color: rgb(0,0,0); border:0">two</td></tr></table>
<p class="x">x</p><p>after x</p>
<img src="https://example.org/i.png" alt="an image" style="max-width: 300px">
</div>
</body></html>
"""


def test_the_bound_holds_for_selectors_the_default_theme_does_not_use() -> None:
    """Hundreds of paragraphs under an id, each given a long font list by `#main p`: a bound
    that looked at the wrong end of a selector, or left a rule out, would fall short."""
    paragraphs = "".join(
        f'<p>Paragraph {n} with <a href="https://example.org/{n}">a link</a>.</p>'
        for n in range(300)
    )
    html = UNUSUAL_THEME.replace("{paragraphs}", paragraphs)
    assert inlined_size(html) <= inlined_size_at_most(html)
    assert inlined_size_at_most(html) < 2 * inlined_size(html)  # close enough to be of use
