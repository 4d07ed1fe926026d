"""What writers type, as readers get it: footnotes, typographic quotes and heading levels, in the
email (both parts), the feeds (parsed by feedparser) and the archive pages (parsed by lxml)."""

from __future__ import annotations

import itertools

import feedparser
import lxml.html

from tests.conftest import Folder, Run
from tests.test_email import document, email_of, parts, squeeze, write_kitchen_sink
from tests.test_feeds import build

STALEMATE = "stalemate-to-escalation"
BUDGET_NOTE = "Federal budget law for 2025–2027"
DRONES_NOTE = "Statements of the Polish Operational Command"

QUOTED = """
    +++
    title = "Europe's \\"strategic autonomy\\" -- a decade on"
    authors = ["Ana Ćosić"]
    date = 2025-11-21
    summary = ["Rome's view isn't Berlin's.", "A second point."]
    +++

    Europe's "autonomy" -- again.
    """


def notes(root: lxml.html.HtmlElement) -> list[str]:
    return [squeeze(li.text_content()) for li in root.cssselect("section.footnotes li")]


def test_footnotes_are_numbered_notes_at_the_end_of_email_text_feeds_and_archive(
    folder: Folder, run: Run
) -> None:
    _, _, data = email_of(folder, STALEMATE)
    text, html = parts(data)
    root = document(html)
    refs = [squeeze(sup.text_content()) for sup in root.cssselect("sup.footnote-ref")]
    assert refs == ["[1]", "[2]"]
    found = notes(root)
    assert [n[: len(BUDGET_NOTE)] for n in found[:1]] == [BUDGET_NOTE]
    assert found[1].startswith(DRONES_NOTE)
    assert "[^budget]" not in html and "[^budget]" not in text

    flat = squeeze(text)
    assert "spending.[1]" in flat and "10 September 2025." in flat
    assert f"[1] {BUDGET_NOTE}" in flat and f"[2] {DRONES_NOTE}" in flat
    assert flat.index(f"[2] {DRONES_NOTE}") > flat.index("spending.[1]")

    files = build(folder, run)
    for name in ("rss.xml", "atom.xml"):
        entry = next(e for e in feedparser.parse(files[name]).entries if STALEMATE in e.id)
        content = lxml.html.fragment_fromstring(entry.content[0].value, create_parent="div")
        assert [n[: len(DRONES_NOTE)] for n in notes(content)][1:] == [DRONES_NOTE], name
    page = lxml.html.document_fromstring(files[f"archive/{STALEMATE}/index.html"])
    assert notes(page)[0].startswith(BUDGET_NOTE)
    link = page.cssselect("sup.footnote-ref a")[0].get("href")
    target = link.rpartition("#")[2]
    assert page.get_element_by_id(target) is not None, "the number does not lead to its note"


def test_typographic_quotes_and_dashes_in_title_key_points_and_preheader(folder: Folder) -> None:
    folder.write("commentaries/2025-11-21-autonomy.md", QUOTED)
    _, rendered, data = email_of(folder, "autonomy")
    lead = rendered.issue.lead
    assert lead.title == "Europe’s “strategic autonomy” – a decade on"
    assert lead.summary[0] == "Rome’s view isn’t Berlin’s."
    assert lead.preheader == "Rome’s view isn’t Berlin’s."
    assert rendered.subject == lead.title
    text, html = parts(data)
    root = document(html)
    assert squeeze(root.cssselect(".keypoints-list li")[0].text_content()) == lead.summary[0]
    assert "Europe’s “autonomy” – again." in text
    assert "'" not in squeeze(root.cssselect(".preheader")[0].text_content())


def heading_levels(root: lxml.html.HtmlElement) -> list[int]:
    return [int(h.tag[1]) for h in root.iter("h1", "h2", "h3", "h4", "h5", "h6")]


def assert_no_skipped_level(levels: list[int], where: str) -> None:
    assert levels[0] == 1, f"{where}: the first heading is not the h1: {levels}"
    assert levels.count(1) == 1, f"{where}: more than one h1: {levels}"
    for before, after in itertools.pairwise(levels):
        assert after <= before + 1, f"{where}: h{before} is followed by h{after}: {levels}"


def test_section_headings_sit_one_level_below_the_title_without_skipping(
    folder: Folder, run: Run
) -> None:
    sink = write_kitchen_sink(folder)
    _, _, data = email_of(folder, sink, STALEMATE)
    _, html = parts(data)
    assert_no_skipped_level(heading_levels(document(html)), "email")
    files = build(folder, run)
    pages = [name for name in files if name.startswith("archive/") and name.endswith(".html")]
    assert len(pages) > 3
    for name in pages:
        levels = heading_levels(lxml.html.document_fromstring(files[name]))
        assert_no_skipped_level(levels, name)
