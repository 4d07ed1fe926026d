"""Commentary files: what is read from them, and every way they are refused.

A refused commentary is reported as `file:line: message` by both `mailer check` and `mailer build`,
both exit with status 2, and the build leaves the output folder exactly as it was.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import textwrap
import zoneinfo
from collections.abc import Callable
from pathlib import Path

import feedparser  # type: ignore[import-untyped]
import lxml.html
import pytest
from click.testing import Result

from mailer.content import commentary as content
from tests.conftest import Folder, Run

SITE_URL = "https://www.example.org/commentaries/"
"""The example config's site_url."""
ROME = zoneinfo.ZoneInfo("Europe/Rome")
"""The example config's timezone."""
SITE = content.Site(SITE_URL, ROME)

BROKEN = "commentaries/2025-09-17-stalemate-to-escalation.md"
"""An example commentary that a test overwrites with a broken one."""
OTHER = "commentaries/2025-10-20-mediterranean-energy.md"

Refuse = Callable[[], tuple[Result, Result]]


@pytest.fixture
def refuse(folder: Folder, run: Run) -> Refuse:
    """Builds the example first; then runs check and build, both of which must refuse.

    The returned function asserts exit status 2 from both commands and an output folder left
    byte for byte as the successful build made it, then returns both results to look into.
    """
    first = run("build")
    assert first.exit_code == 0, first.output
    before = folder.output_files()
    assert before, "the example build wrote nothing"

    def check_and_build() -> tuple[Result, Result]:
        checked = run("check")
        built = run("build")
        assert checked.exit_code == 2, checked.output
        assert built.exit_code == 2, built.output
        assert folder.output_files() == before, "a refused build changed the output folder"
        return checked, built

    return check_and_build


def assert_reports(results: tuple[Result, ...], path: Path, line: int | None, message: str) -> None:
    """Every result's stderr has a line `path:line: …message…`."""
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    for result in results:
        lines = result.stderr.splitlines()
        assert any(
            text.startswith(where) and message in text.removeprefix(where) for text in lines
        ), f"expected {where}…{message}… in:\n{result.stderr}"


def write_bytes(folder: Folder, name: str, data: bytes) -> Path:
    target = folder.path / name
    target.write_bytes(data)
    return target


def read(tmp_path: Path, name: str, text: str) -> content.Commentary:
    """The commentary a file of this text makes; fails the test when the file is refused."""
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    commentary, problems = content.read(path, SITE)
    assert commentary is not None, [str(p) for p in problems]
    return commentary


# Missing required fields ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("missing", "front_matter", "hint"),
    [
        ("title", 'authors = ["A. Author"]\ndate = 2025-09-17', 'add `title = "…"`'),
        ("authors", 'title = "A title"\ndate = 2025-09-17', 'add `authors = ["…"]`'),
        ("date", 'title = "A title"\nauthors = ["A. Author"]', "add `date = 2025-09-17`"),
    ],
    ids=["title", "authors", "date"],
)
def test_a_missing_required_field_in_toml_is_reported(
    folder: Folder, refuse: Refuse, missing: str, front_matter: str, hint: str
) -> None:
    path = folder.write(BROKEN, f"+++\n{front_matter}\n+++\n\nBody.\n")
    assert_reports(refuse(), path, 1, f"the front matter has no {missing}; {hint}")


@pytest.mark.parametrize(
    ("missing", "front_matter", "hint"),
    [
        ("title", "authors: [A. Author]\ndate: 2025-09-17", 'add `title: "…"`'),
        ("authors", "title: A title\ndate: 2025-09-17", 'add `authors: ["…"]`'),
        ("date", "title: A title\nauthors: [A. Author]", "add `date: 2025-09-17`"),
    ],
    ids=["title", "authors", "date"],
)
def test_a_missing_required_field_in_yaml_is_reported_with_a_yaml_hint(
    folder: Folder, refuse: Refuse, missing: str, front_matter: str, hint: str
) -> None:
    path = folder.write(BROKEN, f"---\n{front_matter}\n---\n\nBody.\n")
    assert_reports(refuse(), path, 1, f"the front matter has no {missing}; {hint}")


# Wrong types ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("authors = 5", "authors must be a list in brackets"),
        ("authors = []", "authors needs at least one name"),
        ('title = ""', "title must not be empty"),
        ("number = 53", "number must be text in quotes, not 53"),
        ('draft = "yes"', "draft must be true or false, not 'yes'"),
        ("pdf_size = -1", "pdf_size must be the PDF's size in bytes"),
        (
            'pdf = "ftp://example.org/2553.pdf"',
            "pdf 'ftp://example.org/2553.pdf' is not a full web address",
        ),
    ],
    ids=["authors-number", "authors-empty", "title-empty", "number", "draft", "pdf_size", "pdf"],
)
def test_a_field_of_the_wrong_type_is_reported_at_its_line(
    folder: Folder, refuse: Refuse, setting: str, message: str
) -> None:
    key = setting.split(" =")[0]
    fields = {"title": '"A title"', "authors": '["A. Author"]', "date": "2025-09-17"}
    lines = [f"{k} = {v}" for k, v in fields.items() if k != key]
    path = folder.write(BROKEN, "\n".join(["+++", *lines, setting, "+++", "", "Body.", ""]))
    line = len(lines) + 2
    assert_reports(refuse(), path, line, message)


# Unknown keys ---------------------------------------------------------------------------------


def test_an_unknown_field_suggests_the_nearest_known_one(folder: Folder, refuse: Refuse) -> None:
    path = folder.write(
        BROKEN,
        """
        +++
        titel = "A title"
        authors = ["A. Author"]
        date = 2025-09-17
        +++

        Body.
        """,
    )
    results = refuse()
    assert_reports(results, path, 2, "unknown field 'titel'; did you mean 'title'?")
    assert_reports(results, path, 1, "the front matter has no title")


def test_an_unknown_field_with_no_near_one_lists_the_fields(folder: Folder, refuse: Refuse) -> None:
    path = folder.write(
        BROKEN,
        """
        +++
        title = "A title"
        authors = ["A. Author"]
        date = 2025-09-17
        colour = "blue"
        +++

        Body.
        """,
    )
    assert_reports(refuse(), path, 5, "unknown field 'colour'; the fields are: title, authors")


# Dates ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("date", "message"),
    [
        ("2025-13-45", "this is not valid TOML"),
        ('"yesterday"', "date 'yesterday' is not a date; write a date like 2025-09-17"),
        ('"2025-02-30"', "date '2025-02-30' is not a date"),
        (
            "2025-09-17T10:00:00",
            "date 2025-09-17T10:00:00 has no time zone offset; "
            "write it like 2025-09-17T10:00:00+02:00",
        ),
    ],
    ids=["impossible", "words", "impossible-string", "no-offset"],
)
def test_a_bad_date_is_reported_at_its_line(
    folder: Folder, refuse: Refuse, date: str, message: str
) -> None:
    path = folder.write(
        BROKEN, f'+++\ntitle = "A title"\nauthors = ["A. Author"]\ndate = {date}\n+++\n\nBody.\n'
    )
    assert_reports(refuse(), path, 4, message)


@pytest.mark.parametrize(
    ("date", "message"),
    [
        ("2025-09-17T10:00:00", "date 2025-09-17T10:00:00 has no time zone offset"),
        ("yesterday", "date 'yesterday' is not a date"),
        ("2025-13-45", "date"),
    ],
    ids=["no-offset", "words", "impossible"],
)
def test_a_bad_date_in_yaml_is_reported_at_its_line(
    folder: Folder, refuse: Refuse, date: str, message: str
) -> None:
    path = folder.write(BROKEN, f"---\ntitle: A title\ndate: {date}\nauthors: [A]\n---\n\nBody.\n")
    assert_reports(refuse(), path, 3, message)


# Encoding and front matter --------------------------------------------------------------------


def test_a_file_that_is_not_utf8_is_reported_at_the_first_bad_line(
    folder: Folder, refuse: Refuse
) -> None:
    text = '+++\ntitle = "A title"\nauthors = ["A. Author"]\nnumber = "Café"\ndate = 2025-09-17\n'
    path = write_bytes(folder, BROKEN, (text + "+++\n\nBody.\n").encode("latin-1"))
    assert_reports(refuse(), path, 4, "is not UTF-8 text; save the file as UTF-8")


def test_a_utf8_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "bom.md"
    path.write_bytes(
        '+++\ntitle = "Café"\nauthors = ["A"]\ndate = 2025-09-17\n+++\n\nBody.\n'.encode(
            "utf-8-sig"
        )
    )
    commentary, problems = content.read(path, SITE)
    assert problems == []
    assert commentary is not None
    assert commentary.title == "Café"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            '+++\ntitle = "A title\nauthors = ["A. Author"]\ndate = 2025-09-17\n+++\n',
            2,
            "this is not valid TOML",
        ),
        (
            '+++\ntitle = "A title"\nauthors = ["A. Author"]\ndate = 2025-09-17\n'
            "number = 25 | 53\n+++\n",
            5,
            "this is not valid TOML",
        ),
        (
            "---\ntitle: A title\nauthors: [A. Author]\nsummary: Why: this\ndate: 2025-09-17\n"
            "---\n",
            4,
            "this is not valid YAML",
        ),
        (
            "---\n- title\n- authors\n---\n",
            2,
            "the front matter must be a set of `key: value` lines",
        ),
        (
            "# A title\n\nBody with no front matter.\n",
            1,
            "a commentary starts with front matter between +++ lines (TOML) or --- lines (YAML)",
        ),
        (
            '+++\ntitle = "A title"\nauthors = ["A. Author"]\ndate = 2025-09-17\n\nBody.\n',
            1,
            "the front matter opened here is never closed; add a line +++",
        ),
    ],
    ids=["toml-string", "toml-value", "yaml", "yaml-list", "none", "unclosed"],
)
def test_broken_front_matter_is_reported_at_its_line(
    folder: Folder, refuse: Refuse, text: str, line: int, message: str
) -> None:
    path = folder.write(BROKEN, text + "\nBody.\n")
    assert_reports(refuse(), path, line, message)


# Every problem at once ------------------------------------------------------------------------


def test_every_problem_of_a_file_is_reported(folder: Folder, refuse: Refuse) -> None:
    path = folder.write(
        BROKEN,
        """
        +++
        titel = "A title"
        authors = 5
        number = 53
        draft = "yes"
        pdf_size = -1
        date = "yesterday"
        +++

        A [bad link](javascript:alert(1)).
        """,
    )
    results = refuse()
    assert_reports(results, path, 2, "unknown field 'titel'")
    assert_reports(results, path, 3, "authors must be a list")
    assert_reports(results, path, 4, "number must be text in quotes")
    assert_reports(results, path, 5, "draft must be true or false")
    assert_reports(results, path, 6, "pdf_size must be the PDF's size in bytes")
    assert_reports(results, path, 7, "date 'yesterday' is not a date")
    assert_reports(results, path, 1, "the front matter has no title")
    assert_reports(results, path, 10, "link to 'javascript:alert(1)' is not allowed")


def test_problems_in_two_files_are_reported_in_one_run(folder: Folder, refuse: Refuse) -> None:
    first = folder.write(BROKEN, '+++\ntitle = "A title"\nauthors = 5\ndate = 2025-09-17\n+++\n')
    second = folder.write(OTHER, "---\ntitle: A title\nauthors: [A]\ndate: tomorrow\n---\n")
    results = refuse()
    assert_reports(results, first, 3, "authors must be a list")
    assert_reports(results, second, 4, "date 'tomorrow' is not a date")


# Links ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html;base64,PHNjcmlwdD4=",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
    ],
)
def test_a_link_with_a_forbidden_scheme_is_reported_at_its_line(
    folder: Folder, refuse: Refuse, url: str
) -> None:
    path = folder.write(
        BROKEN,
        f"""
        +++
        title = "A title"
        authors = ["A. Author"]
        date = 2025-09-17
        +++

        A first paragraph.

        A [link]({url}) in the second one.
        """,
    )
    assert_reports(refuse(), path, 9, "is not allowed: links may only use http, https or mailto")


def test_a_forbidden_link_holding_quotes_is_reported_at_its_own_line(
    folder: Folder, refuse: Refuse
) -> None:
    path = folder.write(
        BROKEN,
        """
        +++
        title = "A title"
        authors = ["A. Author"]
        date = 2025-09-17
        +++

        A first paragraph.

        A [link](javascript:alert("boo")) in the second one.
        """,
    )
    assert_reports(refuse(), path, 9, "is not allowed: links may only use http, https or mailto")


def test_a_forbidden_image_address_is_reported(folder: Folder, refuse: Refuse) -> None:
    path = folder.write(
        BROKEN,
        """
        +++
        title = "A title"
        authors = ["A. Author"]
        date = 2025-09-17
        +++

        ![A chart](javascript:alert(1))
        """,
    )
    assert_reports(refuse(), path, 7, "link to 'javascript:alert(1)' is not allowed")


def test_mailto_and_https_links_are_kept_as_written(tmp_path: Path) -> None:
    commentary = read(
        tmp_path,
        "links.md",
        """
        +++
        title = "A title"
        authors = ["A. Author"]
        date = 2025-09-17
        +++

        Write to [the press office](mailto:press@example.org) or read
        [the report](https://example.net/report?page=2) and [its annex](HTTP://example.net/a).
        """,
    )
    assert '<a href="mailto:press@example.org">the press office</a>' in commentary.html
    assert '<a href="https://example.net/report?page=2">the report</a>' in commentary.html
    assert 'href="HTTP://example.net/a">its annex</a>' in commentary.html


def test_relative_links_and_images_become_absolute_against_the_archive_page(
    tmp_path: Path,
) -> None:
    commentary = read(
        tmp_path,
        "2025-09-17-stalemate.md",
        """
        +++
        title = "A title"
        authors = ["A. Author"]
        date = 2025-09-17
        +++

        See [the other piece](../other/) and ![a map](/commentaries/map.png).
        """,
    )
    assert commentary.archive_url == SITE_URL + "archive/stalemate/"
    assert f'href="{SITE_URL}archive/other/"' in commentary.html
    assert 'src="https://www.example.org/commentaries/map.png"' in commentary.html
    assert f"{SITE_URL}archive/other/" in commentary.text


# Raw HTML -------------------------------------------------------------------------------------

RAW_HTML = """
    +++
    title = "A title"
    authors = ["A. Author"]
    date = 2025-09-17
    +++

    <script>alert(1)</script>

    Some <b onclick="steal()">bold</b> words and <img src=x onerror=alert(2)>.
    """


def test_raw_html_in_the_body_is_escaped_text(tmp_path: Path) -> None:
    commentary = read(tmp_path, "raw.md", RAW_HTML)
    assert "<script" not in commentary.html
    assert "<b " not in commentary.html
    assert "<img" not in commentary.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in commentary.html
    assert "&lt;b onclick=" in commentary.html
    assert "&lt;img src=x onerror=alert(2)&gt;" in commentary.html


def test_raw_html_never_reaches_the_built_archive_page(folder: Folder, run: Run) -> None:
    folder.write("commentaries/2025-11-30-raw.md", RAW_HTML)
    result = run("build")
    assert result.exit_code == 0, result.output
    page = lxml.html.fromstring(folder.output_files()["archive/raw/index.html"])
    [article] = page.findall(".//article")
    assert article.findall(".//script") == []
    assert article.findall(".//img") == []
    assert [e for e in article.iter() if any(str(a).startswith("on") for a in e.attrib)] == []
    assert "<script>alert(1)</script>" in "".join(str(t) for t in article.itertext())


# YAML front matter ----------------------------------------------------------------------------


def test_yaml_front_matter_gives_the_same_commentary_as_toml(tmp_path: Path) -> None:
    from_toml = read(
        tmp_path / "toml",
        "2025-09-17-stalemate.md",
        """
        +++
        title = "From Stalemate to Escalation"
        authors = ["Nona Mikhelidze", "Ana Ćosić"]
        date = 2025-09-17T09:30:00+02:00
        number = "25 | 53"
        summary = ["First key point.", "Second key point."]
        tags = ["Russia", "NATO"]
        url = "https://example.org/commentaries/stalemate"
        pdf = "https://example.org/files/2553.pdf"
        pdf_size = 482133
        draft = true
        +++

        ### A section

        > A pull quote.
        """,
    )
    from_yaml = read(
        tmp_path / "yaml",
        "2025-09-17-stalemate.md",
        """
        ---
        title: "From Stalemate to Escalation"
        authors: [Nona Mikhelidze, Ana Ćosić]
        date: 2025-09-17T09:30:00+02:00
        number: "25 | 53"
        summary:
          - First key point.
          - Second key point.
        tags: [Russia, NATO]
        url: https://example.org/commentaries/stalemate
        pdf: https://example.org/files/2553.pdf
        pdf_size: 482133
        draft: true
        ---

        ### A section

        > A pull quote.
        """,
    )
    assert dataclasses.replace(from_yaml, path=from_toml.path) == from_toml
    assert from_yaml.authors == ("Nona Mikhelidze", "Ana Ćosić")
    assert from_yaml.date == dt.datetime(2025, 9, 17, 7, 30, tzinfo=dt.UTC)


def test_yaml_plain_date_is_midnight_in_the_configured_zone(tmp_path: Path) -> None:
    commentary = read(tmp_path, "a.md", "---\ntitle: T\nauthors: [A]\ndate: 2025-09-17\n---\n")
    assert commentary.date == dt.datetime(2025, 9, 17, tzinfo=ROME)


# Slugs and dates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("2025-09-17-stalemate.md", "stalemate"),
        ("stalemate.md", "stalemate"),
        ("2025-09-17-2025-review.md", "2025-review"),
    ],
)
def test_the_slug_is_the_file_name_without_its_date(tmp_path: Path, name: str, slug: str) -> None:
    commentary = read(tmp_path, name, '+++\ntitle = "T"\nauthors = ["A"]\ndate = 2025-09-17\n+++\n')
    assert commentary.slug == slug
    assert commentary.archive_url == f"{SITE_URL}archive/{slug}/"


def test_a_file_name_that_cannot_be_a_slug_is_refused(folder: Folder, refuse: Refuse) -> None:
    path = folder.write(
        "commentaries/2025-09-17-über uns.md",
        '+++\ntitle = "T"\nauthors = ["A"]\ndate = 2025-09-17\n+++\n',
    )
    assert_reports(refuse(), path, None, "the file name gives the slug 'über uns'")


def test_a_date_time_with_an_offset_keeps_its_offset(tmp_path: Path) -> None:
    commentary = read(
        tmp_path,
        "a.md",
        '+++\ntitle = "T"\nauthors = ["A"]\ndate = 2025-09-17T10:00:00+05:30\n+++\n',
    )
    assert commentary.date.utcoffset() == dt.timedelta(hours=5, minutes=30)
    assert commentary.date.isoformat() == "2025-09-17T10:00:00+05:30"


@pytest.mark.parametrize(
    ("date", "offset"),
    [("2025-09-17", "+02:00"), ("2025-01-15", "+01:00")],
    ids=["summer", "winter"],
)
def test_a_plain_date_is_midnight_in_the_configured_zone(
    tmp_path: Path, date: str, offset: str
) -> None:
    commentary = read(tmp_path, "a.md", f'+++\ntitle = "T"\nauthors = ["A"]\ndate = {date}\n+++\n')
    assert commentary.date == dt.datetime.fromisoformat(date).replace(tzinfo=ROME)
    assert commentary.date.tzinfo == ROME
    assert commentary.date.isoformat() == f"{date}T00:00:00{offset}"


def test_the_built_feed_dates_a_plain_date_at_midnight_in_the_configured_zone(
    folder: Folder, run: Run
) -> None:
    folder.write(
        "commentaries/2025-01-15-winter.md",
        '+++\ntitle = "Winter"\nauthors = ["A"]\ndate = 2025-01-15\n+++\n\nBody.\n',
    )
    folder.configure('timezone = "Europe/Rome"', 'timezone = "America/New_York"')
    result = run("build")
    assert result.exit_code == 0, result.output
    items = json.loads(folder.output_files()["feed.json"])["items"]
    dates = {item["url"]: item["date_published"] for item in items}
    assert dates[f"{SITE_URL}archive/winter/"] == "2025-01-15T00:00:00-05:00"


# Drafts ---------------------------------------------------------------------------------------

DRAFT = """
    +++
    title = "Not Yet"
    authors = ["A. Author"]
    date = 2025-12-01
    draft = true
    +++

    Unfinished.
    """


def test_a_draft_is_read_but_not_published(folder: Folder) -> None:
    folder.write("commentaries/2025-12-01-not-yet.md", DRAFT)
    collection = content.load_folder(folder.commentaries, SITE)
    assert collection.problems == []
    assert "not-yet" in [c.slug for c in collection.commentaries]
    assert "not-yet" not in [c.slug for c in collection.published()]
    assert collection.published(), "the example's commentaries are published"


def test_a_draft_is_not_built_into_the_feeds_or_the_archive(folder: Folder, run: Run) -> None:
    folder.write("commentaries/2025-12-01-not-yet.md", DRAFT)
    result = run("build")
    assert result.exit_code == 0, result.output
    files = folder.output_files()
    draft_url = f"{SITE_URL}archive/not-yet/"
    assert not any(name.startswith("archive/not-yet/") for name in files)
    assert b"Not Yet" not in files["archive/index.html"]
    json_ids = [item["id"] for item in json.loads(files["feed.json"])["items"]]
    rss_ids = [entry.id for entry in feedparser.parse(files["rss.xml"]).entries]
    atom_ids = [entry.id for entry in feedparser.parse(files["atom.xml"]).entries]
    for ids in (json_ids, rss_ids, atom_ids):
        assert ids, "the published commentaries are in every feed"
        assert draft_url not in ids


def test_a_broken_draft_is_still_checked(folder: Folder, refuse: Refuse) -> None:
    path = folder.write(
        "commentaries/2025-12-01-not-yet.md",
        """
        +++
        title = "Not Yet"
        authors = ["A. Author"]
        date = 2025-12-01
        draft = true
        number = 7
        +++
        """,
    )
    assert_reports(refuse(), path, 6, "number must be text in quotes")


# Duplicate slugs and warnings -----------------------------------------------------------------


def test_two_files_with_the_same_slug_are_an_error(folder: Folder, refuse: Refuse) -> None:
    front_matter = '+++\ntitle = "T"\nauthors = ["A"]\ndate = {}\n+++\n'
    folder.write("commentaries/2025-11-01-twins.md", front_matter.format("2025-11-01"))
    second = folder.write("commentaries/2025-11-02-twins.md", front_matter.format("2025-11-02"))
    assert_reports(
        refuse(), second, None, "the slug 'twins' is taken by 2025-11-01-twins.md; rename one"
    )


def test_an_image_without_a_description_is_a_warning_only(folder: Folder, run: Run) -> None:
    path = folder.write(
        "commentaries/2025-11-01-chart.md",
        """
        +++
        title = "A chart"
        authors = ["A. Author"]
        date = 2025-11-01
        +++

        The numbers:

        ![](chart.png)
        """,
    )
    folder.image("commentaries/chart.png", 400)
    checked = run("check")
    assert checked.exit_code == 0, checked.output
    assert_reports((checked,), path, 9, "warning: image has no description")
    assert "0 errors, 1 warning." in checked.output
    built = run("build")
    assert built.exit_code == 0, built.output
    assert "archive/chart/index.html" in folder.output_files()


def test_without_bodies_a_commentary_keeps_its_metadata_and_its_body_is_read_back(
    folder: Folder,
) -> None:
    """A build of thousands of commentaries holds their metadata only, reading each body back
    for its page; what it reads back is what reading with bodies gives."""
    whole = content.load_folder(folder.commentaries, SITE)
    light = content.load_folder(folder.commentaries, SITE, bodies=False)
    for full, metadata in zip(whole.commentaries, light.commentaries, strict=True):
        assert (metadata.html, metadata.source) == ("", "")
        assert metadata.title == full.title and metadata.preheader == full.preheader
        assert metadata.fingerprint == full.fingerprint != ""
        again = content.with_body(metadata, SITE)
        assert (again.html, again.text, again.source) == (full.html, full.text, full.source)
