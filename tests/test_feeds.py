"""RSS, Atom and JSON Feed as a feed reader sees them: parsed back by feedparser, field by field."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import feedparser
import pytest
from lxml import etree

from tests.conftest import Folder, Run

SITE = "https://www.example.org/commentaries/"
NEWEST_FIRST = [
    "sahel-after-the-juntas",
    "mediterranean-energy",
    "writing-a-commentary",
    "stalemate-to-escalation",
]


def build(folder: Folder, run: Run) -> dict[str, bytes]:
    result = run("build")
    assert result.exit_code == 0, result.output
    return folder.output_files()


def archive(slug: str) -> str:
    return f"{SITE}archive/{slug}/"


@pytest.mark.parametrize("name", ["rss.xml", "atom.xml"])
def test_xml_feeds_parse_cleanly_newest_first_with_stable_ids(
    folder: Folder, run: Run, name: str
) -> None:
    parsed = feedparser.parse(build(folder, run)[name])
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.feed.title == "IAI Commentaries"
    assert [entry.id for entry in parsed.entries] == [archive(s) for s in NEWEST_FIRST]
    for entry in parsed.entries:
        assert entry.published_parsed is not None
        assert entry.content[0].value.startswith("<p>")


def test_rss_carries_authors_categories_guid_full_content_and_the_pdf(
    folder: Folder, run: Run
) -> None:
    data = build(folder, run)["rss.xml"]
    parsed = feedparser.parse(data)
    assert parsed.version == "rss20"
    self_links = [link for link in parsed.feed.links if link.rel == "self"]
    assert self_links[0].href == f"{SITE}rss.xml"
    energy = parsed.entries[1]
    assert energy.id == archive("mediterranean-energy")
    assert f'<guid isPermaLink="true">{archive("mediterranean-energy")}</guid>'.encode() in data
    assert energy.link == "https://www.example.org/commentaries/mediterranean-energy"
    assert [a.name for a in energy.authors] == ["Łukasz Wróbel", "Ana Ćosić"]
    assert [t.term for t in energy.tags] == ["Energy", "Mediterranean", "EU"]
    # A date-time keeps its offset; RSS writes RFC 822 dates.
    assert b"<pubDate>Mon, 20 Oct 2025 09:30:00 +0200</pubDate>" in data
    stalemate = parsed.entries[3]
    assert stalemate.enclosures[0].href.endswith(".pdf")
    assert stalemate.enclosures[0].type == "application/pdf"
    assert int(stalemate.enclosures[0].length) > 0
    assert "<h2>" in stalemate.content[0].value


def test_atom_has_html_content_rfc3339_dates_and_one_alternate_link_per_entry(
    folder: Folder, run: Run
) -> None:
    data = build(folder, run)["atom.xml"]
    tree = etree.fromstring(data)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    assert tree.find("a:link[@rel='self']", ns).get("href") == f"{SITE}atom.xml"  # type: ignore[union-attr]
    for entry in tree.findall("a:entry", ns):
        assert entry.find("a:content", ns).get("type") == "html"  # type: ignore[union-attr]
        for name in ("a:updated", "a:published"):
            text = entry.find(name, ns).text  # type: ignore[union-attr]
            assert dt.datetime.fromisoformat(text).tzinfo is not None  # type: ignore[arg-type]
        links = entry.findall("a:link", ns)
        alternates = [link for link in links if link.get("rel", "alternate") == "alternate"]
        assert len(alternates) == 1
    stalemate = feedparser.parse(data).entries[3]
    enclosure = [link for link in stalemate.links if link.rel == "enclosure"]
    assert enclosure[0].type == "application/pdf"


def test_json_feed_has_every_field_json_feed_1_1_requires(folder: Folder, run: Run) -> None:
    feed: dict[str, Any] = json.loads(build(folder, run)["feed.json"])
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["title"] == "IAI Commentaries"
    assert feed["feed_url"] == f"{SITE}feed.json"
    assert [item["id"] for item in feed["items"]] == [archive(s) for s in NEWEST_FIRST]
    for item in feed["items"]:
        assert isinstance(item["id"], str)
        assert item["content_html"] and item["content_text"]
        assert dt.datetime.fromisoformat(item["date_published"]).tzinfo is not None
        assert all(set(author) == {"name"} for author in item["authors"])
    attachment = feed["items"][3]["attachments"][0]
    assert attachment["mime_type"] == "application/pdf"
    assert attachment["size_in_bytes"] > 0


def test_building_twice_gives_byte_identical_files_and_leaves_them_untouched(
    folder: Folder, run: Run
) -> None:
    first = build(folder, run)
    times = {p: p.stat().st_mtime_ns for p in folder.output.rglob("*") if p.is_file()}
    assert build(folder, run) == first
    assert times == {p: p.stat().st_mtime_ns for p in folder.output.rglob("*") if p.is_file()}


def test_editing_a_commentary_never_changes_its_id(folder: Folder, run: Run) -> None:
    before = feedparser.parse(build(folder, run)["atom.xml"])
    path = folder.commentaries / "2025-11-05-sahel-after-the-juntas.md"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("date = 2025-11-05", "date = 2025-11-06"), encoding="utf-8")
    after = feedparser.parse(build(folder, run)["atom.xml"])
    assert after.entries[0].id == before.entries[0].id == archive("sahel-after-the-juntas")
    assert after.entries[0].published != before.entries[0].published


def test_feeds_hold_the_configured_number_of_entries(folder: Folder, run: Run) -> None:
    folder.configure("entries = 20", "entries = 2")
    files = build(folder, run)
    assert len(feedparser.parse(files["rss.xml"]).entries) == 2
    assert len(feedparser.parse(files["atom.xml"]).entries) == 2
    assert len(json.loads(files["feed.json"])["items"]) == 2
    # The archive still lists everything.
    assert files["archive/index.html"].count(b'<h2><a href="') == 4


def test_text_is_escaped_in_feeds(folder: Folder, run: Run) -> None:
    folder.write(
        "commentaries/2025-12-24-escaping.md",
        """
        +++
        title = "Tariffs & <Trade> \\"Wars\\""
        authors = ["A & B"]
        date = 2025-12-24
        tags = ["R&D"]
        +++

        Fish & chips <script>alert(1)</script>.
        """,
    )
    files = build(folder, run)
    for name in ("rss.xml", "atom.xml"):
        parsed = feedparser.parse(files[name])
        assert not parsed.bozo
        assert parsed.entries[0].title == "Tariffs & <Trade> “Wars”"
        assert "<script>" not in parsed.entries[0].content[0].value
    assert json.loads(files["feed.json"])["items"][0]["title"] == "Tariffs & <Trade> “Wars”"


def test_commentaries_of_the_same_day_get_distinct_atom_updated_times(
    folder: Folder, run: Run
) -> None:
    for slug in ("a-first", "b-second"):
        folder.write(
            f"commentaries/2025-11-05-{slug}.md",
            f"""
            +++
            title = "{slug}"
            authors = ["Somebody"]
            date = 2025-11-05
            +++

            Body.
            """,
        )
    tree = etree.fromstring(build(folder, run)["atom.xml"])
    ns = {"a": "http://www.w3.org/2005/Atom"}
    updated = [e.findtext("a:updated", namespaces=ns) for e in tree.findall("a:entry", ns)]
    assert len(set(updated)) == len(updated)
    times = [dt.datetime.fromisoformat(u) for u in updated]  # type: ignore[arg-type]
    assert times == sorted(times, reverse=True)


# Permanent ids and corrections ---------------------------------------------------------------

CORRECTED = """
    +++
    title = "Winter in the Baltic"
    authors = ["A. Author"]
    date = 2025-11-20
    +++

    The first version.
    """


def test_the_examples_keep_their_ids_and_a_new_commentary_gets_a_tag_uri_made_once(
    folder: Folder, run: Run
) -> None:
    folder.write("commentaries/2025-11-20-baltic.md", CORRECTED)
    first = feedparser.parse(build(folder, run)["atom.xml"])
    ids = {e.title: e.id for e in first.entries}
    assert archive("stalemate-to-escalation") in ids.values(), "an example's id changed"
    assert ids["Winter in the Baltic"] == "tag:www.example.org,2025-11-20:baltic"
    recorded = (folder.commentaries / "published.toml").read_text(encoding="utf-8")
    assert 'id = "tag:www.example.org,2025-11-20:baltic"' in recorded

    folder.configure(
        'site_url = "https://www.example.org/commentaries/"',
        'site_url = "https://news.example.net/"',
    )
    moved = build(folder, run)
    for name in ("atom.xml", "rss.xml"):
        after = {e.title: e.id for e in feedparser.parse(moved[name]).entries}
        assert after["Winter in the Baltic"] == "tag:www.example.org,2025-11-20:baltic", name
        assert after["After the Juntas: A Sober European Policy for the Sahel"] == archive(
            "sahel-after-the-juntas"
        ), "an id changed with site_url"
    assert b'<guid isPermaLink="false">' in moved["rss.xml"], "an old URL is no longer a link"
    items = json.loads(moved["feed.json"])["items"]
    assert {i["id"] for i in items} == set(ids.values())


def test_a_correction_with_updated_reaches_every_feed_and_check_warns_without_it(
    folder: Folder, run: Run
) -> None:
    path = folder.write("commentaries/2025-11-20-baltic.md", CORRECTED)
    build(folder, run)
    path.write_text(path.read_text().replace("The first version.", "The corrected version."))
    result = run("check")
    assert result.exit_code == 0
    assert f"{path}: warning: the text changed since it was published" in result.output
    assert "add `updated = " in result.output

    text = path.read_text().replace("date = 2025-11-20", "date = 2025-11-20\nupdated = 2025-11-22")
    path.write_text(text)
    result = run("check")
    assert "the text changed" not in result.output, result.output
    files = build(folder, run)
    atom = next(e for e in feedparser.parse(files["atom.xml"]).entries if "baltic" in e.id)
    assert atom.updated.startswith("2025-11-22") and atom.published.startswith("2025-11-20")
    item = next(i for i in json.loads(files["feed.json"])["items"] if "baltic" in i["id"])
    assert item["date_modified"].startswith("2025-11-22")
    assert item["date_published"].startswith("2025-11-20")
    rss = feedparser.parse(files["rss.xml"])
    assert rss.feed.updated.startswith("Sat, 22 Nov 2025"), "lastBuildDate follows the correction"
    assert "the text changed" not in run("check").output
