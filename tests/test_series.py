"""Series furniture: the logo, the publisher's blurb and colophon, "Latest in this series" and a
subscribe link, in the email (both parts) and on the archive pages."""

from __future__ import annotations

import re

import lxml.html

from tests.conftest import Folder, Run
from tests.test_email import document, email_of, parts, squeeze
from tests.test_feeds import build
from tests.test_i18n import ITALIAN

STALEMATE = "stalemate-to-escalation"
NEWEST = "sahel-after-the-juntas"
SITE = "https://www.example.org/commentaries/"


def test_the_email_lists_the_commentaries_before_the_lead_with_number_authors_and_link(
    folder: Folder,
) -> None:
    _, rendered, data = email_of(folder)
    assert rendered.issue.lead.slug == NEWEST
    earlier = rendered.issue.latest
    assert [c.slug for c in earlier] == [
        "mediterranean-energy",
        "writing-a-commentary",
        STALEMATE,
    ]
    text, html = parts(data)
    root = document(html)
    assert squeeze(root.cssselect(".latest-title")[0].text_content()) == "Latest in this series"
    items = root.cssselect(".latest-item")
    assert len(items) == 3
    for item, commentary in zip(items, earlier, strict=True):
        assert commentary.number in item.text_content()
        assert " and ".join(commentary.authors[-2:]) in squeeze(item.text_content())
        assert item.cssselect("a")[0].get("href") == commentary.link
    flat = squeeze(text)
    assert "Latest in this series" in flat and earlier[-1].link in flat


def test_latest_is_as_long_as_configured_and_zero_leaves_it_out(folder: Folder) -> None:
    folder.configure("latest = 10", "latest = 1")
    _, rendered, _ = email_of(folder)
    assert len(rendered.issue.latest) == 1
    folder.configure("latest = 1", "latest = 0")
    _, rendered, data = email_of(folder)
    text, html = parts(data)
    assert rendered.issue.latest == ()
    assert not document(html).cssselect(".latest") and "Latest in this series" not in text


def test_blurb_editor_issn_phone_website_and_logo_in_the_email_and_on_every_page(
    folder: Folder, run: Run
) -> None:
    series = folder.newsletter().config.series
    _, _, data = email_of(folder, STALEMATE)
    text, html = parts(data)
    files = build(folder, run)
    (logo,) = [name for name in files if name.endswith("/logo.png")]
    assert files[logo] == (folder.path / "logo.png").read_bytes()
    pages = [name for name in files if name.startswith("archive/")]
    seen = {"email": squeeze(document(html).text_content()), "text": squeeze(text)}
    seen.update(
        {name: squeeze(lxml.html.document_fromstring(files[name]).text_content()) for name in pages}
    )
    for where, words in seen.items():
        assert series.about[:60] in words, where
        assert f"Editor: {series.editor}" in words, where
        assert f"ISSN {series.issn}" in words and series.phone in words, where
    root = document(html)
    (masthead,) = root.cssselect(".masthead img")
    assert masthead.get("src") == SITE + logo and masthead.get("width") == "536"
    for name in pages:
        page = lxml.html.document_fromstring(files[name])
        assert page.xpath(f"//img[@src='{SITE}{logo}']"), name
        assert page.xpath(f"//a[@href='{SITE}subscribe']"), f"{name} has no way to subscribe"
        assert page.xpath(f"//footer//a[@href='{series.website}']"), name


def test_a_commentary_in_another_language_prints_the_blurb_in_its_language(
    folder: Folder, run: Run
) -> None:
    folder.write("commentaries/2025-09-17-dallo-stallo.md", ITALIAN)
    series = folder.newsletter().config.series
    italian = series.about_translations["it"]
    assert italian and italian != series.about
    files = build(folder, run)
    for slug, blurb, other in (
        ("dallo-stallo", italian, series.about),
        (STALEMATE, series.about, italian),
    ):
        _, _, data = email_of(folder, slug)
        text, html = parts(data)
        page = files[f"archive/{slug}/index.html"]
        for where, words in (
            ("email", squeeze(document(html).text_content())),
            ("text", squeeze(text)),
            ("page", squeeze(lxml.html.document_fromstring(page).text_content())),
        ):
            assert blurb[:60] in words, f"{slug}: {where}"
            assert other[:60] not in words, f"{slug}: {where}"
    index = squeeze(lxml.html.document_fromstring(files["archive/index.html"]).text_content())
    assert series.about[:60] in index  # the archive is in the newsletter's language


def test_a_blurb_given_only_in_other_languages_still_makes_a_colophon(
    folder: Folder, run: Run
) -> None:
    folder.write("commentaries/2025-09-17-dallo-stallo.md", ITALIAN)
    italian = folder.newsletter().config.series.about_translations["it"]
    text = folder.config_path.read_text(encoding="utf-8")
    emptied = re.sub(
        r'(?m)^(about|editor|editor_address|issn|phone|website) = ".*"$', r'\1 = ""', text
    )
    folder.config_path.write_text(emptied, encoding="utf-8")
    files = build(folder, run)
    page = lxml.html.document_fromstring(files["archive/dallo-stallo/index.html"])
    assert [p.text_content() for p in page.cssselect("footer .about")] == [italian]
    english = lxml.html.document_fromstring(files[f"archive/{STALEMATE}/index.html"])
    assert not english.cssselect("footer .about")


def test_an_archive_page_lists_the_commentaries_before_it(folder: Folder, run: Run) -> None:
    files = build(folder, run)
    page = lxml.html.document_fromstring(files[f"archive/{NEWEST}/index.html"])
    titles = [squeeze(h.text_content()) for h in page.cssselect(".latest h3")]
    assert len(titles) == 3 and titles[-1].startswith("From Stalemate to Escalation")
    oldest = lxml.html.document_fromstring(files[f"archive/{STALEMATE}/index.html"])
    assert not oldest.cssselect(".latest"), "nothing came before the first commentary"


def test_a_missing_logo_is_reported_by_check(folder: Folder, run: Run) -> None:
    (folder.path / "logo.png").unlink()
    result = run("check")
    assert result.exit_code == 2
    assert f"{folder.config_path}: [series] logo" in result.output
    assert "cannot be read" in result.output
