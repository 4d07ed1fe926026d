"""What every provider's webhook becomes: a list of Events, one normalised type for all of them.

A provider module checks that a request is authentic first, and only then reads it; each event it
finds keeps the provider's own record (`raw`) beside the few fields mailer acts on. Events mailer
does not act on (opens, clicks, deferrals a provider reports while it keeps trying) are left out.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mailer.core.events import Event

MAX_EVENT_ID = 128
"""Longer provider event ids are kept as their SHA-256 (the column holds 255 characters)."""


class Refused(Exception):
    """The request is not authentic (no or wrong credentials, bad signature, stale, replayed):
    answered 401, nothing changed. The message says why, without secrets or addresses."""


class NotConfigured(Exception):
    """The provider's webhook has no credentials (or its `${VARIABLE}` is not set): it is not
    served at all (404), as if the provider were unknown. The message names the setting."""


class Malformed(Exception):
    """The request is authentic, or cannot be checked, but its body is not what the provider
    sends: answered 400, nothing changed."""


@dataclass(frozen=True)
class Incoming:
    """A webhook request as the web layer hands it over: the raw body and the headers, whose
    names are lower-cased."""

    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


@dataclass(frozen=True)
class Received:
    """What one authentic request carried."""

    events: list[Event] = field(default_factory=list)
    replay_token: str = ""
    """A single-use token the store must not have seen before (Mailgun's), or ""."""
    note: str = ""
    """Something worth logging that is not an event (an SNS subscription confirmed, say)."""


def event_id(provider_id: Any, raw: Mapping[str, Any]) -> str:
    """The provider's event id as text; derived from the whole event when there is none, so the
    same event delivered twice has the same id."""
    if isinstance(provider_id, str | int) and not isinstance(provider_id, bool):
        text = str(provider_id).strip()
        if text:
            if len(text) > MAX_EVENT_ID:
                return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
            return text
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def json_body(body: bytes) -> Any:
    """The body as JSON, or Malformed."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Malformed("the body is not UTF-8 JSON") from None
    except RecursionError:  # nested deeper than the parser goes: no provider sends that
        raise Malformed("the JSON is nested too deeply") from None


def unix_time(value: Any) -> dt.datetime | None:
    """A Unix time in seconds (number or digits) as an aware UTC time; None if it is not one."""
    if isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def iso_time(value: Any) -> dt.datetime | None:
    """An ISO 8601 date-time (`Z` allowed) as an aware UTC time; None if it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


class Unavailable(Exception):
    """The request could not be checked for a reason of ours (a certificate that could not be
    fetched): answered 503, so that the provider tries again later; nothing changed."""
