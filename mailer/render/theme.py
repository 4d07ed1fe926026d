"""The Jinja2 theme: the packaged default, optionally overridden file by file by a newsletter's own.

Template errors are reported as `template:line: message`, whether the template fails to compile or
fails while rendering (an unknown variable, say: undefined values are errors, never blanks).
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import jinja2

from mailer.content.markdown import wrap
from mailer.core.errors import Problem, TemplateError
from mailer.render import i18n

THEME_FILES = (
    "email.html",
    "email.txt",
    "email.css",
    "email-dark.css",
    "page.html",
    "archive.html",
    "commentary.html",
    "versions.html",
    "colophon.html",
    "language_choice.html",
    "site.css",
    "subscribe.html",
    "confirm.html",
    "unsubscribe.html",
    "preferences.html",
    "preferences_link.html",
    "message.html",
    "confirm_email.txt",
    "confirm_email.html",
    "personal_email.html",
    "preferences_email.txt",
    "preferences_email.html",
    "welcome_email.txt",
    "welcome_email.html",
)


def packaged_folder(name: str) -> Path:
    """A folder shipped with mailer: in a wheel it sits in the package, in a checkout beside it.

    `theme` is the repository's top-level `templates/`, `example` the repository itself (its
    config.example.toml and commentaries): setuptools maps both into the wheel.
    """
    package = Path(__file__).resolve().parent.parent  # mailer/, where setuptools puts them
    installed = package / name
    if installed.is_dir():
        return installed
    return package.parent / {"theme": "templates", "example": "."}[name]


class Theme:
    """Renders the theme's templates; `folder` (paths.templates) overrides the packaged files.

    Each language has an environment of its own, holding its catalog for `{% trans %}` and `_()`
    and its `longdate`, `names` and `direction` filters; `language` is the newsletter's.
    """

    def __init__(self, folder: Path | None = None, language: str = "en") -> None:
        self.folders = [folder, packaged_folder("theme")] if folder else [packaged_folder("theme")]
        self.language = language
        self._environments: dict[str, jinja2.Environment] = {}

    @property
    def environment(self) -> jinja2.Environment:
        return self.environment_for(self.language)

    def environment_for(self, code: str) -> jinja2.Environment:
        if code not in self._environments:
            self._environments[code] = self._environment(i18n.language(code))
        return self._environments[code]

    def _environment(self, language: i18n.Language) -> jinja2.Environment:
        environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(f) for f in self.folders]),
            autoescape=jinja2.select_autoescape(["html"], default_for_string=False),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            extensions=["jinja2.ext.i18n"],
        )
        environment.install_gettext_callables(  # type: ignore[attr-defined]
            language.gettext, language.ngettext, newstyle=True
        )
        environment.filters.update(
            longdate=language.long_date,
            names=language.names,
            filesize=language.file_size,
            wrap=wrap,
            underline=underline,
            direction=lambda code: i18n.language(code).direction,
            language_name=lambda code: i18n.language(code).name,
        )
        return environment

    def render(self, name: str, /, *, language: str = "", **context: Any) -> str:
        """The template filled in, its texts in `language` (default: the newsletter's)."""
        environment = self.environment_for(language or self.language)
        try:
            return environment.get_template(name).render(**context)
        except jinja2.TemplateSyntaxError as error:
            raise TemplateError([self._syntax_problem(error)]) from None
        except jinja2.TemplateNotFound:
            raise TemplateError([self._missing(name)]) from None
        except Exception as error:
            raise TemplateError([self._runtime_problem(name, error)]) from None

    def source(self, name: str) -> str:
        """A file of the theme as it is (the CSS, for instance)."""
        for folder in self.folders:
            path = folder / name
            if path.is_file():
                return path.read_text(encoding="utf-8")
        raise TemplateError([self._missing(name)])

    def problems(self) -> list[Problem]:
        """Every template that does not compile, without rendering anything."""
        found = []
        for name in THEME_FILES:
            if name.endswith(".css"):
                continue
            try:
                self.environment.get_template(name)
            except jinja2.TemplateSyntaxError as error:
                found.append(self._syntax_problem(error))
            except jinja2.TemplateNotFound:
                found.append(self._missing(name))
        return found

    def _missing(self, name: str) -> Problem:
        return Problem(self.folders[0] / name, None, "this template is missing from the theme")

    def _syntax_problem(self, error: jinja2.TemplateSyntaxError) -> Problem:
        where = error.filename or error.name or "template"
        return Problem(where, error.lineno, f"template error: {error.message}")

    def _runtime_problem(self, name: str, error: Exception) -> Problem:
        frames = [
            frame
            for frame in traceback.extract_tb(error.__traceback__)
            if any(frame.filename.startswith(str(folder)) for folder in self.folders)
        ]
        if frames:
            return Problem(frames[-1].filename, frames[-1].lineno, f"template error: {error}")
        return Problem(name, None, f"template error: {error}")


def underline(value: str, character: str = "=") -> str:
    """The text with a line of `character` under it, as long as its longest line."""
    return f"{value}\n{character * max(len(line) for line in value.splitlines())}"
