"""The panes of the main screen, found from their classes.

A pane is a module here with a Pane subclass that sets `pane_id`, `title` and `position`
(1, 2, ...): its number key, its tab and its slot in the large layout's grid all follow
`position`, so adding a pane touches its own module only (and the README's key table, which
a test keeps true).
"""

from __future__ import annotations

import importlib
import pkgutil

from tui.panes.base import Pane


def _subclasses(cls: type[Pane]) -> list[type[Pane]]:
    out = []
    for c in cls.__subclasses__():
        out += [c, *_subclasses(c)]
    return out


def pane_classes() -> tuple[type[Pane], ...]:
    """The main screen's panes in their order (position 1 first)."""
    for m in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{m.name}")
    mine = (c for c in _subclasses(Pane) if c.position and c.__module__.startswith(f"{__name__}."))
    panes = sorted(mine, key=lambda c: c.position)
    if [c.position for c in panes] != list(range(1, len(panes) + 1)) or len(panes) > 9:
        raise ValueError(
            "pane positions must be 1..n (n <= 9, one number key each): "
            + ", ".join(f"{c.__name__}={c.position}" for c in panes)
        )
    return tuple(panes)
