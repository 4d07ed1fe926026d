"""Lists as staff manage them (`mailer lists`) and as subscribers see them: a title and a
description instead of the raw name, public lists on the subscribe form, archived ones nowhere."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from mailer.app.newsletter import Newsletter
from mailer.core.lifecycle import Status
from mailer.core.tokens import Purpose
from tests.conftest import Folder, Run
from tests.test_web import (  # noqa: F401
    BASE,
    add,
    app,
    client,
    csrf_token,
    local,
    newsletter,
    outbox,
    subscribe,
)


def test_lists_are_created_described_renamed_and_archived_from_the_command_line(
    db_folder: Folder, run: Run
) -> None:
    created = run(
        "lists", "create", "briefings", "--title", "Policy briefings", "--description", "Monthly."
    )
    assert created.exit_code == 0, created.output
    assert run("lists", "create", "staff", "--private").exit_code == 0
    assert run("lists", "create", "BRIEFINGS").exit_code == 2  # one list whatever the case

    described = run("lists", "describe", "Briefings", "--description", "Monthly, short.")
    assert described.exit_code == 0, described.output
    assert run("lists", "rename", "briefings", "Briefings").exit_code == 0  # a change of case
    assert run("lists", "archive", "staff").exit_code == 0

    shown = run("lists", "show").output.splitlines()
    assert any(re.match(r"Briefings\s.*\spublic\s+Policy briefings$", line) for line in shown)
    assert any(line.startswith("staff") and "archived" in line for line in shown)
    summaries = {s.name: s for s in db_folder.newsletter().store.lists.summaries()}
    assert summaries["Briefings"].description == "Monthly, short."
    assert summaries["staff"].archived and not summaries["staff"].public

    assert run("lists", "archive", "staff", "--restore").exit_code == 0
    assert not db_folder.newsletter().store.lists.summaries()[-1].archived


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("describe", "briefing", "--title", "x"), "there is no list 'briefing' (did you mean"),
        (("archive", "nothing-like-it"), "there is no list 'nothing-like-it';"),
        (("describe", "briefings", "--title", "two\nlines"), "one line"),
        (("describe", "briefings", "--description", "x" * 2001), "at most 2000 characters"),
    ],
)
def test_a_bad_list_command_says_what_is_wrong_and_changes_nothing(
    db_folder: Folder, run: Run, args: tuple[str, ...], message: str
) -> None:
    assert run("lists", "create", "briefings", "--title", "Briefings").exit_code == 0
    result = run("lists", *args)
    assert result.exit_code == 2
    assert message in result.output
    summary = db_folder.newsletter().store.lists.summaries()[0]
    assert (summary.title, summary.description, summary.archived) == ("Briefings", "", False)


@pytest.mark.parametrize("command", ["create", "rename", "describe", "archive"])
def test_every_lists_command_has_help_with_an_example(run: Run, command: str) -> None:
    result = run("lists", command, "--help")
    assert result.exit_code == 0
    assert re.search(rf"Example:\s+mailer lists {command} ", result.output), result.output


def test_the_subscribe_form_offers_public_lists_by_title_with_their_description(
    client: FlaskClient,  # noqa: F811
    newsletter: Newsletter,  # noqa: F811
) -> None:
    lists = newsletter.store.lists
    lists.create("briefings", title="Policy briefings", description="Monthly, short.")
    lists.create("staff-only", public=False)
    lists.create("old", title="Old series")
    lists.archive("old")

    page = client.get(f"{BASE}/subscribe").text

    assert '<input type="checkbox" name="lists" value="briefings"> Policy briefings' in page
    assert '<span class="description">Monthly, short.</span>' in page
    assert 'value="commentaries"' in page  # the default list, even before it is made
    assert "staff-only" not in page and "Old series" not in page
    token = csrf_token(client, f"{BASE}/subscribe")
    refused = client.post(
        f"{BASE}/subscribe",
        data={"email": "ada@example.org", "lists": "staff-only", "csrf_token": token},
    )
    assert "there is no list" in refused.text.replace("&#39;", "'")


def test_preferences_show_titles_and_keep_a_private_or_archived_list_of_the_subscriber(
    client: FlaskClient,  # noqa: F811
    newsletter: Newsletter,  # noqa: F811
) -> None:
    lists, subscribers = newsletter.store.lists, newsletter.store.subscribers
    lists.create("briefings", title="Policy briefings")
    lists.create("board", public=False, title="Board papers")
    lists.create("old")
    lists.create("hidden", public=False)
    reader = add(newsletter, "reader@example.org")
    subscribers.set_lists(reader.id, ["commentaries", "board", "old"])
    lists.archive("old")
    path = local(
        newsletter.recipient(reader.id, reader.link_secret, reader.email, "").preferences_url
    )

    page = client.get(path).text

    assert 'value="briefings"> Policy briefings' in page
    assert 'value="board" checked> Board papers' in page  # private, but theirs
    assert 'value="old"' not in page and 'value="hidden"' not in page
    saved = client.post(
        path,
        data={"action": "save", "lists": ["briefings"], "csrf_token": csrf_token(client, path)},
    )
    assert saved.status_code == 200
    after = subscribers.get(reader.id)
    assert after is not None and after.lists == ("briefings", "old")  # the archived one kept


def test_the_confirmation_page_names_the_lists_by_their_titles(
    client: FlaskClient,  # noqa: F811
    newsletter: Newsletter,  # noqa: F811
) -> None:
    newsletter.store.lists.create("commentaries", title="Weekly commentaries")
    pending = add(newsletter, "pending@example.org", Status.PENDING)
    token = newsletter.links.token(Purpose.CONFIRM, pending.id, pending.link_secret)

    page = client.get(f"{BASE}/confirm/{token}").text

    assert "(Weekly commentaries)" in page
    assert "(commentaries)" not in page


def test_the_confirmation_email_names_the_lists_by_their_titles(
    client: FlaskClient,  # noqa: F811
    newsletter: Newsletter,  # noqa: F811
    folder: Folder,
) -> None:
    newsletter.store.lists.create("commentaries", title="Weekly commentaries")
    newsletter.store.lists.create("briefings", title="Policy briefings")

    answer = subscribe(client, "ada@example.org", lists=["commentaries", "briefings"])

    assert answer.status_code == 200
    (message,) = outbox(folder)
    for kind in ("plain", "html"):
        part = message.get_body((kind,))
        assert part is not None
        text = " ".join(str(part.get_content()).split())
        assert "(Policy briefings and Weekly commentaries)" in text, kind


def test_the_confirmation_page_names_an_archived_list_by_its_title(
    client: FlaskClient,  # noqa: F811
    newsletter: Newsletter,  # noqa: F811
) -> None:
    newsletter.store.lists.create("old", title="Old series")
    pending = add(newsletter, "pending@example.org", Status.PENDING)
    newsletter.store.subscribers.set_lists(pending.id, ["old"])
    newsletter.store.lists.archive("old")
    token = newsletter.links.token(Purpose.CONFIRM, pending.id, pending.link_secret)

    page = client.get(f"{BASE}/confirm/{token}").text

    assert "(Old series)" in page
