"""Resources pane with the Pilot: real probe samples of a real burning cgroup, sorting,
expansion, "no limit" in words, cell-level updates, run-time interval and pause."""

from __future__ import annotations

from dataclasses import replace

from probes.engine import Engine
from probes.hosts.local import LocalHost
from probes.model import ContainerDetails, Host, HostState, Placement, State, Tenant, Workload, WorkloadKind
from probes.resources.model import History, HostTotals, Limits, ResourceSnapshot, Sample
from probes.resources.probe import ResourcesProbe
from tests.fixtures.cgroups import BURN, IDLE, cgroup_factory  # noqa: F401
from tests.fixtures.tui import EVIL, T0, make_app
from tui.app import TenantScopeApp
from tui.panes.resources import ResourcesPane, build_rows, chart, sparkline

SIZE = (160, 60)


def wl(name: str, tenant: str, kind=WorkloadKind.CONTAINER) -> Workload:
    return Workload(kind, name, "hv1", state="running", tenant=tenant, placed_by=Placement.PREFIX)


def make_state(cpu: dict[str, float], limited: set[str] = frozenset()) -> State:
    ws = [wl("acme-a", "acme"), wl("acme-b", "acme"), wl("globex-a", "globex"), wl(EVIL, EVIL)]
    samples = []
    hist = []
    for w in ws:
        v = cpu.get(w.name, 1.0)
        live = (
            Limits("cgroup v1", cpu_quota_cores=1.0, mem_limit_bytes=1 << 30, pids_limit=100)
            if w.name in limited
            else Limits("cgroup v1")
        )
        samples.append(
            Sample(
                w.key,
                1.0,
                "container",
                "cgroup v1",
                cpu_pct=v,
                mem_bytes=100 << 20,
                mem_limit_bytes=live.mem_limit_bytes,
                blk_read_bps=0.0,
                blk_write_bps=0.0,
                live=live,
            )
        )
        hist.append(History(w.key, cpu=(0.0,) * 7 + (v,), mem=(float(100 << 20),) * 8))
    snap = ResourceSnapshot(
        tuple(samples),
        T0,
        2.0,
        HostTotals(cpus=2, cpu_pct=10.0, steal_pct=0.5, mem_total=8 << 30, mem_used=5 << 29),
        tuple(hist),
    )
    hs = HostState(Host("hv1"), workloads=tuple(ws), samples=snap, refreshed_at=T0)
    tenants = tuple(Tenant(t, tuple(w.key for w in ws if w.tenant == t)) for t in ("acme", EVIL, "globex"))
    return State(hosts=(hs,), tenants=tenants, taken_at=T0, source="live")


def cell_texts(pane: ResourcesPane) -> list[list[str]]:
    t = pane.table
    return [[c.plain for c in t.get_row_at(i)] for i in range(t.row_count)]


def test_sparkline_and_chart_maths():
    assert sparkline([0.0, 0.5, 1.0], floor=100.0) == "▁▁▁"  # idle noise stays flat
    assert sparkline([0.0, 50.0, 100.0], floor=1.0) == "▁▄█"
    assert chart([0.0, 4.0, 8.0], width=3, rows=2, floor=8.0) == ["  █", " ██"]  # half: bottom row full
    assert chart([0.0, 2.0, 8.0], width=3, rows=2, floor=8.0) == ["  █", " ▄█"]  # a quarter: half a block
    assert chart([8.0, 0.0, 8.0], width=2, rows=2, floor=16.0) == [
        "  ",
        " █",
    ]  # last `width`; the floor scales
    # a value below 1/32 of the scale is the lowest block, not a full one (it was: int(h) - 1 = -1)
    assert chart([0.01, 0.0], width=2, rows=2, floor=100.0) == ["  ", "▁ "]
    rows = build_rows(make_state({"acme-a": 90.0}), frozenset(), 1, False)
    assert [r.key.split(":")[-1] for r in rows][0] == "acme"


async def test_table_sort_expand_no_limit_and_untrusted_names():
    app, source = make_app(make_state({"acme-a": 150.0, "globex-a": 40.0}, limited={"globex-a"}))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await pilot.pause()
        pane = app.pane("resources")
        rows = cell_texts(pane)
        assert rows[0][0].startswith("▸ acme (2)") and rows[0][1].startswith("151%")
        assert "∞ no limit" in rows[0][2] and rows[0][3] == "⚠ no cpu/mem cap"
        globex = next(r for r in rows if "globex" in r[0])
        assert globex[3] == "✓ capped" and "/1.0G" in globex[2]
        evil = next(r for r in rows if "click" in r[0])
        assert "\x1b" not in evil[0] and "\\x1b" in evil[0]
        await pilot.press("enter")  # expand acme
        await pilot.pause()
        names = [r[0] for r in cell_texts(pane)]
        assert names[0].startswith("▾ acme") and names[1] == "  └ acme-a" and names[2] == "  └ acme-b"
        await pilot.press("r")  # least CPU first
        await pilot.pause()
        assert not cell_texts(pane)[0][0].startswith("▾ acme")
        pane.sort_col, pane.reverse = 0, False
        pane._redraw()
        names = [r[0] for r in cell_texts(pane)]  # by name: '[' sorts before 'a'
        assert names[0].startswith("▸ [@click") and names[1].startswith("▾ acme") and "globex" in names[-1]
        assert "acme" in str(app.query_one("#resources-chart").render())


async def test_an_idle_chart_is_not_redrawn_as_its_history_grows():
    """A chart whose points stay at zero does not change when a refresh adds one: its title
    holds no count of the points (it said "last 37 refreshes": the chart was drawn again at
    every refresh of an idle console)."""

    def idle(points: int) -> State:
        st = make_state(dict.fromkeys(("acme-a", "acme-b", "globex-a", EVIL), 0.0))
        h = st.hosts[0]
        assert h.samples is not None
        hist = tuple(replace(x, cpu=(0.0,) * points) for x in h.samples.history)
        return replace(st, hosts=(replace(h, samples=replace(h.samples, history=hist)),))

    app, source = make_app(idle(8))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        pane = app.pane("resources")
        drawn = pane._chart
        assert "CPU, % of one core" in drawn and "0 ┼" in drawn
        source.push(idle(9))
        await pilot.pause(0.3)
        assert pane._chart == drawn


async def test_unchanged_state_costs_nothing_and_changes_update_single_cells(monkeypatch):
    """...and only the rewritten cells are rendered again (DataTable renders every visible
    cell, the header's too, after any update_cell: ~3 ms for one changed figure)."""
    from textual.widgets import DataTable

    rendered: list[int] = []  # the row index of each cell DataTable renders
    theirs = DataTable._render_cell

    def counting(self, row_index, *a, **k):  # type: ignore[no-untyped-def]
        rendered.append(row_index)
        return theirs(self, row_index, *a, **k)

    monkeypatch.setattr(DataTable, "_render_cell", counting)
    state = make_state({"acme-a": 10.0})
    app, source = make_app(state)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        pane = app.pane("resources")
        rebuilds, updates = pane.rebuilds, pane.updates
        # a new State where other areas changed but the samples are the same object
        source.push(replace(state, taken_at=99.0))
        await pilot.pause(0.3)
        assert (pane.rebuilds, pane.updates) == (rebuilds, updates)
        source.push(make_state({"acme-a": 30.0}))  # (the table's first frames settled)
        await pilot.pause(0.3)
        rendered.clear()
        updates = pane.updates
        # acme's CPU changes: only its CPU (and host-share) cells are rewritten
        source.push(make_state({"acme-a": 60.0}))
        await pilot.pause(0.3)
        assert pane.rebuilds == rebuilds
        assert 1 <= pane.updates - updates <= 3
        assert cell_texts(pane)[0][1].startswith("61%")
        assert -1 not in rendered and len(rendered) <= pane.updates - updates, rendered


async def test_real_burn_shows_in_pane_and_interval_and_pause_reach_the_probe(cgroup_factory):
    cg = cgroup_factory()
    init = cg.spawn(IDLE)
    cg.spawn(BURN)
    host = LocalHost("tsh-host", libvirt_uri=None)
    w = Workload(
        WorkloadKind.CONTAINER,
        cg.name,
        host.name,
        state="running",
        tenant="tshburn",
        container=ContainerDetails(runtime="test", cgroup=cg.path, init_pid=init),
    )
    probe = ResourcesProbe(interval=0.3, libvirt=False)

    class Inventory(ResourcesProbe):
        """Stand-in for the container inventory: reports the test's own cgroup as a container
        (a real cgroup with a real CPU burner in it) instead of discovering runtimes. The
        resources probe that samples it, the engine and the app are real."""

        name = "tsh-inventory"

        async def collect(self, host):  # type: ignore[no-untyped-def]
            return (w,)

        def merge(self, state, result):  # type: ignore[no-untyped-def]
            return replace(state, workloads=result)

    def derive(s: State) -> State:  # stand-in for tenancy: the one workload is tenant tshburn's
        return replace(s, tenants=(Tenant("tshburn", (w.key,)),))

    engine = Engine([host], lambda h: [Inventory(interval=60), probe], derive)
    from probes.session import Options, Session

    app = TenantScopeApp(source=Session(Options(), engine=engine))  # the keys reach it as requests
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        pane = app.pane("resources")
        for _ in range(40):
            await pilot.pause(0.2)
            rows = cell_texts(pane)
            if rows and rows[0][1][:1].isdigit() and float(rows[0][1].split("%")[0]) > 20:
                break
        assert rows[0][0].startswith("▸ tshburn") and float(rows[0][1].split("%")[0]) > 20
        assert rows[0][3] == "⚠ no cpu/mem cap"
        await pilot.press("minus", "minus")  # from 0.3 s: the next steps are 1 s, then 2 s
        assert probe.interval == 2.0
        await pilot.press("plus", "plus", "plus")
        assert probe.interval == 0.5  # the fastest step
        await pilot.press("p")
        assert probe.paused and pane.paused
        assert "paused" in str(app.query_one("#resources-summary").render())
        await pilot.press("p")
        assert not probe.paused


def test_resources_pane_snapshot_100x30(snap_compare):
    """Compact layout (one pane): acme expanded, 'no limit' in words, sparklines and chart."""
    app, _ = make_app(make_state({"acme-a": 150.0, "globex-a": 40.0}, limited={"globex-a"}))

    async def settle(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.pause()
        await pilot.press("2")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 30), run_before=settle)


async def test_hidden_pane_does_no_work_until_shown():
    app, source = make_app(make_state({"acme-a": 10.0}))
    async with app.run_test(size=(80, 24)) as pilot:  # compact: one pane at a time
        await pilot.press("2")
        await pilot.pause()
        pane = app.pane("resources")
        await pilot.press("1")  # Tenants shown, Resources hidden
        await pilot.pause()
        rebuilds, updates = pane.rebuilds, pane.updates
        source.push(make_state({"acme-a": 90.0}))
        await pilot.pause(0.3)
        assert (pane.rebuilds, pane.updates) == (rebuilds, updates)
        await pilot.press("2")
        await pilot.pause(0.2)
        assert cell_texts(pane)[0][1].startswith("91%")


async def test_theme_change_redraws_styled_cells():
    app, _ = make_app(make_state({"acme-a": 10.0}))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await pilot.pause()
        pane = app.pane("resources")
        before = pane.rebuilds
        app.theme = "textual-light"
        await pilot.pause()
        assert pane.rebuilds == before + 1
        warn = pane.table.get_row_at(0)[3]
        assert warn.plain == "⚠ no cpu/mem cap" and warn.style  # words + symbol, then colour
