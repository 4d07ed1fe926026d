"""The exception tree. Every error a person can cause carries where it happened and what to do.

Exit statuses follow the command line contract: 2 for bad input or configuration.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, located as precisely as we can."""

    path: Path | str
    line: int | None
    message: str
    warning: bool = False
    """A warning is worth saying but stops nothing."""

    def __str__(self) -> str:
        where = str(self.path)
        if self.line is not None:
            where = f"{where}:{self.line}"
        kind = "warning: " if self.warning else ""
        return f"{where}: {kind}{self.message}"


class MailerError(Exception):
    """Base of every error mailer reports to a person instead of a traceback."""

    exit_code = 2


class ProblemsError(MailerError):
    """One or more located problems, reported one per line."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ConfigError(ProblemsError):
    """config.toml or the environment it reads is wrong."""


class ContentError(ProblemsError):
    """A commentary file is wrong."""


class TemplateError(ProblemsError):
    """A theme template is wrong."""


class RequestError(MailerError):
    """A command was asked for something it cannot do (an unknown slug, say)."""


class DatabaseError(MailerError):
    """The database cannot be opened, or its schema is not the one this mailer expects."""


class DatabaseUnavailable(DatabaseError):
    """The database went away (connection lost, locked, disk full) for longer than mailer
    waits for it; nothing sent is lost, and the same command continues once it is back."""

    exit_code = 1


class OutputError(MailerError):
    """A file could not be written (a full disk, no permission); what was there is unchanged."""

    exit_code = 1
