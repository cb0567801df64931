"""OpenFlow tables in the prediction, on a private userspace Open vSwitch (root): two VLANs
joined by a router namespace, a flow dropping VLAN 100's subnet to VLAN 200's. The topology
probe traces the prediction's frames with `ovs-appctl ofproto/trace`; real probes agree, before
and after the flow is removed. Everything is named tf2-* (this file's own) and removed by name.

    tf2-o-a1, tf2-o-a2 (acme)  10.74.1.x/24, ports tag 100  --+
    tf2-o-b (globex)           10.74.2.1/24, port tag 200   --+-- tf2-ovs -- tf2-o-r (router: .254 on both)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from probes.hosts.local import LocalHost
from probes.model import Host, HostState, NetnsDetails, Placement, Workload, WorkloadKind
from probes.network import predict, prober
from probes.network.filtermodel import OvsFrame
from probes.network.ovsflows import parse_trace
from probes.network.topology import TopologyProbe
from tests.fixtures.guest import GuestSpec, guest_factory
from tests.fixtures.guest import skip_reason as guest_skip_reason
from tests.fixtures.libvirtd import libvirtd  # noqa: F401
from tests.fixtures.netlab import sh
from tests.fixtures.ovs import OvsLab, private_ovs
from tests.fixtures.sshd import ssh_host, sshd  # noqa: F401
from tests.helpers import needs_root, needs_tool

BR = "tf2-ovs"
MATCH = (
    "table=0,priority=100,ip,nw_src=10.74.1.0/24,nw_dst=10.74.2.0/24"  # the drop flow, as del-flows names it
)
DROP = MATCH + ",actions=drop"
TENANT = {"tf2-o-a1": "acme", "tf2-o-a2": "acme", "tf2-o-b": "globex"}


@pytest.fixture
def lab() -> Iterator[OvsLab]:
    with private_ovs("tf2-o", BR) as lab:
        _wait_datapath(lab)
        lab.add("tf2-o-a1", "acme", "tf2-o-pa1", "10.74.1.1", 100)
        lab.add("tf2-o-a2", "acme", "tf2-o-pa2", "10.74.1.2", 100)
        lab.add("tf2-o-b", "globex", "tf2-o-pb", "10.74.2.1", 200)
        sh("ip", "netns", "add", "tf2-o-r")
        for leg, inner, tag, ip in (
            ("tf2-o-ra", "ra", 100, "10.74.1.254"),
            ("tf2-o-rb", "rb", 200, "10.74.2.254"),
        ):
            sh("ip", "link", "add", leg, "type", "veth", "peer", "name", inner, "netns", "tf2-o-r")
            sh("ip", "link", "set", leg, "up")
            sh("ip", "-n", "tf2-o-r", "addr", "add", f"{ip}/24", "dev", inner)
            sh("ip", "-n", "tf2-o-r", "link", "set", inner, "up")
            lab.vsctl("add-port", BR, leg, f"tag={tag}")
        sh("ip", "netns", "exec", "tf2-o-r", "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for ns, gw in (
            ("tf2-o-a1", "10.74.1.254"),
            ("tf2-o-a2", "10.74.1.254"),
            ("tf2-o-b", "10.74.2.254"),
        ):
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=0")
            sh("ip", "-n", ns, "route", "add", "default", "via", gw)
        yield lab


def _wait_datapath(lab: OvsLab, timeout: float = 300.0) -> None:
    """A userspace vswitchd needs the host's one `ovs-netdev` tap: while another test session's
    private Open vSwitch holds it, ours cannot create the bridge (it retries). Wait for it."""
    import subprocess
    import time

    end = time.monotonic() + timeout
    while subprocess.run(["ovs-ofctl", "show", BR], env=lab.env, capture_output=True).returncode != 0:
        if time.monotonic() > end:
            raise AssertionError(
                f"the bridge {BR} was not created in {timeout:g} s (ovs-netdev held by another vswitchd?)"
            )
        time.sleep(0.5)


def ofctl(lab: OvsLab, *args: str) -> None:
    import subprocess
    import time

    for _ in range(50):  # vswitchd opens the bridge's management socket a moment after add-br
        r = subprocess.run(["ovs-ofctl", *args], env=lab.env, capture_output=True, text=True)
        if r.returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"ovs-ofctl {' '.join(args)}: {r.stderr.strip()}")


def state(topo, reach=None) -> HostState:  # type: ignore[no-untyped-def]
    ws = tuple(
        Workload(
            WorkloadKind.NETNS, ns, "ovsh", tenant=t, placed_by=Placement.CONFIG,
            netns=NetnsDetails(path=f"/run/netns/{ns}"),
        )
        for ns, t in TENANT.items()
    )  # fmt: skip
    return HostState(host=Host("ovsh"), workloads=ws, topology=topo, reach=reach)


async def observe(probe: TopologyProbe) -> HostState:
    topo = await probe.collect(LocalHost("ovsh", libvirt_uri=None))
    hs = state(topo)
    return state(topo, await prober.probe_matrix(hs, timeout=2.0, trace=False))


@needs_root
@needs_tool("ovs-vsctl", "ovs-vswitchd", "ovsdb-server", "ovs-appctl", "ovs-ofctl")
async def test_a_flow_dropping_one_vlan_to_another_is_traced_and_probes_agree(lab: OvsLab) -> None:
    await asyncio.to_thread(ofctl, lab, "add-flow", BR, DROP)
    probe = TopologyProbe(ovs_db=lab.db)
    hs = await observe(probe)
    flows = {o.bridge: o for o in hs.topology.ovs_flows}  # type: ignore[union-attr]
    assert flows[BR].custom and flows[BR].flows == 2 and flows[BR].traces
    m = predict.matrix(hs)
    ab = m.cell("acme", "globex")
    assert ab is not None and ab.predicted is False and ab.filter_state == "blocked-by-filter"
    rule = "OVS tf2-ovs table 0: ip,nw_src=10.74.1.0/24,nw_dst=10.74.2.0/24, priority 100: drop"
    assert all(rule in p.deciding_rule for p in ab.pairs), [p.deciding_rule for p in ab.pairs]
    assert ab.observed is False  # the real probe agrees: not reached
    aa = m.cell("acme", "acme")
    assert aa is not None and aa.predicted and aa.observed and aa.filter_state == "reach-through-filter"
    assert "priority 0: NORMAL" in aa.pairs[0].deciding_rule
    assert not predict.contradictions(ab) and not predict.contradictions(aa)
    # the flow removed: flows have no change event, so within the dump period the last tables
    # are kept (no process) and the probes contradict the prediction, naming the flow it used
    await asyncio.to_thread(ofctl, lab, "del-flows", BR, "--strict", MATCH)
    now = [0.0]
    probe._ovs_flows.clock = lambda: now[0]  # the probe's own cache, on a clock the test moves
    probe._ovs_flows.dumped = None
    await probe.collect(LocalHost("ovsh", libvirt_uri=None))  # dumps (the flow is gone) at t=0
    await asyncio.to_thread(ofctl, lab, "add-flow", BR, DROP)
    now[0] = 10.0
    hs1 = await observe(probe)  # within the period: the tables of t=0 (no drop flow) are kept
    ab1 = predict.matrix(hs1).cell("acme", "globex")
    assert ab1 is not None and ab1.predicted and ab1.observed is False
    against = predict.contradictions(ab1)
    assert against and "predicted reach" in against[0].text
    now[0] = 10.0 + probe._ovs_flows.max_age
    hs2 = await observe(probe)  # the period passed: dumped again, traced again
    ab2 = predict.matrix(hs2).cell("acme", "globex")
    assert ab2 is not None and ab2.predicted is False and ab2.observed is False
    assert not predict.contradictions(ab2)
    await asyncio.to_thread(ofctl, lab, "del-flows", BR, "--strict", MATCH)
    now[0] += probe._ovs_flows.max_age
    hs3 = await observe(probe)
    flows3 = {o.bridge: o for o in hs3.topology.ovs_flows}  # type: ignore[union-attr]
    assert not flows3[BR].custom and not flows3[BR].traces  # NORMAL only: the VLAN model decides
    ab3 = predict.matrix(hs3).cell("acme", "globex")
    assert ab3 is not None and ab3.predicted and ab3.observed  # routed between the VLANs, probed


def test_trace_output_is_read_for_verdict_and_flow() -> None:
    """ofproto/trace output as OVS 3.1 printed it here (recorded from the run above)."""
    f = OvsFrame(BR, "tf2-o-pa1", "36:57:e9:73:55:64", "26:d4:a2:43:e9:5c", "10.74.1.1", "10.74.2.1")
    assert f.flow == (
        "in_port=tf2-o-pa1,icmp,dl_src=36:57:e9:73:55:64,dl_dst=26:d4:a2:43:e9:5c,"
        "nw_src=10.74.1.1,nw_dst=10.74.2.1,icmp_type=8"
    )
    out = """Flow: icmp,in_port=1,vlan_tci=0x0000,dl_src=36:57:e9:73:55:64,dl_dst=26:d4:a2:43:e9:5c,nw_src=10.74.1.1

bridge("tf2-ovs")
-----------------
 0. ip,nw_src=10.74.1.0/24,nw_dst=10.74.2.0/24, priority 100
    drop

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=1,nw_src=10.74.1.0/24,nw_dst=10.74.2.0/24,nw_frag=no
Datapath actions: drop
"""
    t = parse_trace(f, out)
    assert t.verdict == "drop" and t.rule.endswith(
        "table 0: ip,nw_src=10.74.1.0/24,nw_dst=10.74.2.0/24, priority 100: drop"
    )
    ok = parse_trace(f, out.replace("    drop", "    NORMAL").replace("actions: drop", "actions: 4"))
    assert ok.verdict == "accept" and ok.actions == "4"
    bad = parse_trace(f, 'ovs-appctl: cannot connect to "/var/run/openvswitch/ovs-vswitchd.1.ctl"\n')
    assert bad.verdict == "undecided" and "cannot connect" in bad.rule


def test_traces_survive_a_snapshot() -> None:
    from probes.model import State
    from probes.network.filtermodel import OvsFlows, OvsTrace
    from probes.network.model import Topology
    from probes.snapshot import dumps, loads

    f = OvsFrame(BR, "p", "m", "n", "10.74.1.1", "10.74.2.1", "tcp", None, 22, True)
    topo = Topology(ovs_flows=(OvsFlows(BR, True, 2, (OvsTrace(f, "drop", "r", ("table 0",), "drop"),)),))
    s = State(hosts=(HostState(Host("h"), topology=topo),))
    assert loads(dumps(s)) == s
    assert "tp_src=22" in f.flow and "tcp_flags=0x012" in f.flow


GUEST_REASON = guest_skip_reason()


@needs_root
@needs_tool("ovs-vsctl", "ovs-vswitchd", "ovsdb-server", "ovs-appctl", "ovs-ofctl")
@pytest.mark.skipif(bool(GUEST_REASON), reason=GUEST_REASON or "")
@pytest.mark.timeout(600)
async def test_a_vm_behind_the_flow_is_traced_and_probes_agree(lab: OvsLab, libvirtd: str) -> None:
    """A real guest (QEMU/TCG) whose tap is a VLAN 200 port with libvirt's `attached-mac`: the
    topology probe learns its address from the router's ARP table and traces the frames toward
    it; the drop flow is named for acme -> the VM, and the probes agree."""
    import libvirt

    from probes.inventory.domxml import parse_domain
    from probes.network.model import Policy

    await asyncio.to_thread(ofctl, lab, "add-flow", BR, DROP)
    with guest_factory(libvirtd) as f:
        (g,) = await asyncio.to_thread(
            f.boot,
            GuestSpec("ovm", tap="tf2-o-vm", address="10.74.2.5/24", gateway="10.74.2.254", agent="none"),
            timeout=400,
        )
        await asyncio.to_thread(
            lab.vsctl,
            "add-port",
            BR,
            g.tap,
            "tag=200",
            "--",
            "set",
            "Interface",
            g.tap,
            f"external_ids:attached-mac={g.mac}",
        )
        await asyncio.to_thread(sh, "ip", "link", "set", g.tap, "up")
        ok = await asyncio.to_thread(
            sh, "ip", "netns", "exec", "tf2-o-r", "ping", "-c", "3", "-W", "2", "10.74.2.5", check=False
        )
        assert ok.returncode == 0, ok.stdout  # the guest answers on its VLAN (and the router learned its MAC)
        conn = libvirt.openReadOnly(libvirtd)
        try:
            vm = parse_domain(conn.lookupByName(g.name).XMLDesc(0)).vm
        finally:
            conn.close()
        probe = TopologyProbe(ovs_db=lab.db, policy=Policy(static_addresses=((g.name, ("10.74.2.5",)),)))
        topo = await probe.collect(LocalHost("ovsh", libvirt_uri=None))
        wl = state(topo).workloads + (
            Workload(
                WorkloadKind.VM,
                g.name,
                "ovsh",
                uuid=g.uuid,
                state="running",
                tenant="globex",
                placed_by=Placement.CONFIG,
                vm=vm,
            ),
        )
        hs = HostState(host=Host("ovsh"), workloads=wl, topology=topo)
        hs = HostState(
            host=Host("ovsh"),
            workloads=wl,
            topology=topo,
            reach=await prober.probe_matrix(hs, timeout=2.0, trace=False),
        )
        traced = [t for o in topo.ovs_flows for t in o.traces if t.frame.dst == "10.74.2.5"]
        assert traced and any(t.verdict == "drop" for t in traced)
        c = predict.matrix(hs).cell("acme", "globex")
        assert c is not None
        to_vm = [p for p in c.pairs if p.dst.endswith(f"/vm/{g.name}")]
        assert to_vm and all(not p.reachable for p in to_vm)
        assert "priority 100: drop" in to_vm[0].deciding_rule and "not traced" not in to_vm[0].deciding_rule
        vm_results = [
            r for r in c.results if r.address == "10.74.2.5" and r.outcome not in ("not-testable", "error")
        ]
        assert vm_results and not any(r.reached for r in vm_results)  # the real probe agrees
        same = predict.matrix(hs).cell("globex", "globex")  # tf2-o-b -> the VM, VLAN 200, NORMAL
        assert same is not None and same.predicted and same.observed


@needs_root
@needs_tool("ovs-vsctl", "ovs-vswitchd", "ovsdb-server", "ovs-appctl", "ovs-ofctl", "sshd")
async def test_over_ssh_the_sh_program_traces_what_unixctl_traces(lab: OvsLab, sshd) -> None:
    """Locally the flows are dumped and traced through ovs-vswitchd's unixctl socket (no
    process); through a real sshd on 127.0.0.1 by the `sh` program with ovs-ofctl/ovs-appctl.
    Both give the same verdicts and deciding flows."""
    from probes.network.ovsflows import read_ovs_flows, rundir_of, vswitchd_ctl

    await asyncio.to_thread(ofctl, lab, "add-flow", BR, DROP)
    assert vswitchd_ctl(rundir_of(lab.db)) is not None
    topo = await TopologyProbe(ovs_db=lab.db).collect(LocalHost("ovsh", libvirt_uri=None))
    local = {t.frame: (t.verdict, t.rule) for o in topo.ovs_flows for t in o.traces}
    host = ssh_host(sshd)
    try:
        remote_flows = await read_ovs_flows(host, topo, db=lab.db)
    finally:
        await host.close()
    remote = {t.frame: (t.verdict, t.rule) for o in remote_flows for t in o.traces}
    assert local and remote == local
    assert any(
        v == ("drop", f"OVS {BR} table 0: ip,nw_src=10.74.1.0/24,nw_dst=10.74.2.0/24, priority 100: drop")
        for v in local.values()
    )
    assert {o.bridge: (o.custom, o.flows) for o in remote_flows}[BR] == (True, 2)


CT_FLOWS = (
    "table=0,priority=10,ip,ct_state=-trk,actions=ct(table=1)",
    "table=1,priority=100,ip,ct_state=+trk+new,nw_src=10.74.2.0/24,nw_dst=10.74.1.0/24,actions=drop",
    "table=1,priority=50,ip,ct_state=+trk+new,actions=ct(commit),NORMAL",
    "table=1,priority=40,ip,ct_state=+trk+est,actions=NORMAL",
    "table=1,priority=1,actions=NORMAL",
)


@needs_root
@needs_tool("ovs-vsctl", "ovs-vswitchd", "ovsdb-server", "ovs-appctl", "ovs-ofctl")
async def test_conntrack_flows_new_from_one_vlan_dropped_replies_pass(lab: OvsLab) -> None:
    """Stateful flows (OVS conntrack, as security groups use): new connections from VLAN 200's
    subnet to VLAN 100's are dropped, replies pass. The trace resumes after ct() with the
    frame's own state (a reply is `est`), so acme -> globex is predicted to reach (replies
    included) and globex -> acme blocked by the table 1 flow; real probes agree."""
    for flow in CT_FLOWS:
        await asyncio.to_thread(ofctl, lab, "add-flow", BR, flow)
    hs = await observe(TopologyProbe(ovs_db=lab.db))
    traces = [t for o in hs.topology.ovs_flows for t in o.traces]  # type: ignore[union-attr]
    replies = [
        t for t in traces if t.frame.reply and t.frame.src == "10.74.2.1" and t.frame.dst == "10.74.1.1"
    ]
    assert replies and all(t.verdict == "accept" for t in replies)  # est: passes table 1
    m = predict.matrix(hs)
    ab, ba = m.cell("acme", "globex"), m.cell("globex", "acme")
    assert ab is not None and ab.predicted and ab.observed and not predict.contradictions(ab)
    assert (
        ba is not None and ba.predicted is False and ba.observed is False and not predict.contradictions(ba)
    )
    assert ba.filter_state == "blocked-by-filter"
    assert "table 1:" in ba.pairs[0].deciding_rule and "priority 100: drop" in ba.pairs[0].deciding_rule


def test_flows_not_read_are_named_not_guessed() -> None:
    """A bridge whose flows could not be read (here the reader's error is written into the
    model by hand, as read_ovs_flows records it when ovs-ofctl is missing on an SSH host): the
    pair's detail names it; the VLAN model still decides the path."""
    from probes.model import Host, HostState, NetnsDetails, Placement, Workload, WorkloadKind
    from probes.network.filtermodel import OvsFlows
    from probes.network.model import Link, Namespace, OvsBridge, OvsInterface, OvsPort, Route, Topology
    from tui.panes.reachability import describe

    links = (
        Link("pa", 4, kind="veth", peer="a/eth0", link_ifindex=2),
        Link("pb", 5, kind="veth", peer="b/eth0", link_ifindex=2),
        Link("eth0", 2, kind="veth", netns="a", peer="/pa", addresses=("10.0.0.1/24",), link_ifindex=4),
        Link("eth0", 2, kind="veth", netns="b", peer="/pb", addresses=("10.0.0.2/24",), link_ifindex=5),
    )
    ports = tuple(
        OvsPort(n, "brx", tag=10, interfaces=(OvsInterface(n, ofport=i),)) for i, n in ((1, "pa"), (2, "pb"))
    )
    topo = Topology(
        links=links,
        routes=(Route("a", "10.0.0.0/24", dev="eth0"), Route("b", "10.0.0.0/24", dev="eth0")),
        namespaces=(Namespace(""), Namespace("a"), Namespace("b")),
        ovs=(OvsBridge("brx", "netdev", ports),),
        ovs_state="ok",
        ovs_flows=(OvsFlows("brx", error="flows not read: ovs-ofctl missing"),),
    )
    wl = tuple(
        Workload(WorkloadKind.NETNS, n, "h", tenant=t, placed_by=Placement.CONFIG, netns=NetnsDetails(path=f"/run/netns/{n}"))
        for n, t in (("a", "acme"), ("b", "globex"))
    )  # fmt: skip
    hs = HostState(Host("h"), workloads=wl, topology=topo)
    c = predict.matrix(hs).cell("acme", "globex")
    assert c is not None and c.predicted and c.filter_state == ""  # the VLAN model: same tag
    text = describe(hs, c).plain
    assert "filters not evaluated" in text and "OVS brx: flows not read: ovs-ofctl missing" in text
    assert "no filter on this hook" not in text
