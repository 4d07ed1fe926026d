"""Everything mailer keeps in its database, and the only SQL in mailer."""

from __future__ import annotations

import contextlib
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from mailer.store import database
from mailer.store.campaigns import Campaigns
from mailer.store.events import Events
from mailer.store.lists import Lists
from mailer.store.subscribers import Subscribers


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.subscribers = Subscribers(engine)
        self.lists = Lists(engine)
        self.campaigns = Campaigns(engine)
        self.events = Events(engine)

    @classmethod
    def open(cls, url: str, folder: Path) -> Store:
        """The database at `url` (SQLite paths relative to `folder`), its schema made current."""
        resolved = database.resolve_url(url, folder)
        engine = database.open_engine(resolved)
        database.ensure_current(engine, make_url(resolved).render_as_string(hide_password=True))
        return cls(engine)

    @property
    def single_worker(self) -> bool:
        """SQLite: one sending process at a time (see database.only_sender)."""
        return self.engine.dialect.name == "sqlite"

    def only_sender(self) -> contextlib.AbstractContextManager[None]:
        return database.only_sender(self.engine.url.render_as_string(hide_password=False))

    def close(self) -> None:
        self.engine.dispose()
