"""The user's keymap: `[keymap] binding-id = "key"` in the config file, validated.

Every binding has an id (tests/test_keymap.py checks all panes and screens); the keymap maps
ids to keys ("ctrl+n", "f5", "question_mark", "N", or several keys comma-separated). An unknown
id or a key Textual cannot produce is refused with a message naming the config file, the id
and what is wrong (with the closest id), before the screen opens. Applied with Textual's
`App.set_keymap`, so the footer, the help screen and the palette show the new keys.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Iterator, Mapping
from typing import Any

MODIFIERS = {"ctrl", "shift", "alt", "meta", "super", "hyper"}
NAMED = {
    "space",
    "enter",
    "tab",
    "escape",
    "backspace",
    "delete",
    "home",
    "end",
    "pageup",
    "pagedown",
    "insert",
    "up",
    "down",
    "left",
    "right",
} | {f"f{i}" for i in range(1, 25)}


class KeymapError(ValueError):
    pass


def _binding_classes() -> Iterator[type]:
    """Every DOM class of tui/ that declares BINDINGS (after importing the modules that define
    panes and screens), and the replay app's."""
    import importlib
    import pkgutil

    from textual.dom import DOMNode

    import tui.panes
    import tui.screens

    for pkg in (tui.panes, tui.screens):
        for m in pkgutil.iter_modules(pkg.__path__):
            importlib.import_module(f"{pkg.__name__}.{m.name}")
    importlib.import_module("tui.app")
    from tui.replay import replay_app_class

    replay_app_class()
    seen: set[type] = set()
    stack = [DOMNode]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.add(sub)
                stack.append(sub)
                if sub.__module__.startswith("tui.") and "BINDINGS" in vars(sub):
                    yield sub


def all_bindings() -> list[tuple[type, Any]]:
    from textual.binding import Binding

    out = []
    for cls in _binding_classes():
        for b in vars(cls)["BINDINGS"]:
            out.append((cls, b if isinstance(b, Binding) else Binding(*b)))
    return out


def binding_ids() -> set[str]:
    return {b.id for _, b in all_bindings() if b.id}


def _flat(table: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """The keymap's entries; TOML reads an unquoted `logs.follow = "F"` as a table `logs`
    holding `follow`: that is the id `logs.follow` as written."""
    for k, v in table.items():
        if isinstance(v, Mapping):
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def renamed(bid: str, ids: set[str]) -> str:
    """The id of a binding the user's keymap names by its old name: the Logs pane's ids were
    `logs.follow`, `logs.search`, ... (the README listed them) until they took the hyphens of
    every other id (`logs-follow`); a keymap written then still works."""
    if bid.startswith("logs.") and (new := "logs-" + bid.removeprefix("logs.")) in ids:
        return new
    return bid


def valid_key(key: str) -> bool:
    parts = key.split("+")
    if any(not p for p in parts):
        return False
    *mods, last = parts
    if any(m not in MODIFIERS for m in mods) or len(set(mods)) != len(mods):
        return False
    if len(last) == 1:
        return last.isprintable() and not last.isspace()
    if last in NAMED:
        return True
    from textual.keys import Keys

    if last in {k.value for k in Keys}:
        return True
    try:
        unicodedata.lookup(last.replace("_", " ").upper())
        return True
    except KeyError:
        return False


def parse(table: Mapping[str, Any], where: str = "config") -> dict[str, str]:
    """The [keymap] table checked: {id: keys}. KeymapError on the first bad entry."""
    if not table:  # nothing to check: the binding ids import every pane and screen
        return {}
    ids = binding_ids()
    out: dict[str, str] = {}
    named: dict[str, str] = {}  # id -> as the user wrote it
    for bid, keys in _flat(table):
        given, bid = bid, renamed(bid, ids)
        if bid in named:
            raise KeymapError(f"{where}: [keymap] {given}: {bid} is already named (as {named[bid]})")
        named[bid] = given
        if bid not in ids:
            close = difflib.get_close_matches(bid, sorted(ids), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else " (the help screen, ?, lists every id)"
            raise KeymapError(f"{where}: [keymap] {bid}: unknown binding id{hint}")
        if not isinstance(keys, str) or not keys.strip():
            raise KeymapError(f'{where}: [keymap] {bid}: expected a key as a string, e.g. "ctrl+n"')
        for k in keys.split(","):
            if not valid_key(k.strip()):
                raise KeymapError(
                    f"{where}: [keymap] {bid} = {keys!r}: {k.strip()!r} is not a key "
                    '(e.g. "ctrl+n", "f5", "N", "question_mark")'
                )
        out[bid] = ",".join(k.strip() for k in keys.split(","))
    return out


def apply(app: Any, config: Any) -> dict[str, str]:
    table = config.table("keymap") if config is not None else {}
    keymap = parse(table, getattr(config, "path", "") or "config")
    if keymap:
        app.set_keymap(keymap)
    return keymap
