"""Findings: filters, the detail screen's keys (copy, save, acknowledge, jumps to the tenant,
the log lines and the matrix cell)."""

from __future__ import annotations

from tests.fixtures.runbook import incident_state
from tests.fixtures.tui import make_app
from tui.screens.finding_detail import FindingDetailScreen


async def open_detail(app, pilot, check_id: str) -> None:  # type: ignore[no-untyped-def]
    await pilot.press("5")
    pane = app.pane("findings")
    row = next(i for i, f in enumerate(pane.ordered) if f.check_id == check_id)
    pane.table.move_cursor(row=row)
    await pilot.press("enter")
    await pilot.pause()
    assert isinstance(app.screen, FindingDetailScreen)


async def test_filters_cycle_and_clear():
    app, _ = make_app(incident_state())
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("5")
        pane = app.pane("findings")
        assert len(pane.ordered) == 4
        await pilot.press("t")  # first tenant: acme
        assert pane.filters["tenant"] == "acme"
        assert {f.check_id for f in pane.ordered} == {"NET-02", "LOG-01"}
        await pilot.press("s")  # first status present: fail
        assert [f.check_id for f in pane.ordered] == ["NET-02"]
        assert "filter" in str(pane.border_subtitle)
        await pilot.press("c")
        assert len(pane.ordered) == 4
        await pilot.press("a", "a")  # areas sorted: logs, network
        assert [f.area for f in pane.ordered] == ["network"]


async def test_ack_with_note_is_listed_and_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app, source = make_app(incident_state())
    async with app.run_test(size=(160, 48)) as pilot:
        await open_detail(app, pilot, "NET-02")
        await pilot.press("a")
        await pilot.pause()
        for ch in "INC-7 moving":
            await pilot.press("space" if ch == " " else ch)
        await pilot.press("enter")
        await pilot.pause()
        f = app.screen.finding
        assert app.acks[f.key].note == "INC-7 moving"
        await pilot.press("w")  # the fix saved to a file in the working directory
        saved = list(tmp_path.glob("tenantscope-fix-NET-02-hv1-*.txt"))
        assert len(saved) == 1 and "ip link set h2 nomaster" in saved[0].read_text()
        await pilot.press("escape")
        pane = app.pane("findings")
        assert len(pane.ordered) == 4  # listed, not hidden
        row = pane.table.get_row(pane.row_key(f))
        assert str(row[-1]).startswith("✔ ack")
        source.push(incident_state())  # a new State: the acknowledgement stays for the session
        await pilot.pause(0.3)
        assert str(pane.table.get_row(pane.row_key(f))[-1]).startswith("✔ ack")


async def test_copy_fix_uses_the_clipboard():
    app, _ = make_app(incident_state())
    async with app.run_test(size=(160, 48)) as pilot:
        await open_detail(app, pilot, "NET-02")
        await pilot.press("c")
        assert app.clipboard == "ip link set h2 nomaster  # move globex to its own bridge"


async def test_jump_to_matrix_cell():
    app, _ = make_app(incident_state())
    async with app.run_test(size=(160, 48)) as pilot:
        await open_detail(app, pilot, "NET-02")
        await pilot.press("m")
        await pilot.pause()
        pane = app.pane("reachability")
        table = pane.table
        rk, ck = table.coordinate_to_cell_key(table.cursor_coordinate)
        assert (rk.value, ck.value) == ("hv1|acme", "d:globex")


async def test_jump_to_log_lines():
    st = incident_state()
    app, _ = make_app(st)
    async with app.run_test(size=(160, 48)) as pilot:
        await open_detail(app, pilot, "LOG-01")
        await pilot.press("l")
        await pilot.pause()
        from tui.panes.logs import LogLines

        shown = [e.seq for e in app.query_one(LogLines).lines]
        want = sorted(
            int(e.where.split("#")[1])
            for e in next(f for f in st.findings if f.check_id == "LOG-01").evidence
        )
        assert shown == want


async def test_jump_to_tenant():
    app, _ = make_app(incident_state())
    async with app.run_test(size=(160, 48)) as pilot:
        await open_detail(app, pilot, "LOG-01")
        await pilot.press("t")
        await pilot.pause()
        await pilot.pause()
        tree = app.pane("tenants").tenant_tree
        assert tree.cursor_node is not None and tree.cursor_node.data == "t:acme"
