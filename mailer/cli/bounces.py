"""`mailer bounces check`: one pass over the bounce mailbox."""

from __future__ import annotations

import click

from mailer.bounces.checking import check_mailbox
from mailer.bounces.mailbox import open_mailbox
from mailer.cli.shared import Invocation, pass_invocation
from mailer.core.errors import ConfigError, Problem


@click.group("bounces")
def group() -> None:
    """Bounces and complaints that arrive by mail ([bounces] in config.toml).

    \b
    Example:
      mailer bounces check
    """


@group.command()
@pass_invocation
def check(invocation: Invocation) -> None:
    """Read the bounce mailbox once: record each bounce and complaint, move or delete what was
    recorded, leave in place (and list) what cannot be read. Exit status 1 when something was
    left for a person to look at.

    \b
    Example:
      MAILER_BOUNCES_PASSWORD=… mailer bounces check
    """
    newsletter = invocation.newsletter
    config = newsletter.config
    settings = config.bounces
    if not settings.mailbox:
        raise ConfigError(
            [
                Problem(
                    config.path,
                    None,
                    "[bounces] mailbox is empty: name the mailbox bounces arrive in, like "
                    '"imaps://bounces@imap.example.org/INBOX"',
                )
            ]
        )
    mailbox = open_mailbox(settings, config.path)
    done = check_mailbox(mailbox, newsletter.store, newsletter.links, settings.address)
    click.echo(done.summary)
    for left in done.left:
        click.echo(f"  left: message {left.key} {left.subject!r}: {left.why}")
    if done.left:
        raise click.exceptions.Exit(1)
