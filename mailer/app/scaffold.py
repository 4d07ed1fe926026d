"""`mailer init`: a new newsletter folder, made from the example this repository itself is."""

from __future__ import annotations

import shutil
from pathlib import Path

from mailer.core.errors import RequestError
from mailer.render.theme import THEME_FILES, packaged_folder

EXAMPLE_CONFIG = "config.example.toml"
EXAMPLE_COMMENTARY = "commentaries/2025-10-02-writing-a-commentary.md"
EXAMPLE_LOGO = "logo.png"
THEME_SETTING = 'templates = ""'


def create(folder: Path, *, with_theme: bool = False) -> list[Path]:
    """Make `folder` a newsletter folder; refuses to overwrite one that exists."""
    config_path = folder / "config.toml"
    if config_path.exists():
        raise RequestError(f"{config_path} already exists; choose a new folder for the newsletter")
    example = packaged_folder("example")
    config_text = (example / EXAMPLE_CONFIG).read_text(encoding="utf-8")
    created = []
    for sub in ("commentaries", "subscribers"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        created.append(folder / sub)
    commentary = folder / EXAMPLE_COMMENTARY
    # A draft: otherwise the guide, being the newest, is what `mailer send --yes` would send.
    guide = (example / EXAMPLE_COMMENTARY).read_text(encoding="utf-8")
    commentary.write_text(guide.replace("+++\n", "+++\ndraft = true\n", 1), encoding="utf-8")
    created.append(commentary)
    shutil.copyfile(example / EXAMPLE_LOGO, folder / EXAMPLE_LOGO)
    created.append(folder / EXAMPLE_LOGO)
    if with_theme:
        theme = folder / "templates"
        theme.mkdir(exist_ok=True)
        for name in THEME_FILES:
            shutil.copyfile(packaged_folder("theme") / name, theme / name)
        created.append(theme)
        config_text = config_text.replace(THEME_SETTING, 'templates = "templates"', 1)
    config_path.write_text(config_text, encoding="utf-8")
    created.insert(0, config_path)
    return created
