"""The Reachability pane: matrix symbols, summary, cell detail, and the probe action."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC

from textual.app import App

from probes.model import Host, HostState, NetnsDetails, Placement, State, Workload, WorkloadKind
from probes.network.model import Link, Namespace, ReachMatrix, ReachResult, Route, Topology
from probes.session import Options
from probes.untrusted import visible
from tests.fixtures.netlab import NetLab, netlab  # noqa: F401
from tests.helpers import needs_root, needs_tool
from tui.app import TenantScopeApp
from tui.panes.reachability import ReachabilityPane
from tui.source import StaticSource

EVIL = "evil\x1b]0;pwned\x07[@click=app.quit]x"


def shared_bridge_state(reach: ReachMatrix | None = None, tenant_b: str = "globex") -> State:
    links = (
        Link("br0", 3, kind="bridge"),
        Link("h1", 4, kind="veth", master="br0", peer="a/eth0", link_ifindex=2),
        Link("h2", 5, kind="veth", master="br0", peer="b/eth0", link_ifindex=2),
        Link("eth0", 2, kind="veth", netns="a", peer="/h1", addresses=("10.0.0.1/24",), link_ifindex=4),
        Link("eth0", 2, kind="veth", netns="b", peer="/h2", addresses=("10.0.0.2/24",), link_ifindex=5),
    )
    routes = (Route("a", "10.0.0.0/24", dev="eth0"), Route("b", "10.0.0.0/24", dev="eth0"))
    topo = Topology(links=links, routes=routes, namespaces=(Namespace(""), Namespace("a"), Namespace("b")))
    wl = tuple(
        Workload(
            WorkloadKind.NETNS,
            n,
            "hv",
            tenant=t,
            placed_by=Placement.CONFIG,
            netns=NetnsDetails(path=f"/run/netns/{n}"),
        )
        for n, t in (("a", "acme"), ("b", tenant_b))
    )
    return State(hosts=(HostState(Host("hv"), workloads=wl, topology=topo, reach=reach),))


async def _pane_app(state: State, opts: Options | None = None):
    app = TenantScopeApp(opts or Options(), source=StaticSource(state))
    return app


async def _live_app(state: State, opts: Options) -> TenantScopeApp:
    """The pane on a session over `state` whose host is this machine: probes run for real."""
    from probes.session import Session

    return TenantScopeApp(opts, source=Session.over_state(state, opts))


async def test_matrix_symbols_summary_and_detail() -> None:
    reach = ReachMatrix(
        results=(
            ReachResult(
                "acme", "globex", "hv/netns/a", "hv/netns/b", "10.0.0.2", "icmp", "reply", rtt_ms=0.42
            ),
        ),
        started_at=1.0,
        finished_at=1.5,
    )
    app = await _pane_app(shared_bridge_state(reach))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        pane = app.query_one(ReachabilityPane)
        summary = str(pane.query_one("#reach-summary").render())
        assert "2 wrong" in summary and "correct" in summary
        table = pane.table
        assert table.row_count == 2
        # acme -> globex: expected blocked, observed reach: symbols and a wrong marker
        row = table.get_row("hv|acme")
        cells = [str(c) for c in row]
        assert any(c.startswith("✗ ✓ ‼") for c in cells)
        # globex -> acme: predicted only (not probed), also wrong
        assert any(c.startswith("✗ ~✓ ‼") for c in (str(x) for x in table.get_row("hv|globex")))
        table.cursor_coordinate = table.get_cell_coordinate("hv|acme", "d:globex")
        await pilot.pause()
        detail = str(pane.query_one("#reach-detail").render())
        assert "share bridge br0" in detail and "icmp" in detail and "0.42 ms" in detail and "WRONG" in detail


async def test_host_text_is_shown_escaped() -> None:
    app = await _pane_app(shared_bridge_state(tenant_b=EVIL))
    async with app.run_test(size=(160, 48)) as pilot:
        pane = app.query_one(ReachabilityPane)
        await pilot.pause()
        labels = [str(c.label) for c in pane.table.columns.values()]
        assert any("\\x1b]0;pwned\\x07[@click=app.quit]x" in x for x in labels)
        assert not any("\x1b" in x for x in labels)
        assert app.is_running


async def test_probe_key_asks_first_and_no_means_nothing_sent() -> None:
    app = await _pane_app(shared_bridge_state())
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        pane = app.query_one(ReachabilityPane)
        pane.action_probe()
        await pilot.pause()
        import os

        from tui.panes.reachability import ConfirmProbe

        if os.geteuid() != 0:  # nothing can be sent: no confirmation, and the pane says why
            assert not isinstance(app.screen, ConfirmProbe)
            assert any("Active probes need root" in n.message for n in app._notifications)
            assert app.state.hosts[0].reach is None
            return
        assert isinstance(app.screen, ConfirmProbe)
        assert "1 ICMP echo" not in app.screen.text and "2 ICMP echo request(s)" in app.screen.text
        await pilot.press("n")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmProbe)
        assert app.state.hosts[0].reach is None


@needs_root
@needs_tool("ip")
async def test_probe_action_on_real_lab(netlab: NetLab, tmp_path) -> None:
    import asyncio

    from probes.hosts.local import LocalHost
    from probes.network.topology import TopologyProbe

    await asyncio.to_thread(netlab.move, "tsf-acme-db", "tsf-brg")
    topo = await TopologyProbe().collect(LocalHost(netlab.host, libvirt_uri=None))
    state = State(hosts=(netlab.state(topo),))
    cfg = tmp_path / "c.toml"
    cfg.write_text("[network]\nprobe_timeout = 3.0\n")
    app = await _live_app(state, Options(config_path=str(cfg)))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        pane = app.query_one(ReachabilityPane)
        # start, then cancel while the 3 s timeout is pending
        await pilot.press("p")
        await pilot.pause()
        assert "timeout 3 s" in app.screen.text
        await pilot.press("y")
        await pilot.pause(0.3)
        assert pane.has_class("-probing")
        await pilot.press("x")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not pane.has_class("-probing")
        assert app.state.hosts[0].reach is None
        assert "cancelled" in str(pane.query_one("#reach-summary").render())
    cfg.write_text("[network]\nprobe_timeout = 0.3\n")
    app = await _live_app(state, Options(config_path=str(cfg)))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        pane = app.query_one(ReachabilityPane)
        await pilot.press("p")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause(0.2)
        await app.workers.wait_for_complete()
        await pilot.pause(0.3)
        reach = app.state.hosts[0].reach
        assert [r.state for r in app.state.requests] == ["done"], app.state.requests
        assert reach is not None and any(r.reached and r.src_tenant != r.dst_tenant for r in reach.results)
        summary = str(pane.query_one("#reach-summary").render())
        assert "probed" in summary and "wrong" in summary


class PaneOnly(App):
    """Only the Reachability pane, so its snapshot does not change with the other panes."""

    def __init__(self, state: State) -> None:
        super().__init__()
        self.state_ = state

        self._tz = UTC  # the pane shows probe times in the app's time zone

    def get_theme_variable_defaults(self) -> dict[str, str]:
        from tui.status import THEME_DEFAULTS

        return dict(THEME_DEFAULTS)

    def compose(self):  # type: ignore[no-untyped-def]
        yield ReachabilityPane()

    def on_mount(self) -> None:
        self.query_one(ReachabilityPane).show(self.state_)
        self.query_one(ReachabilityPane).table.focus()


def test_reachability_pane_snapshot_120x30(snap_compare) -> None:
    reach = ReachMatrix(
        results=(
            ReachResult(
                "acme", "globex", "hv/netns/a", "hv/netns/b", "10.0.0.2", "icmp", "reply", rtt_ms=0.42
            ),
            ReachResult(
                "globex", "acme", "hv/netns/b", "hv/netns/a", "10.0.0.1", "icmp", "reply", rtt_ms=0.40
            ),
        ),
        started_at=1_700_000_000.0,
        finished_at=1_700_000_000.6,
    )
    app = PaneOnly(shared_bridge_state(reach))

    async def settle(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 30), press=["right", "right"], run_before=settle)


def vm_state() -> State:
    """`shared_bridge_state` plus a globex VM whose tap is on br0 (address from the config)."""
    from dataclasses import replace

    from probes.model import Nic, VmDetails
    from probes.network.model import Policy

    st = shared_bridge_state()
    hs = st.hosts[0]
    topo = hs.topology
    assert topo is not None
    tap = Link("tapvm", 9, kind="tun", master="br0", mac="fe:54:00:00:00:09")
    vm = Workload(
        WorkloadKind.VM,
        "glx-vm",
        "hv",
        state="running",
        tenant="globex",
        placed_by=Placement.CONFIG,
        vm=VmDetails(
            nics=(Nic("bridge", mac="52:54:00:00:00:09", source="br0", target_dev="tapvm"),),
            has_guest_agent=True,
        ),
    )
    topo = replace(
        topo, links=topo.links + (tap,), policy=Policy(static_addresses=(("glx-vm", ("10.0.0.9",)),))
    )
    return State(hosts=(replace(hs, workloads=hs.workloads + (vm,), topology=topo),))


async def test_confirmation_lists_the_probe_port_and_the_guests() -> None:
    """Nothing is sent (the answer is no): the confirmation names the namespace and veth a
    segment run would add to which bridge, its address, and the guest `g` would run commands in."""
    import os

    from tui.panes.reachability import ConfirmProbe

    app = await _pane_app(vm_state())
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        pane = app.query_one(ReachabilityPane)
        cell = pane._rcells.get("hv|acme|globex")
        assert cell is not None and cell[1].predicted  # the VM shares br0 with acme
        if os.geteuid() != 0:
            return
        pane.action_probe()
        await pilot.pause()
        assert isinstance(app.screen, ConfirmProbe)
        text = app.screen.text
        assert "Linux bridge br0" in text and "VM glx-vm" in text and "removed after the run" in text
        assert "address 10.0.0.254" not in text and "10.0.0.253 from 10.0.0.0/24" in text
        assert "inside 1 guest(s)" in text and "glx-vm" in text and app.screen.guests
        await pilot.press("n")
        await pilot.pause()
        assert app.state.hosts[0].reach is None


def test_cell_detail_names_each_probe_source() -> None:
    from probes.network.predict import matrix
    from tui.panes.reachability import describe

    rm = ReachMatrix(
        results=(
            ReachResult(
                "acme",
                "globex",
                "hv/netns/a",
                "hv/vm/glx-vm",
                "10.0.0.9",
                "icmp",
                "reply",
                0.4,
                via="namespace",
            ),
            ReachResult(
                "globex",
                "acme",
                "hv/vm/glx-vm",
                "hv/netns/a",
                "10.0.0.1",
                "icmp",
                "reply",
                0.5,
                "from segment (tsp1h on br0)",
                via="segment",
            ),
            ReachResult(
                "globex",
                "acme",
                "hv/vm/glx-vm",
                "hv/netns/a",
                "10.0.0.1",
                "tcp:22",
                "error",
                None,
                "from guest: agent did not answer",
                via="guest",
            ),
        )
    )
    from dataclasses import replace

    hs = replace(vm_state().hosts[0], reach=rm)
    m = matrix(hs)
    text = describe(hs, m.cell("globex", "acme")).plain
    assert "from segment" in text and "from guest" in text and "agent did not answer" in text
    assert "0.50 ms" in text
    assert "from namespace" in describe(hs, m.cell("acme", "globex")).plain


def test_workload_detail_shows_vm_addresses_with_their_source() -> None:
    from dataclasses import replace

    from probes.network.vmaddr import vm_addresses
    from tui.screens.workload import workload_text

    hs = vm_state().hosts[0]
    vm = next(w for w in hs.workloads if w.vm is not None)
    text = workload_text(vm, (), {}, vm_addresses(hs)[vm.key]).plain
    assert "Addresses" in text and "52:54:00:00:00:09: 10.0.0.9 (config" in text
    assert hs.topology is not None
    bare = replace(hs, topology=replace(hs.topology, policy=None))
    text = workload_text(vm, (), {}, vm_addresses(bare)[vm.key]).plain
    assert "address unknown (agent not asked" in text and "MAC not in any neighbour table" in text


async def test_the_demos_simulated_hypervisor_has_nothing_to_probe() -> None:
    """The demo's libvirt test driver has no namespaces or guests to send from: `p` says so and
    asks nothing (it offered "0 ICMP echo requests", then said "probed ... 24 results" while
    every cell stayed predicted)."""
    from tests.fixtures.tui import observe_demo
    from tui.panes.reachability import ConfirmProbe

    app = await _pane_app(await observe_demo())
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        app.query_one(ReachabilityPane).action_probe()
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmProbe)
        assert any("simulated hypervisor" in n.message for n in app._notifications)
        assert app.state.hosts[0].reach is None


async def test_a_fleet_matrix_summary_shows_host_names_escaped() -> None:
    """A fleet's matrix summary starts each host's part with its name: it went into the
    summary as it came, its escape sequence raw, not through visible() as every other host
    text is."""
    st = shared_bridge_state()
    [hs] = st.hosts
    name = "hv2" + EVIL
    other = replace(hs, host=Host(name), workloads=tuple(replace(w, host=name) for w in hs.workloads))
    app = await _pane_app(replace(st, hosts=(hs, other)))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        summary = str(app.query_one(ReachabilityPane).query_one("#reach-summary").render())
        assert visible(name) + ": " in summary and "\x1b" not in summary, summary
        assert app.is_running
