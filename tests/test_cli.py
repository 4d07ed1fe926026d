"""The command line as staff use it: init, check, build, preview; messages and exit statuses."""

from __future__ import annotations

import email
import email.policy
import os
import stat
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mailer.cli import main
from mailer.render.theme import THEME_FILES
from tests.conftest import SECRET, Folder, Run


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        found.append((*path, name))
        if isinstance(command, click.Group):
            found += _commands(command, (*path, name))
    return found


def test_every_command_has_help_with_an_example() -> None:
    runner = CliRunner()
    assert "Example" in runner.invoke(main, ["--help"]).output
    commands = _commands(main)
    assert ("subscribers", "import") in commands and ("campaigns", "resume") in commands
    for path in commands:
        result = runner.invoke(main, [*path, "--help"])
        assert result.exit_code == 0
        assert "Example" in result.output, f"mailer {' '.join(path)} --help has no example"


def test_init_makes_a_folder_that_checks_builds_and_previews(tmp_path: Path) -> None:
    target = tmp_path / "weekly"
    runner = CliRunner(env={"MAILER_SECRET": SECRET, "MAILER_CONFIG": None})
    result = runner.invoke(main, ["init", str(target)])
    assert result.exit_code == 0, result.output
    assert (target / "config.toml").is_file()
    assert [p.name for p in (target / "commentaries").iterdir()] == [
        "2025-10-02-writing-a-commentary.md"
    ]
    assert (target / "subscribers").is_dir()
    assert not (target / "templates").exists()
    # The guide is a draft, and says so: otherwise `mailer send --yes` would send it to the list.
    guide = (target / "commentaries" / "2025-10-02-writing-a-commentary.md").read_text()
    assert guide.startswith("+++\ndraft = true\n")
    assert "is a draft (draft = true): it is never built or sent" in " ".join(result.output.split())
    config = ["--config", str(target / "config.toml")]
    for command in (["check"], ["build"], ["preview", "writing-a-commentary"]):
        result = runner.invoke(main, config + command)
        assert result.exit_code == 0, result.output
    assert not (target / "public" / "archive" / "writing-a-commentary").exists()
    assert (target / "public" / "archive" / "index.html").is_file()
    assert (target / "preview" / "writing-a-commentary.html").is_file()
    result = runner.invoke(main, [*config, "send", "--yes"])
    assert result.exit_code == 2 and "there is no published commentary" in result.output


def test_init_with_theme_copies_the_theme_and_uses_it(tmp_path: Path) -> None:
    target = tmp_path / "themed"
    runner = CliRunner(env={"MAILER_SECRET": SECRET, "MAILER_CONFIG": None})
    assert runner.invoke(main, ["init", str(target), "--with-theme"]).exit_code == 0
    assert sorted(p.name for p in (target / "templates").iterdir()) == sorted(THEME_FILES)
    css = target / "templates" / "email.css"
    css.write_text(css.read_text() + "\n.title { color: #00ff00; }\n")
    html = target / "out.html"
    result = runner.invoke(
        main,
        [
            "--config",
            str(target / "config.toml"),
            "preview",
            "writing-a-commentary",
            "--html",
            str(html),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "#0f0" in html.read_text() or "#00ff00" in html.read_text()


def test_init_refuses_to_overwrite_a_newsletter_folder(folder: Folder) -> None:
    before = folder.config_path.read_bytes()
    result = CliRunner().invoke(main, ["init", str(folder.path)])
    assert result.exit_code == 2
    assert "already exists" in result.stderr
    assert folder.config_path.read_bytes() == before


def test_build_writes_feeds_and_an_archive_page_per_published_commentary(
    folder: Folder, run: Run
) -> None:
    result = run("build")
    assert result.exit_code == 0, result.output
    assert "Built 4 commentaries" in result.output
    published = sorted(name for name in folder.output_files() if not name.startswith("files/"))
    beside = sorted(
        name.rpartition("/")[2] for name in folder.output_files() if name.startswith("files/")
    )
    assert beside == ["2553.pdf", "front-line.png", "logo.png"]
    assert published == [
        ".mailer-build",
        ".mailer-generation",
        "archive/index.html",
        "archive/mediterranean-energy/index.html",
        "archive/sahel-after-the-juntas/index.html",
        "archive/stalemate-to-escalation/index.html",
        "archive/writing-a-commentary/index.html",
        "atom.xml",
        "feed.json",
        "rss.xml",
    ]
    page = (folder.output / "archive/stalemate-to-escalation/index.html").read_text()
    assert "From Stalemate to Escalation" in page and "<blockquote>" in page


def test_build_removes_the_page_of_a_deleted_commentary_and_nothing_else(
    folder: Folder, run: Run
) -> None:
    assert run("build").exit_code == 0
    keep = folder.output / "robots.txt"
    keep.write_text("User-agent: *\n")
    (folder.commentaries / "2025-11-05-sahel-after-the-juntas.md").unlink()
    result = run("build")
    assert result.exit_code == 0
    assert "1 removed" in result.output
    assert not (folder.output / "archive/sahel-after-the-juntas").exists()
    assert keep.read_text() == "User-agent: *\n"


def test_a_draft_is_checked_but_never_built(folder: Folder, run: Run) -> None:
    folder.write(
        "commentaries/2026-01-10-unfinished.md",
        """
        +++
        title = "Unfinished"
        authors = ["Somebody"]
        date = 2026-01-10
        draft = true
        +++

        Not yet.
        """,
    )
    assert run("check").exit_code == 0
    assert run("build").exit_code == 0
    assert not (folder.output / "archive/unfinished").exists()
    assert b"Unfinished" not in (folder.output / "rss.xml").read_bytes()


def test_preview_writes_each_requested_file(folder: Folder, run: Run, tmp_path: Path) -> None:
    html, text, eml = tmp_path / "i.html", tmp_path / "i.txt", tmp_path / "i.eml"
    result = run(
        "preview",
        "stalemate-to-escalation",
        "sahel-after-the-juntas",
        "--html",
        str(html),
        "--text",
        str(text),
        "--eml",
        str(eml),
    )
    assert result.exit_code == 0, result.output
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["To"] == "Reader <reader@example.org>"
    for name in ("List-Unsubscribe", "List-Unsubscribe-Post", "List-Id", "Message-ID", "Date"):
        assert message[name], name
    assert message["Subject"] == "From Stalemate to Escalation: Why Putin Needs More War"
    assert "Also in this issue" in text.read_text()
    assert "The Sahel After the Juntas" in html.read_text() or "Sahel" in html.read_text()
    plain = message.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    assert plain == text.read_text()


def test_preview_without_a_slug_shows_the_newest_commentary(folder: Folder, run: Run) -> None:
    result = run("preview")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (folder.path / "preview").iterdir()) == [
        "sahel-after-the-juntas.eml",
        "sahel-after-the-juntas.html",
        "sahel-after-the-juntas.txt",
    ]


def test_preview_of_an_unknown_slug_names_the_known_ones(folder: Folder, run: Run) -> None:
    result = run("preview", "no-such-piece")
    assert result.exit_code == 2
    assert "no commentary with the slug 'no-such-piece'" in result.stderr
    assert "stalemate-to-escalation" in result.stderr


def test_preview_open_hands_the_html_to_the_browser(
    folder: Folder, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(browser.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("BROWSER", str(browser))
    import webbrowser

    monkeypatch.setattr(webbrowser, "_tryorder", None)  # re-read $BROWSER
    result = run("preview", "mediterranean-energy", "--open")
    assert result.exit_code == 0, result.output
    target = folder.path / "preview" / "mediterranean-energy.html"
    assert opened.read_text().strip() == target.resolve().as_uri()


@pytest.mark.parametrize(
    "template, line, needle",
    [
        ("{% if %}\n", 1, "template error"),
        ("<p>\n{{ lead.no_such_field }}\n</p>\n", 2, "no_such_field"),
    ],
)
def test_a_template_error_names_the_template_and_line(
    folder: Folder, run: Run, template: str, line: int, needle: str
) -> None:
    folder.configure('templates = ""', 'templates = "theme"')
    broken = folder.write("theme/email.html", template)
    for command in ("check", "preview"):
        result = run(command)
        assert result.exit_code == 2, result.output
        assert f"{broken}:{line}: " in result.stderr
        assert needle in result.stderr


def test_the_installed_console_script_runs(folder: Folder) -> None:
    script = Path(sys.executable).parent / "mailer"
    completed = subprocess.run(
        [str(script), "--config", str(folder.config_path), "check"],
        capture_output=True,
        text=True,
        env={**os.environ, "MAILER_SECRET": SECRET},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "0 errors" in completed.stdout
