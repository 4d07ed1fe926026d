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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mailer.core import tomltext
from mailer.core.errors import ConfigError, Problem
from mailer.core.urls import ascii_url

DEFAULT_PATH = Path("config.toml")
ENVIRONMENT_VARIABLE = "MAILER_CONFIG"

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class _Missing:
    """A setting whose `${NAME}` is not in the environment; reading it raises ConfigError."""

    problem: Problem


class _Section:
    """Base of every table: reading a setting whose variable is missing raises, naming it."""

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        if isinstance(value, _Missing):
            raise ConfigError([value.problem])
        return value


Check = Callable[[Any], Any]
"""Returns the value to keep (possibly normalised) or raises ValueError saying what is wrong."""


def _setting(
    default: Any = dataclasses.MISSING, *, key: str = "", check: Check | None = None
) -> Any:
    return field(default=default, metadata={"key": key, "check": check})


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"'{value}' is not an absolute http or https URL, like https://example.org/"
        )
    return value


def _site_url(value: str) -> str:
    """The public base of archive, feeds and links: ASCII (links go into headers), always
    ending with a slash."""
    return ascii_url(_http_url(value)).rstrip("/") + "/"


def _address(value: str) -> str:
    if any(c in value for c in "\r\n"):
        raise ValueError("an address cannot hold a line break")
    _, address = parseaddr(value)
    if "@" not in address:
        raise ValueError(f"'{value}' is not an email address, like \"Name <news@example.org>\"")
    return value


def _optional_address(value: str) -> str:
    return _address(value) if value else value


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"'{value}' is not a time zone name, like Europe/Rome or UTC") from None
    return value


def _one_of(*choices: str) -> Check:
    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"'{value}' is not one of: {', '.join(choices)}")
        return value

    return check


def _at_least(minimum: float) -> Check:
    def check(value: float) -> float:
        if value < minimum:
            raise ValueError(f"must be {minimum:g} or more, not {value:g}")
        return value

    return check


@dataclass(frozen=True)
class NewsletterSettings(_Section):
    name: str = _setting()
    site_url: str = _setting(check=_site_url)
    sender: str = _setting(key="from", check=_address)
    postal_address: str = _setting()
    secret: str = _setting()
    reply_to: str = _setting("", check=_optional_address)
    unsubscribe_mailto: str = _setting("", check=_optional_address)
    """An address whose mail unsubscribes, offered in List-Unsubscribe after the link."""
    feedback_id: str = _setting("")
    """A Feedback-ID header (Gmail's complaint feedback loop), e.g. `commentaries:example`."""
    language: str = _setting("en")
    timezone: str = _setting("UTC", check=_timezone)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


@dataclass(frozen=True)
class PathSettings(_Section):
    commentaries: Path = _setting(Path("commentaries"))
    templates: Path | None = _setting(None)
    output: Path = _setting(Path("public"))


@dataclass(frozen=True)
class DatabaseSettings(_Section):
    url: str = _setting("sqlite:///subscribers/mailer.db")


@dataclass(frozen=True)
class FeedSettings(_Section):
    entries: int = _setting(20, check=_at_least(1))


@dataclass(frozen=True)
class OutboxSettings(_Section):
    path: Path = _setting(Path("outbox"))


@dataclass(frozen=True)
class SmtpSettings(_Section):
    host: str = _setting("localhost")
    port: int = _setting(587, check=_at_least(1))
    security: str = _setting("starttls", check=_one_of("starttls", "tls", "none"))
    username: str = _setting("")
    password: str = _setting("")
    timeout: float = _setting(30.0, check=_at_least(0.1))
    ca_file: Path | None = _setting(None)
    """Certificates to trust besides the system's (a private CA); empty: the system's only."""


@dataclass(frozen=True)
class MailgunSettings(_Section):
    endpoint: str = _setting("https://api.mailgun.net/v3", check=_http_url)
    domain: str = _setting("")
    api_key: str = _setting("")
    timeout: float = _setting(30.0, check=_at_least(0.1))
    webhook_signing_key: str = _setting("")
    """Checks the signature of Mailgun's webhooks (POST /webhooks/mailgun)."""


@dataclass(frozen=True)
class SendgridSettings(_Section):
    endpoint: str = _setting("https://api.sendgrid.com/v3", check=_http_url)
    api_key: str = _setting("")
    timeout: float = _setting(30.0, check=_at_least(0.1))
    webhook_public_key: str = _setting("")
    """The signed Event Webhook's verification key (base64), for POST /webhooks/sendgrid."""


@dataclass(frozen=True)
class PostmarkSettings(_Section):
    endpoint: str = _setting("https://api.postmarkapp.com", check=_http_url)
    server_token: str = _setting("")
    message_stream: str = _setting("broadcast")
    timeout: float = _setting(30.0, check=_at_least(0.1))
    webhook_username: str = _setting("")
    webhook_password: str = _setting("")
    """The basic auth Postmark's webhooks must carry (POST /webhooks/postmark)."""


@dataclass(frozen=True)
class HttpSettings(_Section):
    url: str = _setting("")
    token: str = _setting("")
    signing_secret: str = _setting("")
    timeout: float = _setting(30.0, check=_at_least(0.1))
    webhook_secret: str = _setting("")
    """Checks POST /webhooks/generic; empty: signing_secret does."""


@dataclass(frozen=True)
class DeliverySettings(_Section):
    backend: str = _setting(
        "outbox", check=_one_of("outbox", "smtp", "mailgun", "sendgrid", "postmark", "http")
    )
    list: str = _setting("commentaries")
    rate: float = _setting(0.0, check=_at_least(0))
    concurrency: int = _setting(4, check=_at_least(1))
    max_attempts: int = _setting(5, check=_at_least(1))
    retry_backoff: float = _setting(2.0, check=_at_least(0))
    lease: float = _setting(300.0, check=_at_least(1))
    """Seconds a worker holds a claimed batch; a dead worker's batch is taken over after it."""
    outbox: OutboxSettings = _setting(OutboxSettings())
    smtp: SmtpSettings = _setting(SmtpSettings())
    mailgun: MailgunSettings = _setting(MailgunSettings())
    sendgrid: SendgridSettings = _setting(SendgridSettings())
    postmark: PostmarkSettings = _setting(PostmarkSettings())
    http: HttpSettings = _setting(HttpSettings())


@dataclass(frozen=True)
class DkimSettings(_Section):
    domain: str = _setting("")
    selector: str = _setting("")
    private_key_file: Path | None = _setting(None)


@dataclass(frozen=True)
class WebSettings(_Section):
    host: str = _setting("127.0.0.1")
    port: int = _setting(8000, check=_at_least(1))


@dataclass(frozen=True)
class SesSettings(_Section):
    """Amazon SES events through SNS (POST /webhooks/ses)."""

    topic_arn: str = _setting("")
    """The only SNS topic accepted, and whose subscription is confirmed; empty: any topic is
    accepted but none confirmed (confirm it in the AWS console)."""
    sns_hosts: str = _setting("sns.*.amazonaws.com")
    """Hosts of SigningCertURL and SubscribeURL, space-separated; `*` is one DNS label."""
    ca_file: Path | None = _setting(None)
    """Certificates to trust instead of the system's when fetching from SNS (a test's own CA);
    empty: the system's."""


@dataclass(frozen=True)
class WebhookSettings(_Section):
    ses: SesSettings = _setting(SesSettings())


@dataclass(frozen=True)
class Config(_Section):
    """The whole of config.toml. `path` is the file it came from; relative paths start beside it."""

    path: Path
    newsletter: NewsletterSettings
    paths: PathSettings = _setting(PathSettings())
    database: DatabaseSettings = _setting(DatabaseSettings())
    feeds: FeedSettings = _setting(FeedSettings())
    delivery: DeliverySettings = _setting(DeliverySettings())
    dkim: DkimSettings = _setting(DkimSettings())
    web: WebSettings = _setting(WebSettings())
    webhooks: WebhookSettings = _setting(WebhookSettings())

    @property
    def folder(self) -> Path:
        return self.path.parent


def locate(explicit: Path | None) -> Path:
    """The config file to read: the one named, else $MAILER_CONFIG, else ./config.toml."""
    if explicit is not None:
        return explicit
    from_environment = os.environ.get(ENVIRONMENT_VARIABLE)
    return Path(from_environment) if from_environment else DEFAULT_PATH


def load(path: Path, environment: Mapping[str, str] | None = None) -> Config:
    """Read and check config.toml, reporting every problem at once as `file:line: message`."""
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
    reader = _Reader(path.resolve(), text, environment)
    values = reader.table(Config, parsed, (), skip={"path"})
    if reader.problems:
        raise ConfigError(reader.problems)
    return Config(path=path.resolve(), **values)


class _Reader:
    """Turns parsed TOML into section dataclasses, gathering problems instead of stopping."""

    def __init__(self, path: Path, text: str, environment: Mapping[str, str]) -> None:
        self.path = path
        self.text = text
        self.environment = environment
        self.problems: list[Problem] = []

    def problem(self, table: tuple[str, ...], key: str | None, message: str) -> Problem:
        line = tomltext.key_line(self.text, table, key)
        found = Problem(self.path, line, message)
        self.problems.append(found)
        return found

    def table(
        self, cls: type[_Section], raw: dict[str, Any], where: tuple[str, ...], skip: set[str]
    ) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        fields = {f.metadata.get("key") or f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        known = [k for k in fields if fields[k].name not in skip]
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in known:
                self.problem(where, key, _unknown(key, known, where))
                continue
            spec = fields[key]
            values[spec.name] = self.value(hints[spec.name], spec, value, where, key)
        for key in known:
            spec = fields[key]
            kind = hints[spec.name]
            if spec.name in values:
                continue
            if isinstance(kind, type) and issubclass(kind, _Section):
                values[spec.name] = self.section(kind, {}, (*where, key))
            elif spec.default is dataclasses.MISSING:
                self.problem(where, None, f"{_name(where, key)} is missing; add `{key} = …`")
            elif isinstance(spec.default, Path):
                values[spec.name] = self.path.parent / spec.default
        return values

    def section(self, kind: type[_Section], raw: dict[str, Any], where: tuple[str, ...]) -> Any:
        """The table as its dataclass; None when a required key is missing (a problem says so)."""
        values = self.table(kind, raw, where, set())
        required = {f.name for f in dataclasses.fields(kind) if f.default is dataclasses.MISSING}  # type: ignore[arg-type]
        return kind(**values) if required <= values.keys() else None

    def value(
        self, kind: Any, spec: dataclasses.Field[Any], value: Any, where: tuple[str, ...], key: str
    ) -> Any:
        if isinstance(kind, type) and issubclass(kind, _Section):
            if not isinstance(value, dict):
                self.problem(
                    where, key, f"{_name(where, key)} must be a table: [{_name(where, key)}]"
                )
                return spec.default
            return self.section(kind, value, (*where, key))
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
        check = spec.metadata.get("check")
        if check is None:
            return value
        try:
            return check(value)
        except ValueError as error:
            self.problem(where, key, f"{_name(where, key)}: {error}")
            return spec.default

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
