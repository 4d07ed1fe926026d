"""`mailer lists`: the lists an issue can go to."""

from __future__ import annotations

import click

from mailer.cli.shared import Invocation, pass_invocation
from mailer.core.errors import RequestError


@click.group("lists", invoke_without_command=True)
@click.pass_context
def group(ctx: click.Context) -> None:
    """Show the lists with their subscribers; create and rename them.

    \b
    Example:
      mailer lists
      mailer lists create briefings
      mailer lists rename briefings "policy briefings"
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(show)


@group.command("show")
@pass_invocation
def show(invocation: Invocation) -> None:
    """Every list, with its active and total members.

    \b
    Example:
      mailer lists show
    """
    summaries = invocation.newsletter.store.lists.summaries()
    if not summaries:
        click.echo("There are no lists yet; `mailer lists create NAME` makes one.")
        return
    width = max(len(s.name) for s in summaries)
    click.echo(f"{'LIST'.ljust(width)}  {'ACTIVE':>9}  {'TOTAL':>9}  CREATED")
    for s in summaries:
        click.echo(f"{s.name.ljust(width)}  {s.active:>9,}  {s.total:>9,}  {s.created_at:%Y-%m-%d}")


@group.command()
@click.argument("name")
@pass_invocation
def create(invocation: Invocation, name: str) -> None:
    """Create a list.

    \b
    Example:
      mailer lists create briefings
    """
    try:
        invocation.newsletter.store.lists.create(name)
    except ValueError as error:
        raise RequestError(str(error)) from None
    click.echo(f"Created the list '{name.strip()}'.")


@group.command()
@click.argument("old")
@click.argument("new")
@pass_invocation
def rename(invocation: Invocation, old: str, new: str) -> None:
    """Rename a list; its members stay.

    \b
    Example:
      mailer lists rename briefings "policy briefings"
    """
    try:
        invocation.newsletter.store.lists.rename(old, new)
    except ValueError as error:
        raise RequestError(str(error)) from None
    click.echo(f"Renamed the list '{old}' to '{new.strip()}'.")
