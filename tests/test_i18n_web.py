"""Languages on the web and in personal mail: an Italian newsletter's subscribe → confirm →
preferences path through the real Flask app with no English left (scanned against the English
catalog, as test_i18n.py scans the email), the confirmation mail and pages in the subscriber's
language on an English newsletter, a browser's Accept-Language on a first visit, and the weekly
digest in Italian."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import re
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from mailer.app.newsletter import Newsletter
from mailer.core.addresses import Candidate
from mailer.core.config import DIGEST_SUBJECT
from mailer.core.lifecycle import Frequency, Reason, Status
from mailer.core.tokens import Purpose
from mailer.render.email import digest_subject
from mailer.web import create_app
from tests.conftest import Folder, Run
from tests.test_digests import MONDAY, NEXT_MONDAY, THURSDAY, TUESDAY, choose, write_piece
from tests.test_i18n import ITALIAN, english_phrases, italian_newsletter, visible_text
from tests.test_scheduler import FakeClock, scheduler_of
from tests.test_web import (
    BASE,
    SITE,
    confirm,
    confirmation_link,
    csrf_token,
    local,
    outbox,
    preferences_link,
    service_of,
    settled,
    subscribe,
)

READER = "lia@example.org"


def english_left(seen: str) -> list[str]:
    """The English catalog's phrases still in `seen` (addresses taken out: they say /archive/)."""
    seen = re.sub(r"https?://\S+|/commentaries/\S+", "", seen)
    return [p for p in english_phrases() if re.search(rf"\b{re.escape(p)}\b", seen)]


def page_text(answer: TestResponse) -> str:
    return visible_text(answer.data)


def mail_text(message: EmailMessage) -> str:
    """What a reader sees of a message: its subject, its HTML part and its text part."""
    html, text = (message.get_body((kind,)) for kind in ("html", "plain"))
    assert isinstance(html, EmailMessage) and isinstance(text, EmailMessage)
    return " ".join(
        (str(message["Subject"]), visible_text(html.get_content()), str(text.get_content()))
    )


def html_language(message: EmailMessage) -> str | None:
    html = message.get_body(("html",))
    assert isinstance(html, EmailMessage)
    found = re.search(r'<html lang="([^"]+)"', html.get_content())
    return found[1] if found else None


def web_service(folder: Folder, run: Run) -> Iterator[Flask]:
    """The web service of the folder's newsletter, built."""
    assert run("build").exit_code == 0
    newsletter = folder.newsletter()
    app = create_app(newsletter)
    app.testing = True
    yield app
    newsletter.store.close()


@pytest.fixture
def app(folder: Folder, run: Run) -> Iterator[Flask]:
    """The example newsletter: en-GB, and its readers may choose Italian."""
    yield from web_service(folder, run)


@pytest.fixture
def italian_app(folder: Folder, run: Run) -> Iterator[Flask]:
    """The example newsletter made Italian (language = "it")."""
    italian_newsletter(folder)
    yield from web_service(folder, run)


def test_an_italian_newsletters_subscribe_confirm_and_preferences_say_nothing_in_english(
    italian_app: Flask, folder: Folder
) -> None:
    client = italian_app.test_client()
    newsletter = service_of(italian_app).newsletter
    seen: dict[str, str] = {}
    form = client.get(f"{BASE}/subscribe")
    assert '<html lang="it"' in form.text
    seen["subscribe form"] = page_text(form)
    bad = subscribe(client, "not an address")
    assert bad.status_code == 400
    seen["a bad address"] = page_text(bad)
    seen["an expired form"] = page_text(
        settled(client, client.post(f"{BASE}/subscribe", data={"email": READER}))
    )
    answer = subscribe(client, READER, name="Lia")
    assert answer.status_code == 200
    seen["on its way"] = page_text(answer)
    (message,) = outbox(folder)
    assert html_language(message) == "it"
    seen["confirmation mail"] = mail_text(message)
    link = confirmation_link(message)
    seen["confirm page"] = page_text(client.get(link))
    confirmed = confirm(client, link)
    assert confirmed.status_code == 200
    seen["confirmed page"] = page_text(confirmed)

    lia = newsletter.store.subscribers.find(READER)
    assert lia is not None
    path = local(newsletter.recipient(lia.id, lia.link_secret, lia.email, "").preferences_url)
    seen["preferences"] = page_text(client.get(path))
    data = {"action": "save", "lists": ["commentaries"], "csrf_token": csrf_token(client, path)}
    saved = client.post(path, data=data)
    assert saved.status_code == 200 and "Modifiche salvate." in saved.text
    seen["preferences saved"] = page_text(saved)
    seen["preferences without their token"] = page_text(client.post(path, data={"action": "save"}))
    seen["a broken link"] = page_text(client.get(f"{BASE}/preferences/not-a-token"))
    seen["no such page"] = page_text(client.get(f"{BASE}/nowhere"))

    seen["the lost-link form"] = page_text(client.get(f"{BASE}/preferences/"))
    asked = {"email": READER, "csrf_token": csrf_token(client, f"{BASE}/preferences/")}
    seen["link on its way"] = page_text(
        settled(client, client.post(f"{BASE}/preferences/", data=asked))
    )
    (relinked,) = [m for m in outbox(folder) if m["Subject"] != message["Subject"]]
    assert preferences_link(relinked) and html_language(relinked) == "it"
    seen["preferences link mail"] = mail_text(relinked)
    unsubscribe = local(newsletter.links.url(Purpose.UNSUBSCRIBE, lia.id, lia.link_secret))
    seen["unsubscribe page"] = page_text(client.get(unsubscribe))
    seen["unsubscribed"] = page_text(client.post(unsubscribe))

    json_error = client.post(f"{BASE}/subscribe", json={"email": "", "name": "Lia"})
    assert json_error.status_code == 400 and json_error.json is not None
    seen["a JSON error"] = json_error.json["error"]

    assert "Controlli la posta in arrivo" in seen["on its way"]
    assert "non è un indirizzo email valido" in seen["a bad address"]
    assert "Conferma dell’iscrizione a IAI Commentaries" in seen["confirmation mail"]
    assert "Pagina non trovata" in seen["no such page"]
    for where, text in seen.items():
        assert not english_left(text), f"{where} still says in English: {english_left(text)}"


def test_a_reader_who_chose_italian_gets_the_confirmation_and_its_pages_in_italian(
    app: Flask, folder: Folder
) -> None:
    client = app.test_client()
    newsletter = service_of(app).newsletter
    answer = subscribe(client, READER, language="it")
    assert "Controlli la posta in arrivo" in answer.text, "the form's choice is honoured"
    lia = newsletter.store.subscribers.find(READER)
    assert lia is not None and lia.language == "it"
    (message,) = outbox(folder)
    assert str(message["Subject"]) == "Conferma dell’iscrizione a IAI Commentaries"
    assert html_language(message) == "it"
    assert "La preghiamo di confermare l’iscrizione" in mail_text(message)
    assert not english_left(mail_text(message))

    link = confirmation_link(message)
    fresh = app.test_client()  # another browser, as a mail client opens it: the stored language
    page = fresh.get(link)
    assert '<html lang="it"' in page.text and not english_left(page_text(page))
    assert "Iscrizione completata" in confirm(fresh, link).text
    english = app.test_client().get(f"{BASE}/subscribe")
    assert '<html lang="en-GB"' in english.text and "Email address" in english.text


def test_an_imported_italian_reader_of_an_english_newsletter_gets_the_preferences_link_in_italian(
    app: Flask, folder: Folder
) -> None:
    newsletter = service_of(app).newsletter
    newsletter.store.subscribers.merge(
        [Candidate(READER, "", frozenset({"commentaries"}), language="it")],
        status=Status.ACTIVE,
        reason=Reason.IMPORT,
    )
    client = app.test_client()
    asked = {"email": READER, "csrf_token": csrf_token(client, f"{BASE}/preferences/")}
    answer = settled(client, client.post(f"{BASE}/preferences/", data=asked))
    assert "a message with a link to your preferences is on its way" in answer.text
    (message,) = outbox(folder)
    assert str(message["Subject"]) == "Il link alle sue preferenze per IAI Commentaries"
    assert html_language(message) == "it" and not english_left(mail_text(message))
    page = client.get(preferences_link(message))
    assert '<html lang="it"' in page.text and not english_left(page_text(page))


def test_a_first_visit_takes_the_browsers_language_among_those_offered(app: Flask) -> None:
    client: FlaskClient = app.test_client()
    italian = client.get(f"{BASE}/subscribe", headers={"Accept-Language": "it-IT,it;q=0.9,en"})
    assert '<html lang="it"' in italian.text
    assert '<option value="it" lang="it" selected>' in italian.text
    assert not english_left(page_text(italian))
    assert "Accept-Language" in italian.headers["Vary"]
    for header in ("fr-FR,fr;q=0.9", "en-US,en;q=0.8,it;q=0.5", ""):
        page = client.get(f"{BASE}/subscribe", headers={"Accept-Language": header})
        assert '<html lang="en-GB"' in page.text, header
    chosen = client.get(
        f"{BASE}/subscribe?language=en-GB", headers={"Accept-Language": "it-IT,it;q=0.9"}
    )
    assert '<html lang="en-GB"' in chosen.text, "a choice in the request beats the browser's"
    missing = client.get(f"{BASE}/nowhere", headers={"Accept-Language": "it"})
    assert missing.status_code == 404 and "Pagina non trovata" in missing.text
    limited = client.post(
        f"{BASE}/subscribe",
        json={"email": "x", "language": "it", "frequency": "monthly"},
    )
    assert limited.json == {"error": 'frequency vale "immediate" o "weekly"'}


def test_the_weekly_digest_of_an_italian_newsletter_is_in_italian(folder: Folder, run: Run) -> None:
    italian_newsletter(folder)
    path = folder.write("people.csv", "email,name,lists\nlia@example.net,Lia,commentaries\n")
    assert run("subscribers", "import", str(path)).exit_code == 0
    clock = FakeClock(MONDAY)
    with scheduler_of(folder, clock) as scheduler:
        choose(scheduler.newsletter, "lia@example.net", Frequency.WEEKLY, MONDAY)
        scheduler.tick()
        write_piece(folder, "martedi", "Il pezzo di martedì", TUESDAY)
        write_piece(folder, "giovedi", "Il pezzo di giovedì", THURSDAY)
        clock.set(NEXT_MONDAY)
        scheduler.tick()
    (path,) = (folder.path / "outbox").glob("*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert str(message["Subject"]) == "IAI Commentaries: 2 commenti questa settimana"
    assert html_language(message) == "it"
    assert not english_left(mail_text(message))


def test_a_digest_subject_left_as_it_is_follows_the_language_and_a_written_one_stays(
    folder: Folder,
) -> None:
    newsletter: Newsletter = folder.newsletter()
    lead = newsletter.commentaries().commentaries[0]
    settings = newsletter.config.newsletter
    italian = dataclasses.replace(lead, language="it")
    assert digest_subject(settings, DIGEST_SUBJECT, italian, 1) == (
        "IAI Commentaries: 1 commento questa settimana"
    )
    assert digest_subject(settings, DIGEST_SUBJECT, lead, 1) == (
        "IAI Commentaries: 1 commentary this week"
    )
    assert digest_subject(settings, "{name} — {title}", italian, 3) == (
        f"IAI Commentaries — {lead.title}"
    )


def test_an_italian_commentarys_subscribe_links_keep_its_language(folder: Folder, run: Run) -> None:
    folder.write("commentaries/2025-09-18-dallo-stallo-all-escalation.md", ITALIAN)
    for app in web_service(folder, run):
        client = app.test_client()
        italian = client.get(f"{BASE}/archive/dallo-stallo-all-escalation/")
        english = client.get(f"{BASE}/archive/stalemate-to-escalation/")
        assert italian.text.count(f'href="{SITE}{BASE}/subscribe?language=it"') == 2
        assert f'href="{SITE}{BASE}/subscribe"' in english.text
        assert "subscribe?language" not in english.text
        form = client.get(f"{BASE}/subscribe?language=it")
        assert '<html lang="it"' in form.text and not english_left(page_text(form))
        assert f'href="{BASE}/subscribe?language=it"' not in form.text
        assert 'subscribe?language=it">Iscriviti</a>' in form.text, "the nav keeps the language"
