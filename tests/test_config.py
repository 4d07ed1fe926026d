"""config.toml and the environment: every mistake named with its line, secrets read
from the environment only when needed, paths relative to the file, and where the file is found.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mailer.app.newsletter import load_config
from mailer.cli import main
from mailer.core import config
from mailer.core.errors import ConfigError
from mailer.providers.outbox import OutboxSettings
from mailer.providers.smtp import SmtpSettings
from tests.conftest import SECRET, Folder, Run, skip_or_fail

PROVIDER_VARIABLES = (
    "SMTP_PASSWORD",
    "MAILGUN_API_KEY",
    "SENDGRID_API_KEY",
    "POSTMARK_SERVER_TOKEN",
    "MAILER_HTTP_TOKEN",
)


def load(folder: Folder, **environment: str) -> config.Config:
    """config.toml read with MAILER_SECRET and the given variables as the whole environment."""
    return load_config(folder.config_path, {"MAILER_SECRET": SECRET, **environment})


def refused(folder: Folder, **environment: str) -> str:
    """The problems load_config reports, one per line."""
    with pytest.raises(ConfigError) as caught:
        load(folder, **environment)
    return str(caught.value)


def line_of(folder: Folder, fragment: str) -> int:
    """The line of config.toml where `fragment` first appears."""
    lines = folder.config_path.read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, 1) if fragment in line)


def invoke(args: list[str], env: Mapping[str, str | None] | None = None) -> Result:
    """`mailer ARGS…` without the --config the `run` fixture adds."""
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


@pytest.fixture
def no_provider_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROVIDER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


# Unknown keys ---------------------------------------------------------------------------------


def test_an_unknown_key_in_a_table_suggests_the_nearest_key(folder: Folder) -> None:
    folder.configure("entries = 20", "entrys = 20")
    line = line_of(folder, "entrys = 20")
    assert (
        f"{folder.config_path}:{line}: unknown key 'entrys' in [feeds]; did you mean 'entries'?"
        in refused(folder)
    )


def test_a_misspelt_required_key_suggests_the_right_one(folder: Folder) -> None:
    folder.configure("site_url =", "sit_url =")
    line = line_of(folder, "sit_url =")
    problems = refused(folder)
    assert (
        f"{folder.config_path}:{line}: unknown key 'sit_url' in [newsletter]; "
        "did you mean 'site_url'?" in problems
    )
    assert "newsletter.site_url is missing" in problems


def test_a_misspelt_required_key_is_reported_by_check(folder: Folder, run: Run) -> None:
    folder.configure("site_url =", "sit_url =")
    result = run("check")
    assert result.exit_code == 2, result.output
    assert f"{folder.config_path}:{line_of(folder, 'sit_url')}: unknown key 'sit_url'" in (
        result.stderr
    )
    assert "did you mean 'site_url'?" in result.stderr


def test_a_missing_required_key_is_named_with_what_to_add(folder: Folder) -> None:
    folder.configure('postal_address = "Via Example 17, 00186 Rome, Italy"\n', "")
    assert (
        f"{folder.config_path}:{line_of(folder, '[newsletter]')}: newsletter.postal_address is "
        "missing; add `postal_address = …`" in refused(folder)
    )


def test_an_unknown_table_suggests_the_nearest_table_at_its_header(folder: Folder) -> None:
    folder.configure("[web]", "[webb]")
    line = line_of(folder, "[webb]")
    problems = refused(folder)
    assert f"{folder.config_path}:{line}: unknown key 'webb'" in problems
    assert "did you mean 'web'?" in problems


def test_an_unknown_subtable_suggests_the_nearest_one_at_its_header(folder: Folder) -> None:
    folder.configure("[delivery.smtp]", "[delivery.smpt]")
    line = line_of(folder, "[delivery.smpt]")
    assert (
        f"{folder.config_path}:{line}: unknown key 'smpt' in [delivery]; did you mean 'smtp'?"
        in refused(folder)
    )


def test_an_unknown_key_far_from_any_lists_the_known_keys(folder: Folder) -> None:
    folder.configure("[web]", "[web]\ncolour = 'blue'")
    line = line_of(folder, "colour")
    assert (
        f"{folder.config_path}:{line}: unknown key 'colour' in [web]; known keys are: host, port"
        in refused(folder)
    )


# Wrong types and values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("port = 587", 'port = "587"', "delivery.smtp.port must be a whole number, not '587'"),
        ("rate = 0", 'rate = "fast"', "delivery.rate must be a number, not 'fast'"),
        ("concurrency = 4", "concurrency = true", "delivery.concurrency must be a whole number"),
        ('name = "IAI Commentaries"', "name = 5", "newsletter.name must be text in quotes, not 5"),
        ('output = "public"', "output = 5", "paths.output must be a path in quotes, not 5"),
        ("entries = 20", "entries = 0", "feeds.entries: must be 1 or more, not 0"),
        (
            'backend = "outbox"',
            'backend = "pigeon"',
            "delivery.backend: 'pigeon' is not one of: outbox, smtp",
        ),
        (
            'security = "starttls"',
            'security = "ssl"',
            "delivery.smtp.security: 'ssl' is not one of",
        ),
        (
            'timezone = "Europe/Rome"',
            'timezone = "Mars/Olympus"',
            "newsletter.timezone: 'Mars/Olympus' is not a time zone name",
        ),
        (
            'site_url = "https://www.example.org/commentaries/"',
            'site_url = "www.example.org"',
            "newsletter.site_url: 'www.example.org' is not an absolute http or https URL",
        ),
        (
            'from = "IAI Commentaries <commentaries@example.org>"',
            'from = "IAI Commentaries"',
            "newsletter.from: 'IAI Commentaries' is not an email address",
        ),
        (
            "about_translations = { it = ",
            "about_translations = { xx-bogus = ",
            "series.about_translations: 'xx-bogus' is not a language code that mailer knows",
        ),
        (
            "about_translations = { it = ",
            "about_translations = { it = 5, en-GB = ",
            'series.about_translations must be a table of texts in quotes, like { it = "…" }',
        ),
    ],
    ids=[
        "port",
        "rate",
        "concurrency",
        "name",
        "output",
        "entries",
        "backend",
        "security",
        "timezone",
        "site_url",
        "from",
        "about_translations language",
        "about_translations text",
    ],
)
def test_a_wrong_value_is_named_with_its_line(
    folder: Folder, old: str, new: str, message: str
) -> None:
    folder.configure(old, new)
    assert f"{folder.config_path}:{line_of(folder, new)}: {message}" in refused(folder)


def test_a_whole_number_is_accepted_where_a_number_is_expected(folder: Folder) -> None:
    folder.configure("retry_backoff = 2.0", "retry_backoff = 3")
    assert load(folder).delivery.retry_backoff == 3.0


def test_every_wrong_value_is_reported_at_once(folder: Folder, run: Run) -> None:
    folder.configure("port = 587", 'port = "587"')
    folder.configure("entries = 20", "entries = -1")
    result = run("check")
    assert result.exit_code == 2, result.output
    assert f"{folder.config_path}:{line_of(folder, 'port = ')}: delivery.smtp.port" in (
        result.stderr
    )
    assert f"{folder.config_path}:{line_of(folder, 'entries = ')}: feeds.entries" in (result.stderr)


def test_invalid_toml_is_reported_at_its_line(folder: Folder, run: Run) -> None:
    folder.configure('name = "IAI Commentaries"', 'name = "IAI Commentaries')
    result = run("check")
    assert result.exit_code == 2, result.output
    line = line_of(folder, 'name = "IAI Commentaries')
    assert result.stderr.startswith(f"{folder.config_path}:{line}: this is not valid TOML")
    assert "Traceback" not in result.output


# Environment variables ------------------------------------------------------------------------


def test_a_variable_takes_its_value_from_the_environment(folder: Folder) -> None:
    folder.configure('name = "IAI Commentaries"', 'name = "${NEWSLETTER_NAME} Weekly"')
    folder.configure('output = "public"', 'output = "${OUTPUT_FOLDER}/site"')
    settings = load(folder, NEWSLETTER_NAME="Commentaries", OUTPUT_FOLDER="build")
    assert settings.newsletter.name == "Commentaries Weekly"
    assert settings.newsletter.secret == SECRET
    assert settings.paths.output == folder.path / "build" / "site"


def test_a_value_from_the_environment_is_checked_like_a_written_one(folder: Folder) -> None:
    folder.configure('site_url = "https://www.example.org/commentaries/"', 'site_url = "${SITE}"')
    line = line_of(folder, "${SITE}")
    assert (
        f"{folder.config_path}:{line}: newsletter.site_url: 'example.org' is not an absolute"
        in refused(folder, SITE="example.org")
    )
    assert load(folder, SITE="https://news.example.org").newsletter.site_url == (
        "https://news.example.org/"
    )


def test_a_missing_variable_is_an_error_only_when_its_setting_is_read(folder: Folder) -> None:
    settings = load(folder)  # SMTP_PASSWORD and the provider keys are not set
    assert settings.table(SmtpSettings).host == "localhost"
    with pytest.raises(ConfigError) as caught:
        _ = settings.table(SmtpSettings).password
    line = line_of(folder, "${SMTP_PASSWORD}")
    assert str(caught.value).startswith(
        f"{folder.config_path}:{line}: delivery.smtp.password needs the environment variable "
        "SMTP_PASSWORD, which is not set"
    )


def test_a_set_variable_is_read(folder: Folder) -> None:
    assert load(folder, SMTP_PASSWORD="hunter2").table(SmtpSettings).password == "hunter2"


def test_build_never_asks_for_the_smtp_password(
    folder: Folder, run: Run, no_provider_secrets: None
) -> None:
    result = run("build")
    assert result.exit_code == 0, result.output
    assert "rss.xml" in folder.output_files()
    assert "SMTP_PASSWORD" not in result.output


def test_check_with_the_outbox_backend_needs_no_provider_secrets(
    folder: Folder, run: Run, no_provider_secrets: None
) -> None:
    result = run("check")
    assert result.exit_code == 0, result.output
    assert "0 errors" in result.output


def test_check_names_a_missing_secret_variable(
    folder: Folder, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAILER_SECRET")
    result = run("check")
    assert result.exit_code == 2, result.output
    line = line_of(folder, "${MAILER_SECRET}")
    assert (
        f"{folder.config_path}:{line}: newsletter.secret needs the environment variable "
        "MAILER_SECRET" in result.stderr
    )


@pytest.mark.parametrize("secret", ["secret", "changeme", "short-0123"])
def test_check_refuses_a_weak_secret(
    folder: Folder, run: Run, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setenv("MAILER_SECRET", secret)
    result = run("check")
    assert result.exit_code == 2, result.output
    assert f"{folder.config_path}: newsletter.secret is too weak" in result.stderr


# Paths ----------------------------------------------------------------------------------------


def test_relative_paths_start_beside_the_config_file(
    folder: Folder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder.configure('private_key_file = ""', 'private_key_file = "keys/dkim.pem"')
    monkeypatch.chdir(tmp_path)
    settings = load_config(Path("newsletter/config.toml"), {"MAILER_SECRET": SECRET})
    assert settings.path == folder.config_path
    assert settings.paths.commentaries == folder.commentaries
    assert settings.paths.output == folder.output
    assert settings.paths.templates is None
    assert settings.table(OutboxSettings).path == folder.path / "outbox"
    assert settings.dkim.private_key_file == folder.path / "keys" / "dkim.pem"


def test_a_path_left_out_defaults_beside_the_config_file(folder: Folder) -> None:
    folder.configure('output = "public"\n', "")
    assert load(folder).paths.output == folder.output


def test_build_from_another_folder_writes_beside_the_config_file(
    folder: Folder, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = run("build")
    assert result.exit_code == 0, result.output
    assert "archive/index.html" in folder.output_files()
    assert list(elsewhere.iterdir()) == []


# site_url -------------------------------------------------------------------------------------


def test_site_url_gains_a_trailing_slash(folder: Folder, run: Run) -> None:
    folder.configure(
        'site_url = "https://www.example.org/commentaries/"',
        'site_url = "https://news.example.org/weekly"',
    )
    assert load(folder).newsletter.site_url == "https://news.example.org/weekly/"
    result = run("build")
    assert result.exit_code == 0, result.output
    feed = json.loads(folder.output_files()["feed.json"])
    assert feed["home_page_url"] == "https://news.example.org/weekly/archive/"
    assert feed["items"]
    assert feed["feed_url"] == "https://news.example.org/weekly/feed.json"
    # Ids are made once (commentaries/published.toml): a new address must not make every
    # entry look new to feed readers.
    for item in feed["items"]:
        assert item["id"].startswith("https://www.example.org/commentaries/archive/")


# Finding the file -----------------------------------------------------------------------------


def test_a_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "config.toml"
    result = invoke(["--config", str(missing), "check"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"{missing}: no such configuration file")
    assert "mailer init" in result.stderr
    assert "Traceback" not in result.output


def test_mailer_config_names_the_file_when_there_is_no_option(
    folder: Folder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke(["check"], env={"MAILER_CONFIG": str(folder.config_path)})
    assert result.exit_code == 0, result.output
    assert f"Checked {folder.config_path}," in result.output


def test_a_missing_file_named_by_mailer_config_is_named_in_the_error(tmp_path: Path) -> None:
    missing = tmp_path / "gone.toml"
    result = invoke(["build"], env={"MAILER_CONFIG": str(missing)})
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"{missing}: no such configuration file")


def test_the_config_option_wins_over_mailer_config(folder: Folder, tmp_path: Path) -> None:
    env = {"MAILER_CONFIG": str(tmp_path / "gone.toml")}
    result = invoke(["--config", str(folder.config_path), "check"], env=env)
    assert result.exit_code == 0, result.output


def test_without_option_or_variable_config_toml_is_read_from_the_current_folder(
    folder: Folder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(folder.path)
    result = invoke(["check"], env={"MAILER_CONFIG": None})
    assert result.exit_code == 0, result.output
    assert "Checked config.toml," in result.output


def test_the_installed_command_reads_mailer_config(folder: Folder, tmp_path: Path) -> None:
    command = Path(sys.executable).with_name("mailer")
    if not command.exists():
        skip_or_fail(f"no mailer command beside {sys.executable}")
    environment = {**os.environ, "MAILER_CONFIG": str(folder.config_path)}
    completed = subprocess.run(
        [str(command), "build"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "archive/index.html" in folder.output_files()
