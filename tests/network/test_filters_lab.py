"""Filters in the prediction, on real rules with real traffic (root): a router namespace
between two tenants, and a bridge (in a namespace of its own) with br_netfilter between two
more. Everything is named tsq-* (this file's own prefix) and removed by name.

    tsq-a (acme)   eth0 10.81.1.1/24 == tsq-gwa 10.81.1.254  [tsq-gw, forwarding]
    tsq-b (globex) eth0 10.81.2.1/24 == tsq-gwb 10.81.2.254  [tsq-gw]
    tsq-c (initech)  eth0 10.82.0.1/24 -- tsq-pc  [bridge tsq-br in tsq-sw]
    tsq-d (umbrella) eth0 10.82.0.2/24 -- tsq-pd  [bridge tsq-br in tsq-sw]
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from probes.checks.base import run_checks
from probes.hosts.local import LocalHost
from probes.model import Host, HostState, NetnsDetails, Placement, State, Status, Workload, WorkloadKind
from probes.network import predict, prober
from probes.network.topology import TopologyProbe
from tests.fixtures.sshd import ssh_host, sshd  # noqa: F401
from tests.helpers import needs_root, needs_tool

pytestmark = [needs_root, needs_tool("ip", "nft", "iptables-legacy")]
PREFIX = "tsq-"
NS = ("tsq-a", "tsq-b", "tsq-c", "tsq-d", "tsq-gw", "tsq-sw")
TENANT = {"tsq-a": "acme", "tsq-b": "globex", "tsq-c": "initech", "tsq-d": "umbrella"}
T = 1.0


def sh(*argv: str, input: str | None = None, check: bool = True) -> str:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, input=input).stdout


def cleanup() -> None:
    for ns in NS:
        if os.path.exists(f"/run/netns/{ns}"):
            sh("ip", "netns", "del", ns, check=False)


def build() -> None:
    cleanup()
    for ns in NS:
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        # a new namespace may inherit the host's forwarding: only tsq-gw forwards here
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=0")
    # veths are made in the host and moved: their ifindexes stay unique, so peers resolve
    for ns, leg, addr, gw in (
        ("tsq-a", "tsq-gwa", "10.81.1.1/24", "10.81.1.254/24"),
        ("tsq-b", "tsq-gwb", "10.81.2.1/24", "10.81.2.254/24"),
    ):
        veth(f"{ns}-e", ns, leg, "tsq-gw")
        sh("ip", "-n", ns, "addr", "add", addr, "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", "tsq-gw", "addr", "add", gw, "dev", leg)
        sh("ip", "-n", "tsq-gw", "link", "set", leg, "up")
        sh("ip", "-n", ns, "route", "add", "default", "via", gw.split("/")[0])
    sh("ip", "netns", "exec", "tsq-gw", "sysctl", "-qw", "net.ipv4.ip_forward=1")
    sh("ip", "-n", "tsq-sw", "link", "add", "tsq-br", "type", "bridge")
    sh("ip", "-n", "tsq-sw", "link", "set", "tsq-br", "up")
    for ns, port, addr in (("tsq-c", "tsq-pc", "10.82.0.1/24"), ("tsq-d", "tsq-pd", "10.82.0.2/24")):
        veth(f"{ns}-e", ns, port, "tsq-sw")
        sh("ip", "-n", ns, "addr", "add", addr, "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", "tsq-sw", "link", "set", port, "master", "tsq-br", "up")


def veth(tmp: str, ns: str, peer: str, peer_ns: str) -> None:
    """eth0 in `ns`, `peer` in `peer_ns`: made in the host (under tsq-* names), then moved."""
    sh("ip", "link", "add", tmp, "type", "veth", "peer", "name", peer)
    sh("ip", "link", "set", peer, "netns", peer_ns)
    sh("ip", "link", "set", tmp, "netns", ns)
    sh("ip", "-n", ns, "link", "set", tmp, "name", "eth0")


@pytest.fixture
def lab() -> Iterator[None]:
    build()
    try:
        yield
    finally:
        cleanup()


def nft(ns: str, rules: str) -> None:
    r = subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr


def state(topo, reach=None) -> HostState:  # type: ignore[no-untyped-def]
    ws = tuple(
        Workload(
            kind=WorkloadKind.NETNS,
            name=ns,
            host="fl",
            tenant=t,
            placed_by=Placement.CONFIG,
            placed_rule=f"netns {ns}",
            netns=NetnsDetails(path=f"/run/netns/{ns}"),
        )
        for ns, t in TENANT.items()
    )
    return HostState(host=Host("fl"), workloads=ws, topology=topo, reach=reach)


async def observe(ports: tuple[int, ...] = ()) -> HostState:
    topo = await TopologyProbe().collect(LocalHost("fl", libvirt_uri=None))
    hs = state(topo)
    return state(topo, await prober.probe_matrix(hs, timeout=T, ports=ports, trace=False))


def check(hs: HostState, cid: str):  # type: ignore[no-untyped-def]
    return [f for f in run_checks(State(hosts=(hs,)), [cid]) if f.check_id == cid]


def pair(hs: HostState, src: str, dst: str):  # type: ignore[no-untyped-def]
    cell = predict.matrix(hs).cell(TENANT[src], TENANT[dst])
    assert cell is not None
    return cell, [p for p in cell.pairs if p.src.endswith(f"/{src}") and p.dst.endswith(f"/{dst}")]


async def test_router_without_filter_then_drop_rule(lab: None) -> None:
    hs = await observe()
    gw = hs.topology.filters_of("tsq-gw")
    assert gw is not None and gw.why == "forwarding" and not gw.errors
    assert hs.topology.filters_of("tsq-a") is None  # does not forward: not read
    cell, pp = pair(hs, "tsq-a", "tsq-b")
    assert cell.predicted and cell.observed  # no filter: it leaks, and the probe agrees
    (net07,) = check(hs, "NET-07")
    assert net07.status == Status.FAIL and "tsq-gw" in net07.summary

    nft(
        "tsq-gw",
        "table inet tsqf { chain fw { type filter hook forward priority 0; policy accept;\n"
        'iifname "tsq-gwa" oifname "tsq-gwb" drop\niifname "tsq-gwb" oifname "tsq-gwa" drop\n}\n}\n',
    )
    hs = await observe()
    cell, pp = pair(hs, "tsq-a", "tsq-b")
    assert cell.predicted is False and cell.observed is False and cell.filter_state == "blocked-by-filter"
    assert pp and "nft inet tsqf fw, handle" in pp[0].deciding_rule
    assert pp[0].deciding_rule.endswith("iifname tsq-gwa oifname tsq-gwb drop")
    assert "blocked by filter" in pp[0].path
    (net07,) = check(hs, "NET-07")
    assert net07.status == Status.PASS and "iifname tsq-gwa oifname tsq-gwb drop" in net07.summary


async def test_one_port_accepted_through_jump_chain_and_vmap(lab: None) -> None:
    nft(
        "tsq-gw",
        "table inet tsqf {\n"
        " chain fw { type filter hook forward priority 0; policy drop;\n"
        "  ct state established,related accept\n"
        '  iifname vmap { "tsq-gwa" : jump from_a, "tsq-gwb" : jump from_b }\n }\n'
        " chain from_a { tcp dport 8080 accept\n }\n"
        " chain from_b { accept\n }\n"
        "}\n",
    )
    hs = await observe(ports=(8080, 9090))
    cell, pp = pair(hs, "tsq-a", "tsq-b")
    assert cell.predicted and cell.filter_state == "reach-through-filter"
    (p,) = pp
    assert (
        p.reachable
        and p.method == "tcp:8080"
        and dict(p.methods)
        == {
            "icmp": False,
            "tcp:8080": True,
            "tcp:9090": False,
        }
    )
    assert "from_a" in p.deciding_rule and "tcp dport 8080 accept" in p.deciding_rule
    seen = {
        r.method: r.reached for r in hs.reach.results if r.src.endswith("/tsq-a") and r.address == "10.81.2.1"
    }
    assert seen == {"icmp": False, "tcp:8080": True, "tcp:9090": False}  # the probes agree, per port
    (net07,) = check(hs, "NET-07")
    assert net07.status == Status.FAIL and "tcp dport 8080 accept" in net07.summary
    # globex -> acme is accepted by a rule (from_b: accept), not by a policy: NET-09 stays quiet
    assert all(f.status == Status.PASS for f in check(hs, "NET-09"))


async def test_iptables_legacy_default_accept_is_flagged(lab: None) -> None:
    run = ("ip", "netns", "exec", "tsq-gw")
    sh(*run, "iptables-legacy", "-N", "TSQ-LOG")
    sh(*run, "iptables-legacy", "-A", "FORWARD", "-j", "TSQ-LOG")
    sh(*run, "iptables-legacy", "-A", "TSQ-LOG", "-s", "10.99.0.0/16", "-j", "DROP")
    hs = await observe()
    cell, pp = pair(hs, "tsq-a", "tsq-b")
    assert cell.predicted and cell.observed
    assert pp and all(d.by_policy for d in pp[0].filters) and pp[0].filters
    net09 = [f for f in check(hs, "NET-09") if f.status == Status.FAIL]
    assert {f.tenants for f in net09} >= {("acme", "globex")}
    assert any("default accept policy" in f.summary for f in net09)
    # a DROP policy closes it, and the legacy back end is what decides
    sh(*run, "iptables-legacy", "-P", "FORWARD", "DROP")
    hs = await observe()
    cell, pp = pair(hs, "tsq-a", "tsq-b")
    assert cell.predicted is False and cell.observed is False
    assert "iptables-legacy filter FORWARD: policy drop" in pp[0].deciding_rule
    assert check(hs, "NET-07")[0].status == Status.PASS


async def test_br_netfilter_filters_a_bridged_pair(lab: None) -> None:
    if (
        sh(
            "ip",
            "netns",
            "exec",
            "tsq-sw",
            "cat",
            "/proc/sys/net/bridge/bridge-nf-call-iptables",
            check=False,
        ).strip()
        != "1"
    ):
        pytest.skip("br_netfilter is not on in new namespaces here")
    hs = await observe()
    assert hs.topology.filters_of("tsq-sw") is not None  # a bridge with br_netfilter: read
    cell, _ = pair(hs, "tsq-c", "tsq-d")
    assert cell.observed
    sh(
        "ip",
        "netns",
        "exec",
        "tsq-sw",
        "iptables-nft",
        "-A",
        "FORWARD",
        "-s",
        "10.82.0.1",
        "-d",
        "10.82.0.2",
        "-j",
        "DROP",
    )
    hs = await observe()
    cell, pp = pair(hs, "tsq-c", "tsq-d")
    assert cell.observed is False  # real traffic: the bridged frame went through iptables
    assert pp and not pp[0].reachable and pp[0].filter_state == "blocked-by-filter"
    assert "iptables filter FORWARD: -s 10.82.0.1/32 -d 10.82.0.2/32 -j DROP" in pp[0].deciding_rule
    assert "br_netfilter" in pp[0].deciding_rule
    # the rule is stateless: it drops the replies of umbrella's pings too, as predicted
    back = predict.matrix(hs).cell("umbrella", "initech")
    assert back.predicted is False and back.observed is False
    assert any("no way back" in p.path and "10.82.0.2" in p.path for p in back.pairs)


def test_nothing_spawned_for_a_lab_that_does_not_forward() -> None:
    from probes.network.filterread import namespaces_to_read
    from probes.network.model import Link, Namespace, Topology

    topo = Topology(
        namespaces=(Namespace(""), Namespace("tsq-x")),
        links=(Link("eth0", 2, netns="tsq-x", forwarding=False),),
    )
    assert namespaces_to_read(topo, bridge_nf_host=True) == []


async def test_probe_contradicting_the_prediction_names_the_rule(lab: None) -> None:
    from tui.panes.reachability import describe

    nft(
        "tsq-gw",
        "table inet tsqf { chain fw { type filter hook forward priority 0; policy accept;\n"
        'iifname "tsq-gwa" oifname "tsq-gwb" drop\n}\n}\n',
    )
    topo = await TopologyProbe().collect(LocalHost("fl", libvirt_uri=None))
    sh(
        "ip", "netns", "exec", "tsq-gw", "nft", "delete", "table", "inet", "tsqf"
    )  # behind the prediction's back
    hs = state(topo)
    hs = state(topo, await prober.probe_matrix(hs, timeout=T, trace=False))
    cell, pp = pair(hs, "tsq-a", "tsq-b")
    assert cell.predicted is False and cell.observed is True
    against = predict.contradictions(cell)
    assert against and against[0].predicted is False and against[0].result.reached
    assert "iifname tsq-gwa oifname tsq-gwb drop" in against[0].text
    text = describe(hs, cell).plain
    assert (
        "contradict the prediction" in text
        and "the prediction relied on: tsq-gw forward icmp: drop by nft inet tsqf fw" in text
    )
    assert "filter: blocked-by-filter" in text
    net05 = [f for f in check(hs, "NET-05") if f.status == Status.FAIL and f.tenants == ("acme", "globex")]
    assert net05 and any(e.where == "the prediction said otherwise" for e in net05[0].evidence)


DOCKER_RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o tsq-gwb -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o tsq-gwb -j DOCKER
-A FORWARD -i tsq-gwb ! -o tsq-gwb -j ACCEPT
-A FORWARD -i tsq-gwb -o tsq-gwb -j ACCEPT
-A FORWARD -o tsq-gwa -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o tsq-gwa -j DOCKER
-A FORWARD -i tsq-gwa ! -o tsq-gwa -j ACCEPT
-A FORWARD -i tsq-gwa -o tsq-gwa -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i tsq-gwb ! -o tsq-gwb -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -i tsq-gwa ! -o tsq-gwa -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o tsq-gwb -j DROP
-A DOCKER-ISOLATION-STAGE-2 -o tsq-gwa -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -j RETURN
COMMIT
"""


async def test_docker_isolation_chains_between_two_legs(lab: None) -> None:
    """Docker 20.10's filter-table layout for two bridge networks (its FORWARD rules and
    DOCKER-ISOLATION chains, with the router's legs in place of the networks' bridges), loaded
    with iptables-restore into the router namespace: not a dockerd (tests/fixtures/dockerd.py
    keeps its daemon off ip forwarding, so it writes no isolation path to route through)."""
    sh("ip", "netns", "exec", "tsq-gw", "iptables-restore", input=DOCKER_RULES)
    hs = await observe()
    for src, dst, leg in (("tsq-a", "tsq-b", "tsq-gwb"), ("tsq-b", "tsq-a", "tsq-gwa")):
        cell, pp = pair(hs, src, dst)
        assert cell.predicted is False and cell.observed is False and cell.filter_state == "blocked-by-filter"
        (d,) = [d for d in pp[0].filters if d.verdict == "drop"]
        assert d.deciding.rule == f"iptables filter DOCKER-ISOLATION-STAGE-2: -o {leg} -j DROP"
        assert d.deciding.path == ("FORWARD", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2")
    (net07,) = check(hs, "NET-07")
    assert net07.status == Status.PASS and "DOCKER-ISOLATION-STAGE-2" in net07.summary


async def test_nft_bridge_family_drops_between_two_ports(lab: None) -> None:
    nft(
        "tsq-sw",
        "table bridge tsqb {\n chain fw { type filter hook forward priority 0; policy accept;\n"
        '  iifname "tsq-pc" oifname "tsq-pd" drop\n }\n}\n',
    )
    hs = await observe()
    cell, pp = pair(hs, "tsq-c", "tsq-d")
    assert cell.predicted is False and cell.observed is False and cell.filter_state == "blocked-by-filter"
    assert "nft bridge tsqb fw, handle" in pp[0].deciding_rule
    assert pp[0].deciding_rule.endswith("iifname tsq-pc oifname tsq-pd drop")
    assert "bridge tsq-br forward" in pp[0].deciding_rule
    # the other way is not filtered, but what answers is (the rule is stateless): the ARP reply
    # first, as the probe saw ("no ARP answer")
    back, bp = pair(hs, "tsq-d", "tsq-c")
    assert back.observed is False and back.predicted is False and "the ARP reply blocked" in bp[0].path


@needs_tool("sshd")
async def test_filters_read_over_ssh_give_the_local_prediction(lab: None, sshd) -> None:
    """The topology probe over a real sshd on 127.0.0.1 (`ip -j` and the filter readers run
    through the SSH transport) predicts the same blocked cell, naming the same rule."""
    nft(
        "tsq-gw",
        "table inet tsqf { chain fw { type filter hook forward priority 0; policy accept;\n"
        'iifname "tsq-gwa" oifname "tsq-gwb" drop\n}\n}\n',
    )
    host = ssh_host(sshd)
    try:
        remote_topo = await TopologyProbe().collect(host)
    finally:
        await host.close()
    local_topo = await TopologyProbe().collect(LocalHost("fl", libvirt_uri=None))
    assert remote_topo.filters_of("tsq-gw") == local_topo.filters_of("tsq-gw")
    _, rp = pair(state(remote_topo), "tsq-a", "tsq-b")
    _, lp = pair(state(local_topo), "tsq-a", "tsq-b")
    assert not rp[0].reachable and rp[0].deciding_rule == lp[0].deciding_rule
    assert rp[0].deciding_rule.endswith("iifname tsq-gwa oifname tsq-gwb drop")


async def test_ebtables_nft_rule_on_the_bridge(lab: None) -> None:
    run = ("ip", "netns", "exec", "tsq-sw")
    sh(*run, "ebtables-nft", "-N", "TSQ-EB", "-P", "RETURN")
    sh(*run, "ebtables-nft", "-A", "FORWARD", "-i", "tsq-pc", "-j", "TSQ-EB")
    sh(
        *run,
        "ebtables-nft",
        "-A",
        "TSQ-EB",
        "-p",
        "IPv4",
        "--ip-src",
        "10.82.0.1",
        "--ip-dst",
        "10.82.0.2",
        "-j",
        "DROP",
    )
    hs = await observe()
    f = hs.topology.filters_of("tsq-sw")
    assert "ebtables-nft" in [rs.source for rs in f.rulesets]
    assert not [c for rs in f.rulesets if rs.source == "nft" for c in rs.chains if c.family == "bridge"]
    cell, pp = pair(hs, "tsq-c", "tsq-d")
    assert cell.predicted is False and cell.observed is False and cell.filter_state == "blocked-by-filter"
    (d,) = [d for d in pp[0].filters if d.verdict == "drop"]
    assert d.deciding.rule == "ebtables filter TSQ-EB: -p IPv4 --ip-src 10.82.0.1 --ip-dst 10.82.0.2 -j DROP"
    assert d.deciding.path == ("FORWARD", "TSQ-EB")


async def test_a_rule_beyond_the_evaluator_is_undecided_and_named(lab: None) -> None:
    nft(
        "tsq-gw",
        "table inet tsqf {\n chain fw { type filter hook forward priority 0; policy drop;\n"
        "  meta mark 0x2a accept\n }\n}\n",
    )
    hs = await observe()
    cell, pp = pair(hs, "tsq-a", "tsq-b")
    assert cell.filter_state == "filter-undecided" and cell.predicted  # possible, never a guess
    assert cell.observed is False  # the probe settles it: the mark is not set, the policy drops
    assert "undecided" in pp[
        0
    ].deciding_rule and "meta mark 42 accept [meta mark is beyond the evaluator]" in (pp[0].deciding_rule)
    assert "filter: undecided at" in pp[0].path
    (net07,) = check(hs, "NET-07")
    assert net07.status == Status.WARN and "meta mark" in net07.summary
    (x,) = [
        x
        for x in predict.contradictions(cell)
        if x.result.method == "icmp" and x.result.src.endswith("/tsq-a")
    ]
    assert "predicted possible (a filter it could not decide)" in x.text and "meta mark" in x.text
