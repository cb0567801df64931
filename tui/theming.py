"""Themes at run time: names, user themes, NO_COLOR, and remembering the choice.

Built-in themes are data files in themes/ (dark, light, high-contrast, colour-blind safe,
monochrome). User themes are `$XDG_CONFIG_HOME/tenantscope/themes/*.toml` in the same format
(Textual Theme fields plus a `[variables]` table); each is validated (known keys, colours
that parse, a name) and a broken one is skipped with a message naming the file and the key:
the app falls back to the default theme instead of failing.

Which theme opens: `--theme` (short names such as `light` work), else the one remembered from
the last switch, else the config's `theme = ...`, else monochrome when NO_COLOR is set, else
dark. Switching (the palette's "Change theme", or --theme) is remembered in
`$XDG_STATE_HOME/tenantscope/state.toml` (`theme = "NAME"`): tenantscope never rewrites the
user's config file.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import themes

THEME_FIELDS = {
    "name",
    "primary",
    "secondary",
    "warning",
    "error",
    "success",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
    "dark",
    "luminosity_spread",
    "text_alpha",
    "variables",
}
COLOUR_FIELDS = THEME_FIELDS - {"name", "dark", "luminosity_spread", "text_alpha", "variables"}
SHORT = "tenantscope-"


class ThemeError(ValueError):
    pass


def user_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "tenantscope" / "themes"


def state_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "tenantscope" / "state.toml"


def validate(data: dict[str, Any], where: str) -> dict[str, Any]:
    """A theme dict checked field by field; ThemeError names the file and the key."""
    from textual.color import Color, ColorParseError

    unknown = sorted(set(data) - THEME_FIELDS)
    if unknown:
        raise ThemeError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(THEME_FIELDS))})")
    if not isinstance(data.get("name"), str) or not data["name"].strip():
        raise ThemeError(f'{where}: missing `name = "..."`')
    if "primary" not in data:
        raise ThemeError(f"{where}: missing `primary` (a colour)")
    for k in COLOUR_FIELDS & set(data):
        try:
            Color.parse(data[k])
        except (ColorParseError, TypeError, ValueError):
            raise ThemeError(f'{where}: {k} = {data[k]!r} is not a colour (e.g. "#5fafd7")') from None
    if "dark" in data and not isinstance(data["dark"], bool):
        raise ThemeError(f"{where}: dark must be true or false")
    for k in ("luminosity_spread", "text_alpha"):
        if k in data and not isinstance(data[k], (int, float)):
            raise ThemeError(f"{where}: {k} must be a number")
    variables = data.get("variables", {})
    if not isinstance(variables, dict):
        raise ThemeError(f"{where}: [variables] must be a table")
    for k, v in variables.items():
        if not isinstance(v, str):
            raise ThemeError(f"{where}: variables.{k} must be a string")
        if k.startswith(("status-", "severity-")):
            try:
                Color.parse(v)
            except (ColorParseError, ValueError):
                raise ThemeError(f"{where}: variables.{k} = {v!r} is not a colour") from None
    return data


def load_user_themes(directory: Path | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """(valid themes, one message per broken file)."""
    d = directory or user_dir()
    good: list[dict[str, Any]] = []
    problems: list[str] = []
    if not d.is_dir():
        return good, problems
    for p in sorted(d.glob("*.toml")):
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
            good.append(validate(data, str(p)))
        except tomllib.TOMLDecodeError as e:
            problems.append(f"{p}: not valid TOML: {e}")
        except (OSError, UnicodeDecodeError) as e:
            problems.append(f"{p}: cannot read: {e}")
        except ThemeError as e:
            problems.append(str(e))
    return good, problems


def remembered() -> str:
    try:
        return str(tomllib.loads(state_path().read_text(encoding="utf-8")).get("theme", ""))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return ""


def remember(name: str) -> None:
    """Write `theme = NAME` to the state file (atomically; other keys kept)."""
    p = state_path()
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        doc = {}
    doc["theme"] = name
    lines = [f"{k} = {_toml_str(v)}" for k, v in doc.items() if isinstance(v, str)]
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(
            "# tenantscope's remembered choices (written by tenantscope)\n" + "\n".join(lines) + "\n",
            encoding="utf-8",
        )
        tmp.replace(p)
    except OSError:
        pass  # a read-only home: the choice is simply not remembered


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def resolve(name: str, available: list[str]) -> str | None:
    """`light` -> `tenantscope-light`; any registered name as is; None if unknown."""
    for cand in (name, SHORT + name):
        if cand in available:
            return cand
    return None


def choose(
    app: Any, *, cli: str | None, config_theme: str = "", environ: dict[str, str] | None = None
) -> str:
    """Register user themes and pick the theme to open with (see the module docstring).
    Raises ThemeError for an unknown --theme (the user asked for it by name)."""
    from textual.theme import Theme

    env = os.environ if environ is None else environ
    good, problems = load_user_themes()
    for data in good:
        app.register_theme(Theme(**data))
    for msg in problems:
        app.call_later(app.notify, f"{msg}; skipped", title="theme", severity="warning", timeout=10)
    available = list(app.available_themes)
    short = sorted(n.removeprefix(SHORT) for n in available if n.startswith(SHORT))
    if cli:
        got = resolve(cli, available)
        if got is None:
            raise ThemeError(
                f"--theme {cli}: unknown theme (built in: {', '.join(short)}; "
                f"also Textual's themes and yours in {user_dir()})"
            )
        return got
    for name, origin in ((remembered(), "remembered"), (config_theme, "config")):
        if name:
            got = resolve(name, available)
            if got is not None:
                return got
            app.call_later(
                app.notify,
                f"theme {name!r} ({origin}) not found; using the default",
                title="theme",
                severity="warning",
            )
    if "NO_COLOR" in env:
        return SHORT + "monochrome"
    return themes.DEFAULT
