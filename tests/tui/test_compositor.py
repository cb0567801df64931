"""tui/compositor.py: a partial screen update renders only the widgets it reaches, and
writes exactly what Textual's own compositor writes (on the real app's screen)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from textual._compositor import Compositor
from textual.widget import Widget
from textual.widgets import Static

from tests.fixtures.tui import make_app, observe_demo
from tui import compositor
from tui.figureline import FigureLine

# a cursor move followed by no cell (Textual writes one for a cut starting where a span ends)
_EMPTY_MOVE = re.compile(r"\x1b\[\d+;\d+H(?=\x1b\[\d+;\d+H|\n|$)")


def cells(written: str) -> str:
    """What a partial update writes, without the cursor moves that write nothing."""
    return _EMPTY_MOVE.sub("", written)


def test_textual_code_the_compositor_copies_is_unchanged() -> None:
    """A Textual upgrade that changes these fails here (the console then runs Textual's own,
    unnarrowed updates): re-read them against tui/compositor.py and update the pins."""
    assert compositor.textual_sources() == compositor.TEXTUAL_SOURCES


async def test_a_figures_update_renders_fewer_widgets_and_writes_the_same() -> None:
    """The header's time and the Resources summary and chart change (what every figures
    refresh of an idle console changes): Textual's compositor and ours write the same bytes,
    ours rendering under half the widgets."""
    app, _ = make_app(await observe_demo())
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        assert Compositor._get_renders is compositor._get_renders  # installed by the app
        comp = app.screen._compositor
        ids = ("header-main", "resources-summary", "resources-chart")
        changed = [app.query_one(f"#{i}", Widget) for i in ids]
        for w in changed:
            if isinstance(w, FigureLine):
                w.set_text(f"changed {w.id}")
            else:
                assert isinstance(w, Static)
                w.update(f"changed {w.id}")
        await pilot.pause()

        def partial(get_renders: Callable[..., Any], partial_update: Callable[..., Any]) -> tuple[str, int]:
            rendered = []

            def counting(self: Compositor, crop: Any = None) -> Iterator[Any]:
                for r in get_renders(self, crop):
                    rendered.append(r)
                    yield r

            Compositor._get_renders = counting  # type: ignore[method-assign]
            Compositor.render_partial_update = partial_update  # type: ignore[method-assign]
            comp._dirty_regions.clear()
            comp._dirty_regions.update(comp.visible_widgets[w][0] for w in changed)
            update = comp.render_partial_update()
            assert update is not None
            return update.render_segments(app.console), len(rendered)

        try:
            theirs, n_theirs = partial(compositor._original, compositor._original_partial)
            ours, n_ours = partial(compositor._get_renders, compositor._render_partial_update)
        finally:
            Compositor._get_renders = compositor._get_renders  # type: ignore[method-assign]
            Compositor.render_partial_update = compositor._render_partial_update  # type: ignore[method-assign]
        assert all(f"changed {i}" in theirs for i in ids)
        assert cells(ours) == cells(theirs)
        assert n_ours < n_theirs / 2, (n_ours, n_theirs)


async def test_a_summary_update_renders_the_summary_alone_and_writes_the_same() -> None:
    """The Resources summary changes alone (what an idle console's refresh changes): the
    widgets behind it (its pane, the panes' container, the screen) are painted over there and
    not rendered (they were: 4 widgets a refresh); the cells written are Textual's."""
    app, _ = make_app(await observe_demo())
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        comp = app.screen._compositor
        w = app.query_one("#resources-summary", FigureLine)
        w.set_text("changed summary")
        await pilot.pause()

        def partial(
            get_renders: Callable[..., Any], partial_update: Callable[..., Any]
        ) -> tuple[str, list[Any]]:
            rendered: list[Any] = []

            def counting(self: Compositor, crop: Any = None) -> Iterator[Any]:
                for r in get_renders(self, crop):
                    rendered.append(r[0])
                    yield r

            Compositor._get_renders = counting  # type: ignore[method-assign]
            Compositor.render_partial_update = partial_update  # type: ignore[method-assign]
            comp._dirty_regions.clear()
            comp._dirty_regions.add(comp.visible_widgets[w][0])
            update = comp.render_partial_update()
            assert update is not None
            return update.render_segments(app.console), rendered

        try:
            theirs, _ = partial(compositor._original, compositor._original_partial)
            ours, rendered = partial(compositor._get_renders, compositor._render_partial_update)
        finally:
            Compositor._get_renders = compositor._get_renders  # type: ignore[method-assign]
            Compositor.render_partial_update = compositor._render_partial_update  # type: ignore[method-assign]
        assert "changed summary" in theirs and cells(ours) == cells(theirs)
        assert rendered == [comp.visible_widgets[w][0]]
