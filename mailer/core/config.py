"""config.toml and the environment it reads, turned into typed, validated settings.

Every table of the file is a dataclass below; a field's type says how its value is checked (a Path
is relative to the config file), its metadata may rename the key (`from`) or check the value.
`${NAME}` in a string takes the environment variable's value; a missing variable is reported only
when somebody reads that setting, so a build never asks for the SMTP password.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from mailer.core import tomltext
from mailer.core.errors import ConfigError, Problem
from mailer.core.languages import language_code
from mailer.core.urls import ascii_url

DEFAULT_PATH = Path("config.toml")
ENVIRONMENT_VARIABLE = "MAILER_CONFIG"

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class _Missing:
    """A setting whose `${NAME}` is not in the environment; reading it raises ConfigError."""

    problem: Problem


class Section:
    """Base of every table: reading a setting whose variable is missing raises, naming it.

    A provider's table says where it sits in config.toml in TABLE, e.g. ("delivery", "smtp")."""

    TABLE: ClassVar[tuple[str, ...]] = ()

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        if isinstance(value, _Missing):
            raise ConfigError([value.problem])
        return value


S = TypeVar("S", bound="Section")
Check = Callable[[Any], Any]
"""Returns the value to keep (possibly normalised) or raises ValueError saying what is wrong."""


def setting(
    default: Any = dataclasses.MISSING, *, key: str = "", check: Check | None = None
) -> Any:
    metadata = {"key": key, "check": check}
    if isinstance(default, dict):  # a table of texts: each settings object its own copy
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def _required(spec: dataclasses.Field[Any]) -> bool:
    return spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING


def http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"'{value}' is not an absolute http or https URL, like https://example.org/"
        )
    return value


def _site_url(value: str) -> str:
    """The public base of archive, feeds and links: ASCII (links go into headers), always
    ending with a slash."""
    return ascii_url(http_url(value)).rstrip("/") + "/"


def _address(value: str) -> str:
    if any(c in value for c in "\r\n"):
        raise ValueError("an address cannot hold a line break")
    _, address = parseaddr(value)
    if "@" not in address:
        raise ValueError(f"'{value}' is not an email address, like \"Name <news@example.org>\"")
    return value


def _optional_address(value: str) -> str:
    return _address(value) if value else value


def _optional_http_url(value: str) -> str:
    return http_url(value) if value else value


def _language_codes(value: str) -> str:
    for code in value.split():
        language_code(code)
    return value


def _by_language(value: dict[str, str]) -> dict[str, str]:
    """Texts by language code (`{ it = "…" }`), each code one that CLDR knows."""
    for code in value:
        language_code(code)
    return value


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"'{value}' is not a time zone name, like Europe/Rome or UTC") from None
    return value


def one_of(*choices: str) -> Check:
    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"'{value}' is not one of: {', '.join(choices)}")
        return value

    return check


def at_least(minimum: float) -> Check:
    def check(value: float) -> float:
        if value < minimum:
            raise ValueError(f"must be {minimum:g} or more, not {value:g}")
        return value

    return check


@dataclass(frozen=True)
class NewsletterSettings(Section):
    name: str = setting()
    site_url: str = setting(check=_site_url)
    sender: str = setting(key="from", check=_address)
    postal_address: str = setting()
    secret: str = setting()
    reply_to: str = setting("", check=_optional_address)
    unsubscribe_mailto: str = setting("", check=_optional_address)
    """An address whose mail unsubscribes, offered in List-Unsubscribe after the link."""
    feedback_id: str = setting("")
    """A Feedback-ID header (Gmail's complaint feedback loop), e.g. `commentaries:example`."""
    language: str = setting("en", check=language_code)
    reader_languages: str = setting("", check=_language_codes)
    """Other languages readers may choose on the subscribe form and preferences page,
    space-separated (`it fr`); empty: the newsletter's alone, and no choice is shown."""
    timezone: str = setting("UTC", check=_timezone)

    @property
    def languages(self) -> list[str]:
        """Every language a subscriber may read the newsletter in, its own first."""
        others = [code for code in self.reader_languages.split() if code != self.language]
        return [self.language, *others]

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


@dataclass(frozen=True)
class SeriesSettings(Section):
    """What the series prints in every issue and on every archive page, as its last page does."""

    about: str = setting("")
    """The publisher's blurb, in the newsletter's language."""
    about_translations: dict[str, str] = setting({}, check=_by_language)
    """The blurb in other languages, by language code: what a commentary in one of them prints
    instead of `about`."""
    editor: str = setting("")
    editor_address: str = setting("")
    issn: str = setting("")
    phone: str = setting("")
    website: str = setting("", check=_optional_http_url)
    logo: Path | None = setting(None)
    """A local image (PNG or JPEG), published with the archive like a commentary's images."""
    latest: int = setting(10, check=at_least(0))
    """How many earlier commentaries "Latest in this series" lists; 0 leaves the block out."""

    def about_in(self, language: str) -> str:
        """The blurb for a commentary in `language`: its translation (or that of its base
        language, `pt` for `pt-BR`), else `about`."""
        translations = self.about_translations
        return translations.get(language) or translations.get(language.split("-")[0]) or self.about


@dataclass(frozen=True)
class PathSettings(Section):
    commentaries: Path = setting(Path("commentaries"))
    templates: Path | None = setting(None)
    output: Path = setting(Path("public"))


@dataclass(frozen=True)
class DatabaseSettings(Section):
    url: str = setting("sqlite:///subscribers/mailer.db")
    patience: float = setting(60.0, check=at_least(0.1))
    """Seconds a send waits for a database that went away before it pauses the campaign."""


@dataclass(frozen=True)
class FeedSettings(Section):
    entries: int = setting(20, check=at_least(1))


@dataclass(frozen=True)
class DeliverySettings(Section):
    backend: str = setting("outbox")
    """A provider's name (mailer.providers.registry): checked against the registry on loading."""
    list: str = setting("commentaries")
    rate: float = setting(0.0, check=at_least(0))
    concurrency: int = setting(4, check=at_least(1))
    max_attempts: int = setting(5, check=at_least(1))
    retry_backoff: float = setting(2.0, check=at_least(0))
    lease: float = setting(300.0, check=at_least(1))
    """Seconds a worker holds a claimed batch; a dead worker's batch is taken over after it."""


@dataclass(frozen=True)
class DkimSettings(Section):
    domain: str = setting("")
    selector: str = setting("")
    private_key_file: Path | None = setting(None)


@dataclass(frozen=True)
class WebSettings(Section):
    host: str = setting("127.0.0.1")
    port: int = setting(8000, check=at_least(1))


def _weekly(value: str) -> str:
    if value:
        weekly_time(value)
    return value


def weekly_time(value: str) -> tuple[int, int, int]:
    """`monday 08:00` as (weekday 0-6, hour, minute); raises ValueError saying how to write it."""
    day, _, clock = value.strip().lower().partition(" ")
    hour, _, minute = clock.strip().partition(":")
    if day not in WEEKDAYS or not (hour.isdigit() and minute.isdigit()):
        raise ValueError(f"'{value}' is not a day and time; write it like \"monday 08:00\"")
    if int(hour) > 23 or int(minute) > 59:
        raise ValueError(f"'{value}' has no such time of day; write it like \"monday 08:00\"")
    return WEEKDAYS.index(day), int(hour), int(minute)


def _subject_template(value: str) -> str:
    try:
        value.format(name="N", title="T", count=2)
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(
            f"'{value}' is not a subject template: {error}; use {{name}}, {{title}} (the newest "
            'commentary\'s) and {{count}}, like "{name}: {count} commentaries this week"'
        ) from None
    if value.splitlines() != [value]:
        raise ValueError("a subject must be on one line")
    return value


DIGEST_SUBJECT = "{name}: {count} commentaries this week"
"""[schedule] digest_subject's default, which the catalogs translate."""

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class ScheduleSettings(Section):
    grace: float = setting(6.0, check=at_least(0))
    """Hours past its time that due work is still done; older, it is marked missed."""
    auto_publish: bool = setting(False)
    """The scheduler sends each commentary to [delivery] list when its time comes."""
    digest: str = setting("", check=_weekly)
    """When the weekly digest goes, in the newsletter's time zone: `monday 08:00`."""
    digest_subject: str = setting(DIGEST_SUBJECT, check=_subject_template)
    """The digest's subject line: {name} (the newsletter's), {title} (the newest commentary's),
    {count}. Left as it is, it is said in the digest's language (mailer.render.email)."""
    interval: float = setting(30.0, check=at_least(1))
    """Seconds between the scheduler's looks at what is due."""


@dataclass(frozen=True)
class ConsoleSettings(Section):
    path: str = setting("console/")
    """Where the staff console lives: under site_url's path, or from the host's root when it
    starts with `/` (to keep it off the public pages' path)."""
    idle_minutes: int = setting(60, check=at_least(5))
    """A console session unused this long ends; the person signs in again."""
    approval: bool = setting(False)
    """An issue is sent or scheduled from the console only once a publisher who did not write
    it has approved it as it is."""


MAILBOX_SCHEMES = ("imaps", "pop3s")


def _mailbox(value: str) -> str:
    parts = urlsplit(value)
    if value and (parts.scheme not in MAILBOX_SCHEMES or not parts.hostname or not parts.username):
        raise ValueError(
            f"'{value}' is not a mailbox URL, like imaps://bounces@imap.example.org/INBOX or "
            "pop3s://bounces@pop.example.org"
        )
    return value


@dataclass(frozen=True)
class BounceSettings(Section):
    """[bounces]: where bounces return (VERP) and the mailbox mailer reads them from."""

    address: str = setting("", check=_optional_address)
    """With the smtp backend, each message's envelope sender is `local+TOKEN@domain` of it."""
    mailbox: str = setting("", check=_mailbox)
    password: str = setting("")
    processed: str = setting("move", check=one_of("move", "delete"))
    """What becomes of a bounce once recorded: moved to `folder` (IMAP), or deleted."""
    folder: str = setting("Processed")
    ca_file: Path | None = setting(None)
    timeout: float = setting(60.0, check=at_least(1))
    interval: float = setting(5.0, check=at_least(0.5))
    """Minutes between the scheduler's passes over the mailbox."""
    # Mailman's defaults: a score of 5 (bounce_score_threshold) within 7 days
    # (bounce_info_stale_after).
    soft_bounces: int = setting(5, check=at_least(1))
    """Soft bounces within `soft_bounce_days` that make a subscriber bounced."""
    soft_bounce_days: int = setting(7, check=at_least(1))


@dataclass(frozen=True)
class SubscribeSettings(Section):
    """[subscribe]: what a new subscriber receives once they confirmed."""

    welcome: bool = setting(True)
    """A welcome email (the theme's welcome_email.html and .txt), sent by the scheduler."""
    send_latest: bool = setting(False)
    """After the welcome email, the latest issue their list received."""


@dataclass(frozen=True)
class AnalyticsSettings(Section):
    clicks: bool = setting(False)
    """Count clicks per link and campaign (never per person) through the web service."""


@dataclass(frozen=True)
class WebhookSettings(Section):
    """[webhooks]: its tables are the providers' own ([webhooks.ses])."""


@dataclass(frozen=True)
class Config(Section):
    """The whole of config.toml. `path` is the file it came from; relative paths start beside it."""

    path: Path
    newsletter: NewsletterSettings
    series: SeriesSettings = setting(SeriesSettings())
    paths: PathSettings = setting(PathSettings())
    database: DatabaseSettings = setting(DatabaseSettings())
    feeds: FeedSettings = setting(FeedSettings())
    delivery: DeliverySettings = setting(DeliverySettings())
    dkim: DkimSettings = setting(DkimSettings())
    web: WebSettings = setting(WebSettings())
    schedule: ScheduleSettings = setting(ScheduleSettings())
    console: ConsoleSettings = setting(ConsoleSettings())
    webhooks: WebhookSettings = setting(WebhookSettings())
    bounces: BounceSettings = setting(BounceSettings())
    subscribe: SubscribeSettings = setting(SubscribeSettings())
    analytics: AnalyticsSettings = setting(AnalyticsSettings())
    tables: Mapping[tuple[str, ...], Section] = field(
        default_factory=dict, metadata={"key": "", "check": None}
    )
    """The tables providers declare ([delivery.smtp], [webhooks.ses]…), by where they sit."""

    @property
    def folder(self) -> Path:
        return self.path.parent

    def table(self, kind: type[S]) -> S:
        """A provider's table, read like every other: `config.table(SmtpSettings).host`."""
        found = self.tables.get(kind.TABLE)
        if not isinstance(found, kind):
            raise LookupError(f"[{'.'.join(kind.TABLE)}] was not declared when loading {self.path}")
        return found


def locate(explicit: Path | None) -> Path:
    """The config file to read: the one named, else $MAILER_CONFIG, else ./config.toml."""
    if explicit is not None:
        return explicit
    from_environment = os.environ.get(ENVIRONMENT_VARIABLE)
    return Path(from_environment) if from_environment else DEFAULT_PATH


def load(
    path: Path,
    environment: Mapping[str, str] | None = None,
    tables: Sequence[type[Section]] = (),
    backends: Sequence[str] = (),
) -> Config:
    """Read and check config.toml, reporting every problem at once as `file:line: message`.

    `tables` are the providers' own tables, read where their TABLE says; `backends` the names
    [delivery] backend may take (mailer.app.newsletter.load_config passes the registry's)."""
    environment = os.environ if environment is None else environment
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [
                Problem(
                    path,
                    None,
                    "no such configuration file; create one with `mailer init DIR`, copy "
                    "config.example.toml to config.toml, or name another with --config",
                )
            ]
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([Problem(path, None, f"cannot be read: {error}")]) from None
    parsed = tomltext.parse(text, path)
    if isinstance(parsed, Problem):
        raise ConfigError([parsed])
    reader = _Reader(path.resolve(), text, environment, tables)
    values = reader.table(Config, parsed, (), skip={"path", "tables"})
    delivery = values.get("delivery")
    if backends and isinstance(delivery, DeliverySettings) and delivery.backend not in backends:
        reader.problem(
            ("delivery",),
            "backend",
            f"delivery.backend: '{delivery.backend}' is not one of: {', '.join(backends)}",
        )
    if reader.problems:
        raise ConfigError(reader.problems)
    return Config(path=path.resolve(), tables=types.MappingProxyType(reader.tables), **values)


class _Reader:
    """Turns parsed TOML into section dataclasses, gathering problems instead of stopping."""

    def __init__(
        self,
        path: Path,
        text: str,
        environment: Mapping[str, str],
        tables: Sequence[type[Section]] = (),
    ) -> None:
        self.path = path
        self.text = text
        self.environment = environment
        self.problems: list[Problem] = []
        self.declared = {kind.TABLE: kind for kind in tables}
        self.tables: dict[tuple[str, ...], Section] = {}

    def problem(self, table: tuple[str, ...], key: str | None, message: str) -> Problem:
        line = tomltext.key_line(self.text, table, key)
        found = Problem(self.path, line, message)
        self.problems.append(found)
        return found

    def table(
        self, cls: type[Section], raw: dict[str, Any], where: tuple[str, ...], skip: set[str]
    ) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        fields = {f.metadata.get("key") or f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        known = [k for k in fields if fields[k].name not in skip]
        plugged = {t[-1]: kind for t, kind in self.declared.items() if t[:-1] == where}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key in plugged:
                self.plug(plugged.pop(key), value, (*where, key))
                continue
            if key not in known:
                self.problem(where, key, _unknown(key, [*known, *plugged], where))
                continue
            spec = fields[key]
            values[spec.name] = self.value(hints[spec.name], spec, value, where, key)
        for key, kind in plugged.items():  # a provider's table that the file leaves out
            self.plug(kind, {}, (*where, key))
        for key in known:
            spec = fields[key]
            kind = hints[spec.name]
            if spec.name in values:
                continue
            if isinstance(kind, type) and issubclass(kind, Section):
                values[spec.name] = self.section(kind, {}, (*where, key))
            elif _required(spec):
                self.problem(where, None, f"{_name(where, key)} is missing; add `{key} = …`")
            elif isinstance(spec.default, Path):
                values[spec.name] = self.path.parent / spec.default
        return values

    def plug(self, kind: type[Section], raw: Any, where: tuple[str, ...]) -> None:
        """A provider's table, kept apart in `tables`."""
        if not isinstance(raw, dict):
            name = ".".join(where)
            self.problem(where[:-1], where[-1], f"{name} must be a table: [{name}]")
            raw = {}
        found = self.section(kind, raw, where)
        if found is not None:
            self.tables[where] = found

    def section(self, kind: type[Section], raw: dict[str, Any], where: tuple[str, ...]) -> Any:
        """The table as its dataclass; None when a required key is missing (a problem says so)."""
        values = self.table(kind, raw, where, set())
        required = {f.name for f in dataclasses.fields(kind) if _required(f)}  # type: ignore[arg-type]
        return kind(**values) if required <= values.keys() else None

    def value(
        self, kind: Any, spec: dataclasses.Field[Any], value: Any, where: tuple[str, ...], key: str
    ) -> Any:
        if isinstance(kind, type) and issubclass(kind, Section):
            if not isinstance(value, dict):
                self.problem(
                    where, key, f"{_name(where, key)} must be a table: [{_name(where, key)}]"
                )
                return spec.default
            return self.section(kind, value, (*where, key))
        if typing.get_origin(kind) is dict:
            return self.texts(spec, value, where, key)
        optional = isinstance(kind, types.UnionType) and type(None) in typing.get_args(kind)
        base = next(a for a in typing.get_args(kind) if a is not type(None)) if optional else kind
        expected: Any = {Path: str, float: (int, float)}.get(base, base)
        if not isinstance(value, expected) or (base is not bool and isinstance(value, bool)):
            noun = {
                str: "text in quotes",
                Path: "a path in quotes",
                int: "a whole number",
                float: "a number",
                bool: "true or false",
            }[base]
            self.problem(where, key, f"{_name(where, key)} must be {noun}, not {value!r}")
            return spec.default
        if isinstance(value, str):
            resolved = self.interpolate(value, where, key)
            if isinstance(resolved, _Missing):
                return resolved
            value = resolved
        if base is Path:
            if optional and value == "":
                return None
            return self.path.parent / value
        if base is float:
            value = float(value)
        return self.checked(spec, value, where, key, spec.default)

    def checked(
        self,
        spec: dataclasses.Field[Any],
        value: Any,
        where: tuple[str, ...],
        key: str,
        fallback: Any,
    ) -> Any:
        """`value` as the setting's check keeps it, or `fallback` with a problem saying why."""
        check = spec.metadata.get("check")
        if check is None:
            return value
        try:
            return check(value)
        except ValueError as error:
            self.problem(where, key, f"{_name(where, key)}: {error}")
            return fallback

    def texts(
        self, spec: dataclasses.Field[Any], value: Any, where: tuple[str, ...], key: str
    ) -> dict[str, str]:
        """A table of texts by key, as `{ it = "…" }` writes it."""
        if not isinstance(value, dict) or not all(isinstance(t, str) for t in value.values()):
            self.problem(
                where,
                key,
                f'{_name(where, key)} must be a table of texts in quotes, like {{ it = "…" }}, '
                f"not {value!r}",
            )
            return {}
        return dict(self.checked(spec, dict(value), where, key, {}))

    def interpolate(self, value: str, where: tuple[str, ...], key: str) -> str | _Missing:
        missing = [name for name in _VARIABLE.findall(value) if name not in self.environment]
        if missing:
            line = tomltext.key_line(self.text, where, key)
            return _Missing(
                Problem(
                    self.path,
                    line,
                    f"{_name(where, key)} needs the environment variable {missing[0]}, which is "
                    f"not set; set it (export {missing[0]}=…) or write the value in the file",
                )
            )
        return _VARIABLE.sub(lambda m: self.environment[m.group(1)], value)


def _name(where: tuple[str, ...], key: str) -> str:
    return ".".join((*where, key))


def _unknown(key: str, known: list[str], where: tuple[str, ...]) -> str:
    place = f"[{'.'.join(where)}]" if where else "the top level"
    message = f"unknown key '{key}' in {place}"
    nearest = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if nearest:
        return f"{message}; did you mean '{nearest[0]}'?"
    return f"{message}; known keys are: {', '.join(known)}"
