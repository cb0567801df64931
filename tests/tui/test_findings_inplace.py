"""The Findings pane updates rows in place: a State whose findings keep their rows and order
changes only the rows whose finding changed (the table is not cleared and refilled, which at
a fleet's thousands of findings was most of a State's drawing); a finding gone is a row
removed; mostly new findings rebuild it."""

from __future__ import annotations

from dataclasses import replace

from tests.fixtures.tui import make_app, sample_state
from tui.panes.findings import FindingsPane


async def test_a_changed_finding_is_updated_in_place_and_mostly_new_findings_rebuild():
    st = sample_state()
    app, source = make_app(st)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        pane = app.query_one(FindingsPane)
        table = pane.table
        clears: list[int] = []
        real = table.clear

        def spy(*a, **kw):  # type: ignore[no-untyped-def]
            clears.append(1)
            return real(*a, **kw)

        table.clear = spy  # type: ignore[method-assign]
        rows = table.row_count
        # the same findings, one with other tenants (its key, status and place are the same)
        i = next(i for i, f in enumerate(st.findings) if f.check_id == "VM-07")
        f2 = replace(st.findings[i], tenants=("acme", "tsf-other"))
        source.push(
            replace(st, findings=(*st.findings[:i], f2, *st.findings[i + 1 :]), taken_at=st.taken_at + 1)
        )
        for _ in range(50):
            await pilot.pause(0.02)
            if any("tsf-other" in str(c) for c in table.get_row(pane.row_key(f2))):
                break
        assert any("tsf-other" in str(c) for c in table.get_row(pane.row_key(f2)))
        assert not clears and table.row_count == rows  # updated in place
        assert pane.ordered[[f.key for f in pane.ordered].index(f2.key)] is f2
        # a finding gone: its row removed in place, one row fewer
        source.push(replace(st, findings=st.findings[1:], taken_at=st.taken_at + 2))
        for _ in range(50):
            await pilot.pause(0.02)
            if table.row_count == rows - 1:
                break
        assert not clears and table.row_count == rows - 1
        assert pane.row_key(st.findings[0]) is None
        # most findings new (other checks' wording on every row): rebuilt
        fresh = tuple(replace(f, check_id=f"X-{i}") for i, f in enumerate(st.findings))
        source.push(replace(st, findings=fresh, taken_at=st.taken_at + 3))
        for _ in range(50):
            await pilot.pause(0.02)
            if clears:
                break
        assert clears and table.row_count == rows


async def test_after_a_slow_rebuild_states_arriving_soon_are_drawn_together(monkeypatch):
    """A rebuild that was slow (a fleet's thousands of findings) is not done again at once: a
    State arriving within REBUILD_FACTOR times its cost is drawn by a timer, the newest one."""
    import tui.panes.findings as fp

    monkeypatch.setattr(fp, "REBUILD_SLOW", 0.0)  # every rebuild counts as slow here
    monkeypatch.setattr(fp, "REBUILD_FACTOR", 1.0)
    st = sample_state()
    app, source = make_app(st)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        pane = app.query_one(FindingsPane)
        rows = pane.table.row_count
        pane._rebuild_cost = 0.3  # as if the last rebuild took 0.3 s, just now
        pane._rebuilt_at = fp.time.monotonic()
        source.push(replace(st, findings=st.findings[1:], taken_at=st.taken_at + 1))
        source.push(replace(st, findings=st.findings[2:], taken_at=st.taken_at + 2))
        await pilot.pause(0.05)
        assert pane.table.row_count == rows  # not yet
        for _ in range(50):
            await pilot.pause(0.02)
            if pane.table.row_count != rows:
                break
        assert pane.table.row_count == rows - 2  # the newest State, drawn once


async def test_rows_share_their_status_severity_check_and_tenants_cells():
    """One Text per status, severity, check id and tenant list (and theme), not one per row: a
    table of 780 findings held ~3,000 copies (~1 MiB, issue 16); a theme makes new ones."""
    st = sample_state()
    app, _ = make_app(st)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        pane = app.query_one(FindingsPane)
        table = pane.table
        fs = [f for f in st.findings if pane.row_key(f) in table.rows]
        assert len(fs) > len({f.status for f in fs})  # rows repeat a status
        for column, value in (("status", lambda f: f.status), ("severity", lambda f: f.severity)):
            cells = {id(table.get_cell(pane.row_key(f), column)) for f in fs}
            assert len(cells) == len({value(f) for f in fs}), column
        checks = {id(table.get_cell(pane.row_key(f), "check")) for f in fs}
        assert len(checks) == len({f.check_id for f in fs})
        tenants = {id(table.get_cell(pane.row_key(f), "tenants")) for f in fs}
        assert len(tenants) == len({f.tenants for f in fs}) < len(fs)
        before = table.get_cell(pane.row_key(fs[0]), "status")
        app.theme = "tenantscope-light"
        await pilot.pause(0.2)
        after = table.get_cell(pane.row_key(fs[0]), "status")
        assert after is not before and after.style != before.style
