"""Everything mailer keeps in its database, and the only SQL in mailer."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from mailer.store import database
from mailer.store.lists import Lists
from mailer.store.subscribers import Subscribers


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.subscribers = Subscribers(engine)
        self.lists = Lists(engine)

    @classmethod
    def open(cls, url: str, folder: Path) -> Store:
        """The database at `url` (SQLite paths relative to `folder`), its schema made current."""
        resolved = database.resolve_url(url, folder)
        engine = database.open_engine(resolved)
        database.ensure_current(engine, make_url(resolved).render_as_string(hide_password=True))
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()
