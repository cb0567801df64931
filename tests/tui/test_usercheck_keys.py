"""Keys a new user tried that did nothing or told a wrong story (found by using the demo as a
new user would): Home/End in the help and the Findings pane, `s` in the fleet view of one host."""

from __future__ import annotations

from typing import Any

from textual.widgets import DataTable

from tests.fixtures.tui import make_app, sample_state
from tui.screens.fleet import FleetScreen
from tui.screens.help import HelpScreen


async def _end_then_home(pilot: Any, table: DataTable[Any]) -> None:
    """End goes to the last row of a table of several, Home back to the first."""
    assert table.row_count > 1
    await pilot.press("end")
    assert table.cursor_row == table.row_count - 1
    await pilot.press("home")
    assert table.cursor_row == 0


async def test_home_and_end_go_to_the_first_and_last_row():
    """The help says "Home End move": Textual's DataTable with a row cursor scrolled sideways
    instead (nothing, in a table as wide as the screen)."""
    app, _ = make_app(sample_state())
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await _end_then_home(pilot, app.screen.query_one("#help-table", DataTable))
        await pilot.press("escape", "5")
        await pilot.pause()
        findings = app.query_one("#findings-table", DataTable)
        assert findings.cursor_row == 0
        await _end_then_home(pilot, findings)


async def test_home_and_end_in_the_resources_pane():
    """The Resources pane's table too (it scrolled sideways: nothing moved)."""
    from tests.fixtures.tui import observe_demo

    app, _ = make_app(await observe_demo())
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        resources = app.query_one("#resources-table", DataTable)
        assert resources.cursor_row == 0
        await _end_then_home(pilot, resources)


async def test_fleet_sort_key_names_the_new_sort_even_when_the_order_stays():
    """With one host (the demo) `s` changed nothing on screen: the summary kept "sorted by
    urgency" as if the key did nothing; and "1 hosts"."""
    app, _ = make_app(sample_state())
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("H")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, FleetScreen)
        summary = screen.query_one("#fleet-summary")
        assert str(summary.render()).startswith("1 host · ") and "sorted by urgency" in str(summary.render())
        await pilot.press("s")
        await pilot.pause()
        assert "sorted by host" in str(summary.render())


async def test_probe_errors_without_errors_shows_no_empty_table():
    """`!` with nothing failing: an empty errors table filled the dialog and the line saying
    "No probe is failing" sat at its bottom, under a header of empty columns."""
    app, _ = make_app(sample_state())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("exclamation_mark")
        await pilot.pause()
        assert not app.screen.query_one("#probe-errors-table").display
        assert "No probe is failing" in str(app.screen.query_one("#probe-errors-empty").render())
    app, _ = make_app(sample_state(errors=True))
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("exclamation_mark")
        await pilot.pause()
        assert app.screen.query_one("#probe-errors-table").display


async def test_fleet_counts_come_before_the_areas():
    """At 140 columns the Fail/Warn counts were past the dialog's right edge."""
    app, _ = make_app(sample_state())
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("H")
        await pilot.pause()
        table = app.screen.query_one("#fleet-table", DataTable)
        labels = [str(c.label) for c in table.ordered_columns]
        assert labels[:6] == ["Host", "Connection", "Seen", "Fail", "Warn", "Probe errors"]
        row = [str(c) for c in table.get_row_at(0)]
        host = app.screen._rows[0]
        assert row[3:6] == [str(host.fails), str(host.warns), str(host.probe_errors)]


async def test_read_only_matrix_does_not_offer_p():
    """In a replay (always read-only) `p` is disabled, yet the matrix said "not probed yet (p
    to probe)" and the cell detail "press p to send probes": p then did nothing at all."""
    from tests.tui.test_network_pane import shared_bridge_state
    from tui.panes.reachability import ReachabilityPane

    for read_only, said in ((True, "not probed (read-only session)"), (False, "p to probe")):
        app, _ = make_app(shared_bridge_state(), read_only=read_only)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("3")
            await pilot.pause()
            pane = app.query_one(ReachabilityPane)
            pane.table.cursor_coordinate = pane.table.get_cell_coordinate("hv|acme", "d:globex")
            await pilot.pause()
            summary = str(pane.query_one("#reach-summary").render())
            detail = str(pane.query_one("#reach-detail").render())
            assert said in summary
            assert ("press p" in detail) is not read_only and ("not probed" in detail)


async def test_the_logs_footer_keeps_quit_runbook_and_report_on_screen():
    """With the Logs pane focused at 140 columns its ten keys pushed q Quit, b Runbook and
    e Report past the right edge (under the command palette's key): n, N, R and o are in the
    help (and the search's status line names n/N/R), not the footer."""
    from textual.widgets import Footer

    app, _ = make_app(sample_state())
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        keys = list(app.screen.query_one(Footer).query("FooterKey"))
        palette = next(k for k in keys if k.description == "Commands")
        for name in ("Quit", "Runbook", "Report", "Help"):
            k = next(k for k in keys if k.description == name)
            assert k.region.right <= palette.region.x, (name, k.region, palette.region)
