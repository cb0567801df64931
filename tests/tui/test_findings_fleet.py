"""The Findings pane at a fleet's scale, on the demo fleet's real findings (libvirt test
driver) repeated over hosts: rows on screen first and the rest between frames, in order;
the cursor follows its finding past the rows drawn so far; a reworded summary is updated in
place (rows are keyed by what a finding is about, not its wording); the widths set from the
text are the widths DataTable measures; the cell-cached table draws what DataTable draws."""

from __future__ import annotations

from dataclasses import replace

import pytest
from rich.text import Text
from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.widgets import DataTable

from probes.model import Finding, State, Status
from tests.fixtures.tui import EVIL, demo_state, make_app
from tui.panes import findings as fp
from tui.panes.findings import FindingsPane
from tui.status import finding_sort_key
from tui.table import CellCachedTable

HOSTS = 12  # x the demo's findings: several times what the first fill draws


@pytest.fixture(scope="module")
def fleet() -> State:
    """The demo's observed State with its host repeated under HOSTS names (findings too)."""
    demo = demo_state()
    [h] = demo.hosts
    hosts, findings = [], []
    for i in range(HOSTS):
        name = f"hv{i:02d}"
        hosts.append(replace(h, host=replace(h.host, name=name)))
        findings += [replace(f, host=name) for f in demo.findings if f.host == h.host.name]
    return replace(demo, hosts=tuple(hosts), findings=tuple(findings))


def _shown(pane: FindingsPane) -> list[str]:
    return [r.key.value or "" for r in pane.table.ordered_rows]


async def _filled(pilot, pane: FindingsPane) -> None:  # type: ignore[no-untyped-def]
    for _ in range(300):
        if pane.table.row_count == len(pane.ordered):
            return
        await pilot.pause(0.02)
    raise AssertionError(f"filled {pane.table.row_count} of {len(pane.ordered)}")


async def test_a_fleet_of_findings_draws_the_rows_on_screen_first_then_all_in_order(fleet):
    assert len(fleet.findings) > 3 * fp.FILL_FIRST
    app, _ = make_app(fleet)
    async with app.run_test(size=(160, 48)) as pilot:
        pane = app.query_one(FindingsPane)
        pane._findings = None  # a rebuild now, watched from its start
        pane.show(replace(fleet, findings=fleet.findings[1:]))
        assert pane.table.row_count == fp.FILL_FIRST < len(pane.ordered)  # the first screenful
        await _filled(pilot, pane)
        want = sorted({f.key: f for f in fleet.findings[1:]}.values(), key=finding_sort_key)
        assert list(pane.ordered) == want
        assert _shown(pane) == [pane.row_key(f) for f in want]
        row = pane.table.get_row_at(len(want) - 1)  # the last row drawn, as the first are
        assert str(row[2]) == want[-1].check_id and str(row[3]) == want[-1].host
        assert "FAIL" in (pane.border_subtitle or "")  # the counts: every finding, at once


async def test_the_cursor_follows_its_finding_past_the_rows_drawn_so_far(fleet):
    app, source = make_app(fleet)
    async with app.run_test(size=(160, 48)) as pilot:
        pane = app.query_one(FindingsPane)
        await _filled(pilot, pane)
        at = len(pane.ordered) - 5  # far below the first screenful
        pane.table.move_cursor(row=at, animate=False)
        chosen = pane.selected()
        assert chosen is not None
        gone = pane.ordered[0]  # a finding above it goes: rows move
        source.push(replace(fleet, findings=tuple(f for f in fleet.findings if f is not gone), taken_at=1.0))
        for _ in range(100):
            await pilot.pause(0.02)
            if len(pane.ordered) == len(fleet.findings) - 1:
                break
        selected = pane.selected()
        assert selected is not None and selected.key == chosen.key
        assert pane.table.cursor_row == at - 1


async def test_a_reworded_summary_is_updated_in_its_row(fleet):
    """Summaries carry figures (RES, VM): a new wording is the same row, updated in place; the
    table is not rebuilt, the cursor stays on it."""
    app, source = make_app(fleet)
    async with app.run_test(size=(160, 48)) as pilot:
        pane = app.query_one(FindingsPane)
        await _filled(pilot, pane)
        o = pane.ordered  # the last of a run of alike findings (the summary is the sort's last key)
        i = next(
            i for i in range(1, len(o) - 1)
            if o[i].status == Status.FAIL and finding_sort_key(o[i])[:4] != finding_sort_key(o[i + 1])[:4]
        )  # fmt: skip
        pane.table.move_cursor(row=i, animate=False)
        old = pane.ordered[i]
        new = replace(old, summary=old.summary + " (now 97%)")
        clears: list[int] = []
        real = pane.table.clear
        pane.table.clear = lambda *a, **kw: (clears.append(1), real(*a, **kw))[1]  # type: ignore[method-assign]
        findings = tuple(new if f is old else f for f in fleet.findings)
        assert sorted(findings, key=finding_sort_key).index(new) == i  # its place is the same
        source.push(replace(fleet, findings=findings, taken_at=1.0))
        key = pane.row_key(old)
        for _ in range(100):
            await pilot.pause(0.02)
            if str(pane.table.get_row(key)[-1]).endswith("(now 97%)"):
                break
        assert str(pane.table.get_row(key)[-1]).endswith("(now 97%)")
        assert not clears and pane.row_key(new) == key
        assert pane.selected() is new and pane.table.cursor_row == i


async def test_the_same_check_on_many_hosts_keeps_host_order_while_its_wording_moves(fleet):
    """The same check on every host (a count or a percentage in its summary): a new wording on
    one host keeps the rows in host order and updates that row in place. Sorted by summary
    before the host, such rows traded places and the whole table was rebuilt at idle (seen in
    the 30-SSH-host console's profile)."""
    app, source = make_app(fleet)
    async with app.run_test(size=(160, 48)) as pilot:
        pane = app.query_one(FindingsPane)
        await _filled(pilot, pane)
        o = pane.ordered
        first = o[0]
        run = [f for f in o if finding_sort_key(f)[:4] == finding_sort_key(first)[:4]]
        assert [f.host for f in run] == sorted(f.host for f in run) and len({f.host for f in run}) == HOSTS
        old = run[0]  # hv00's: a summary sorting after every other host's
        new = replace(old, summary="~" + old.summary)
        clears: list[int] = []
        real = pane.table.clear
        pane.table.clear = lambda *a, **kw: (clears.append(1), real(*a, **kw))[1]  # type: ignore[method-assign]
        before = _shown(pane)
        source.push(
            replace(fleet, findings=tuple(new if f is old else f for f in fleet.findings), taken_at=1.0)
        )
        key = pane.row_key(old)
        for _ in range(100):
            await pilot.pause(0.02)
            if str(pane.table.get_row(key)[-1]).startswith("~"):
                break
        assert str(pane.table.get_row(key)[-1]).startswith("~")
        assert not clears and _shown(pane) == before


async def test_rows_that_come_go_and_move_are_changed_in_place_and_drawn_as_a_rebuild(fleet, monkeypatch):
    """A finding that appears, one that goes and one whose status moves it (a spike, a check
    that flaps at idle): rows are removed, added and moved in the table, not rebuilt, and the
    table then shows what a rebuild from scratch shows, in the same order; the cursor stays on
    its finding."""
    app, source = make_app(fleet)
    async with app.run_test(size=(160, 48)) as pilot:
        pane = app.query_one(FindingsPane)
        await _filled(pilot, pane)
        o = pane.ordered
        gone, moved = o[3], next(f for f in o[10:] if f.status == Status.PASS)
        came = replace(o[20], check_id="ZZZ-99", summary="new here")
        pane.table.move_cursor(row=40, animate=False)
        chosen = pane.selected()
        clears: list[int] = []
        real = pane.table.clear
        monkeypatch.setattr(pane.table, "clear", lambda *a, **kw: (clears.append(1), real(*a, **kw))[1])
        findings = tuple(
            replace(f, status=Status.FAIL) if f is moved else f for f in fleet.findings if f is not gone
        ) + (came,)
        source.push(replace(fleet, findings=findings, taken_at=1.0))
        for _ in range(100):
            await pilot.pause(0.02)
            if len(pane.ordered) == len(o):
                break
        assert not clears
        want = sorted({f.key: f for f in findings}.values(), key=finding_sort_key)
        assert list(pane.ordered) == want
        assert _shown(pane) == [pane.row_key(f) for f in want] and pane.table.row_count == len(want)
        moved_to = want.index(replace(moved, status=Status.FAIL))
        assert moved_to < o.index(moved)  # a fail sorts before the passes: it moved up
        row = pane.table.get_row_at(moved_to)
        assert str(row[0]) == "✗ FAIL" and str(row[2]) == moved.check_id and str(row[3]) == moved.host
        row = pane.table.get_row_at(want.index(came))
        assert str(row[2]) == "ZZZ-99" and str(row[-1]) == "new here"
        assert pane.selected() == chosen
        in_place = [tuple(str(c) for c in pane.table.get_row_at(i)) for i in range(len(want))]
        pane._findings = None
        monkeypatch.undo()
        pane._theme = None  # a rebuild from scratch, for comparison
        pane.show(replace(fleet, findings=findings, taken_at=1.0))
        await _filled(pilot, pane)
        assert [tuple(str(c) for c in pane.table.get_row_at(i)) for i in range(len(want))] == in_place


async def test_the_widths_set_from_the_text_are_what_datatable_measures(fleet):
    """Column widths come from the findings' text (nothing measured by the table): the same
    as DataTable's own measuring of the same cells, hostile and wide text included."""
    [h0, h1, *_] = fleet.hosts
    odd = Finding(
        "NET-02", "network", "t", Status.FAIL, fleet.findings[0].severity, host=h1.host.name,
        summary=f"{EVIL} 漢字 wide", tenants=("acme", "gl\tobex"),
    )  # fmt: skip
    st = replace(fleet, hosts=(h0, h1), findings=(*fleet.findings[:40], odd))
    app, _ = make_app(st)
    app.acks[fleet.findings[3].key] = object()  # type: ignore[assignment]  # a marked row
    async with app.run_test(size=(160, 48)) as pilot:
        pane = app.query_one(FindingsPane)
        pane._refill()
        await pilot.pause()
        plain = DataTable[Text]()
        await app.screen.mount(plain)
        plain.add_columns(*pane._columns)
        for f in pane.ordered:
            plain.add_row(*pane._cells(f, (f, f.key in app.acks, False), pane._theme))
        await pilot.pause()
        measured = tuple(c.content_width for c in plain.ordered_columns)
        assert pane._widths == measured
        assert [c.width for c in pane.table.ordered_columns] == list(measured)


class _Two(App[None]):
    def compose(self) -> ComposeResult:
        for t in (CellCachedTable(id="cached"), DataTable[Text](id="plain")):
            t.zebra_stripes, t.cursor_type = True, "row"
            t.can_focus = False  # (neither focused: drawn alike)
            yield t


def _lines(table: DataTable[Text]) -> list[list[tuple[str, object]]]:
    return [[(s.text, s.style) for s in strip] for strip in table.render_lines(Region(0, 0, 100, 12))]


async def test_the_cell_cached_table_draws_what_datatable_draws(fleet):
    """Cells rendered once per content: after updates and a sort the lines are DataTable's
    (text, style and the row/column each segment names for the mouse), never a stale cell."""
    app = _Two()
    async with app.run_test(size=(120, 30)) as pilot:
        tables = [app.query_one("#cached", DataTable), app.query_one("#plain", DataTable)]
        for t in tables:
            for c in ("check", "host", "summary"):
                t.add_column(c, key=c)
            for i, f in enumerate(fleet.findings[:20]):
                t.add_row(Text(f.check_id), Text(f.host), Text(f.summary, style="bold"), key=str(i))
        await pilot.pause()
        cached, plain = (_lines(t) for t in tables)
        assert cached == _lines(tables[0])  # (drawn again: from its cache)
        assert cached == plain
        for t in tables:
            t.update_cell("3", "summary", Text("changed in place"), update_width=True)
        await pilot.pause()
        cached, plain = (_lines(t) for t in tables)
        assert cached == plain and any("changed in place" in s for line in cached for s, _ in line)
        for t in tables:
            t.sort("host", "check", key=lambda cells: [c.plain for c in cells], reverse=True)
            t.move_cursor(row=4)
        await pilot.pause()
        assert _lines(tables[0]) == _lines(tables[1])
