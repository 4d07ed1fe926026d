"""Tiny fixtures shared by the tests: a newsletter folder, the command line, options."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

from mailer.app.newsletter import Newsletter
from mailer.cli import main
from mailer.store.database import Store

REPOSITORY = Path(__file__).resolve().parent.parent
EXAMPLES = REPOSITORY / "commentaries"
SECRET = "test-secret-0123456789abcdef"
REQUIRE_ALL = os.environ.get("MAILER_TEST_REQUIRE_ALL") == "1"
"""Set in CI: a test that would skip for want of PostgreSQL or a browser fails instead."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/ from the current output instead of comparing with it",
    )
    parser.addoption(
        "--kill-runs",
        type=int,
        default=3,
        help="runs of the kill loop in tests/test_faults.py per backend (default 3; 20 for the "
        "full loop)",
    )


def skip_or_fail(reason: str) -> None:
    """Skip with a reason; in CI (MAILER_TEST_REQUIRE_ALL=1) fail, since nothing may be skipped."""
    if REQUIRE_ALL:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@dataclass
class Folder:
    """A newsletter folder in a temporary directory, made from this repository's example."""

    path: Path

    @property
    def config_path(self) -> Path:
        return self.path / "config.toml"

    @property
    def commentaries(self) -> Path:
        return self.path / "commentaries"

    @property
    def output(self) -> Path:
        return self.path / "public"

    def write(self, name: str, text: str) -> Path:
        """Write a file of the folder from an indented triple-quoted string."""
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return target

    def image(self, name: str, width: int, height: int = 300) -> Path:
        """A PNG of the folder, of that size."""
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png(width, height))
        return target

    def configure(self, old: str, new: str) -> None:
        text = self.config_path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} is not in config.toml"
        self.config_path.write_text(text.replace(old, new, 1), encoding="utf-8")

    def newsletter(self) -> Newsletter:
        return Newsletter.load(self.config_path, {"MAILER_SECRET": SECRET})

    def output_files(self) -> dict[str, bytes]:
        return {
            str(p.relative_to(self.output)): p.read_bytes()
            for p in sorted(self.output.rglob("*"))
            if p.is_file()
        }


def png(width: int, height: int) -> bytes:
    from PIL import Image

    out = BytesIO()
    Image.new("RGB", (width, height), (18, 53, 91)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="session")
def wheel_files(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The files in mailer's wheel, built once with pip from a copy of this repository (setuptools
    leaves build/ and egg-info behind in the tree it builds)."""
    tree = tmp_path_factory.mktemp("wheel") / "tree"
    generated = {"build", "mailer.egg-info", "public", "outbox", "preview", "subscribers"}

    def ignored(folder: str, names: list[str]) -> set[str]:
        at_top = Path(folder) == REPOSITORY
        return {n for n in names if n.startswith(".") or (at_top and n in generated)}

    shutil.copytree(REPOSITORY, tree, ignore=ignored)
    wheels = tree.parent / "wheels"
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(tree), "-w"]
    subprocess.run([*command, str(wheels)], check=True, capture_output=True, timeout=600)
    (wheel,) = wheels.glob("mailer-*.whl")
    return set(zipfile.ZipFile(wheel).namelist())


@pytest.fixture(scope="session")
def new_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database as mailer makes it on first use (every migration applied, no rows),
    made once: migrating one takes longer than most tests, so each folder gets a copy."""
    path = tmp_path_factory.mktemp("new-database") / "mailer.db"
    Store.open(f"sqlite:///{path}", path.parent, lambda: SECRET).close()
    left = sorted(p.name for p in path.parent.iterdir())
    assert left == ["mailer.db"], f"the database was not closed whole: {left}"
    return path


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_database: Path) -> Folder:
    """The example newsletter (config and commentaries), in a folder of its own, with its
    database (subscribers/mailer.db) as the first command would have made it."""
    root = tmp_path / "newsletter"
    shutil.copytree(EXAMPLES, root / "commentaries")
    shutil.copyfile(REPOSITORY / "config.example.toml", root / "config.toml")
    shutil.copyfile(REPOSITORY / "logo.png", root / "logo.png")
    (root / "subscribers").mkdir()
    database = root / "subscribers" / "mailer.db"
    shutil.copyfile(new_database, database)
    database.chmod(0o600)  # as mailer makes it
    monkeypatch.setenv("MAILER_SECRET", SECRET)
    monkeypatch.delenv("MAILER_CONFIG", raising=False)
    return Folder(root)


Run = Callable[..., Result]


@pytest.fixture
def run(folder: Folder) -> Run:
    """Runs `mailer --config FOLDER/config.toml ARGS...`, returning exit code and output."""

    def invoke(*args: str, input: str | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(
            main, ["--config", str(folder.config_path), *args], input=input, catch_exceptions=False
        )

    return invoke


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


POSTGRES_URL = os.environ.get("MAILER_TEST_POSTGRES_URL", "")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each database mailer supports, empty: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mailer.db'}"
        return
    if not POSTGRES_URL:
        skip_or_fail("MAILER_TEST_POSTGRES_URL is not set, so PostgreSQL is not tested")
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def db_folder(folder: Folder, database_url: str) -> Folder:
    """The example newsletter using each supported database in turn."""
    folder.configure('url = "sqlite:///subscribers/mailer.db"', f'url = "{database_url}"')
    return folder


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(database_url, tmp_path, lambda: SECRET)
    yield opened
    opened.close()


@pytest.fixture
def kill_runs(request: pytest.FixtureRequest) -> int:
    """How many times the kill loop kills `mailer send` per backend (--kill-runs)."""
    return int(request.config.getoption("--kill-runs"))
