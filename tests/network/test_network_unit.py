"""Network area units without root: packet matching, netlink and ip-json parsing, policy,
segments and the snapshot round trip of the network model."""

from __future__ import annotations

import asyncio
import socket
import struct

from probes import snapshot
from probes.model import Host, HostState, State
from probes.network import icmp, ipjson, neigh, prober
from probes.network.model import (
    Hop,
    Link,
    OvsBridge,
    OvsInterface,
    OvsPort,
    Policy,
    ReachMatrix,
    ReachResult,
    Topology,
)
from probes.network.policy import allows, from_config, network_options
from probes.network.segments import Endpoint, attach


def ip_packet(src: str, dst: str, payload: bytes, ttl: int = 64) -> bytes:
    hdr = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        1,
        0,
        ttl,
        socket.IPPROTO_ICMP,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return hdr + payload


def reply(src: str, ident: int, seq: int, ttl: int = 64) -> bytes:
    body = struct.pack("!BBHHH", 0, 0, 0, ident, seq) + b"x"
    return ip_packet(src, "10.0.0.1", body, ttl)


def error(src: str, typ: int, code: int, orig_dst: str, ident: int, seq: int) -> bytes:
    orig = ip_packet("10.0.0.1", orig_dst, icmp.echo_request(ident, seq))
    return ip_packet(src, "10.0.0.1", struct.pack("!BBHI", typ, code, 0, 0) + orig[:28])


def test_checksum_of_echo_request_verifies() -> None:
    pkt = icmp.echo_request(0x1234, 7)
    assert icmp.checksum(pkt) == 0


async def test_matcher_needs_type_id_seq_and_source() -> None:
    dst = Endpoint("k/b", "globex", "b", "b", ("10.0.0.2",), ())
    t = icmp._Target(dst, "10.0.0.2", 3, sent_at=0.0)
    m = icmp.Matcher(0x4242, [t])
    for bad in (
        reply("10.0.0.9", 0x4242, 3),  # our id and seq, unexpected source
        reply("10.0.0.2", 0x4243, 3),  # someone else's ping
        reply("10.0.0.2", 0x4242, 4),
    ):  # a seq we did not send
        m.feed(icmp.parse_icmp(bad), 0.001)
    assert t.outcome == "" and m.pending == {3}
    assert t.ignored == ["echo reply with our id/seq from unexpected source 10.0.0.9"]
    # an echo *request* with our id (e.g. our own, seen on loopback) is not an answer
    req = ip_packet("10.0.0.2", "10.0.0.1", icmp.echo_request(0x4242, 3))
    m.feed(icmp.parse_icmp(req), 0.001)
    assert t.outcome == ""
    m.feed(icmp.parse_icmp(reply("10.0.0.2", 0x4242, 3, ttl=63)), 0.002)
    assert (t.outcome, t.reply_ttl, round(t.rtt_ms, 3)) == ("reply", 63, 2.0) and not m.pending


async def test_matcher_reads_icmp_errors_and_trace_hops() -> None:
    dst = Endpoint("k/b", "globex", "b", "b", ("10.0.1.2",), ())
    a, b = icmp._Target(dst, "10.0.1.2", 0), icmp._Target(dst, "10.0.1.3", 1)
    m = icmp.Matcher(7, [a, b])
    m.feed(icmp.parse_icmp(error("10.0.0.1", 3, 1, "10.0.1.2", 7, 0)), 0.1)
    m.feed(icmp.parse_icmp(error("10.0.0.254", 3, 13, "10.0.1.3", 7, 1)), 0.1)
    assert a.outcome == "no-arp" and b.outcome == "timeout" and "prohibited" in b.detail
    # traceroute: time exceeded for TTL 1 from the gateway, then the reply at TTL 2
    seq1, seq2 = icmp.TRACE_SEQ + 0 * 16 + 1, icmp.TRACE_SEQ + 0 * 16 + 2
    m.trace_pending |= {seq1, seq2}
    m.feed(icmp.parse_icmp(error("10.0.0.254", 11, 0, "10.0.1.2", 7, seq1)), 0.2)
    m.feed(icmp.parse_icmp(reply("10.0.1.2", 7, seq2)), 0.2)
    assert a.hops == {1: "10.0.0.254"} and a.hop_done == 2 and not m.trace_pending
    assert prober._hops({"10.0.0.254": "gw/leg0"}, a) == (Hop(1, "10.0.0.254", "gw/leg0"),)


def test_neighbour_dump_parsing() -> None:
    def entry(ip: str, state: int) -> bytes:
        attr = struct.pack("=HH", 8, neigh.NDA_DST) + socket.inet_aton(ip)
        body = struct.pack("=BBHiHBB", socket.AF_INET, 0, 0, 2, state, 0, 1) + attr
        return struct.pack("=IHHII", 16 + len(body), neigh.RTM_NEWNEIGH, 2, 1, 0) + body

    done = struct.pack("=IHHII", 20, neigh.NLMSG_DONE, 2, 1, 0) + b"\0\0\0\0"
    out: dict[str, int] = {}
    assert not neigh.parse_neigh(entry("10.0.0.2", 0x02) + entry("10.0.0.3", 0x01), out)
    assert neigh.parse_neigh(entry("10.0.0.4", 0x20) + done, out)
    assert out == {"10.0.0.2": 2, "10.0.0.3": 1, "10.0.0.4": 0x20}
    routes = prober.Routes(Topology(routes=()), "a")
    assert prober._classify_silence(routes, "10.0.0.3", out)[0] == "no-arp"
    assert prober._classify_silence(routes, "10.0.0.2", out)[0] == "timeout"


def test_policy_defaults_and_config() -> None:
    p = Policy()
    assert allows(p, "acme", "acme") and not allows(p, "acme", "globex")
    assert not allows(p, "(unplaced)", "(unplaced)") and not allows(p, "acme", "(host)")
    from probes.config import parse

    cfg = parse(
        '[[tenant]]\nname = "acme"\nnetns = ["acme-web", "acme-*"]\n'
        '[policy]\nallow = [["acme", "globex"], ["acme", "initech", [443]]]\n'
        "[network]\nprobe_ports = [22, 443]\nprobe_timeout = 0.25\n"
    )
    p = from_config(cfg)
    assert allows(p, "globex", "acme") and allows(p, "initech", "acme", 443)
    assert not allows(p, "initech", "acme", 22) and not allows(p, "initech", "acme")
    assert p.netns_named == ("acme-web",)
    assert network_options(cfg) == ((22, 443), 0.25)
    from probes.config import ConfigError

    try:
        parse('[policy]\n\n[network]\nprobe_ports = ["ssh"]\n', "c.toml")
    except ConfigError as e:  # refused when the config is read, naming file, line and key
        assert str(e).startswith("c.toml:4: network.probe_ports: expected a list of port numbers")
    else:
        raise AssertionError("bad ports accepted")


def test_ip_json_parsing() -> None:
    links = [
        {
            "ifindex": 4,
            "link": "v1",
            "ifname": "v0",
            "master": "br0",
            "operstate": "UP",
            "mtu": 1500,
            "address": "aa:bb:cc:dd:ee:ff",
            "linkinfo": {
                "info_kind": "veth",
                "info_slave_kind": "bridge",
                "info_slave_data": {"isolated": True, "learning": True, "flood": False},
            },
        },
        {"ifindex": 3, "ifname": "v1", "link_index": 9, "link_netnsid": 0, "linkinfo": {"info_kind": "veth"}},
        {
            "ifindex": 2,
            "ifname": "br0",
            "linkinfo": {"info_kind": "bridge", "info_data": {"vlan_filtering": 1}},
        },
    ]
    addrs = [
        {
            "ifname": "v1",
            "addr_info": [
                {"family": "inet", "local": "10.0.0.1", "prefixlen": 24},
                {"family": "inet6", "local": "fe80::1", "prefixlen": 64},
            ],
        }
    ]
    conf = [{"family": "inet", "interface": "v1", "forwarding": True, "proxy_neigh": True}]
    out = {lk.name: lk for lk in ipjson.parse_links("ns1", links, addrs, conf)}
    assert out["v0"].link_ifindex == 3 and out["v0"].port_isolated and out["v0"].port_flood is False
    assert out["v1"].link_ifindex == 9 and out["v1"].addresses == ("10.0.0.1/24",)
    assert out["v1"].forwarding and out["v1"].proxy_arp and out["br0"].vlan_filtering
    routes = ipjson.parse_routes(
        "ns1",
        [
            {"dst": "default", "gateway": "10.0.0.254", "dev": "v1"},
            {"dst": "10.0.0.0/24", "dev": "v1"},
            {"dst": "10.9.9.9", "dev": "v1"},
            {"type": "blackhole", "dst": "10.5.0.0/16"},
        ],
    )
    assert [r.dst for r in routes] == ["0.0.0.0/0", "10.0.0.0/24", "10.9.9.9/32"]


def test_ovs_trunk_ports_expose_vlans() -> None:
    iface = OvsInterface("p3", ofport=3)
    br = OvsBridge(
        "ovs0",
        ports=(
            OvsPort("p1", "ovs0", tag=100, interfaces=(OvsInterface("p1", ofport=1),)),
            OvsPort(
                "p2", "ovs0", trunks=(200,), vlan_mode="trunk", interfaces=(OvsInterface("p2", ofport=2),)
            ),
            OvsPort("p3", "ovs0", interfaces=(iface,)),
        ),
    )
    topo = Topology(links=(Link("p1", 1), Link("p2", 2), Link("p3", 3)), ovs=(br,))
    a1, a2, a3 = (attach(topo, topo.link("", n)) for n in ("p1", "p2", "p3"))
    assert a1.segment == "ovs:ovs0#100" and not a1.exposed
    assert a2.segment == "ovs:ovs0#none" and a2.exposed == ("ovs:ovs0#200",)
    assert a3.segment == "ovs:ovs0#0" and set(a3.exposed) == {"ovs:ovs0#100", "ovs:ovs0#200"}


def test_network_model_round_trips_through_snapshots() -> None:
    topo = Topology(
        links=(Link("eth0", 2, kind="veth", netns="a", addresses=("10.0.0.1/24",), port_isolated=True),),
        ovs=(
            OvsBridge("b", ports=(OvsPort("p", "b", tag=5, interfaces=(OvsInterface("p", ofport=None),)),)),
        ),
        problems=("x",),
        policy=Policy(netns_named=("a",)),
    )
    reach = ReachMatrix(
        results=(
            ReachResult(
                "a",
                "b",
                "k/a",
                "k/b",
                "10.0.0.2",
                "icmp",
                "reply",
                0.1,
                hops=(Hop(1, "10.0.0.254", "gw/l"),),
                reply_ttl=63,
            ),
        ),
        errors=("e",),
    )
    st = State(hosts=(HostState(Host("h"), topology=topo, reach=reach),))
    assert snapshot.loads(snapshot.dumps(st)) == st


def test_no_sources_means_an_empty_run() -> None:
    rm = asyncio.run(prober.probe_matrix(HostState(Host("h"), topology=Topology())))
    assert rm.results == () and rm.finished_at >= rm.started_at


def test_vm_taps_matched_by_target_dev_and_mac() -> None:
    from probes.checks.base import run_checks
    from probes.model import NetnsDetails, Nic, Placement, Status, VmDetails, Workload, WorkloadKind
    from probes.network.predict import matrix

    links = (
        Link("br0", 3, kind="bridge"),
        Link("tapx", 7, kind="tun", master="br0"),
        Link("anon", 8, kind="tun", master="br0", mac="fe:54:00:12:34:56"),
        Link("h1", 4, kind="veth", master="br0", peer="n/eth0", link_ifindex=2),
        Link("eth0", 2, kind="veth", netns="n", peer="/h1", addresses=("10.0.0.1/24",), link_ifindex=4),
    )
    vm = Workload(
        WorkloadKind.VM,
        "globex-vm",
        "h",
        tenant="globex",
        placed_by=Placement.CONFIG,
        vm=VmDetails(
            nics=(
                Nic(
                    "bridge",
                    mac="52:54:00:aa:bb:cc",
                    source="br0",
                    target_dev="tapx",
                    filterref="clean-traffic",
                ),
                Nic("bridge", mac="52:54:00:12:34:56", source="br0"),
            )
        ),
    )
    ns = Workload(WorkloadKind.NETNS, "n", "h", tenant="acme", netns=NetnsDetails(path="/run/netns/n"))
    hs = HostState(Host("h"), workloads=(vm, ns), topology=Topology(links=links))
    m = matrix(hs)
    assert (
        m.cell("acme", "globex").predicted and "addresses unknown" in m.cell("acme", "globex").pairs[0].path
    )
    sources, dests, untestable = prober.plan(hs)
    assert [s.endpoint.name for s in sources] == ["n"]
    assert untestable and all(
        r.outcome == "not-testable" and "predicted only" in r.detail for r in untestable
    )
    res = {(f.check_id, f.status) for f in run_checks(State(hosts=(hs,)), ("NET-01", "NET-02", "NET-04"))}
    assert ("NET-01", Status.FAIL) in res  # the second NIC has no filter
    assert ("NET-02", Status.FAIL) in res and ("NET-04", Status.FAIL) in res
    ports = {p for f in run_checks(State(hosts=(hs,)), ("NET-02",)) for e in f.evidence for p in [e.where]}
    assert {"port host/tapx", "port host/anon"} <= ports


async def test_demo_topology_from_libvirt_test_driver() -> None:
    """The demo has no kernel to read: its topology comes from libvirt's networks and NICs."""
    from probes.checks.base import run_checks
    from probes.model import Status
    from probes.network.predict import matrix
    from probes.session import Options, make_engine

    engine = make_engine(Options(demo=True))
    try:
        await engine.refresh_once()
        await engine.refresh_once()  # the topology is built from the VMs the first pass found
    finally:
        await engine.stop()
    hs = engine.state.hosts[0]
    topo = hs.topology
    assert topo is not None and topo.source == "libvirt"
    assert {n.name: (n.bridge, n.forward_mode) for n in topo.libvirt_networks}["net-acme"] == (
        "br-acme",
        "nat",
    )
    assert {lk.name for lk in topo.links if lk.master == "br-shared"} >= {"tap-acmedb1s", "tap-initechci1"}
    m = matrix(hs)
    cell = m.cell("acme", "initech")
    assert cell.predicted and cell.observed is None and cell.status == "wrong"
    assert any("br-shared" in p.path for p in cell.pairs)
    fails = [f for f in run_checks(engine.state, ("NET-02",)) if f.status == Status.FAIL]
    assert any("br-shared" in f.summary for f in fails)


def test_port_limited_policy_counts_only_other_traffic_as_violation() -> None:
    from dataclasses import replace

    from probes.checks.base import run_checks
    from probes.model import Status
    from probes.network.model import AllowRule
    from probes.network.predict import matrix
    from tests.tui.test_network_pane import shared_bridge_state

    policy = Policy(allow=(AllowRule("acme", "globex", (443,)),))

    def with_results(*rr: ReachResult) -> HostState:
        hs = shared_bridge_state(ReachMatrix(results=rr)).hosts[0]
        return replace(hs, topology=replace(hs.topology, policy=policy))

    ok = with_results(
        ReachResult("acme", "globex", "hv/netns/a", "hv/netns/b", "10.0.0.2", "tcp:443", "reply"),
        ReachResult("acme", "globex", "hv/netns/a", "hv/netns/b", "10.0.0.2", "tcp:22", "timeout"),
    )
    cell = matrix(ok).cell("acme", "globex")
    assert cell.allowed_ports == (443,) and not cell.violations and cell.status == "correct"
    bad = with_results(
        ReachResult("acme", "globex", "hv/netns/a", "hv/netns/b", "10.0.0.2", "tcp:443", "reply"),
        ReachResult("acme", "globex", "hv/netns/a", "hv/netns/b", "10.0.0.2", "icmp", "reply"),
    )
    cell = matrix(bad).cell("acme", "globex")
    assert [r.method for r in cell.violations] == ["icmp"] and cell.status == "wrong"
    fails = [f for f in run_checks(State(hosts=(bad,)), ("NET-05",)) if f.status == Status.FAIL]
    assert len(fails) == 1 and "allows only TCP 443" in fails[0].summary
    assert all("icmp" in e.where for e in fails[0].evidence if e.where.startswith(("icmp", "tcp")))


def test_an_unchanged_topology_keeps_the_state_object():
    """A poll that saw the same links must not look like a change (it would re-run every check)."""
    from probes.model import Host, HostState
    from probes.network.model import Link, Topology
    from probes.network.topology import TopologyProbe

    p = TopologyProbe()
    st = p.merge(HostState(Host("h")), Topology(links=(Link("br0", 3, kind="bridge"),), taken_at=1.0))
    same = p.merge(st, Topology(links=(Link("br0", 3, kind="bridge"),), taken_at=2.0))
    assert same is st
    moved = p.merge(
        st, Topology(links=(Link("br0", 3, kind="bridge"), Link("v1", 4, master="br0")), taken_at=3.0)
    )
    assert moved is not st and len(moved.topology.links) == 2


def test_probe_from_is_checked_before_anything_runs(capsys) -> None:
    from tui.cli import main

    assert main(["check", "--probe-from", "segment"]) == 2
    assert "--probe-from goes with --probe" in capsys.readouterr().err
    assert main(["check", "--probe", "--probe-from", "segment,guset"]) == 2
    assert "expected segment, guest or none" in capsys.readouterr().err


def test_vm_addresses_sources_in_order_and_why_unknown() -> None:
    """Pure: agent beats lease beats neighbour; config adds; nothing known says why."""
    from probes.model import Nic, VmDetails, Workload, WorkloadKind
    from probes.network.model import (
        DhcpLease,
        LibvirtNetwork,
        Neighbour,
        NicAddresses,
        Policy,
        ReachMatrix,
        Topology,
        VmAddress,
    )
    from probes.network.vmaddr import vm_addresses

    def vm(name: str, mac: str, agent: bool = False) -> Workload:
        return Workload(
            WorkloadKind.VM,
            name,
            "hv",
            state="running",
            vm=VmDetails(nics=(Nic("network", mac=mac, source="default"),), has_guest_agent=agent),
        )

    wl = (vm("a", "52:54:00:00:00:0a", True), vm("b", "52:54:00:00:00:0b"), vm("c", "52:54:00:00:00:0c"))
    topo = Topology(
        libvirt_networks=(
            LibvirtNetwork("default", leases=(DhcpLease("52:54:00:00:00:0a", "10.1.0.5", 24),)),
        ),
        neighbours=(
            Neighbour("", "virbr0", "10.1.0.6", "52:54:00:00:00:0b"),
            Neighbour("", "virbr0", "10.1.0.99", "52:54:00:00:00:0a"),
        ),
        policy=Policy(static_addresses=(("b", ("10.9.9.9",)),)),
    )
    hs = HostState(Host("hv"), workloads=wl, topology=topo)
    got = vm_addresses(hs)
    a = got["hv/vm/a"][0]
    assert [(x.address, x.source, x.prefix) for x in a.addresses] == [("10.1.0.5", "lease", 24)]
    b = got["hv/vm/b"][0]
    assert [(x.address, x.source) for x in b.addresses] == [("10.1.0.6", "neighbour"), ("10.9.9.9", "config")]
    c = got["hv/vm/c"][0]
    assert not c.addresses and c.unknown_why == "no agent, no lease, MAC not in any neighbour table"
    agent = NicAddresses("hv/vm/a", "52:54:00:00:00:0a", (VmAddress("10.1.0.7", "agent", "guest agent", 24),))
    hs2 = HostState(Host("hv"), workloads=wl, topology=topo, reach=ReachMatrix(agent_addresses=(agent,)))
    assert [x.source for x in vm_addresses(hs2)["hv/vm/a"][0].addresses] == ["agent"]


def test_topology_link_finds_the_first_link_of_that_name_in_that_namespace() -> None:
    """Topology.link answers from an index built once per Topology (it searched every link at
    every call: 20-40k calls per derive at 1,000 domains): the same answer as the search
    (the first such link), per namespace, none for an unknown one, and a Topology made with
    `replace` answers from its own links."""
    from dataclasses import replace

    import msgspec

    from probes.network.model import Link, Topology

    links = (
        Link(name="a", ifindex=1, kind="veth", netns=""),
        Link(name="a", ifindex=2, kind="bridge", netns=""),
        Link(name="a", ifindex=3, kind="veth", netns="ns1"),
    )
    topo = Topology(links=links)

    def search(t: Topology, netns: str, name: str) -> Link | None:
        return next((lk for lk in t.links if lk.netns == netns and lk.name == name), None)

    for netns, name in (("", "a"), ("ns1", "a"), ("ns2", "a"), ("", "b")):
        assert topo.link(netns, name) is search(topo, netns, name)
    first, other = topo.link("", "a"), replace(topo, links=links[1:]).link("", "a")
    assert first is not None and first.ifindex == 1 and other is not None and other.ifindex == 2
    # the index is no field: not encoded, not compared
    assert b"_by_name" not in msgspec.json.encode(topo) and topo == Topology(links=links)


def test_topology_ovs_ports_by_interface_is_what_the_segment_lookup_built() -> None:
    """Built once per Topology (it was rebuilt at every segment lookup): every interface of
    every port, the last bridge's port for a name read twice, not encoded with the Topology."""
    import msgspec

    from probes.network.model import OvsBridge, OvsInterface, OvsPort, Topology
    from probes.network.segments import _ovs_ports

    p1 = OvsPort("p1", "br0", tag=5, interfaces=(OvsInterface("vnet1"), OvsInterface("vnet2")))
    p2 = OvsPort("p2", "br1", interfaces=(OvsInterface("vnet2"),))
    topo = Topology(ovs=(OvsBridge("br0", ports=(p1,)), OvsBridge("br1", ports=(p2,))))
    assert _ovs_ports(topo) == {"vnet1": p1, "vnet2": p2}
    assert _ovs_ports(topo) is _ovs_ports(topo)  # once
    assert b"ovs_ports_by_interface" not in msgspec.json.encode(topo)


def test_a_class_verdict_copied_to_a_pair_is_what_replace_gives() -> None:
    """predict_cells copies a class's verdict to each pair with its own src and dst (without
    dataclasses.replace: ~70,000 copies per derive at 1,000 domains): every other field kept."""
    from dataclasses import fields, replace

    from probes.network.predict import PairPrediction, _between

    p = PairPrediction(
        src="h/vm/a",
        dst="h/vm/b",
        src_tenant="acme",
        dst_tenant="globex",
        reachable=True,
        address="10.0.0.2",
        path="shared segment br0",
        hops=("r1",),
        segments=("br:/br0",),
        exposed=True,
        filters=(),
        method="tcp/22",
        methods=(("icmp", False),),
    )
    named = (
        "src dst src_tenant dst_tenant reachable address path hops segments exposed filters method methods"
    )
    assert [f.name for f in fields(PairPrediction)] == named.split()  # a new field: set it above
    assert _between(p, "h/vm/c", "h/vm/d") == replace(p, src="h/vm/c", dst="h/vm/d")
