"""Built-in themes as data (one TOML file per theme), loaded without importing Textual.

Each file holds the fields of `textual.theme.Theme` plus a `[variables]` table for
tenantscope's own variables (status and severity colours). The TUI turns them into Textual
themes (tui/app.py): dark (the default), light, high-contrast, colour-blind safe and
monochrome are bundled here; user themes come from `$XDG_CONFIG_HOME/tenantscope/themes/*.toml`
(tui/theming.py).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

DEFAULT = "tenantscope-dark"


def builtin() -> list[dict[str, Any]]:
    """Every bundled theme as a dict of Theme keyword arguments, in file-name order."""
    out = []
    # this directory (not importlib.resources.files: its readers import zipfile, ~0.3 MiB kept
    # for the console's life; the demo's fleet.xml is a file path too)
    for entry in sorted(Path(__file__).parent.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            out.append(tomllib.loads(entry.read_text(encoding="utf-8")))
    return out


def default_variables() -> dict[str, str]:
    """The default theme's [variables] (status and severity colours): the fallback for any
    theme that lacks one, read from its file so there is no second copy to keep in step."""
    dark = next(t for t in builtin() if t.get("name") == DEFAULT)
    return {str(k): str(v) for k, v in dark.get("variables", {}).items()}
