"""The public pages of `mailer serve`: subscribe, confirm, unsubscribe, preferences, the feeds,
the archive and a health check. Registered under the path of site_url by the app factory.

Confirm, unsubscribe and preferences are opened by signed tokens (mailer.core.tokens): a forged,
altered or expired token gets a page saying so (400), a token for somebody no longer held (or
made for whoever held the id before) gets 404, and neither changes anything. A GET or HEAD never
changes a subscription, since mail scanners open links: confirming takes a POST from the page's
button, unsubscribing a POST from the page's button or from a mail client's RFC 8058 one-click.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, abort, jsonify, make_response, request, url_for
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from mailer.core.addresses import MAX_NAME_LENGTH, Candidate, InvalidAddress, clean_name
from mailer.core.lifecycle import LEFT, Frequency, Reason, Status
from mailer.core.tokens import MAX_AGE_DAYS, InvalidLink, Purpose
from mailer.store.lists import Offered
from mailer.store.subscribers import Subscriber
from mailer.store.subscribing import confirm_subscription
from mailer.web import redact
from mailer.web.files import FEEDS, PAGE
from mailer.web.ratelimit import address_key, client_key
from mailer.web.service import Service, service
from mailer.web.signups import LinkRequest, SignUp
from mailer.web.texts import _, ngettext

pages = Blueprint("pages", __name__)
log = logging.getLogger("mailer.web")

CONFIRM_DAYS = MAX_AGE_DAYS[Purpose.CONFIRM]
ONE_CLICK_BODY = "One-Click"
"""RFC 8058: a one-click unsubscribe POST carries `List-Unsubscribe=One-Click`."""


def client_ip() -> str:
    return request.remote_addr or ""


def wants_json() -> bool:
    if request.is_json:
        return True
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == (
        "application/json"
    )


# Subscribing -------------------------------------------------------------------------------------

MAX_LISTS = 100
"""`lists` values one request may name; more get 400 (the form offers every list once)."""


def busy() -> str:
    return _("We cannot take your request just now. Please try again in a few minutes.")


def expired_form() -> str:
    return _(
        "This form has expired or your browser did not send its cookie: reload the page and "
        "try again."
    )


def address_problem(asked: str) -> str:
    """Why an address was refused, in the answer's language (mailer.core.addresses says it in
    English, for the command line)."""
    if not asked.strip():
        return _("Please give your email address.")
    return _("'%(address)s' is not a valid email address.", address=asked.strip())


def name_problem(asked: str) -> str:
    if len(asked.strip()) > MAX_NAME_LENGTH:
        return _("The name is longer than %(num)d characters.", num=MAX_NAME_LENGTH)
    return _("The name holds a line break or a control character.")


def offered_lists(current: Service) -> list[Offered]:
    """The lists the form offers: the public ones not archived, and the default list always,
    even before it exists. One query: a request loads them once, however many lists it names."""
    default = current.default_list
    found = current.newsletter.store.lists.offered(private=True)
    shown = [o for o in found if o.public or o.name == default]
    if all(o.name != default for o in shown):
        shown.append(Offered(default, default, "", public=True))
    return shown


def subscribe_page(current: Service, status: int = 200, **values: Any) -> Response:
    lists = offered_lists(current)
    context: dict[str, Any] = {
        "email": "",
        "name": "",
        "error": "",
        "chosen": [current.default_list],
        "languages": current.newsletter.config.newsletter.languages,
        "chosen_language": current.language(),
        "digest": current.newsletter.config.schedule.digest,
    }
    context.update(values)
    return current.page(
        "subscribe.html",
        status,
        action=url_for(".subscribe"),
        csrf_token=current.csrf.token(),
        lists=lists,
        **context,
    )


@dataclass(frozen=True)
class Asked:
    """A subscribe request as posted, before anything in it is trusted."""

    email: str
    name: str
    trap: str
    """The honeypot field: people leave it empty."""
    lists: list[str]
    detail: str
    """Which form it came through, recorded with the consent."""
    answer_json: bool
    language: str
    """The language chosen ("" when none was: the newsletter's)."""
    weekly: bool = False
    """They asked for the weekly digest instead of every issue."""

    def refuse(self, current: Service, message: str, status: int = 400, **form: Any) -> Response:
        return refuse(current, self.answer_json, message, status, **form)


def refuse(
    current: Service, answer_json: bool, message: str, status: int = 400, **form: Any
) -> Response:
    """A subscribe request turned down: the error as JSON, or the form again saying it."""
    if answer_json:
        return make_response(jsonify(error=message), status)
    return subscribe_page(current, status, error=message, **form)


@pages.route("/subscribe", methods=["GET", "POST"])
def subscribe() -> Response:
    """Double opt-in: parse the request, check its limits and fields, queue it (recorded and
    confirmed by mailer.web.signups), and answer the same whoever the address belongs to."""
    current = service()
    if request.method == "GET":
        return subscribe_page(current)
    asked = read_request(current)
    if isinstance(asked, Response):
        return asked
    checked = check_request(current, asked)
    if isinstance(checked, Response):
        return checked
    if not current.signups.submit(SignUp(checked, asked.detail, client_ip())):
        return asked.refuse(current, busy(), 503, email=asked.email, name=asked.name)
    return on_its_way(current, asked.answer_json)


def read_request(current: Service) -> Asked | Response:
    """The fields of a JSON or form request; the form's CSRF token is checked here."""
    answer_json = wants_json()
    if request.is_json:
        try:
            data = request.get_json(silent=True)
        except RecursionError:  # nested deeper than the parser goes: not a request of ours
            data = None
        if not isinstance(data, dict):
            example = '{"email": "…", "name": "…", "lists": ["…"]}'
            return refuse(
                current, answer_json, _("Send a JSON object: %(example)s", example=example)
            )
        email, name, trap = (data.get(field, "") for field in ("email", "name", "website"))
        chosen = data.get("lists", [])
        frequency = data.get("frequency", Frequency.IMMEDIATE.value)
        if not all(isinstance(v, str) for v in (email, name, trap)) or not (
            isinstance(chosen, list) and all(isinstance(v, str) for v in chosen)
        ):
            message = _("email, name and website are strings, lists a list of strings")
            return refuse(current, answer_json, message)
        language = data.get("language", "")
        if not isinstance(language, str):
            return refuse(current, answer_json, _('language is a string, like "it"'))
        current.speak(language)
        if frequency not in (Frequency.IMMEDIATE.value, Frequency.WEEKLY.value):
            return refuse(current, answer_json, _('frequency is "immediate" or "weekly"'))
        return Asked(
            email,
            name,
            trap,
            chosen,
            "subscribe endpoint (JSON)",
            answer_json,
            language,
            weekly=frequency == Frequency.WEEKLY.value,
        )
    form = request.form
    asked = Asked(
        form.get("email", ""),
        form.get("name", ""),
        form.get("website", ""),
        form.getlist("lists"),
        "subscribe form",
        answer_json,
        form.get("language", ""),
        weekly=form.get("frequency") == Frequency.WEEKLY.value,
    )
    if not current.csrf.valid():
        return asked.refuse(current, expired_form())
    return asked


def check_request(current: Service, asked: Asked) -> Candidate | Response:
    """The person to subscribe, or the answer when a limit or a field says no. A filled-in
    honeypot gets the usual answer, and nothing is queued."""
    limited = limit_client(current, "subscribe", asked.answer_json)
    if limited:
        return limited
    ip = client_ip()
    if asked.trap.strip():
        log.info("subscribe: honeypot filled in from %s; nothing stored", ip)
        return on_its_way(current, asked.answer_json)
    if len(asked.lists) > MAX_LISTS:
        return asked.refuse(current, _("a request names at most %(num)d lists", num=MAX_LISTS))
    try:
        email = current.addresses.normalise(asked.email)
        name = clean_name(asked.name)
    except (InvalidAddress, ValueError) as error:
        problem = (
            address_problem(asked.email)
            if isinstance(error, InvalidAddress)
            else name_problem(asked.name)
        )
        shown = asked.lists or [current.default_list]
        return asked.refuse(current, problem, email=asked.email, name=asked.name, chosen=shown)
    offered = {o.name for o in offered_lists(current)}
    unknown = [n for n in asked.lists if n not in offered]
    if unknown:
        there_is_none = _("there is no list '%(list)s'", list=unknown[0])
        return asked.refuse(current, there_is_none, email=email, name=name)
    language = reader_language(current, asked.language)
    if language is None:
        no_such = _("There is no such language to choose.")
        return asked.refuse(current, no_such, email=email, name=name)
    limited = limit_address(current, "subscribe", email, asked.answer_json)
    if limited:
        return limited
    return Candidate(
        email,
        name,
        frozenset(asked.lists or [current.default_list]),
        language=language,
        frequency=Frequency.WEEKLY if asked.weekly else None,
    )


def reader_language(current: Service, asked: str) -> str | None:
    """The language a reader chose as it is stored ("" for the newsletter's own, or when no
    choice was made); None when it is not one of those offered."""
    offered = current.newsletter.config.newsletter.languages
    if asked not in ("", *offered):
        return None
    return "" if asked == offered[0] else asked


def limit_client(current: Service, kind: str, answer_json: bool) -> Response | None:
    """Count a request from this client's network; the 429 answer once it asked too often."""
    ip = client_ip()
    wait = current.client_limit.hit(client_key(ip))
    if not wait:
        return None
    log.warning("%s: too many requests from %s", kind, ip)
    return too_many(current, wait, answer_json)


def limit_address(current: Service, kind: str, email: str, answer_json: bool) -> Response | None:
    """Count a request that may send `email` a message; the 429 answer once it had too many."""
    wait = current.address_limit.hit(address_key(email))
    if not wait:
        return None
    log.warning("%s: too many requests for %s", kind, redact.address(email))
    return too_many(current, wait, answer_json)


def on_its_way(current: Service, answer_json: bool) -> Response:
    """The answer to every accepted subscribe request, whoever the address belongs to."""
    message = " ".join(
        (
            _(
                "If the address can receive mail, a message with a link to confirm the "
                "subscription is on its way."
            ),
            ngettext(
                "The link works for %(num)d day; nothing else is sent before you confirm.",
                "The link works for %(num)d days; nothing else is sent before you confirm.",
                CONFIRM_DAYS,
            ),
        )
    )
    if answer_json:
        return jsonify(status="ok", message=message)
    return current.message(_("Check your inbox"), message)


def too_many(current: Service, wait: int, answer_json: bool) -> Response:
    minutes = max(1, round(wait / 60))
    message = ngettext(
        "Too many requests: please try again in %(num)d minute.",
        "Too many requests: please try again in %(num)d minutes.",
        minutes,
    )
    if answer_json:
        response = make_response(jsonify(error=message, retry_after=wait), 429)
    else:
        response = current.message(_("Please wait a little"), message, 429, problem=True)
    response.headers["Retry-After"] = str(wait)
    return response


# Signed links ------------------------------------------------------------------------------------


def open_link(current: Service, purpose: Purpose, token: str) -> Subscriber | Response:
    """The subscriber a link names, or the page saying why the link does not work."""
    links = current.newsletter.links
    try:
        link = links.read(purpose, token)
    except InvalidLink as error:
        log.info("%s: refused link %s (%s)", purpose.value, redact.token(token), error)
        if error.expired:
            again = purpose == Purpose.CONFIRM
            return current.message(
                _("This link has expired"),
                ngettext(
                    "Links to confirm a subscription work for %(num)d day: subscribe again to "
                    "get a new one.",
                    "Links to confirm a subscription work for %(num)d days: subscribe again to "
                    "get a new one.",
                    CONFIRM_DAYS,
                )
                if again
                else _("Use the link in a more recent issue instead."),
                400,
                problem=True,
                link=url_for(".subscribe") if again else "",
                link_text=_("Subscribe") if again else "",
            )
        return current.message(
            _("This link does not work"),
            _(
                "The link is not one we made: it may have been cut short or changed on its way. "
                "Open it again from the email, or copy the whole of it into your browser."
            ),
            400,
            problem=True,
        )
    subscriber = current.newsletter.store.subscribers.get(link.subscriber_id)
    # Made for whoever held this id before (erased, then the id given again; a restored or
    # re-imported list): that person is no longer here either.
    if subscriber is None or not links.names(link, subscriber.link_secret, subscriber.created_at):
        log.info("%s: link %s names nobody we hold", purpose.value, redact.token(token))
        return current.message(
            _("We hold no subscription for this link"),
            _("The address it was made for is no longer in our list: there is nothing to change."),
            404,
            problem=True,
        )
    current.speak_to(subscriber)
    return subscriber


@pages.route("/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str) -> Response:
    """GET: a page with a button, since mail scanners open links. POST: confirm, from that
    button, behind the form's CSRF token; confirming twice is harmless."""
    current = service()
    found = open_link(current, Purpose.CONFIRM, token)
    if isinstance(found, Response):
        return found
    action = url_for(".confirm", token=token)
    if request.method == "POST":
        if not current.csrf.valid():
            return current.message(
                _("This form has expired"),
                _("Nothing was changed: reload the page and press the button again."),
                400,
                problem=True,
                link=action,
                link_text=_("Reload"),
            )
        found = confirm_subscriber(current, found, token)
    if found.status not in (Status.PENDING, Status.ACTIVE):
        return current.message(
            _("This subscription has ended"),
            _(
                "The address left the list after this link was sent. To receive the newsletter "
                "again, subscribe once more."
            ),
            409,
            problem=True,
            link=url_for(".subscribe"),
            link_text=_("Subscribe"),
        )
    links = current.newsletter.links
    return current.page(
        "confirm.html",
        confirmed=found.status == Status.ACTIVE,
        email=found.email,
        lists=current.newsletter.store.lists.titles(found.lists),
        action=action,
        csrf_token=current.csrf.token(),
        preferences_url=url_for(
            ".preferences", token=links.token(Purpose.PREFERENCES, found.id, found.link_secret)
        ),
    )


def confirm_subscriber(current: Service, found: Subscriber, token: str) -> Subscriber:
    """Pending → active, owing them the welcome email the scheduler sends ([subscribe]
    welcome); the subscriber as they are now, whatever they were."""
    newsletter = current.newsletter
    welcome = newsletter.config.subscribe.welcome
    if found.status == Status.PENDING and confirm_subscription(
        newsletter.store, found.id, client_ip(), welcome
    ):
        log.info("confirm: subscriber %d confirmed (link %s)", found.id, redact.token(token))
    return newsletter.store.subscribers.get(found.id) or found


@pages.route("/unsubscribe/<token>", methods=["GET", "POST"])
def unsubscribe(token: str) -> Response:
    """GET: a page with a button. POST: unsubscribe, from that button or a mail client's
    one-click (RFC 8058), with no cookie, no login and no CSRF token: 200, never a redirect."""
    current = service()
    found = open_link(current, Purpose.UNSUBSCRIBE, token)
    if isinstance(found, Response):
        return found
    unsubscribed = found.status in LEFT
    if request.method == "POST":
        one_click = request.form.get("List-Unsubscribe") == ONE_CLICK_BODY
        reason = Reason.ONE_CLICK if one_click else Reason.UNSUBSCRIBE_PAGE
        subscribers = current.newsletter.store.subscribers
        if subscribers.change_status(
            found.id, Status.UNSUBSCRIBED, reason, "unsubscribe link", client_ip()
        ):
            log.info(
                "unsubscribe: subscriber %d unsubscribed (%s, link %s)",
                found.id,
                reason.value,
                redact.token(token),
            )
        unsubscribed = True
    links = current.newsletter.links
    return current.page(
        "unsubscribe.html",
        unsubscribed=unsubscribed,
        email=found.email,
        action=url_for(".unsubscribe", token=token),
        subscribe_url=url_for(".subscribe"),
        preferences_url=url_for(
            ".preferences", token=links.token(Purpose.PREFERENCES, found.id, found.link_secret)
        ),
    )


def preferences_link_page(current: Service, status: int = 200, **values: str) -> Response:
    return current.page(
        "preferences_link.html",
        status,
        action=url_for(".preferences_link"),
        csrf_token=current.csrf.token(),
        subscribe_url=url_for(".subscribe"),
        **{"email": "", "error": "", **values},
    )


@pages.route("/preferences/", methods=["GET", "POST"])
def preferences_link() -> Response:
    """A lost preferences link: the form takes an address; a known one is mailed a fresh link
    after the answer (mailer.web.signups), which is the same for every address. Limited with
    subscribe requests, by address and by network, since each may send a message."""
    current = service()
    if request.method == "GET":
        return preferences_link_page(current)
    asked = request.form.get("email", "")
    if not current.csrf.valid():
        return preferences_link_page(current, 400, email=asked, error=expired_form())
    limited = limit_client(current, "preferences", answer_json=False)
    if limited:
        return limited
    try:
        email = current.addresses.normalise(asked)
    except InvalidAddress:
        return preferences_link_page(current, 400, email=asked, error=address_problem(asked))
    limited = limit_address(current, "preferences", email, answer_json=False)
    if limited:
        return limited
    if not current.signups.submit(LinkRequest(email)):
        return preferences_link_page(current, 503, email=asked, error=busy())
    # The same answer to every accepted request, known address or not.
    return current.message(
        _("Check your inbox"),
        _(
            "If we hold a subscription for this address, a message with a link to your "
            "preferences is on its way."
        ),
    )


@pages.route("/preferences/<token>", methods=["GET", "POST"])
def preferences(token: str) -> Response:
    current = service()
    found = open_link(current, Purpose.PREFERENCES, token)
    if isinstance(found, Response):
        return found
    store = current.newsletter.store
    shown = [o for o in store.lists.offered(private=True) if o.public or o.name in found.lists]
    names = {o.name for o in shown}
    notice = ""
    if request.method == "POST":
        if not current.csrf.valid():
            return current.message(
                _("This form has expired"),
                _("Nothing was changed: reload the page and try again."),
                400,
                problem=True,
                link=url_for(".preferences", token=token),
                link_text=_("Reload"),
            )
        receiving = found.status in (Status.ACTIVE, Status.PENDING)
        if request.form.get("action") == "unsubscribe":
            if store.subscribers.change_status(
                found.id, Status.UNSUBSCRIBED, Reason.PREFERENCES, "preferences page", client_ip()
            ):
                log.info("preferences: subscriber %d unsubscribed from all", found.id)
            notice = _("You are unsubscribed from every list.")
        elif receiving:
            asked = request.form.getlist("lists")
            if len(asked) > MAX_LISTS:
                return current.message(
                    _("Too many lists"),
                    _("A form names at most %(num)d lists; nothing was changed.", num=MAX_LISTS),
                    400,
                    problem=True,
                    link=url_for(".preferences", token=token),
                    link_text=_("Reload"),
                )
            chosen = sorted(set(asked) & names)
            kept = [n for n in found.lists if n not in names]  # archived lists are not shown
            if store.subscribers.set_lists(found.id, [*chosen, *kept]):
                log.info("preferences: subscriber %d now on %d lists", found.id, len(chosen))
            language = reader_language(current, request.form.get("language", ""))
            if language is not None and "language" in request.form:
                store.subscribers.set_language(found.id, language)
            weekly = set(request.form.getlist("weekly"))
            for list_name in chosen:
                frequency = Frequency.WEEKLY if list_name in weekly else Frequency.IMMEDIATE
                now = current.newsletter.clock()
                if store.subscribers.set_frequency(found.id, list_name, frequency, now):
                    log.info("preferences: subscriber %d now %s on a list", found.id, frequency)
            notice = (
                _("Saved.")
                if chosen
                else _("Saved: you are on no list now, so you will receive no issues.")
            )
        found = store.subscribers.get(found.id) or found
        current.speak_to(found)
    return current.page(
        "preferences.html",
        email=found.email,
        active=found.status in (Status.ACTIVE, Status.PENDING),
        lists=shown,
        chosen=found.lists,
        languages=current.newsletter.config.newsletter.languages,
        chosen_language=found.language,
        weekly=found.weekly,
        digest=current.newsletter.config.schedule.digest,
        notice=notice,
        action=url_for(".preferences", token=token),
        csrf_token=current.csrf.token(),
        subscribe_url=url_for(".subscribe"),
    )


# Feeds, archive, health --------------------------------------------------------------------------


def built(content_type: str, *parts: str) -> Response:
    """A file of the build output (conditional GET), or the 404 page. Plain GETs of built files
    are answered before Flask (mailer.web.files.Shortcut); what reaches here is the rest."""
    files = service().files
    found = files.get(parts, content_type)
    if found is None:
        abort(404)
    return files.response(request, found)


@pages.get('/<any("rss.xml", "atom.xml", "feed.json"):name>')
def feed(name: str) -> Response:
    return built(FEEDS[name], name)


@pages.get("/archive/")
def archive() -> Response:
    return built(PAGE, "archive", "index.html")


@pages.get("/archive/<slug>/")
def commentary(slug: str) -> Response:
    return built(PAGE, "archive", slug, "index.html")


@pages.get("/healthz")
def healthz() -> Response:
    try:
        with service().newsletter.store.engine.connect() as connection:
            connection.execute(select(1))
    except SQLAlchemyError as error:
        log.error("healthz: the database does not answer: %s", error)
        return make_response(jsonify(status="error", reason="the database does not answer"), 503)
    return jsonify(status="ok")
