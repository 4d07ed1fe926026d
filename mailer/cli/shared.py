"""What every command shares: the newsletter named by --config, read on demand, and wording."""

from __future__ import annotations

import sys
from collections.abc import Collection, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import click

from mailer.app.newsletter import Newsletter
from mailer.core import config
from mailer.core.errors import RequestError
from mailer.core.wording import count as count  # what every command counts with


class Invocation:
    """The config file named on the command line, read the first time a command needs it."""

    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config.locate(config_path)

    @cached_property
    def newsletter(self) -> Newsletter:
        return Newsletter.load(self.config_path)


pass_invocation = click.make_pass_decorator(Invocation)


WIDEST = 40
"""The most characters a column of a table shows, but the last."""


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Collection[int] = ()) -> str:
    """Rows under their header in columns two spaces apart, each as wide as its widest cell (at
    most WIDEST; the last column is neither padded nor cut); the columns numbered in `right`
    (numbers) are aligned to the right."""
    last = len(header) - 1
    widths = [min(max(len(row[i]) for row in [header, *rows]), WIDEST) for i in range(last)]

    def line(row: Sequence[str]) -> str:
        cells = [
            cell[:width].rjust(width) if i in right else cell[:width].ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=False))
        ]
        return "  ".join([*cells, row[last]]).rstrip()

    return "\n".join(line(row) for row in [header, *rows])


def confirm(question: str, yes: bool) -> None:
    """Ask before a destructive step on a terminal; elsewhere demand --yes."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise RequestError(
            f"{question.rstrip('?')}: not confirmed; add --yes to do it without asking"
        )
    if not click.confirm(question, default=False):
        raise click.exceptions.Exit(1)


class _Quiet:
    """A progress bar that shows nothing, for output that is not a terminal."""

    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, steps: int) -> None:
        return None


def progress_bar(length: int, label: str) -> Any:
    """A progress bar on stderr when it is a terminal; silent in a pipe, a log or CI."""
    if not sys.stderr.isatty():
        return _Quiet()
    return click.progressbar(length=length, label=label, file=sys.stderr, show_pos=True)
