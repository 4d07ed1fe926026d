"""`mailer db`: the database's schema."""

from __future__ import annotations

import click
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from mailer.cli.shared import Invocation, pass_invocation
from mailer.store import database


@click.group("db")
def group() -> None:
    """The database's schema: which revision it is at, and migrating it.

    \b
    Example:
      mailer db status
      mailer db upgrade
    """


def _engine(invocation: Invocation) -> tuple[Engine, str]:
    settings = invocation.newsletter.config
    url = database.resolve_url(settings.database.url, settings.folder)
    return database.open_engine(url), make_url(url).render_as_string(hide_password=True)


@group.command()
@pass_invocation
def upgrade(invocation: Invocation) -> None:
    """Apply the migrations this mailer has and the database lacks.

    Back the database up first. Safe to run at any time: a current database is left alone.

    \b
    Example:
      cp subscribers/mailer.db subscribers/backup.db && mailer db upgrade
    """
    engine, shown = _engine(invocation)
    before, after = database.upgrade(engine)
    if before == after:
        click.echo(f"{shown} is at the current revision {after}; nothing to do.")
    else:
        click.echo(f"Migrated {shown} from {before or 'nothing'} to revision {after}.")


@group.command()
@pass_invocation
def status(invocation: Invocation) -> None:
    """Show the database's revision and whether it needs `mailer db upgrade`.

    \b
    Example:
      mailer db status
    """
    engine, shown = _engine(invocation)
    current, head = database.current_revision(engine), database.head_revision()
    verdict = "current" if current == head else "needs `mailer db upgrade`"
    click.echo(f"{shown}: revision {current or 'none'} (this mailer's is {head}): {verdict}.")
