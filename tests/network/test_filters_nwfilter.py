"""libvirt nwfilter in the prediction, on the real libvirtd with a real guest (root; QEMU/TCG):
a guest on a test bridge whose NIC carries `clean-traffic` with IP=10.76.0.2, and a second
address (10.76.0.99) that the filter does not give it. libvirt instantiates the filter on the
guest's tap; the topology probe reads the binding through a read-only connection and expands
it; the prediction says the spoofed address's answers are dropped by `no-ip-spoofing` and real
probes agree (the legitimate address answers). Names: bridge tf2-nwbr, namespace tf2-nw-a,
guest tsv-g-PID-N-nwf (the guest fixture's prefix), removed by name.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from probes.hosts.local import LocalHost
from probes.inventory.domxml import parse_domain
from probes.model import Host, HostState, NetnsDetails, Placement, Workload, WorkloadKind
from probes.network import predict, prober
from probes.network.filtereval import Packet
from probes.network.model import Policy
from probes.network.nwfilter import decide_nic, expand, parse_binding, parse_filter
from probes.network.topology import TopologyProbe
from tests.fixtures.guest import Guest, GuestSpec, guest_factory, skip_reason
from tests.fixtures.libvirtd import libvirtd  # noqa: F401
from tests.fixtures.netlab import sh

REASON = skip_reason()
HOST = "nwhost"
BR, NS = "tf2-nwbr", "tf2-nw-a"
CLEAN = "<filterref filter='clean-traffic'><parameter name='IP' value='10.76.0.2'/></filterref>"


def _cleanup() -> None:
    if os.path.exists(f"/run/netns/{NS}"):
        sh("ip", "netns", "del", NS, check=False)
    for link in ("tf2-nw-ha", BR):
        sh("ip", "link", "del", link, check=False)


@pytest.fixture
def nwlab(libvirtd: str) -> Iterator[Guest]:
    _cleanup()
    try:
        sh("ip", "link", "add", BR, "type", "bridge")
        sh("ip", "link", "set", BR, "up")
        sh("ip", "netns", "add", NS)
        sh("ip", "link", "add", "tf2-nw-ha", "type", "veth", "peer", "name", "eth0", "netns", NS)
        sh("ip", "link", "set", "tf2-nw-ha", "master", BR, "up")
        sh("ip", "-n", NS, "addr", "add", "10.76.0.1/24", "dev", "eth0")
        sh("ip", "-n", NS, "link", "set", "eth0", "up")
        sh("ip", "netns", "exec", NS, "sysctl", "-qw", "net.ipv4.ip_forward=0")
        with guest_factory(libvirtd) as f:
            (g,) = f.boot(
                GuestSpec(
                    "nwf",
                    bridge=BR,
                    address="10.76.0.2/24",
                    address2="10.76.0.99/24",
                    agent="none",
                    nic_extra=CLEAN,
                ),
                timeout=400,
            )
            yield g
    finally:
        _cleanup()


def workloads(g: Guest) -> tuple[Workload, ...]:
    import libvirt

    conn = libvirt.openReadOnly("qemu:///system")
    try:
        vm = parse_domain(conn.lookupByName(g.name).XMLDesc(0)).vm
    finally:
        conn.close()
    return (
        Workload(WorkloadKind.VM, g.name, HOST, uuid=g.uuid, state="running", tenant="globex", placed_by=Placement.CONFIG, vm=vm),
        Workload(WorkloadKind.NETNS, NS, HOST, tenant="acme", placed_by=Placement.CONFIG, netns=NetnsDetails(path=f"/run/netns/{NS}")),
    )  # fmt: skip


async def observe(g: Guest, addresses: tuple[str, ...]) -> HostState:
    policy = Policy(static_addresses=((g.name, addresses),))
    topo = await TopologyProbe(policy=policy).collect(LocalHost(HOST, libvirt_uri="qemu:///system"))
    hs = HostState(Host(HOST), workloads=workloads(g), topology=topo)
    return HostState(
        Host(HOST), workloads=hs.workloads, topology=topo, reach=await prober.probe_matrix(hs, timeout=2.0)
    )


def ping(ip: str) -> bool:
    r = subprocess.run(["ip", "netns", "exec", NS, "ping", "-c", "1", "-W", "2", ip], capture_output=True)
    return r.returncode == 0


@pytest.mark.skipif(bool(REASON), reason=REASON or "")
@pytest.mark.timeout(600)
async def test_clean_traffic_drops_a_spoofed_source_and_probes_agree(nwlab: Guest) -> None:
    g = nwlab
    # the binding, as the topology probe reads it (read-only connection)
    spoofed = await observe(g, ("10.76.0.99",))
    nics = {n.portdev: n for n in spoofed.topology.nic_filters}  # type: ignore[union-attr]
    nf = nics[g.tap]
    assert (
        nf.filter == "clean-traffic" and ("IP", "10.76.0.2") in nf.params and nf.mac == g.mac and not nf.error
    )
    # what leaves the guest: its own address passes, another one is dropped by no-ip-spoofing
    ok = decide_nic(nf, Packet("10.76.0.2", "10.76.0.1"), "out")
    bad = decide_nic(nf, Packet("10.76.0.99", "10.76.0.1"), "out")
    assert ok.verdict == "accept" and bad.verdict == "drop"
    assert "no-ip-spoofing, chain ipv4-ip, priority 1000: out any drop" in bad.text and bad.steps[0].path == (
        "root",
        "ipv4-ip",
    )
    # the matrix: toward the spoofed address, the answer cannot get out; the probe agrees
    c = predict.matrix(spoofed).cell("acme", "globex")
    assert c is not None and c.predicted is False and c.filter_state == "blocked-by-filter"
    assert "no way back" in c.pairs[0].path and "no-ip-spoofing" in c.pairs[0].deciding_rule
    assert c.observed is False and not predict.contradictions(c)
    # from the guest (its only known address is the spoofed one): its own filter drops it
    back = predict.matrix(spoofed).cell("globex", "acme")
    assert back is not None and back.predicted is False and back.filter_state == "blocked-by-filter"
    assert "its own nwfilter" in back.pairs[0].path and "no-ip-spoofing" in back.pairs[0].path
    # the legitimate address: accepted on the way in (allow-incoming-ipv4) and out; probes reach it
    legit = await observe(g, ("10.76.0.2",))
    c2 = predict.matrix(legit).cell("acme", "globex")
    assert c2 is not None and c2.predicted and c2.filter_state == "reach-through-filter"
    assert "allow-incoming-ipv4" in c2.pairs[0].deciding_rule
    assert c2.observed is True and not predict.contradictions(c2)
    back2 = predict.matrix(legit).cell("globex", "acme")
    assert back2 is not None and back2.predicted and back2.filter_state == "reach-through-filter"
    assert "clean-traffic, chain root, priority -650: out mac protocolid=ipv4 accept" in back2.pairs[0].path
    assert ping("10.76.0.2") and not ping("10.76.0.99")  # the same, by plain ping
    # NET-09: the filter is read (not "no filter read"), and it accepts by rules, not by its default
    from probes.checks.base import run_checks
    from probes.model import State, Status

    net09 = [f for f in run_checks(State(hosts=(legit,)), ["NET-09"]) if f.check_id == "NET-09"]
    assert net09 and all(f.status == Status.PASS for f in net09)
    assert not any("no filter read" in f.summary for f in net09)


FILTERS = {
    "tf2-top": "<filter name='tf2-top' chain='root'><filterref filter='tf2-ip'><parameter name='NET' value='10.77.0.0'/></filterref>"
    "<rule action='drop' direction='in' priority='900'><tcp dstportstart='22'/></rule></filter>",
    "tf2-ip": "<filter name='tf2-ip' chain='ipv4' priority='-700'>"
    "<rule action='accept' direction='in' priority='100'><ip srcipaddr='$NET' srcipmask='16' protocol='tcp' dstportstart='80' dstportend='89'/></rule>"
    "<rule action='return' direction='in' priority='200'><ip srcipaddr='$ALLOWED'/></rule>"
    "<rule action='drop' direction='in' priority='300'><ip match='no' srcipaddr='$ALLOWED'/></rule></filter>",
}  # fmt: skip


def test_expansion_variables_lists_and_ports() -> None:
    """Filters written here (not from a daemon): list variables, nested parameters, masks,
    port ranges, match='no', a variable with no value."""
    fs = {}
    for text in FILTERS.values():
        name, chain, prio, entries = parse_filter(text)
        fs[name] = (chain, prio, entries)
    binding = (
        "<filterbinding><owner><name>vm1</name></owner><portdev name='tf2tap'/><mac address='52:54:00:00:00:01'/>"
        "<filterref filter='tf2-top'><parameter name='ALLOWED' value='10.78.0.1'/>"
        "<parameter name='ALLOWED' value='10.78.0.2'/></filterref></filterbinding>"
    )
    dom, dev, mac, top, params = parse_binding(binding)
    assert (dom, dev, top, params["ALLOWED"]) == ("vm1", "tf2tap", "tf2-top", ["10.78.0.1", "10.78.0.2"])
    root, chains = expand(fs, top, params, mac)
    from probes.network.filtermodel import NicFilter

    nf = NicFilter(dom, dev, mac, top, (), root, chains)
    rules = dict(chains)["ipv4"]
    assert [r.action for r in rules] == ["accept", "return", "return", "drop", "drop"]  # one per value
    assert decide_nic(nf, Packet("10.77.5.5", "10.78.9.9", "tcp", 85), "in").verdict == "accept"
    assert (
        decide_nic(nf, Packet("10.78.0.2", "10.78.9.9", "tcp", 22), "in")
        .steps[0]
        .rule.endswith("in tcp dstportstart=22 drop")
    )
    d = decide_nic(nf, Packet("10.79.0.1", "10.78.9.9", "icmp"), "in")
    assert d.verdict == "drop" and "match=no srcipaddr=10.78.0.1" in d.text
    assert decide_nic(nf, Packet("10.78.0.1", "10.78.9.9", "icmp"), "out").verdict == "accept"  # root policy
    # without ALLOWED: undecided, naming the variable
    root2, chains2 = expand(fs, top, {}, mac)
    u = decide_nic(NicFilter(dom, dev, mac, top, (), root2, chains2), Packet("10.79.0.1", "10.78.9.9"), "in")
    assert u.verdict == "undecided" and "$ALLOWED has no value" in u.text
