"""`mailer lists`: the lists an issue can go to."""

from __future__ import annotations

import click

from mailer.cli.shared import Invocation, pass_invocation, table
from mailer.core.errors import RequestError


@click.group("lists", invoke_without_command=True)
@click.pass_context
def group(ctx: click.Context) -> None:
    """Show the lists with their subscribers; create, rename, describe and archive them.

    \b
    Example:
      mailer lists
      mailer lists create briefings --title "Policy briefings"
      mailer lists rename briefings "policy briefings"
      mailer lists describe "policy briefings" --description "Monthly, short." --private
      mailer lists archive "policy briefings"
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(show)


@group.command("show")
@pass_invocation
def show(invocation: Invocation) -> None:
    """Every list, with its active and total members, and what subscribers see of it.

    \b
    Example:
      mailer lists show
    """
    summaries = invocation.newsletter.store.lists.summaries()
    if not summaries:
        click.echo("There are no lists yet; `mailer lists create NAME` makes one.")
        return
    rows = [
        (
            s.name,
            f"{s.active:,}",
            f"{s.total:,}",
            f"{s.created_at:%Y-%m-%d}",
            "archived" if s.archived else "public" if s.public else "private",
            s.title,
        )
        for s in summaries
    ]
    click.echo(table(("LIST", "ACTIVE", "TOTAL", "CREATED", "OFFERED", "TITLE"), rows, {1, 2}))


_TITLE = click.option("--title", help="What subscribers see instead of the name.")
_DESCRIPTION = click.option(
    "--description", help="A sentence shown under the title on the subscribe and preferences pages."
)


@group.command()
@click.argument("name")
@_TITLE
@_DESCRIPTION
@click.option("--private", is_flag=True, help="Not offered on the subscribe form.")
@pass_invocation
def create(
    invocation: Invocation, name: str, title: str | None, description: str | None, private: bool
) -> None:
    """Create a list (public, offered on the subscribe form, unless --private).

    \b
    Example:
      mailer lists create briefings --title "Policy briefings" --description "Monthly, short."
    """
    try:
        invocation.newsletter.store.lists.create(
            name, title=title or "", description=description or "", public=not private
        )
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


@group.command()
@click.argument("name")
@_TITLE
@_DESCRIPTION
@click.option("--public/--private", default=None, help="Offered on the subscribe form, or not.")
@pass_invocation
def describe(
    invocation: Invocation,
    name: str,
    title: str | None,
    description: str | None,
    public: bool | None,
) -> None:
    """Change what subscribers see of a list: its title, its description, whether it is offered.

    An option left out leaves that part as it is; an empty --title shows the name again.

    \b
    Example:
      mailer lists describe commentaries --title "Commentaries" --description "One a week."
    """
    try:
        invocation.newsletter.store.lists.describe(
            name, title=title, description=description, public=public
        )
    except ValueError as error:
        raise RequestError(str(error)) from None
    click.echo(f"Described the list '{name.strip()}'.")


@group.command()
@click.argument("name")
@click.option("--restore", is_flag=True, help="Offer an archived list again.")
@pass_invocation
def archive(invocation: Invocation, name: str, restore: bool) -> None:
    """Archive a list: offered on no page any more, its members and campaigns kept.

    \b
    Example:
      mailer lists archive briefings
      mailer lists archive briefings --restore
    """
    invocation.newsletter.store.lists.archive(name, archived=not restore)
    click.echo(f"{'Restored' if restore else 'Archived'} the list '{name.strip()}'.")
