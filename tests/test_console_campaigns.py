"""The dashboard and the campaign pages: counts, failures with reasons, a CSV of failures."""

from __future__ import annotations

import csv
import io

from sqlalchemy import update

from mailer.store.campaigns import DeliveryState
from mailer.store.schema import deliveries, subscribers
from mailer.store.staff import Role
from tests.conftest import Folder, Run
from tests.console_client import CONSOLE, make_console
from tests.test_sending import add_people, many


def test_the_dashboard_and_a_campaign_page_show_counts_and_failures(
    folder: Folder, run: Run
) -> None:
    add_people(folder, run, many(3))
    assert run("send", "stalemate-to-escalation", "--yes").exit_code == 0
    console = make_console(folder)
    store = console.newsletter.store
    (campaign,) = store.campaigns.all()
    with store.engine.begin() as connection:  # one delivery failed, as a refusing server leaves it
        first = connection.scalar(
            subscribers.select()
            .with_only_columns(subscribers.c.id)
            .order_by(subscribers.c.id)
            .limit(1)
        )
        connection.execute(
            update(deliveries)
            .where(deliveries.c.subscriber_id == first)
            .values(state=DeliveryState.FAILED.value, error="=550 5.7.1 refused by policy")
        )
    console.person("ed@example.org", Role.EDITOR)
    editor = console.signed_in("ed@example.org")
    dashboard = editor.get(f"{CONSOLE}/").text
    assert "<td>commentaries</td><td>3</td><td>3</td>" in dashboard
    add_people(folder, run, [("late@example.net", "Late", "commentaries")])  # counted at once
    assert "<td>commentaries</td><td>4</td><td>4</td>" in editor.get(f"{CONSOLE}/").text
    assert f'href="{CONSOLE}/campaigns/{campaign.id}"' in dashboard
    page = editor.get(f"{CONSOLE}/campaigns/{campaign.id}").text
    assert 'id="count-recipients">3<' in page and "reader0000@example.net" in page
    assert "550 5.7.1" in page
    exported = editor.get(f"{CONSOLE}/campaigns/{campaign.id}/failures.csv")
    assert exported.headers["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows == [
        ["email", "reason"],
        ["reader0000@example.net", "'=550 5.7.1 refused by policy"],
    ]
    assert editor.get(f"{CONSOLE}/campaigns/999").status_code == 404
    assert editor.get(f"{CONSOLE}/campaigns/999/failures.csv").status_code == 404
    listed = editor.get(f"{CONSOLE}/campaigns").text
    assert "From Stalemate to Escalation" in listed and ">done<" in listed
