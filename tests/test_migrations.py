"""The migrations make exactly the tables mailer/store/schema.py declares, on each database."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from mailer.store.database import Store
from mailer.store.schema import metadata


def test_the_migrated_database_matches_the_declared_schema(store: Store) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection)
        differences = compare_metadata(context, metadata)
    assert differences == []
