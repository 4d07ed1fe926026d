"""The repository's example newsletter copied into a folder: where most benchmarks start.

Its configuration names the series' logo beside it, so a folder without the logo fails to
build; one copy here keeps every benchmark in step with the example.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


def example_folder(
    folder: Path, settings: Callable[[str], str] = str, commentaries: bool = True
) -> Path:
    """`folder` (made if missing) with the example's configuration, passed through `settings`,
    its logo, an empty subscribers folder and, unless told otherwise, its commentaries."""
    folder.mkdir(parents=True, exist_ok=True)
    if commentaries:
        shutil.copytree(REPOSITORY / "commentaries", folder / "commentaries")
    shutil.copyfile(REPOSITORY / "logo.png", folder / "logo.png")
    text = (REPOSITORY / "config.example.toml").read_text(encoding="utf-8")
    (folder / "config.toml").write_text(settings(text), encoding="utf-8")
    (folder / "subscribers").mkdir(exist_ok=True)
    return folder
