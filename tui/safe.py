"""Untrusted text to Rich `Text`: the only way host data reaches a widget.

A `Text` is never parsed as markup, and `visible()` has already removed every control
character, so nothing a tenant writes can move the cursor, set the title or run an action.
"""

from __future__ import annotations

from rich.text import Text

from probes.untrusted import visible


def untrusted(text: str | bytes | None, style: str = "") -> Text:
    return Text(visible(text or ""), style=style, no_wrap=False, end="")
