"""tui/figureline.py: the Resources summary's new text is drawn without Textual's render path,
cell for cell what Textual draws, in every theme, focused or not; anything else is Textual's."""

from __future__ import annotations

from dataclasses import replace

from textual.geometry import Region
from textual.strip import Strip

import themes
from tests.fixtures.tui import make_app
from tests.tui.test_resources_pane import SIZE, make_state
from tui import figureline
from tui.figureline import FigureLine


def cells(strip: Strip) -> list[tuple[str, object]]:
    return [(ch, seg.style) for seg in strip for ch in seg.text]


def both(w: FigureLine) -> tuple[Strip, Strip, int]:
    """The line FigureLine draws now, Textual's line for the same text, and how many lines
    were copied from the shape for the first."""
    whole = Region(0, 0, *w.outer_size)
    before = w.copied
    [ours] = w.render_lines(whole)
    copied = w.copied - before
    w._shape = None  # Textual's own render of the same text
    [theirs] = w.render_lines(whole)
    return ours, theirs, copied


def test_textual_code_figureline_relies_on_is_unchanged() -> None:
    """A Textual upgrade that changes these fails here (every line is then Textual's):
    re-read them against tui/figureline.py and update the pins."""
    assert figureline.textual_sources() == figureline.TEXTUAL_SOURCES


async def test_a_new_summary_is_drawn_as_textual_draws_it_without_rendering() -> None:
    app, source = make_app(make_state({"acme-a": 50.0}))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        w = app.query_one("#resources-summary", FigureLine)
        for theme in [t["name"] for t in themes.builtin()] + ["textual-light"]:
            app.theme = theme
            await pilot.pause()
            for focus in ("1", "2"):  # the Resources pane without and with the focus
                await pilot.press(focus)
                await pilot.pause()
                w.set_text("CPU 9.0% of 2 · steal 0.0% · mem 604M/23.5G  [every 2 s]")
                w.render_lines(Region(0, 0, *w.outer_size))  # Textual's: the shape is taken
                w.set_text("CPU 12% of 2 · steal 0.5% · mem 1.2G/23.5G  [every 2 s]")
                ours, theirs, copied = both(w)
                assert copied == 1, (theme, focus)
                assert cells(ours) == cells(theirs), (theme, focus)
                assert "CPU 12% of 2" in ours.text
        await pilot.pause()  # (the last line above drawn on screen)
        # a new State's figures: the pane's summary is copied, not rendered
        state = make_state({"acme-a": 50.0})
        [hs] = state.hosts
        assert hs.samples is not None
        totals = replace(hs.samples.totals, cpu_pct=37.0)
        source.push(replace(state, hosts=(replace(hs, samples=replace(hs.samples, totals=totals)),)))
        before = w.copied
        await pilot.pause()
        await pilot.pause()
        assert "CPU 37% of 2" in w.text and w.copied == before + 1


async def test_what_textual_must_draw_is_textuals() -> None:
    """A text wider than a cell a character, one that does not fit, a new size: Textual's."""
    app, _ = make_app(make_state({"acme-a": 50.0}))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        w = app.query_one("#resources-summary", FigureLine)
        w.render_lines(Region(0, 0, *w.outer_size))
        for text in ("CPU 9.0% · ⚡2 spiking", "x" * (w.outer_size.width + 5), "\x1b[31mred"):
            w.set_text(text)
            ours, theirs, copied = both(w)
            assert copied == 0 or text.startswith("\x1b"), text
            assert cells(ours) == cells(theirs)
        assert "\\x1b[31mred" in w.text  # untrusted text: the escape is shown, not sent
        w.set_text("short")
        w.render_lines(Region(0, 0, *w.outer_size))
        await pilot.resize_terminal(SIZE[0] - 20, SIZE[1])
        await pilot.pause()
        w.set_text("short again")
        ours, theirs, copied = both(w)
        assert cells(ours) == cells(theirs) and ours.cell_length == w.outer_size.width
