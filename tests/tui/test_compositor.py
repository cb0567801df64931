"""tui/compositor.py: a partial screen update renders only the widgets it reaches, and
writes exactly what Textual's own compositor writes (on the real app's screen)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from textual._compositor import Compositor
from textual.widgets import Static

from tests.fixtures.tui import make_app, observe_demo
from tui import compositor


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
        changed = [app.query_one(f"#{i}", Static) for i in ids]
        for w in changed:
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
        assert ours == theirs
        assert n_ours < n_theirs / 2, (n_ours, n_theirs)
