"""Embargo: a commentary whose time is to come stays out of feeds, archive and the default send."""

from __future__ import annotations

import datetime as dt
import json

from mailer.app.newsletter import Newsletter
from tests.conftest import SECRET, Folder, Run

EMBARGOED = """
+++
title = "A Piece for Tomorrow"
authors = ["A. Author"]
date = 2030-01-15
+++

Not yet.
"""

SHOWN_EARLIER = """
+++
title = "Dated Today, Out at Nine"
authors = ["A. Author"]
date = 2030-01-15
publish_at = 2030-01-15T09:00:00+01:00
+++

At nine.
"""


def _feed_titles(folder: Folder) -> list[str]:
    feed = json.loads((folder.output / "feed.json").read_text(encoding="utf-8"))
    return [item["title"] for item in feed["items"]]


def _at(folder: Folder, moment: dt.datetime) -> Newsletter:
    return Newsletter.load(folder.config_path, {"MAILER_SECRET": SECRET}, clock=lambda: moment)


def test_a_commentary_dated_in_the_future_is_left_out_of_the_build(
    folder: Folder, run: Run
) -> None:
    folder.write("commentaries/2030-01-15-tomorrow.md", EMBARGOED)
    result = run("build")
    assert result.exit_code == 0, result.output
    assert "Left out 'tomorrow' is embargoed until 2030-01-15 00:00 (Europe/Rome)" in result.output
    assert "A Piece for Tomorrow" not in _feed_titles(folder)
    assert not (folder.output / "archive" / "tomorrow").exists()
    index = (folder.output / "archive" / "index.html").read_text(encoding="utf-8")
    assert "A Piece for Tomorrow" not in index
    assert "tomorrow" not in (folder.output / "rss.xml").read_text(encoding="utf-8")


def test_building_after_the_time_includes_it(folder: Folder) -> None:
    folder.write("commentaries/2030-01-15-at-nine.md", SHOWN_EARLIER)
    before = dt.datetime(2030, 1, 15, 7, 59, tzinfo=dt.UTC)  # 08:59 in Rome
    built = _at(folder, before).build()
    assert [c.slug for c in built.embargoed] == ["at-nine"]
    assert "Dated Today, Out at Nine" not in _feed_titles(folder)
    _at(folder, before + dt.timedelta(minutes=1)).build()
    assert _feed_titles(folder)[0] == "Dated Today, Out at Nine"
    assert (folder.output / "archive" / "at-nine" / "index.html").is_file()


def test_publish_at_keeps_the_date_readers_see(folder: Folder) -> None:
    folder.write("commentaries/2030-01-15-at-nine.md", SHOWN_EARLIER)
    commentary = folder.newsletter().issue(["at-nine"]).lead
    assert commentary.date == dt.datetime(2030, 1, 15, tzinfo=commentary.date.tzinfo)
    assert commentary.public_at == dt.datetime(2030, 1, 15, 8, 0, tzinfo=dt.UTC)


def test_send_and_preview_without_a_slug_do_not_pick_an_embargoed_commentary(
    folder: Folder, run: Run
) -> None:
    folder.write("commentaries/2030-01-15-tomorrow.md", EMBARGOED)
    assert folder.newsletter().issue([]).lead.slug == "sahel-after-the-juntas"
    result = run("preview")
    assert result.exit_code == 0, result.output
    assert "Subject: A Piece for Tomorrow" not in result.output
    assert _at(folder, dt.datetime(2030, 1, 16, tzinfo=dt.UTC)).issue([]).lead.slug == "tomorrow"


def test_preview_and_check_work_on_it_and_say_until_when(folder: Folder, run: Run) -> None:
    folder.write("commentaries/2030-01-15-at-nine.md", SHOWN_EARLIER)
    result = run("preview", "at-nine", "--html", str(folder.path / "p.html"))
    assert result.exit_code == 0, result.output
    assert "'at-nine' is embargoed until 2030-01-15 09:00 (Europe/Rome)" in result.output
    assert "Dated Today, Out at Nine" in (folder.path / "p.html").read_text(encoding="utf-8")
    result = run("check")
    assert result.exit_code == 0, result.output
    assert "'at-nine' is embargoed until 2030-01-15 09:00 (Europe/Rome)" in result.output


def test_a_bad_publish_at_is_reported_at_its_line(folder: Folder, run: Run) -> None:
    folder.write(
        "commentaries/bad.md",
        '+++\ntitle = "T"\nauthors = ["A"]\ndate = 2030-01-15\npublish_at = "soon"\n+++\n\nB.\n',
    )
    result = run("check")
    assert result.exit_code == 2
    assert "bad.md:5: publish_at 'soon' is not a date" in result.output
