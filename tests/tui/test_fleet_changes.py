"""The fleet view (H) and the Changes view (C) on a static State: keys, rows and jumps."""

from __future__ import annotations

from dataclasses import replace

from textual.widgets import DataTable

from probes.drift import diff
from probes.model import Connection, ConnState, Host, HostKind, HostState, State
from tests.fixtures.tui import T0, make_app, sample_state
from tui.screens.changes import ChangesScreen
from tui.screens.finding_detail import FindingDetailScreen
from tui.screens.fleet import FleetScreen


def _fleet() -> State:
    s = sample_state()
    down = HostState(Host("hv9", HostKind.SSH), connections=(Connection("ssh", ConnState.UNREACHABLE),))
    quiet = HostState(
        Host("hv2", HostKind.SSH), connections=(Connection("ssh", ConnState.UP),), refreshed_at=T0
    )
    return replace(s, hosts=(*s.hosts, quiet, down))


async def test_fleet_view_lists_hosts_most_urgent_first_and_opens_one():
    app, _ = make_app(_fleet())
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("H")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, FleetScreen)
        assert [r.host for r in screen._rows] == ["hv9", "hv1", "hv2"]  # down, failing, clean
        summary = str(screen.query_one("#fleet-summary").render())
        assert "3 hosts · 1 down · 1 with failing checks · sorted by urgency" in summary
        # an area without a result shows ·: the legend under the table says what it means
        table = screen.query_one("#fleet-table", DataTable)
        assert any(str(c) == "·" for c in table.get_row_at(0))
        legend = str(screen.query_one("#fleet-legend").render())
        assert (
            "· no check of that area ran on the host" in legend and "! no observation for over 60 s" in legend
        )
        await pilot.press("s")  # by host name
        assert [r.host for r in screen._rows] == ["hv1", "hv2", "hv9"]
        table = screen.query_one("#fleet-table", DataTable)  # the rows moved on screen, cells too
        assert [r.key.value for r in table.ordered_rows] == ["hv1", "hv2", "hv9"]
        assert [str(table.get_row_at(i)[0]) for i in range(3)] == ["hv1", "hv2", "hv9"]
        screen.query_one("#fleet-table").move_cursor(row=1)  # the cursor followed hv9 to the end
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, FleetScreen)
        assert app.host_filter == "hv2"


async def test_a_screen_on_top_that_follows_the_state_gets_every_state():
    """The app looked three screens up by module and class name; a screen now says it follows
    the State itself (`follow_state`), so any such screen on top gets each new State, and the
    fleet view's rows follow it."""
    from textual.screen import ModalScreen

    class Follower(ModalScreen[None]):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[State] = []

        def follow_state(self, state: State) -> None:
            self.seen.append(state)

    app, source = make_app(_fleet())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        follower = Follower()
        app.push_screen(follower)
        await pilot.pause()
        source.push(replace(source.state, taken_at=T0 + 5))
        await pilot.pause()
        assert [s.taken_at for s in follower.seen][-1:] == [T0 + 5]
        follower.dismiss(None)
        await pilot.press("H")
        await pilot.pause()
        fleet = app.screen
        assert isinstance(fleet, FleetScreen)
        s = source.state
        source.push(replace(s, hosts=tuple(h for h in s.hosts if h.host.name != "hv9")))
        await pilot.pause()
        assert [r.host for r in fleet._rows] == ["hv1", "hv2"]


async def test_changes_view_lists_new_findings_and_jumps_to_one():
    base = sample_state()
    now = replace(base, findings=base.findings[:3], taken_at=T0 + 60)  # VM-09 fail, VM-05 error gone
    extra = replace(base.findings[2], check_id="NET-02", summary="br0 shared by acme and globex")
    now = replace(now, findings=(*now.findings, extra))
    now = replace(now, drift=diff(base, now, baseline="good.json"))
    app, _ = make_app(now)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        findings = app.query_one("#findings-table")
        cells = [str(findings.get_row_at(i)[-1]) for i in range(findings.row_count)]
        assert any(c.startswith("★ new ") and "br0 shared" in c for c in cells), cells
        assert sum(c.startswith("★ new ") for c in cells) == 1
        await pilot.press("C")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ChangesScreen)
        kinds = sorted(c.kind for c in screen._changes)
        assert kinds == ["finding-cleared", "finding-cleared", "finding-new"]
        assert "good.json" in str(screen.query_one("#changes-summary").render())
        row = next(i for i, c in enumerate(screen._changes) if c.kind == "finding-new")
        screen.query_one("#changes-table").move_cursor(row=row)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, FindingDetailScreen)


async def test_changes_view_without_a_baseline_says_how_to_get_one():
    app, _ = make_app(sample_state())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("C")
        await pilot.pause()
        assert "--baseline FILE" in str(app.screen.query_one("#changes-summary").render())


async def test_fleet_view_rows_follow_each_state_while_unchanged_hosts_are_kept():
    """The view remakes only the rows of hosts that changed: after each new State its rows
    are exactly hostsummary.rows of that State (sorted), and an unchanged host keeps its row."""
    from probes.hostsummary import rows, sorted_rows
    from probes.model import Status

    st = _fleet()
    app, source = make_app(st)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("H")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, FleetScreen)
        hv2_row = next(r for r in screen._rows if r.host == "hv2")
        # hv2 gets a failing finding, hv9 comes back up: both rows change, hv1's does not
        fail = replace(st.findings[0], host="hv2", status=Status.FAIL, area="vm")
        up = replace(st.hosts[2], connections=(Connection("ssh", ConnState.UP),))
        st2 = replace(st, hosts=(st.hosts[0], st.hosts[1], up), findings=(*st.findings, fail))
        hv1_before = next(r for r in screen._rows if r.host == "hv1")
        source.push(st2)
        await pilot.pause()
        assert screen._rows == sorted_rows(rows(st2, T0 + 1), screen.sort)
        assert next(r for r in screen._rows if r.host == "hv2") != hv2_row
        assert next(r for r in screen._rows if r.host == "hv1") is hv1_before  # kept, not remade
        # the table's cells follow (changed cells are drawn at most every CELL_REDRAW s)
        table = screen.query_one("#fleet-table")
        for _ in range(100):
            await pilot.pause(0.02)
            if "up" in str(table.get_row("hv9")[1]):
                break
        assert "up" in str(table.get_row("hv9")[1])


async def test_h_with_one_host_says_there_is_nothing_to_narrow():
    """`h` on one host said "showing all hosts" at every press (the demo): it now says why
    nothing changes; on a fleet it still steps through the hosts."""
    app, _ = make_app(sample_state())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("h")
        await pilot.pause()
        [n] = list(app._notifications)
        assert n.message.startswith("one host: ") and app.host_filter is None
    app, _ = make_app(_fleet())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("h")
        await pilot.pause()
        assert app.host_filter == "hv1" and list(app._notifications)[-1].message == "showing host hv1"


async def test_a_fleet_view_wider_than_the_screen_says_arrows_show_the_rest():
    """At 80 columns the fleet table shows the host and vm areas only, and nothing said the
    other areas are a ← → away (at any size: the dialog was at most 120 wide); a screen wide
    enough for every column shows them all and does not say it."""
    from tui.screens.fleet import SUBTITLE, SUBTITLE_WIDE

    for width, want in ((80, SUBTITLE_WIDE), (160, SUBTITLE)):
        app, _ = make_app(_fleet())
        async with app.run_test(size=(width, 24)) as pilot:
            await pilot.press("H")
            await pilot.pause()
            await pilot.pause()
            assert app.screen.query_one("#fleet").border_subtitle == want, width
