"""The TUI shell with the Pilot: keys, screens, the palette, refresh behaviour, engine wiring.

The app is fed a fixed State (tests/fixtures/tui.py) except in the engine tests, which run the
real Engine: with a probe defined here, and with the libvirt test driver.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from rich.text import Text
from textual.command import CommandList, CommandPalette
from textual.widgets import DataTable

from probes.engine import Engine, Probe
from probes.hosts.local import LocalHost
from probes.model import Connection, ConnState, Host, HostState, State, Status, Workload, WorkloadKind
from probes.session import Options, Session
from tests.fixtures.tui import T0, make_app, sample_state, vm
from tests.helpers import REPO
from tui.app import TenantScopeApp
from tui.bindings import APP_BINDINGS, PANE_ORDER
from tui.header import AppHeader
from tui.panes.base import Pane
from tui.panes.findings import FindingsPane
from tui.panes.tenants import TenantTree
from tui.screens.finding import FindingScreen
from tui.screens.help import HelpScreen
from tui.screens.probe_errors import ProbeErrorsScreen

SIZES = [(160, 48), (80, 24)]


def plain(widget) -> str:  # type: ignore[no-untyped-def]
    """What a Static-like widget shows, as plain text."""
    r = widget.render()
    return r.plain if isinstance(r, Text) else str(r)


def focused_pane(app: TenantScopeApp) -> str | None:
    for node in app.focused.ancestors_with_self if app.focused else ():
        if isinstance(node, Pane):
            return node.pane_id
    return None


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_number_keys_focus_each_pane(size):
    app, _ = make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        for i in (5, 2, 3, 4, 1):
            await pilot.press(str(i))
            await pilot.pause()
            want = PANE_ORDER[i - 1]
            assert focused_pane(app) == want
            pane = app.pane(want)
            assert pane.display and pane.region.height > 2, f"{want} not visible at {size}"
            if size == (80, 24):  # compact: one pane at a time, the tab follows
                shown = [p.pane_id for p in app.query(Pane) if p.region.height > 0]
                assert shown == [want]
                assert app.query_one("#pane-tabs").active == f"tab-{want}"


async def test_wide_layout_shows_every_pane_at_once():
    app, _ = make_app()
    async with app.run_test(size=(200, 60)) as pilot:
        await pilot.pause()
        assert all(p.region.height >= 5 and p.region.width >= 40 for p in app.query(Pane))
        assert not app.query_one("#pane-tabs").display


async def test_tab_click_shows_that_pane_in_compact_layout():
    app, _ = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.click("#tab-findings")
        await pilot.pause()
        assert focused_pane(app) == "findings"


def test_every_binding_has_an_id_and_a_description():
    pane_bindings = [b for cls in Pane.__subclasses__() for b in cls.pane_bindings()]
    for b in [*APP_BINDINGS, *pane_bindings]:
        assert b.id and b.description, b
    ids = [b.id for b in [*APP_BINDINGS, *pane_bindings]]
    assert len(ids) == len(set(ids)), "binding ids must be unique (they key the keymap)"


async def test_help_lists_every_binding_and_follows_the_keymap():
    app, _ = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        app.update_keymap({"tenants-expand-all": "e"})
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        rows = app.screen.rows()
        by_id = {r[3]: r for r in rows}
        for b in APP_BINDINGS:
            assert b.id in by_id, f"help misses {b.id}"
            assert by_id[b.id][1] == b.description
        for p in app.query(Pane):
            for b in p.pane_bindings():
                assert by_id[b.id][2] == p.title
        assert by_id["focus-findings"][0] == "5"
        assert by_id["help"][0] == "?"
        assert by_id["tenants-expand-all"][0] == "e"  # remapped key shown as remapped
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def test_palette_lists_every_action_and_runs_it():
    app, _ = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        assert isinstance(app.screen, CommandPalette)
        options = app.screen.query_one(CommandList)
        prompts = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        text = "\n".join(prompts)
        for want in (
            "Help",
            "Quit",
            "Probe errors",
            "Tenants pane",
            "Findings pane",
            "Tenants: Expand all",
            "Findings: Detail",
        ):
            assert want in text, f"palette misses {want!r}: {prompts}"
        # run one: type, pick, and the screen opens
        await pilot.press(*"help")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert isinstance(app.screen, HelpScreen)


async def test_q_quits_and_stops_the_source():
    app, source = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert source.started
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0
    assert source.stopped


async def test_findings_sorted_and_status_is_symbol_and_word():
    app, _ = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        table = app.query_one("#findings-table", DataTable)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert [r[0] for r in rows] == ["✗ FAIL", "✗ FAIL", "? ERROR", "! WARN", "- SKIP", "✓ PASS"]
        assert [r[2] for r in rows[:2]] == ["VM-09", "VM-01"]  # critical before high
        assert rows[0][3] == "acme, globex"
        assert "✗ FAIL 2" in app.pane("findings").border_subtitle


def test_the_detail_screens_share_one_shell_each_with_its_own_close_key():
    """A log line, a finding and a workload are one dialog shell (tui/screens/detail.py: a
    scrolling box of one Text, Esc closes) instead of three copies; each keeps its ids and its
    own Esc binding id (the keymap names a binding by screen)."""
    from tui.screens.detail import DetailScreen
    from tui.screens.finding_detail import FindingDetailScreen
    from tui.screens.log_line import LogLineScreen
    from tui.screens.workload import WorkloadScreen

    names = {}
    for cls in (LogLineScreen, FindingScreen, WorkloadScreen):
        assert issubclass(cls, DetailScreen) and "compose" not in vars(cls), cls
        [esc] = vars(cls)["BINDINGS"]
        assert esc.key == "escape" and esc.id == f"{cls.NAME}-close"
        names[cls.NAME] = cls.TITLE
    assert names == {"log-line": "Log line", "finding": "Finding", "workload": "Workload"}
    assert FindingDetailScreen.NAME == "finding"  # its copy/save/ack keys redraw #finding-body


async def test_enter_opens_finding_detail_with_why_evidence_fix():
    app, _ = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("5", "down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, FindingScreen)
        assert app.screen.finding.check_id == "VM-01"
        body = plain(app.screen.query_one("#finding-body"))
        for want in (
            "✗ FAIL",
            "VM-01",
            "Domain is confined by sVirt",  # the catalog's title and why
            "Why it matters",
            "sVirt confinement is what separates",
            "Evidence",
            "<seclabel type='none'/>",
            "  line 2",
            "Fix",
            "virsh edit acme-web-1",
        ):
            assert want in body
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, FindingScreen)


async def test_findings_cursor_follows_its_finding_across_refresh():
    app, source = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        await pilot.press("5", "down", "down", "down")  # fail, fail, error, then the warning
        pane = app.query_one(FindingsPane)
        assert pane.selected().check_id == "VM-07"
        st = source.state
        new = replace(st.findings[0], check_id="VM-99", status=Status.FAIL, summary="new fail")
        source.push(replace(st, findings=st.findings + (new,)))
        await pilot.pause(0.3)
        assert app.query_one("#findings-table", DataTable).row_count == 7
        assert pane.selected().check_id == "VM-07"


async def test_tenant_tree_groups_and_labels():
    app, _ = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        tree = app.query_one(TenantTree)
        groups = [str(n.label) for n in tree.root.children]
        assert [g.split()[0] for g in groups] == ["acme", "globex", "initech", "⊘"]
        assert "unplaced" in groups[-1] and "1 workload no rule matched" in groups[-1]
        acme = [str(n.label) for n in tree.root.children[0].children]
        assert acme[0].startswith("acme-db-1  vm · shut off · hv1 · prefix: name prefix before '-'")
        ns = str(tree.root.children[2].children[0].label)
        assert "netns · active · hv1 · config: netns 'initech-*'" in ns
        assert "no rule matched" in str(tree.root.children[3].children[0].label)


async def test_tenant_tree_keeps_cursor_and_collapse_across_refresh():
    app, source = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        tree = app.query_one(TenantTree)
        tree.root.children[1].collapse()  # globex
        await pilot.press("1", "down", "down")  # acme > acme-web-1
        assert tree.cursor_node.data == "w:hv1/vm/acme-web-1"
        nodes_before = list(tree.root.children)
        # labels change only: nodes are updated in place
        st = source.state
        h = st.hosts[0]
        ws = tuple(replace(w, state="paused") if w.name == "acme-web-1" else w for w in h.workloads)
        source.push(replace(st, hosts=(replace(h, workloads=ws),)))
        await pilot.pause(0.3)
        assert list(tree.root.children) == nodes_before
        assert "paused" in str(tree.cursor_node.label)
        # a workload and a tenant appear: rebuilt, view kept
        st = source.state
        h = st.hosts[0]
        more = h.workloads + (vm("acme-new", "acme"), vm("zeta-1", "zeta"))
        source.push(replace(st, hosts=(replace(h, workloads=more),)))
        await pilot.pause(0.3)
        assert tree.cursor_node.data == "w:hv1/vm/acme-web-1"
        by = {n.data: n for n in tree.root.children}
        assert not by["t:globex"].is_expanded
        assert by["t:acme"].is_expanded and by["t:zeta"].is_expanded
        assert len(by["t:acme"].children) == 3


async def test_the_sources_first_state_is_flushed_at_once_the_next_ones_gather():
    """The source's first State (a console's first frame: 1,000 domains) waits for no flush
    timer (it waited at least 10 ms); the States after it still gather in the gap."""
    app, source = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        loop = asyncio.get_running_loop()
        base = source.state
        source.push(replace(base, taken_at=T0 + 1))
        assert app._flush_timer is not None and app._flush_timer.when() <= loop.time()
        await pilot.pause()
        assert app.state.taken_at == T0 + 1
        before = loop.time()  # (read after the push, the time gone by shortened the wait seen)
        source.push(replace(base, taken_at=T0 + 2))
        # at least 10 ms after the push (float rounding aside)
        assert app._flush_timer is not None and app._flush_timer.when() - before >= 0.0099


async def test_updates_are_coalesced_and_unchanged_state_does_no_work():
    app, source = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        renders = app.renders
        base = source.state
        for i in range(50):  # a burst of probe results within one tick
            source.push(replace(base, taken_at=T0 + i))
        await pilot.pause(0.5)
        assert app.renders == renders + 1
        assert app.state.taken_at == T0 + 49
        tree = app.query_one(TenantTree)
        first = tree.root.children[0]
        source.push(replace(base, taken_at=T0 + 100))  # same workloads, new object
        await pilot.pause(0.5)
        assert tree.root.children[0] is first


async def test_header_connection_states_errors_and_staleness():
    st = sample_state(errors=True)
    h = st.hosts[0]
    down = replace(h, connections=(Connection("libvirt", ConnState.UNREACHABLE, "x", T0 - 70),))
    st = replace(st, hosts=(down,), source="demo")
    now = [T0 + 5]
    app, source = make_app(st, clock=lambda: now[0])
    async with app.run_test(size=(200, 24)) as pilot:
        await pilot.pause()
        header = app.query_one(AppHeader)
        main = plain(header.query_one("#header-main"))
        assert "hv1" in main
        assert "✗ libvirt: unavailable since 14:12:10, retrying (x)" in main
        assert "refreshed < 10 s ago" in main and "stale" not in main
        assert "demo fleet (libvirt test driver: simulated hypervisor)" in main
        assert plain(header.query_one("#header-errors")) == "⚠ 2 probe errors (!)"
        now[0] = T0 + 75  # nothing arrived for 75 s
        header._clock_tick()  # (its timer's call: armed for when the picture turns stale)
        await pilot.pause()
        assert "refreshed 14:13:20 (stale: 1 min 15 s ago)" in plain(header.query_one("#header-main"))
        source.push(replace(sample_state(), source="live"))
        await pilot.pause(0.3)
        main = plain(header.query_one("#header-main"))
        assert "✓ libvirt: up" in main and "demo fleet" not in main
        assert plain(header.query_one("#header-errors")) == "✓ no probe errors"


async def test_header_is_not_rebuilt_every_second_while_fresh(monkeypatch):
    """The clock moves only the stale mark: while the picture is fresh and nothing arrives,
    the header is not rebuilt (it was, every second: a redraw pass each time), and its clock
    sleeps until the picture can turn stale (it woke every second); then it ticks every
    second, the age moving."""
    from tui import header as header_module

    built = []
    real = header_module.header_text
    monkeypatch.setattr(header_module, "header_text", lambda *a, **k: built.append(1) or real(*a, **k))
    now = [T0 + 5]
    app, _ = make_app(sample_state(), clock=lambda: now[0])
    async with app.run_test(size=(200, 24)) as pilot:
        await pilot.pause()
        header = app.query_one(AppHeader)
        assert header._timer is not None  # armed by the State shown; again now, to time it:
        header._arm()
        assert header._timer is not None
        due = header._timer.when() - asyncio.get_running_loop().time()
        assert due == pytest.approx(header._refreshed + header._stale_after - now[0], abs=0.3)
        built.clear()
        for _ in range(3):  # early ticks change nothing
            header._clock_tick()
        assert built == []
        now[0] = T0 + 75
        header._clock_tick()
        await pilot.pause()
        assert len(built) == 1 and "(stale: 1 min 15 s ago)" in plain(header.query_one("#header-main"))
        assert header._timer is not None
        due = header._timer.when() - asyncio.get_running_loop().time()
        assert 0.5 < due <= 1.0  # stale: every second
        now[0] = T0 + 76
        header._clock_tick()  # stale: the age moves every second
        await pilot.pause()
        assert len(built) == 2 and "(stale: 1 min 16 s ago)" in plain(header.query_one("#header-main"))


async def test_a_fresh_pictures_next_refresh_does_not_redraw_the_header(monkeypatch):
    """A live picture's header says it is fresh ("refreshed < 10 s ago"), not the time of
    the last refresh: a State that only refreshes it neither rebuilds nor redraws the header
    (the time moved at every refresh: a redraw of the header each time, most of an idle
    console's cost); a connection that changes does, and so does a stale picture's refresh."""
    from tui import header as header_module

    built = []
    real = header_module.header_text
    monkeypatch.setattr(header_module, "header_text", lambda *a, **k: built.append(1) or real(*a, **k))
    now = [T0 + 5]
    st = replace(sample_state(), source="live")
    app, source = make_app(st, clock=lambda: now[0])

    def at(t: float, **kw) -> State:
        return replace(st, hosts=tuple(replace(h, refreshed_at=t, **kw) for h in st.hosts), taken_at=t)

    async with app.run_test(size=(200, 24)) as pilot:
        await pilot.pause()
        header = app.query_one(AppHeader)
        assert "refreshed < 10 s ago" in plain(header.query_one("#header-main"))
        built.clear()
        for i in range(1, 4):
            now[0] = T0 + 5 + 2 * i
            source.push(at(T0 + 2 * i))
            await pilot.pause(0.2)
        assert built == [] and app.state.hosts[0].refreshed_at == T0 + 6
        down = (Connection("libvirt", ConnState.UNREACHABLE, "x", T0),)
        source.push(at(T0 + 8, connections=down))
        await pilot.pause(0.2)
        assert len(built) == 1 and "libvirt: unavailable" in plain(header.query_one("#header-main"))
        now[0] = T0 + 30
        header._clock_tick()
        await pilot.pause()
        assert "refreshed 14:13:28 (stale: 22 s ago)" in plain(header.query_one("#header-main"))
        source.push(at(T0 + 30, connections=down))
        await pilot.pause(0.2)
        main = plain(header.query_one("#header-main"))
        assert "refreshed < 10 s ago" in main and "stale" not in main


async def test_a_replay_is_never_stale_and_its_header_clock_sleeps():
    """A replay shows a past time on purpose: its header never says "stale" against the wall
    clock (it said "stale: 21 min ago" in every replay), and its clock arms no timer."""
    now = [T0 + 3600]
    st = replace(sample_state(), source="replay of hv1 at 2026-12-06 14:13:20 UTC · ⏸ paused 1x · 1/2")
    app, _ = make_app(st, clock=lambda: now[0])
    async with app.run_test(size=(200, 24)) as pilot:
        await pilot.pause()
        header = app.query_one(AppHeader)
        main = plain(header.query_one("#header-main"))
        assert "refreshed 14:13:20" in main and "stale" not in main and "replay of hv1" in main
        assert header._timer is None
        header._clock_tick()
        assert header._timer is None and "stale" not in plain(header.query_one("#header-main"))


async def test_probe_errors_view_from_key_and_from_header_click():
    app, _ = make_app(sample_state(errors=True))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        await pilot.press("exclamation_mark")
        await pilot.pause()
        assert isinstance(app.screen, ProbeErrorsScreen)
        table = app.screen.query_one(DataTable)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert rows == [
            ["netns", "hv1", "14:13:15", "14:13:15", "permission denied: /run/netns"],
            ["resources", "hv1", "14:11:50", "14:12:50", "no answer within 10 s"],
        ]
        message = app.screen.query_one("#probe-error-message")
        assert plain(message) == "netns on hv1: permission denied: /run/netns"
        await pilot.press("down")
        await pilot.pause()
        assert plain(message) == "resources on hv1: no answer within 10 s"
        await pilot.press("escape")
        await pilot.pause()
        await pilot.click("#header-errors")
        await pilot.pause()
        assert isinstance(app.screen, ProbeErrorsScreen)


async def test_probe_errors_view_says_how_each_probe_is_fed():
    """Each area says whether it is event-driven or polled, and why, with a word (not colour)."""
    from dataclasses import replace

    from probes.model import Feed

    st = sample_state(errors=True)
    feeds = (
        Feed("topology", "events", "netlink in the host and 3 named namespaces", 30.0),
        Feed("resources", "polled", "no event source for this area", 2.0),
    )
    st = replace(st, hosts=(replace(st.hosts[0], feeds=feeds),) + st.hosts[1:])
    app, _ = make_app(st)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        await pilot.press("exclamation_mark")
        await pilot.pause()
        table = app.screen.query_one("#probe-feeds-table", DataTable)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert rows == [
            ["resources", "hv1", "⟳ polled", "2 s", "no event source for this area"],
            ["topology", "hv1", "⚡ events", "30 s", "netlink in the host and 3 named namespaces"],
        ]


# ------------------------------------------------------------------ the real Engine


class CountingProbe(Probe[int]):
    """Stand-in for an inventory probe, run by the real Engine: each run adds a (made-up)
    workload, many runs per second, to drive the engine's coalescing and the app's renders."""

    name = "counting"
    interval = 0.005
    timeout = 1.0

    def __init__(self) -> None:
        self.n = 0

    async def collect(self, host) -> int:  # type: ignore[no-untyped-def]
        self.n += 1
        return self.n

    def merge(self, state: HostState, result: int) -> HostState:
        ws = tuple(Workload(WorkloadKind.NETNS, f"ns-{i:03d}", state.host.name) for i in range(result))
        return replace(state, workloads=ws, connections=(Connection("libvirt", ConnState.UP, "", 1.0),))


async def test_engine_is_started_coalesced_and_stopped():
    probe = CountingProbe()
    engine = Engine([LocalHost("hvx")], lambda h: [probe], source="live")
    app = TenantScopeApp(Options(), source=Session(Options(), engine=engine))
    async with app.run_test(size=(120, 40)) as pilot:
        while probe.n < 60:
            await asyncio.sleep(0.02)
        await pilot.pause(0.3)
        shown = app.state.workloads()
        assert len(shown) >= 60
        # far fewer renders than probe results
        assert app.renders < probe.n / 2
        tree = app.query_one(TenantTree)
        assert "workloads no rule matched" in str(tree.root.children[-1].label)
        tasks = list(engine._tasks)
        assert tasks and not any(t.done() for t in tasks)
    assert all(t.done() for t in tasks)  # the engine was stopped on exit


async def test_header_summarises_a_large_fleet():
    base = sample_state()
    h = base.hosts[0]
    hosts = tuple(
        replace(
            h,
            host=replace(h.host, name=f"hv{i}"),
            connections=(
                Connection("ssh", ConnState.UNREACHABLE if i in (3, 7) else ConnState.UP, "", T0 - 60),
            ),
        )
        for i in range(12)
    )
    app, _ = make_app(replace(base, hosts=hosts))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        main = plain(app.query_one("#header-main"))
        assert "12 hosts: ✓ 10 up · ✗ 2 unreachable (hv3, hv7)" in main
        assert "hv0" not in main


def test_styles_use_theme_variables_only():
    """No colour literal in .tcss files or in any widget's DEFAULT_CSS (themes decide)."""
    import ast
    import re

    root = REPO / "tui"
    literal = re.compile(
        r"#[0-9a-fA-F]{3,8}\b|\b(?:rgb|rgba|hsl|hsla)\(|"
        r":\s*(?:red|green|blue|yellow|white|black|magenta|cyan|grey|gray)\b"
    )
    sources = [(p, p.read_text()) for p in root.rglob("*.tcss")]
    for p in root.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Assign) and any(
                getattr(t, "id", "") == "DEFAULT_CSS" for t in node.targets
            ):
                if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                    sources.append((p, node.value.value))
    assert len(sources) >= 2
    bad = [
        f"{p.relative_to(root.parent)}: {m.group()}"
        for p, css in sources
        for m in literal.finditer(re.sub(r"/\*.*?\*/", "", css, flags=re.S))
    ]
    assert bad == []


@pytest.mark.parametrize("theme", ["tenantscope-dark", "textual-light", "nord", "solarized-light"])
async def test_every_theme_renders_with_our_variables(theme):
    app, _ = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        app.theme = theme
        await pilot.pause()
        assert app.theme == theme
        assert app.theme_variables["status-fail"]
        table = app.query_one("#findings-table", DataTable)
        assert str(table.get_row_at(0)[0]) == "✗ FAIL"  # the word stays whatever the colours


def test_no_accidental_override_of_textual_internals():
    """A pane that defines `_render` or an app that defines `_flush` silently breaks Textual
    (both happened): our classes must not reuse the private names of their Textual bases.
    Event handlers (`_on_*`, `_watch_*`) are meant to be overridden and are allowed, and so
    are the deliberate overrides listed below, as long as their signatures are Textual's (a
    Textual upgrade that changes one fails here, not on screen)."""
    import inspect

    import textual

    from tui import table as table_module

    # tui/table.py: DataTable's render caches and row measuring (see its docstring)
    deliberate = {
        f"tui.table.CellCachedTable.{name}": getattr(textual.widgets.DataTable, name)
        for name in ("_render_cell", "_clear_caches", "_update_dimensions")
    }
    # tui/panes/tenants.py: the tree's invalidation, once per batch of added nodes
    deliberate["tui.panes.tenants.TenantTree._invalidate"] = textual.widgets.Tree._invalidate
    # tui/figureline.py: a line whose text alone changed is not rendered again (pinned there)
    from tui.figureline import FigureLine

    deliberate["tui.figureline.FigureLine._set_dirty"] = textual.widget.Widget._set_dirty
    for name, theirs in deliberate.items():
        cls = (
            TenantTree
            if ".TenantTree." in name
            else FigureLine
            if ".FigureLine." in name
            else table_module.CellCachedTable
        )
        ours_fn = getattr(cls, name.rsplit(".", 1)[1])
        assert list(inspect.signature(ours_fn).parameters) == list(inspect.signature(theirs).parameters), name

    from tui import app as app_module
    from tui import header
    from tui.screens import finding, help, probe_errors

    def ours(cls: type) -> bool:
        return not cls.__module__.startswith(("textual", "rich", "builtins"))

    classes = {
        app_module.TenantScopeApp,
        header.AppHeader,
        header.ErrorCount,
        help.HelpScreen,
        finding.FindingScreen,
        probe_errors.ProbeErrorsScreen,
    }
    todo = [Pane]
    while todo:
        c = todo.pop()
        classes.add(c)
        todo.extend(c.__subclasses__())
    for mod in {inspect.getmodule(c) for c in list(classes)}:
        for _, obj in inspect.getmembers(mod, inspect.isclass):
            if ours(obj) and issubclass(obj, textual.dom.DOMNode):
                classes.add(obj)
    clashes = []
    for cls in classes:
        textual_bases = [b for b in cls.__mro__ if not ours(b)]
        auto = set(vars(type("Empty", (textual_bases[0],), {})))  # what Textual adds to any class
        for name in vars(cls):
            if name.startswith("_") and not name.startswith(("__", "_on_", "_watch_")) and name not in auto:
                if any(name in vars(b) for b in textual_bases):
                    clashes.append(f"{cls.__module__}.{cls.__name__}.{name}")
    assert [c for c in clashes if c not in deliberate] == []


async def test_enter_on_a_workload_shows_its_details_and_findings():
    from tests.fixtures.tui import observe_demo
    from tui.screens.workload import WorkloadScreen

    app, _ = make_app(await observe_demo())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("1", "down", "enter")  # acme > acme-db-1
        await pilot.pause()
        assert isinstance(app.screen, WorkloadScreen)
        assert app.screen.workload.name == "acme-db-1"
        body = plain(app.screen.query_one("#workload-body"))
        for want in (
            "acme-db-1  vm · running · host demo-hv1",
            "tenant acme  placed by prefix",
            "Findings",
            "VM-09",
            "Virtual machine",
            "disks:",
            "shared-scratch.qcow2",
            "shareable: yes",
            "nics:",
        ):
            assert want in body, want
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("up", "enter")  # a tenant node: toggles, opens nothing
        await pilot.pause()
        assert not isinstance(app.screen, WorkloadScreen)
        assert not app.query_one(TenantTree).root.children[0].is_expanded


async def test_findings_show_the_host_column_for_a_fleet():
    st = sample_state()
    h2 = replace(st.hosts[0], host=replace(st.hosts[0].host, name="hv2"))
    app, source = make_app(st)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        table = app.query_one("#findings-table", DataTable)
        assert [str(c.label) for c in table.columns.values()][3] == "Tenants"
        source.push(replace(st, hosts=st.hosts + (h2,)))
        await pilot.pause(0.3)
        assert [str(c.label) for c in table.columns.values()][3] == "Host"
        assert [str(c) for c in table.get_row_at(0)][3] == "hv1"


class FailingProbe(Probe[None]):
    """Stand-in for a probe whose host misbehaves: it raises the OSError such a probe would
    (it reads nothing). The Engine that records the error and the app that shows it are real."""

    name = "flaky"
    interval = 0.05
    timeout = 1.0

    async def collect(self, host) -> None:  # type: ignore[no-untyped-def]
        raise OSError("permission denied: /run/netns")

    def merge(self, state: HostState, result: None) -> HostState:
        return state


async def test_a_failing_probe_shows_in_the_header_and_its_list():
    engine = Engine([LocalHost("hvx")], lambda h: [CountingProbe(), FailingProbe()], source="live")
    app = TenantScopeApp(Options(), source=Session(Options(), engine=engine))
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(200):  # the event: the header shows the error (bound: 10 s)
            if app.state and any(h.probe_errors for h in app.state.hosts):
                if plain(app.query_one("#header-errors")) != "✓ no probe errors":
                    break
            await asyncio.sleep(0.05)
        assert plain(app.query_one("#header-errors")) == "⚠ 1 probe error (!)"
        assert len(app.state.workloads()) > 0  # the other probe carried on
        await pilot.click("#header-errors")
        await pilot.pause()
        table = app.screen.query_one(DataTable)
        row = [str(c) for c in table.get_row_at(0)]
        assert row[:2] == ["flaky", "hvx"] and row[4] == "permission denied: /run/netns"


async def test_a_source_publishing_from_another_thread_is_rendered():
    app, source = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        new = replace(source.state, taken_at=T0 + 7)
        await asyncio.to_thread(source.push, new)
        await pilot.pause(0.4)
        assert app.state is new


async def test_palette_runs_a_pane_action_on_that_pane():
    app, _ = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        await pilot.press("5", "ctrl+p")
        await pilot.pause(0.3)
        await pilot.press(*"collapse all")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause(0.3)
        tree = app.query_one(TenantTree)
        assert not any(n.is_expanded for n in tree.root.children)
        assert focused_pane(app) == "tenants"


async def test_sigusr1_repaints_instead_of_killing_the_app():
    import os
    import signal

    app, _ = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app._repaint_signal  # else the signal below would kill the test run
        os.kill(os.getpid(), signal.SIGUSR1)
        await pilot.pause(0.2)
        assert app.is_running
    # the handler is gone with the app: the default action would be restored
    assert asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1) is False


async def test_key_n_tab_n_and_grid_slot_n_are_the_same_pane():
    """Pane order comes from the pane classes (`position`): the Nth pane on screen (row by
    row), the Nth tab and number key N agree, and the README lists the keys in that order."""
    from tests.helpers import REPO
    from tui.bindings import PANES

    assert [p.position for p in PANES] == list(range(1, len(PANES) + 1))
    app, _ = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        panes = sorted(app.query(Pane), key=lambda p: (p.region.y, p.region.x))
        assert [p.pane_id for p in panes] == list(PANE_ORDER)
        tabs = [t.id for t in app.query("#pane-tabs Tab")]
        assert tabs == [f"tab-{p}" for p in PANE_ORDER]
        for i, pid in enumerate(PANE_ORDER, start=1):
            await pilot.press(str(i))
            await pilot.pause()
            assert focused_pane(app) == pid
    readme = (REPO / "README.md").read_text()
    row = next(line for line in readme.splitlines() if "`focus-tenants`" in line)
    assert row.index(PANES[0].title) < row.index(PANES[1].title) < row.index(PANES[-1].title)


async def test_a_new_state_is_drawn_without_a_message_through_the_apps_queue(monkeypatch):
    """The coalescing timer draws the State itself: a StateChanged message woke the app's
    pump and went through Textual's dispatch (~0.15 ms a State) to reach the same code."""
    from textual.app import App

    from tui.messages import StateChanged

    posted: list[object] = []
    theirs = App.post_message

    def recording(self, message):  # type: ignore[no-untyped-def]
        posted.append(message)
        return theirs(self, message)

    monkeypatch.setattr(App, "post_message", recording)
    app, source = make_app()
    async with app.run_test() as pilot:
        await pilot.pause()
        renders, state = app.renders, app.state
        assert state is not None
        source.push(replace(state, taken_at=T0 + 5))
        await pilot.pause(0.3)
        assert app.renders == renders + 1 and app.state is not None and app.state.taken_at == T0 + 5
        assert not [m for m in posted if isinstance(m, StateChanged)]


async def test_a_state_arriving_while_the_app_exits_is_dropped():
    """The engine may publish while the app exits (its source stops after the screens are
    gone): a State queued or posted then is dropped, not rendered into an empty screen stack
    (that raised ScreenStackError at exit, seen in full runs)."""
    from tui.messages import StateChanged

    app, source = make_app()
    async with app.run_test() as pilot:
        await pilot.pause()
        state = app.state
    assert state is not None
    app.on_state_changed(StateChanged(replace(state, taken_at=T0 + 5)))  # after exit: no error
    app._queue_state(replace(state, taken_at=T0 + 6))
    assert app._flush_timer is None  # nothing scheduled once unmounted


async def test_the_heap_at_start_is_frozen_while_the_app_runs():
    """What exists when the app composes (the imported modules) is frozen, so the full
    collections set off by a first inventory do not walk it; an app ending in a longer process
    (tests, benches) unfreezes it."""
    import gc

    gc.unfreeze()
    app, _ = make_app()
    async with app.run_test() as pilot:
        await pilot.pause()
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0


async def test_tenant_tree_measures_and_takes_labels_as_textuals_tree_does():
    """TenantTree's cheaper label handling (no copy of a one-line label, widths without
    rendering copies) gives what Textual's Tree gives, for every node, expanded or not."""
    from textual.widgets import Tree

    app, _ = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        tree = app.query_one(TenantTree)
        nodes = [tree.root]
        for n in nodes:
            nodes.extend(n.children)
        assert len(nodes) > 5
        for n in nodes[1:]:
            assert tree.process_label(n.label) == Tree.process_label(tree, n.label)
            assert tree.get_label_width(n) == Tree.get_label_width(tree, n)
        tree.root.children[0].collapse()
        await pilot.pause()
        n = tree.root.children[0]
        assert tree.get_label_width(n) == Tree.get_label_width(tree, n)
        two = Text("two\nlines")
        assert tree.process_label(two) == Tree.process_label(tree, two) == Text("two")


async def test_the_hidden_probe_progress_bar_wakes_nothing_at_idle(monkeypatch):
    """Textual's ProgressBar recomputes its ETA every second from a timer of its own; the
    Reachability pane's bar (no ETA shown, hidden until a probe run) must not wake the idle
    console every second."""
    from tui.panes.reachability import ProgressWithoutEta

    calls = []
    real = ProgressWithoutEta.update
    monkeypatch.setattr(ProgressWithoutEta, "update", lambda self, **k: calls.append(k) or real(self, **k))
    app, _ = make_app(sample_state())
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        bar = app.query_one("#reach-progress", ProgressWithoutEta)
        n = len(calls)
        await pilot.pause(1.5)
        assert len(calls) == n  # Textual's: one more a second
        bar.update(total=4, progress=1)  # a probe run's progress still moves it
        assert bar.percentage == 0.25


async def test_the_first_header_fits_its_width_at_80_columns(monkeypatch):
    """The header's first text is made at mount, before the layout gave it a width: it was
    packed for the whole screen (80) while it gets ~58 columns beside the error count, and the
    Static wrapped 'refreshed never' in the middle (a 3-line header in the first frames of
    `make demo` at 80x24). The first text is packed for the width the layout will give it."""
    from tui import header as header_module

    widths = []
    real = header_module.header_text
    monkeypatch.setattr(header_module, "header_text", lambda *a, **k: widths.append(a[5]) or real(*a, **k))
    st = State(hosts=(HostState(host=Host("demo-hv1")),), source="demo")
    app, _ = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        main = app.query_one("#header-main")
        assert widths and widths[0] == main.size.width, (widths, main.size.width)
        lines = plain(main).split("\n")
        assert all(len(line) <= main.size.width for line in lines) and "refreshed never" in lines[1]
