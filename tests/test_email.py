"""The email of an issue: inlined styles, safe HTML, personal values, size, layout and plain text.

Everything is checked on real output, parsed for real: the HTML with lxml, the stylesheet with
cssutils (the parser premailer itself uses), and the message with Python's email package.
"""

from __future__ import annotations

import email
import email.policy
import logging
import random
import re
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import cssutils
import lxml.etree
import lxml.html

from mailer.app.newsletter import Newsletter
from mailer.content import markdown as body
from mailer.content.commentary import Commentary, Issue
from mailer.content.files import Beside
from mailer.render.email import RenderedIssue
from mailer.render.message import Recipient
from mailer.render.theme import packaged_folder
from tests.conftest import Folder, Run

THEME = packaged_folder("theme")
WIDTH = 72
CLIP_LIMIT = 100 * 1024
EXAMPLE_SLUGS = (
    "stalemate-to-escalation",
    "mediterranean-energy",
    "writing-a-commentary",
)

cssutils.log.setLevel(logging.CRITICAL)


# Helpers -----------------------------------------------------------------------------------------


def parse_message(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(data: bytes) -> tuple[str, str]:
    """The decoded text and HTML parts of a message, in that order."""
    text, html = parse_message(data).iter_parts()
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    assert text.get_content_type() == "text/plain"
    assert html.get_content_type() == "text/html"
    return str(text.get_content()), str(html.get_content())


def document(html: str) -> lxml.html.HtmlElement:
    return lxml.html.document_fromstring(html)


def words(element: lxml.html.HtmlElement) -> str:
    """An element's text with all whitespace runs made single spaces."""
    return " ".join(element.text_content().split())


def squeeze(text: str) -> str:
    return " ".join(text.split())


def longest_example(newsletter: Newsletter) -> str:
    commentaries = newsletter.commentaries().commentaries
    return max(commentaries, key=lambda c: len(c.html)).slug


def personalised(
    newsletter: Newsletter, rendered: RenderedIssue, recipient: Recipient | None = None
) -> bytes:
    template = newsletter.message_template(rendered, "commentaries")
    return template.personalise(recipient or newsletter.preview_recipient())


def email_of(folder: Folder, *slugs: str) -> tuple[Newsletter, RenderedIssue, bytes]:
    newsletter = folder.newsletter()
    rendered = newsletter.render(newsletter.issue(list(slugs)))
    return newsletter, rendered, personalised(newsletter, rendered)


def generated_commentary(slug: str, words_wanted: int, points: int = 3, sections: int = 4) -> str:
    """A commentary of about `words_wanted` words of prose: key points, sections, a few links."""
    vocabulary = [
        *("Europe", "security", "energy", "policy", "border", "alliance", "sanctions"),
        *("Kremlin", "ceasefire", "budget", "defence", "market", "region", "government"),
        *("coalition", "election", "pipeline", "corridor", "investment", "grid"),
        *("cooperation", "partnership", "diplomacy", "pressure", "strategy", "interest"),
        *("deterrence", "neighbourhood", "enlargement", "reform", "stability", "migration"),
    ]
    chooser = random.Random(slug)

    def sentence(length: int) -> str:
        chosen = [chooser.choice(vocabulary) for _ in range(length)]
        return " ".join(chosen).capitalize() + "."

    def paragraph(number: int) -> str:
        text = " ".join(sentence(chooser.randint(12, 20)) for _ in range(5))
        if number % 4 == 0:
            text += f" See the [source {number}](https://www.example.net/reports/{number})."
        return text

    per_paragraph = 80
    paragraphs = max(words_wanted // per_paragraph, sections + 1)
    per_section = max(paragraphs // (sections + 1), 1)
    blocks = []
    for number in range(paragraphs):
        if number and number % per_section == 0 and number // per_section <= sections:
            blocks.append(f"### Section {number // per_section}: {sentence(4)[:-1]}")
        blocks.append(paragraph(number))
    summary = ", ".join(f'"{sentence(18)}"' for _ in range(points))
    return (
        "+++\n"
        f'title = "A generated commentary of {words_wanted} words"\n'
        'authors = ["Ana Ćosić", "Jörg Müller-Ståhl"]\n'
        "date = 2025-11-20\n"
        'number = "25 | 70"\n'
        f"summary = [{summary}]\n"
        "+++\n\n" + "\n\n".join(blocks) + "\n"
    )


KITCHEN_SINK = """
    +++
    title = "Everything a commentary can hold"
    authors = ["Ana Ćosić", "Jörg Müller-Ståhl"]
    date = 2025-11-20
    number = "25 | 60"
    summary = ["The first key point leads the preview.", "A second point.", "A third point."]
    pdf = "https://www.example.org/files/commentaries/2560.pdf"
    +++

    An opening with *emphasis*, `inline code`, a [relative link](../mediterranean-energy/), a
    [site link](/commentaries/about/) and an [address](mailto:desk@example.org).

    A claim that needs its source.[^1]

    # A first-level heading

    ## A second-level heading

    ### A third-level heading

    #### A fourth-level heading

    > A pull quote, set apart.

    - one item
    - another item

    1. first
    2. second

    ![A map of the Mediterranean grid](map.png)

    ![](chart.png)

    ---

    | Country | Share |
    | ------- | ----- |
    | Italy   | 40%   |

    ```
    a code block
    ```

    [^1]: The source, with a [link](https://www.example.net/report).
    """


def write_kitchen_sink(folder: Folder) -> str:
    folder.write("commentaries/2025-11-20-kitchen-sink.md", KITCHEN_SINK)
    folder.image("commentaries/kitchen-sink/map.png", 800)
    folder.image("commentaries/chart.png", 400)
    return "kitchen-sink"


# Inlined styles ----------------------------------------------------------------------------------


def stylesheet() -> cssutils.css.CSSStyleSheet:
    return cssutils.parseString((THEME / "email.css").read_text(encoding="utf-8"), validate=False)


def property_names(style: str) -> set[str]:
    return {p.name for p in cssutils.parseStyle(style, validate=False)}


def test_every_element_of_a_plain_rule_carries_the_rule_inline(folder: Folder) -> None:
    lead = write_kitchen_sink(folder)
    _, rendered, _ = email_of(folder, lead, "mediterranean-energy", "writing-a-commentary")
    root = document(rendered.html)
    unmatched = []
    for rule in stylesheet().cssRules:
        if rule.type != rule.STYLE_RULE:
            continue
        declared = {p.name for p in rule.style}
        for selector in rule.selectorList:
            elements = root.cssselect(selector.selectorText)
            if not elements:
                unmatched.append(selector.selectorText)
            for element in elements:
                style = element.get("style")
                assert style, f"{selector.selectorText}: <{element.tag}> has no style attribute"
                missing = declared - property_names(style)
                assert not missing, f"{selector.selectorText}: <{element.tag}> lacks {missing}"
    # The commentary above is written so that every rule of the theme has something to style.
    assert not unmatched, f"selectors that matched nothing, so went untested: {unmatched}"


def test_media_rules_stay_in_a_style_of_the_head_with_their_important(folder: Folder) -> None:
    _, rendered, _ = email_of(folder, *EXAMPLE_SLUGS)
    root = document(rendered.html)
    assert not root.xpath("//body//style"), "a <style> outside <head>"
    kept = {}
    for style in root.xpath("/html/head/style"):
        for rule in cssutils.parseString(style.text or "", validate=False).cssRules:
            if rule.type == rule.MEDIA_RULE:
                for inner in rule.cssRules:
                    kept[(rule.media.mediaText, inner.selectorText)] = inner.style
    wanted = [rule for rule in stylesheet().cssRules if rule.type == rule.MEDIA_RULE]
    assert wanted, "the theme's email.css has no @media rule any more"
    for media in wanted:
        for inner in media.cssRules:
            key = (media.media.mediaText, inner.selectorText)
            assert key in kept, f"@media {key[0]} {{ {key[1]} }} is not in <head>"
            for declared in inner.style:
                found = kept[key].getProperty(declared.name)
                assert found is not None, f"{key[1]} lost {declared.name} in @media"
                assert found.priority == "important", f"{key[1]} {declared.name} lost !important"


# Hostile Markdown --------------------------------------------------------------------------------

HOSTILE = """\
An opening <script>alert(1)</script> and <img src=x onerror=alert(1)> as text.

[x](javascript:alert(1)) [y](JaVaScRiPt:alert(1)) <a href="javascript:1">raw</a>

[z](data:text/html;base64,xx) [v](vbscript:x) <javascript:alert(1)>

[w](java&#x73;cript:alert(1)) ![i](javascript:alert(1)) <DATA:text/html,hi>

<div onmouseover="alert(1)">block</div>

<script>
alert(2)
</script>
"""
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "background", "poster", "srcset"}
BANNED_SCHEMES = {"javascript", "data", "vbscript"}


def scheme(url: str) -> str:
    # Browsers ignore whitespace and control characters inside a scheme: so does this.
    cleaned = re.sub(r"[\x00-\x20]", "", url)
    return cleaned.split(":", 1)[0].lower() if ":" in cleaned else ""


def test_hostile_markdown_reaches_the_email_harmless(folder: Folder) -> None:
    newsletter = folder.newsletter()
    archive_url = newsletter.site.archive_url("hostile")
    path = folder.commentaries / "2025-11-21-hostile.md"
    beside = Beside(path, "hostile", newsletter.config.newsletter.site_url)
    rendered_body = body.render(
        HOSTILE, base_url=archive_url, path=path, first_line=1, anchor="hostile", files=beside
    )
    example = newsletter.commentaries().commentaries[0]
    commentary = Commentary(
        slug="hostile",
        path=path,
        title="<script>alert('title')</script>",
        authors=('<img src=x onerror="alert(2)">',),
        date=example.date,
        archive_url=archive_url,
        html=rendered_body.html,
        text=rendered_body.text,
        summary=("<svg onload=alert(3)>", "<a href='javascript:alert(4)'>point</a>"),
    )
    rendered = newsletter.render(Issue((commentary, example)))
    _, html = parts(personalised(newsletter, rendered))
    root = document(html)

    assert root.xpath("//script") == []
    for element in root.iter(lxml.etree.Element):
        for name, value in element.attrib.items():
            assert not name.lower().startswith("on"), f"<{element.tag} {name}={value!r}>"
            if name.lower() in URL_ATTRIBUTES:
                assert scheme(value) not in BANNED_SCHEMES, f"<{element.tag} {name}={value!r}>"
    assert root.xpath("//svg | //iframe | //object | //embed | //form") == []
    # The hostile text is still there for the reader to see, as text.
    assert "<script>alert(1)</script>" in words(root.body)
    assert rendered_body.problems, "the disallowed links should be reported by mailer check"


# Personal values ---------------------------------------------------------------------------------


def test_personal_links_are_in_the_html_and_no_placeholder_survives(folder: Folder) -> None:
    newsletter, rendered, _ = email_of(folder, *EXAMPLE_SLUGS)
    recipient = Recipient(
        email="fish&chips@example.net",
        name="Alice Example",
        unsubscribe_url="https://www.example.org/commentaries/unsubscribe/TOKEN?list=1&lang=en",
        preferences_url="https://www.example.org/commentaries/preferences/TOKEN?x=1&y=2",
    )
    data = personalised(newsletter, rendered, recipient)
    text, html = parts(data)
    hrefs = [a.get("href") for a in document(html).iter("a")]

    for url in (recipient.unsubscribe_url, recipient.preferences_url):
        assert url in hrefs
        assert url.replace("&", "&amp;") in html, "an & in a URL must be written &amp; in HTML"
        assert url in text
    assert "fish&amp;chips@example.net" in html
    assert "fish&chips@example.net" not in html
    assert "fish&chips@example.net" in text

    marker = rendered.marker.encode()
    assert marker not in data
    assert marker not in data.replace(b"=\r\n", b""), "a placeholder split by a soft line break"
    assert rendered.marker not in text
    assert rendered.marker not in html


def test_a_name_with_markup_characters_is_escaped_in_html_and_raw_in_text(folder: Folder) -> None:
    # The default theme does not greet by name; a newsletter's own theme may, as this one does.
    html_template = (THEME / "email.html").read_text(encoding="utf-8")
    text_template = (THEME / "email.txt").read_text(encoding="utf-8")
    html_greeting = '<p>{{ _("You receive %(newsletter)s at %(email)s."'
    text_greeting = '{{ _("You receive %(newsletter)s at %(email)s."'
    assert html_greeting in html_template and text_greeting in text_template
    folder.write(
        "theme/email.html",
        html_template.replace(html_greeting, "<p>Dear {{ recipient.name }},</p>" + html_greeting),
    )
    folder.write(
        "theme/email.txt",
        text_template.replace(text_greeting, "Dear {{ recipient.name }},\n" + text_greeting),
    )
    folder.configure('templates = ""', 'templates = "theme"')
    newsletter, rendered, _ = email_of(folder, "stalemate-to-escalation")
    name = 'Ann <b>"Fish" & Chips</b>'
    recipient = Recipient(
        email="ann@example.net",
        name=name,
        unsubscribe_url="https://www.example.org/commentaries/unsubscribe/TOKEN",
        preferences_url="https://www.example.org/commentaries/preferences/TOKEN",
    )
    text, html = parts(personalised(newsletter, rendered, recipient))

    assert "Dear Ann &lt;b&gt;&quot;Fish&quot; &amp; Chips&lt;/b&gt;," in html
    assert name not in html
    greeting = [p for p in document(html).iter("p") if words(p).startswith("Dear")]
    assert [words(p) for p in greeting] == [f"Dear {name},"]
    assert not greeting[0].xpath(".//b"), "the name became markup"
    assert f"Dear {name}," in text.splitlines()


# Layout and links --------------------------------------------------------------------------------


def test_preheader_is_the_first_text_of_the_body_and_hidden(folder: Folder) -> None:
    _, rendered, data = email_of(folder, *EXAMPLE_SLUGS)
    _, html = parts(data)
    body_element = document(html).body
    first = body_element.xpath(".//text()[normalize-space()]")[0]
    holder = first.getparent()
    assert first.is_text, "the first text of <body> is the tail of an element, not inside one"
    # Invisible padding follows, so that the body does not run into the inbox preview.
    assert squeeze(str(first).rstrip("\u034f\u200c\xa0")) == rendered.issue.lead.summary[0]
    style = {p.name: p.value for p in cssutils.parseStyle(holder.get("style", ""), validate=False)}
    assert style.get("display") == "none"
    assert style.get("max-height") in ("0", "0px")
    assert style.get("overflow") == "hidden"
    assert style.get("mso-hide") == "all"


def test_view_in_browser_and_footer_links(folder: Folder) -> None:
    newsletter, rendered, data = email_of(folder, *EXAMPLE_SLUGS)
    _, html = parts(data)
    root = document(html)
    recipient = newsletter.preview_recipient()

    view = [a for a in root.iter("a") if words(a).lower() == "view in browser"]
    assert view, "no 'View in browser' link"
    assert {a.get("href") for a in view} == {rendered.issue.lead.archive_url}
    first_link = next(root.body.iter("a"))
    assert first_link in view, "the 'View in browser' link should come before the commentary"

    (footer,) = root.cssselect(".footer")
    unsubscribe = [a for a in footer.iter("a") if a.get("href") == recipient.unsubscribe_url]
    assert unsubscribe and words(unsubscribe[0]) == "Unsubscribe"
    assert newsletter.config.newsletter.postal_address in words(footer)


def test_every_image_has_alt_and_every_link_is_absolute(folder: Folder) -> None:
    lead = write_kitchen_sink(folder)
    _, _, data = email_of(folder, lead, *EXAMPLE_SLUGS)
    _, html = parts(data)
    root = document(html)
    images = root.cssselect(".body img")
    assert len(images) == 2
    assert root.cssselect(".masthead img")[0].get("alt") == "IAI Commentaries", "the logo"
    for image in images:
        assert "alt" in image.attrib, lxml.html.tostring(image)
    assert images[0].get("alt") == "A map of the Mediterranean grid"
    linked = root.xpath("//*[@href or @src]")
    assert linked
    for element in linked:
        for name in ("href", "src"):
            value = element.get(name)
            if value is None:
                continue
            parts_ = urlsplit(value)
            assert parts_.scheme in ("http", "https", "mailto"), f"<{element.tag} {name}={value}>"
            if parts_.scheme != "mailto":
                assert parts_.netloc, f"<{element.tag} {name}={value}>"


# Size --------------------------------------------------------------------------------------------


def html_size(data: bytes) -> int:
    return len(parts(data)[1].encode("utf-8"))


def test_the_longest_example_stays_under_gmail_clipping(folder: Folder) -> None:
    newsletter = folder.newsletter()
    rendered = newsletter.render(newsletter.issue([longest_example(newsletter)]))
    assert html_size(personalised(newsletter, rendered)) < CLIP_LIMIT
    assert rendered.size_warning() is None


def test_a_2000_word_commentary_stays_under_gmail_clipping(folder: Folder) -> None:
    folder.write("commentaries/2025-11-20-two-thousand.md", generated_commentary("gen", 2000))
    newsletter = folder.newsletter()
    issue = newsletter.issue(["two-thousand"])
    lead = issue.lead
    assert 1900 <= len(lead.text.split()) <= 2300
    assert len(lead.summary) == 3
    assert lead.html.count("<h2>") == 4
    rendered = newsletter.render(issue)
    assert html_size(personalised(newsletter, rendered)) < CLIP_LIMIT
    assert rendered.size_warning() is None


def test_a_25000_word_commentary_is_warned_about_but_passes_check(folder: Folder, run: Run) -> None:
    path = folder.write("commentaries/2025-11-20-enormous.md", generated_commentary("big", 25000))
    newsletter = folder.newsletter()
    rendered = newsletter.render(newsletter.issue(["enormous"]))
    size_kb = f"{len(rendered.html.encode('utf-8')) / 1024:.0f} KB"
    warning = rendered.size_warning()
    assert warning is not None
    assert warning.warning
    assert size_kb in warning.message
    assert Path(warning.path) == path

    result = run("check")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if size_kb in line]
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"{path}: warning: ")
    assert "0 errors, 1 warning" in result.output


# An issue of several commentaries ----------------------------------------------------------------


def body_paragraphs(commentary: Commentary) -> list[str]:
    fragment = lxml.html.fragment_fromstring(commentary.html, create_parent="div")
    return [words(p) for p in fragment.iter("p", "li") if len(words(p)) > 40]


def test_the_lead_in_full_the_others_as_teasers(folder: Folder) -> None:
    _, rendered, data = email_of(folder, *EXAMPLE_SLUGS)
    text, html = parts(data)
    root = document(html)
    lead, *others = rendered.issue.commentaries
    assert len(others) == 2

    (lead_body,) = root.cssselect(".content .body")
    fragment = lxml.html.fragment_fromstring(lead.html, create_parent="div")
    assert words(lead_body) == words(fragment)
    assert squeeze(lead.text) in squeeze(text)

    (more,) = root.cssselect(".more")
    teasers = more.cssselect(".teaser")
    assert len(teasers) == len(others)
    whole_html, whole_text = words(root.body), squeeze(text)
    for teaser, other in zip(teasers, others, strict=True):
        assert other.title in words(teaser)
        assert all(author in words(teaser) for author in other.authors)
        for point in other.summary:
            assert point in words(teaser)
            assert point in whole_text
        assert other.link in {a.get("href") for a in teaser.iter("a")}
        assert other.title in whole_text and other.authors[0] in whole_text
        assert other.link in text
        paragraphs = body_paragraphs(other)
        assert paragraphs
        for paragraph in paragraphs:
            assert paragraph not in whole_html, f"{other.slug}'s body is in the HTML"
            assert squeeze(paragraph) not in whole_text, f"{other.slug}'s body is in the text"


# Plain text --------------------------------------------------------------------------------------

_PREFIX = re.compile(r"^\s*(?:(?:[*|]|\d+\.)\s+)*")


def test_text_part_is_wrapped_at_72_columns(folder: Folder) -> None:
    lead = write_kitchen_sink(folder)
    for slugs in ((lead, *EXAMPLE_SLUGS), EXAMPLE_SLUGS):
        _, _, data = email_of(folder, *slugs)
        text, _ = parts(data)
        too_long = [
            line
            for line in text.splitlines()
            if len(line) > WIDTH and len(_PREFIX.sub("", line).split()) > 1
        ]
        assert not too_long, "lines over 72 columns that could be wrapped:\n" + "\n".join(too_long)


def test_text_part_underlines_headings_and_shows_links_as_urls(folder: Folder) -> None:
    newsletter, rendered, data = email_of(folder, *EXAMPLE_SLUGS)
    text, _ = parts(data)
    lines = text.splitlines()
    lead = rendered.issue.lead

    def underline_of(heading: str) -> str:
        at = lines.index(heading)
        return lines[at + 1]

    assert underline_of(lead.title) == "=" * len(lead.title)
    fragment = lxml.html.fragment_fromstring(lead.html, create_parent="div")
    headings = [words(h) for h in fragment.iter("h1", "h2", "h3", "h4", "h5", "h6")]
    assert headings
    for heading in headings:
        assert underline_of(heading) in ("-" * len(heading), "=" * len(heading)), heading

    # A footnote's number links to the note, which the text part prints right below.
    links = [a.get("href") for a in fragment.iter("a") if "#fn" not in a.get("href")]
    assert links
    for href in links:
        assert href.removeprefix("mailto:") in text
    assert "](" not in text, "a Markdown link reached the text part"
    assert "<a " not in text and "href=" not in text
    assert f"Unsubscribe: {newsletter.preview_recipient().unsubscribe_url}" in squeeze(text)
    assert lead.archive_url in text
