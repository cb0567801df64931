"""Topology, prediction, active probes and NET checks on a real lab of namespaces and bridges."""

from __future__ import annotations

import asyncio
import os
import subprocess

import pytest

from probes.checks.base import run_checks
from probes.hosts.local import LocalHost
from probes.model import State, Status
from probes.network import predict, prober, remote
from probes.network.topology import TopologyProbe
from tests.fixtures.netlab import NetLab, netlab, sh  # noqa: F401
from tests.helpers import needs_root, needs_tool

pytestmark = [needs_root, needs_tool("ip")]
NET = tuple(f"NET-0{i}" for i in range(1, 8))
# generous: these machines are shared and loaded; a late reply must not look like isolation
T = 1.0


async def observe(lab: NetLab, *, probe: bool = True, **kw):
    topo = await TopologyProbe(**kw).collect(LocalHost(lab.host, libvirt_uri=None))
    hs = lab.state(topo)
    if probe:
        hs = lab.state(topo, await prober.probe_matrix(hs, timeout=T))
    return hs


def findings(hs, check_id: str, status: Status = Status.FAIL):
    return [f for f in run_checks(State(hosts=(hs,)), NET) if f.check_id == check_id and f.status == status]


async def test_isolation_predicted_and_observed_agree(netlab: NetLab) -> None:
    hs = await observe(netlab)
    m = predict.matrix(hs)
    for c in m.cells:
        if c.src == c.dst == "initech":  # a lone workload: nothing to reach
            continue
        assert c.predicted == c.expected, (c.src, c.dst, [p.path for p in c.pairs])
        assert c.observed == c.expected, (c.src, c.dst, [(r.address, r.outcome) for r in c.results])
    assert m.counts()[0] == 0
    assert m.summary().startswith("0 wrong")
    # L2 separation shows as "no ARP answer", not as a filter
    cross = [r for r in hs.reach.results if r.src_tenant == "acme" and r.dst_tenant == "globex"]
    assert cross and all(r.outcome == "no-arp" for r in cross)
    own = [r for r in hs.reach.results if r.src_tenant == r.dst_tenant == "acme"]
    assert own and all(r.outcome == "reply" and r.rtt_ms is not None and r.hops == () for r in own)
    for cid in ("NET-02", "NET-04", "NET-05", "NET-07"):
        assert not findings(hs, cid), cid


async def test_veth_on_wrong_bridge_then_back(netlab: NetLab) -> None:
    await asyncio.to_thread(netlab.move, "tsf-acme-db", "tsf-brg")
    hs = await observe(netlab)
    m = predict.matrix(hs)
    cell = m.cell("acme", "globex")
    assert cell.predicted and cell.observed and cell.status == "wrong"
    assert any("tsf-acme-db" in p.path and "tsf-brg" in p.path for p in cell.pairs if p.reachable)
    assert {r.src for r in cell.results if r.reached} == {netlab.key("tsf-acme-db")}
    net05 = findings(hs, "NET-05")
    assert {f.tenants for f in net05} == {("acme", "globex")}
    assert any(netlab.key("tsf-acme-db") in f.workloads for f in net05)
    assert any("direct (same segment)" in e.detail for f in net05 for e in f.evidence)
    net02 = findings(hs, "NET-02")
    assert len(net02) == 1 and "tsf-brg" in net02[0].summary and net02[0].tenants == ("acme", "globex")
    assert any("tsf-h-ad" in e.where for e in net02[0].evidence)

    await asyncio.to_thread(netlab.move, "tsf-acme-db", "tsf-bra")
    hs = await observe(netlab)
    assert not findings(hs, "NET-05") and not findings(hs, "NET-02")
    assert predict.matrix(hs).cell("acme", "globex").observed is False


async def test_forwarding_gateway_leaks_and_is_named(netlab: NetLab) -> None:
    await asyncio.to_thread(netlab.add_gateway)
    hs = await observe(netlab)
    assert hs.topology.namespace("tsf-gw").ip_forward
    leak = [r for r in hs.reach.results if r.src == netlab.key("tsf-acme-web") and r.address == "10.72.2.1"]
    assert len(leak) == 1 and leak[0].outcome == "reply"
    assert [h.where for h in leak[0].hops] == ["tsf-gw/tsf-h-gax"] and leak[0].hops[
        0
    ].address == "10.72.1.254"
    pred = [p for p in predict.matrix(hs).cell("acme", "globex").pairs if p.reachable]
    assert pred and "tsf-gw" in pred[0].path and pred[0].hops
    assert findings(hs, "NET-05")
    net07 = findings(hs, "NET-07")
    assert len(net07) == 1 and "tsf-gw" in net07[0].summary and "tsf-gw" in net07[0].fix
    # the tenants' own 10.71 addresses stay L2-separated: only the routed path leaks
    direct = [r for r in hs.reach.results if r.src_tenant == "acme" and r.address == "10.71.2.1"]
    assert direct and not any(r.reached for r in direct)


async def test_config_typo_is_reported_and_not_created(netlab: NetLab, tmp_path) -> None:
    from probes.config import parse
    from probes.network.policy import from_config

    cfg = parse(
        '[[tenant]]\nname = "acme"\nnetns = ["tsf-acme-web", "tsf-acme-wbe", "tsf-acme-*"]\n',
        str(tmp_path / "c.toml"),
    )
    policy = from_config(cfg)
    assert policy.netns_named == ("tsf-acme-wbe", "tsf-acme-web")
    hs = await observe(netlab, probe=False, policy=policy)
    assert len(hs.topology.problems) == 1 and "tsf-acme-wbe" in hs.topology.problems[0]
    warn = findings(hs, "NET-05", Status.WARN)
    assert any("tsf-acme-wbe" in f.summary for f in warn)
    # a workload pointing at a missing namespace is an error result, never a new namespace
    from dataclasses import replace

    from probes.model import NetnsDetails

    ghost = replace(hs.workloads[0], name="tsf-acme-wbe", netns=NetnsDetails(path="/run/netns/tsf-acme-wbe"))
    hs2 = replace(hs, workloads=hs.workloads + (ghost,))
    rm = await prober.probe_matrix(hs2, trace=False, timeout=T)
    mine = [r for r in rm.results if r.src == ghost.key]
    assert mine and all(r.outcome == "error" and "namespace gone" in r.detail for r in mine)
    assert not os.path.exists("/run/netns/tsf-acme-wbe")
    assert "tsf-acme-wbe" not in sh("ip", "netns", "list").stdout


async def test_namespace_disappearing_mid_run(netlab: NetLab) -> None:
    hs = await observe(netlab, probe=False)
    seen = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        if len(seen) == 1:
            sh("ip", "netns", "del", "tsf-ini-app")

    rm = await prober.probe_matrix(hs, concurrency=1, progress=progress, timeout=T)
    assert seen[-1][0] == seen[-1][1] and len(seen) == 5
    gone = [r for r in rm.results if r.src == netlab.key("tsf-ini-app")]
    assert gone and all(r.outcome == "error" and "namespace gone" in r.detail for r in gone)
    others = [r for r in rm.results if r.src_tenant == r.dst_tenant == "globex"]
    assert others and all(r.outcome == "reply" for r in others)
    assert not os.path.exists("/run/netns/tsf-ini-app")


async def test_several_addresses_and_foreign_replies(netlab: NetLab) -> None:
    sh("ip", "-n", "tsf-acme-db", "addr", "add", "10.71.1.12/16", "dev", "eth0")
    sh("ip", "-n", "tsf-acme-db", "addr", "add", "10.71.1.13/16", "dev", "eth0")
    hs = await observe(netlab, probe=False)
    # someone else pings inside the source namespace: its replies reach our raw socket too
    ping = subprocess.Popen(
        ["ip", "netns", "exec", "tsf-acme-web", "ping", "-q", "-i", "0.05", "-c", "40", "10.71.1.2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await asyncio.sleep(0.2)
        rm = await prober.probe_matrix(hs, timeout=T)
    finally:
        ping.kill()
        ping.wait()
    to_db = {
        r.address: r.outcome
        for r in rm.results
        if r.src == netlab.key("tsf-acme-web") and r.dst == netlab.key("tsf-acme-db")
    }
    assert to_db == {"10.71.1.2": "reply", "10.71.1.12": "reply", "10.71.1.13": "reply"}
    wrong = [r for r in rm.results if r.src == netlab.key("tsf-acme-web") and r.dst_tenant == "globex"]
    assert wrong and not any(r.reached for r in wrong)


async def test_ip_json_path_matches_netlink(netlab: NetLab) -> None:
    await asyncio.to_thread(netlab.add_gateway)
    h = LocalHost(netlab.host, libvirt_uri=None)
    a = await TopologyProbe(use_netlink=True).collect(h)
    b = await TopologyProbe(use_netlink=False).collect(h)

    def mine(t):
        return sorted(
            (lk.netns, lk.name, lk.kind, lk.master, lk.peer, lk.addresses, lk.forwarding)
            for lk in t.links
            if lk.netns.startswith("tsf-") or lk.name.startswith("tsf-")
        )

    assert mine(a) == mine(b) and mine(a)
    assert b.source == "ip-json" and b.namespace("tsf-gw").ip_forward
    assert sorted(map(repr, (r for r in a.routes if r.netns == "tsf-acme-web"))) == sorted(
        map(repr, (r for r in b.routes if r.netns == "tsf-acme-web"))
    )
    m = predict.matrix(netlab.state(b))
    assert m.cell("acme", "globex").predicted


def _sockets() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n


async def test_probe_run_can_be_cancelled(netlab: NetLab) -> None:
    hs = await observe(netlab, probe=False)
    before = _sockets()
    task = asyncio.ensure_future(prober.probe_matrix(hs, timeout=5.0, ports=(9,)))
    await asyncio.sleep(0.3)
    assert _sockets() > before  # the run is under way: its sockets are open
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert _sockets() <= before


async def test_tcp_connect_tells_open_refused_and_separated(netlab: NetLab) -> None:
    import socket

    from probes.network.nsenter import in_netns

    def listen() -> socket.socket:
        s = socket.socket()
        s.bind(("0.0.0.0", 8080))
        s.listen(16)
        return s

    srv = await asyncio.to_thread(in_netns, "/run/netns/tsf-acme-db", listen)
    try:
        hs = await observe(netlab, probe=False)
        rm = await prober.probe_matrix(hs, ports=(8080, 8081), trace=False, timeout=T)
    finally:
        srv.close()
    got = {(r.method, r.address): r.outcome for r in rm.results if r.src == netlab.key("tsf-acme-web")}
    assert got[("tcp:8080", "10.71.1.2")] == "reply"
    assert got[("tcp:8081", "10.71.1.2")] == "refused"
    assert got[("tcp:8080", "10.71.2.1")] == "no-arp" and got[("icmp", "10.71.2.1")] == "no-arp"
    assert rm.ports == (8080, 8081)


async def test_tenant_reaching_a_host_address_is_net06(netlab: NetLab) -> None:
    sh("ip", "addr", "add", "10.71.0.254/16", "dev", "tsf-bra")
    hs = await observe(netlab)
    cell = predict.matrix(hs).cell("acme", "(host)")
    assert cell.predicted and cell.observed and cell.status == "wrong"
    net06 = findings(hs, "NET-06")
    assert [f.tenants for f in net06] == [("acme",)] and "10.71.0.254" in net06[0].summary


async def test_remote_style_probe_with_ip_netns_exec_ping(netlab: NetLab) -> None:
    """The SSH fallback for hosts without python3 (argv run through the transport); here
    through LocalHost."""
    await asyncio.to_thread(netlab.move, "tsf-acme-db", "tsf-brg")
    hs = await observe(netlab, probe=False)
    rm = await remote.probe_remote(LocalHost(netlab.host, libvirt_uri=None), hs, timeout=1.0, exec_ping=True)
    assert rm.errors[0].startswith("exec-ping asked for: probed with `ip netns exec ... ping`")
    got = {(r.src.rsplit("/", 1)[1], r.address): r.outcome for r in rm.results}
    assert got[("tsf-acme-db", "10.71.2.1")] == "reply" and got[("tsf-acme-web", "10.71.2.1")] == "timeout"
    assert got[("tsf-glx-web", "10.71.2.2")] == "reply"


async def test_container_namespace_held_only_by_a_process(netlab: NetLab) -> None:
    """A namespace no /run/netns name points to (a container's): found through /proc, matched
    to the container by its init pid, probed through /proc/PID/ns/net."""
    from dataclasses import replace

    from probes.model import ContainerDetails, Placement, Workload, WorkloadKind

    holder = subprocess.Popen(["unshare", "-n", "sleep", "60"])
    try:
        pid = holder.pid
        for _ in range(50):  # until unshare has exec'd sleep in the new namespace
            if os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net"):
                break
            await asyncio.sleep(0.02)
        sh("ip", "link", "add", "tsf-h-ct", "type", "veth", "peer", "name", "eth0", "netns", str(pid))
        sh("ip", "link", "set", "tsf-h-ct", "master", "tsf-bra", "up")
        sh("nsenter", "-t", str(pid), "-n", "ip", "addr", "add", "10.71.2.50/16", "dev", "eth0")
        sh("nsenter", "-t", str(pid), "-n", "ip", "link", "set", "eth0", "up")
        ino = os.stat(f"/proc/{pid}/ns/net").st_ino
        topo = await TopologyProbe().collect(LocalHost(netlab.host, libvirt_uri=None))
        ns = topo.namespace(f"net:[{ino}]")
        assert ns is not None and pid in ns.pids
        assert topo.link(f"net:[{ino}]", "eth0").addresses == ("10.71.2.50/16",)
        ct = Workload(
            WorkloadKind.CONTAINER,
            "glx-ct",
            netlab.host,
            tenant="globex",
            placed_by=Placement.CONFIG,
            container=ContainerDetails(runtime="test", init_pid=pid),
        )
        hs = replace(netlab.state(topo), workloads=netlab.workloads((ct,)))
        hs = replace(hs, reach=await prober.probe_matrix(hs, trace=False, timeout=T))
        cell = predict.matrix(hs).cell("globex", "acme")
        assert cell.predicted and cell.observed and cell.status == "wrong"
        assert {r.src for r in cell.violations} == {ct.key}
        assert not os.path.exists(f"/run/netns/net:[{ino}]")
    finally:
        holder.kill()
        holder.wait()
        sh("ip", "link", "del", "tsf-h-ct", check=False)


async def test_check_probe_request_merges_into_the_engine(netlab: NetLab) -> None:
    """`check --probe` asks its session for an ActiveProbe (the request path); here a session
    whose engine sees only this lab (so no traffic reaches anybody else's namespaces)."""
    from probes.engine import Engine, Probe
    from probes.model import RequestState
    from probes.requests import ActiveProbe
    from probes.session import Options, Session

    class LabWorkloads(Probe):
        """Stand-in for the netns and container inventory: answers the lab's workloads as
        built by the fixture (real namespaces, veths and bridges), so the engine sees only this
        lab. The topology probe, the engine and the prober sending the traffic are real."""

        name = "lab"

        async def collect(self, host):  # type: ignore[no-untyped-def]
            return netlab.workloads()

        def merge(self, state, result):  # type: ignore[no-untyped-def]
            from dataclasses import replace

            return replace(state, workloads=result)

    engine = Engine([LocalHost(netlab.host, libvirt_uri=None)], lambda h: [LabWorkloads(), TopologyProbe()])
    session = Session(Options(), engine=engine)
    try:
        await session.refresh_once()
        status = await session.request(ActiveProbe(ports=(9,))).result()
    finally:
        await session.stop()
    assert status.state == RequestState.DONE and status.done == status.total > 0
    assert engine.state.requests[-1] == status  # the outcome is in the State
    reach = engine.state.hosts[0].reach
    assert reach is not None and reach.ports == (9,)
    methods = {r.method for r in reach.results}
    assert methods == {"icmp", "tcp:9"}
    own = [r for r in reach.results if r.method == "tcp:9" and r.src_tenant == r.dst_tenant == "globex"]
    assert own and all(r.outcome == "refused" for r in own)


def test_probe_port_needs_probe() -> None:
    from tui.cli import main

    assert main(["check", "--probe-port", "22"]) == 2
