"""The `mailer` command line: each command a small function wiring the pieces together.

Exit status: 0 success, 1 the job ran but something failed, 2 bad input or configuration.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from mailer import __version__
from mailer.cli.shared import Invocation
from mailer.core.errors import DatabaseUnavailable, MailerError, ProblemsError
from mailer.store.outage import transient, unavailable

COMMANDS = {
    "init": "publishing:init",
    "check": "publishing:check",
    "build": "publishing:build",
    "preview": "publishing:preview",
    "publish": "publishing:publish",
    "send": "sending:send",
    "campaigns": "sending:campaigns",
    "worker": "sending:worker",
    "subscribers": "subscribers:group",
    "lists": "lists:group",
    "bounces": "bounces:group",
    "db": "database:group",
    "serve": "serve:serve",
    "scheduler": "serve:scheduler",
    "staff": "staff:group",
}
"""Each command and where it lives (mailer.cli.<module>): a command's module is imported
only when that command runs, so `mailer --help` and an import start without the renderer."""


class _Group(click.Group):
    """Loads commands on demand; reports mailer's errors as plain sentences on stderr."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, name = COMMANDS[cmd_name].split(":")
        command = getattr(importlib.import_module(f"mailer.cli.{module}"), name)
        if not isinstance(command, click.Command):
            raise TypeError(f"{COMMANDS[cmd_name]} is not a click command")
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MailerError as error:
            report(error)
            ctx.exit(error.exit_code)
        except SQLAlchemyError as error:
            if not transient(error):
                raise
            gone = DatabaseUnavailable(
                f"the database is unavailable ({unavailable(error)}); once it is back, run the "
                "same command again"
            )
            report(gone)
            ctx.exit(gone.exit_code)


def report(error: MailerError) -> None:
    if isinstance(error, ProblemsError):
        for problem in error.problems:
            click.echo(str(problem), err=True)
    else:
        click.echo(f"mailer: {error}", err=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The newsletter's config.toml (default: $MAILER_CONFIG, else ./config.toml).",
)
@click.version_option(__version__, prog_name="mailer")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """mailer turns Markdown commentaries into an email, feeds and a web archive,
    and sends the email to the subscribers.

    \b
    Example:
      mailer init weekly && cd weekly
      mailer check && mailer build && mailer preview
    """
    ctx.obj = Invocation(config_path)
