"""Click counts that track no one ([analytics] clicks): an issue sent through the outbox, its
links followed through a real `mailer serve`, and the counts in `mailer campaigns show`."""

from __future__ import annotations

import re
from email.message import EmailMessage

import requests

from mailer.web import create_app
from mailer.web.service import EXTENSION, Service
from tests.conftest import Folder, Run
from tests.test_web import outbox
from tests.web_server import mailer_serve

SITE = "https://www.example.org"
BASE = "/commentaries"
PEOPLE = "email,name,lists\n" + "".join(
    f"reader{n}@example.net,Reader {n},commentaries\n" for n in range(3)
)
COUNTED = re.compile(r'href="(https://www\.example\.org/commentaries/r/(\d+)/(\d+)/([^"]+))"')


def send(folder: Folder, run: Run) -> list[EmailMessage]:
    people = folder.write("people.csv", PEOPLE)
    assert run("subscribers", "import", str(people)).exit_code == 0
    assert run("send", "--yes").exit_code == 0
    return outbox(folder)


def part(message: EmailMessage, kind: str) -> str:
    body = message.get_body((kind,))
    assert body is not None
    return str(body.get_content())


def test_links_are_counted_per_link_and_campaign_through_mailer_serve(
    folder: Folder, run: Run
) -> None:
    folder.configure("clicks = false", "clicks = true")
    messages = send(folder, run)

    links = [COUNTED.findall(part(m, "html")) for m in messages]
    assert links[0], "no link goes through the click counter"
    # The same URLs in every recipient's message: nothing in them names a person.
    assert links[0] == links[1] == links[2]
    for message in messages:
        html = part(message, "html")
        assert "/unsubscribe/" in html and "/preferences/" in html  # personal links stay
        assert "/r/" not in part(message, "plain")  # the text part shows where links go
    (first, campaign, link, signature) = links[0][0]
    second = next(found for found in links[0] if found[2] != link)
    local = first.removeprefix(SITE)

    with mailer_serve(folder.config_path, f"{BASE}/healthz") as served:
        base = f"http://127.0.0.1:{served.port}"
        followed = requests.get(base + local, allow_redirects=False, timeout=30)
        assert followed.status_code == 302
        assert followed.headers["Location"].startswith("https://")
        assert "/r/" not in followed.headers["Location"]
        assert requests.get(base + local, allow_redirects=False, timeout=30).status_code == 302
        assert requests.head(base + local, allow_redirects=False, timeout=30).status_code == 302
        other = second[0].removeprefix(SITE)
        assert requests.get(base + other, allow_redirects=False, timeout=30).status_code == 302
        # A changed signature, link or campaign is a 404: no open redirect.
        for changed in (
            local.replace(signature, "A" * len(signature)),
            local.replace(f"/r/{campaign}/{link}/", f"/r/{campaign}/{int(link) + 99}/"),
            local.replace(f"/r/{campaign}/", f"/r/{int(campaign) + 1}/"),
        ):
            answer = requests.get(base + changed, allow_redirects=False, timeout=30)
            assert answer.status_code == 404, changed
            assert "Location" not in answer.headers
        # Within seconds of the delivery, a burst from one network is a link scanner's.
        for _ in range(3):
            requests.get(base + local, allow_redirects=False, timeout=30)

    shown = run("campaigns", "show", campaign)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.split("Links, the most clicked first")[1].splitlines()[1:]
    assert re.match(r"\s+2\s+\(4 apart\)\s+https://", lines[0]), shown.output
    assert re.match(r"\s+1\s+\(0 apart\)\s+https://", lines[1]), shown.output


def test_requests_long_after_the_delivery_are_all_counted(folder: Folder, run: Run) -> None:
    folder.configure("clicks = false", "clicks = true")
    (message, *_) = send(folder, run)
    (url, campaign, link, _) = COUNTED.findall(part(message, "html"))[0]
    newsletter = folder.newsletter()
    app = create_app(newsletter)
    current = app.extensions[EXTENSION]
    assert isinstance(current, Service)
    current.clock = lambda: 4_102_444_800.0  # 2100: long after the delivery
    client = app.test_client()

    for _ in range(6):
        assert client.get(url.removeprefix(SITE)).status_code == 302

    (counted, *_) = newsletter.store.clicks.of_campaign(int(campaign))
    assert (counted.link_id, counted.clicks, counted.clicks_apart) == (int(link), 6, 0)


def test_without_click_counting_links_are_left_alone_and_the_route_is_not_found(
    folder: Folder, run: Run
) -> None:
    (message, *_) = send(folder, run)
    assert not COUNTED.search(part(message, "html"))
    newsletter = folder.newsletter()
    path = newsletter.links.click_url(1, 1).removeprefix(SITE)
    assert create_app(newsletter).test_client().get(path).status_code == 404
