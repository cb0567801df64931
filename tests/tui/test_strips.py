"""tui/strips.py: a divided line's pieces are not kept on the line (issue 16: ~1,500 Strips,
~2.5 MiB of an idle console), and the frames are exactly Textual's."""

from __future__ import annotations

import gc

from textual.strip import Strip

from tests.fixtures.tui import make_app, observe_demo
from tui import strips


def test_textual_code_the_strips_copy_is_unchanged() -> None:
    """A Textual upgrade that changes Strip.divide fails here (the console then runs Textual's
    own, caching divide): re-read it against tui/strips.py and update the pin."""
    assert strips.textual_source() == strips.TEXTUAL_SOURCE


def _kept() -> int:
    """Strips that hold divided pieces of themselves."""
    return sum(1 for o in gc.get_objects() if isinstance(o, Strip) and o._divide_cache)


async def test_divided_pieces_are_not_kept_and_the_frame_is_the_same() -> None:
    app, _ = make_app(await observe_demo())
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        assert Strip.divide is strips.divide  # installed by the app
        comp = app.screen._compositor

        def frame() -> str:
            update = comp.render_update(full=True)
            assert update is not None
            return update.render_segments(app.console)

        ours = frame()
        assert _kept() == 0
        try:
            Strip.divide = strips._original  # type: ignore[method-assign]
            theirs = frame()
            assert _kept() > 100  # what Textual's divide keeps of one frame
        finally:
            Strip.divide = strips.divide  # type: ignore[method-assign]
        assert "Findings" in ours
        assert ours == theirs
