"""The outbox: each message an .eml file in a folder, no network (the default backend)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from mailer.core.config import Section, setting
from mailer.delivery.base import Backend
from mailer.providers.registry import BackendOptions, Provider


@dataclass(frozen=True)
class OutboxSettings(Section):
    TABLE: ClassVar[tuple[str, ...]] = ("delivery", "outbox")

    path: Path = setting(Path("outbox"))


def backend(settings: OutboxSettings, options: BackendOptions) -> Callable[[], Backend]:
    from mailer.delivery.outbox import OutboxBackend

    folder = settings.path
    return lambda: OutboxBackend(folder, options.sign)


PROVIDER = Provider(name="outbox", settings=OutboxSettings, backend=backend)
