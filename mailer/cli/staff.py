"""`mailer staff`: the console's accounts, from the server's command line."""

from __future__ import annotations

import click

from mailer.cli.shared import Invocation, confirm, pass_invocation, table
from mailer.console.accounts import Accounts
from mailer.console.service import console_url
from mailer.store.staff import Role

ACTOR = "command line"
"""Who the audit log names for `mailer staff`: whoever can run it owns the server anyway."""
ROLES = click.Choice([role.value for role in Role])


def _accounts(invocation: Invocation) -> Accounts:
    newsletter = invocation.newsletter
    return Accounts(newsletter.store, console_url(newsletter.config))


@click.group()
def group() -> None:
    """Staff accounts of the console at <site_url>console/.

    \b
    Example:
      mailer staff add grace@example.org --role admin
    """


@group.command()
@click.argument("email")
@click.option("--role", type=ROLES, required=True, help="admin, publisher or editor.")
@pass_invocation
def add(invocation: Invocation, email: str, role: str) -> None:
    """Create an account and print its one-time link to set a password (valid two days).

    \b
    Example:
      mailer staff add grace@example.org --role admin
    """
    account, link = _accounts(invocation).add(email, Role(role))
    invocation.newsletter.store.audit.record(ACTOR, "added staff", f"{account.email} as {role}")
    click.echo(f"Added {account.email} as {role}. Send them this link to set a password:")
    click.echo(link)


@group.command()
@click.argument("email")
@pass_invocation
def reset(invocation: Invocation, email: str) -> None:
    """Print a new one-time password link (a forgotten password); the old password stays
    until the link is used, and using it signs out every browser.

    \b
    Example:
      mailer staff reset grace@example.org
    """
    store = invocation.newsletter.store
    account = store.staff.named(email)
    link = _accounts(invocation).new_link(account)
    store.audit.record(ACTOR, "gave a password link", account.email)
    click.echo(f"Send {account.email} this link to set a new password:")
    click.echo(link)


@group.command(name="list")
@pass_invocation
def list_staff(invocation: Invocation) -> None:
    """Every account, its role and whether it has a password and two-factor sign-in.

    \b
    Example:
      mailer staff list
    """
    accounts = invocation.newsletter.store.staff.all()
    if not accounts:
        click.echo("No staff accounts yet; `mailer staff add EMAIL --role admin` makes one.")
        return
    rows = [
        (
            account.email,
            account.role.value,
            ("password set" if account.password_hash else "waiting for the password link")
            + (", two-factor" if account.totp_secret else ""),
        )
        for account in accounts
    ]
    click.echo(table(("EMAIL", "ROLE", "SIGN-IN"), rows))


@group.command()
@click.argument("email")
@click.argument("role", type=ROLES)
@pass_invocation
def role(invocation: Invocation, email: str, role: str) -> None:
    """Change an account's role.

    \b
    Example:
      mailer staff role grace@example.org publisher
    """
    store = invocation.newsletter.store
    account = store.staff.named(email)
    store.staff.set_role(account, Role(role))
    store.audit.record(ACTOR, "changed role", f"{account.email}: {account.role.value} → {role}")
    click.echo(f"{account.email} is now {role}.")


@group.command()
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_invocation
def remove(invocation: Invocation, email: str, yes: bool) -> None:
    """Remove an account; its sessions end at once. The audit log keeps its actions.

    \b
    Example:
      mailer staff remove grace@example.org --yes
    """
    store = invocation.newsletter.store
    account = store.staff.named(email)
    confirm(f"Remove the staff account {account.email}?", yes)
    store.staff.remove(account)
    store.audit.record(ACTOR, "removed staff", account.email)
    click.echo(f"Removed {account.email}.")


@group.command()
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@click.option("--who", default=None, help="Only this person's actions (an address).")
@pass_invocation
def log(invocation: Invocation, limit: int, who: str | None) -> None:
    """The audit log, newest first: when, who, what, detail, from where.

    \b
    Example:
      mailer staff log --who grace@example.org
    """
    for entry in invocation.newsletter.store.audit.latest(limit, who):
        when = entry.at.strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{when}\t{entry.actor}\t{entry.action}\t{entry.detail}\t{entry.address}")
