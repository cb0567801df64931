"""VM pairs that share no segment, walked through the router on the source's segment: the
router's filters decide the echo and its answer, where before every such pair was "no shared
segment" (blocked, whatever the router does); and VM pairs on one bridge whose filters drop
the echo are tried on the TCP ports the policy opens, as namespace sources are.

VM-like endpoints as in test_filters_vmpairs.py (a second and third booted guest would cost
minutes, and a guest cannot be pinged from without its agent): namespaces tf4-va/vb/vc whose
host-side veths on the test bridges tf4-br1/tf4-br2 are the `target dev` of VM workloads, each
with a default route via the router namespace tf4-r (10.84.1.1 / 10.84.2.1, forwarding on).
Real parts: the bridges, the router, real nftables rules in the router dropping what goes to
10.84.2.2 but TCP port 8080, a real bridge-family rule on tf4-br2 dropping tf4-vb -> tf4-vc but
TCP port 8081, and real pings and real TCP connections from inside the sources confirming each
prediction. Everything is
removed by name afterwards.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from probes.hosts.local import LocalHost
from probes.inventory.domxml import parse_domain
from probes.model import Host, HostState, Placement, Workload, WorkloadKind
from probes.network import predict
from probes.network.model import AllowRule, Policy
from probes.network.topology import TopologyProbe
from tests.helpers import needs_root, needs_tool

pytestmark = [needs_root, needs_tool("ip", "nft", "ping")]

ROUTER = "tf4-r"
VMS = {  # name: (address, bridge, gateway, tenant)
    "tf4-va": ("10.84.1.2", "tf4-br1", "10.84.1.1", "acme"),
    "tf4-vb": ("10.84.2.2", "tf4-br2", "10.84.2.1", "globex"),
    "tf4-vc": ("10.84.2.3", "tf4-br2", "10.84.2.1", "initech"),
    "tf4-vd": ("10.84.2.4", "tf4-br2", "10.84.2.1", "umbrella"),
}
NFT = """table inet tf4 {
  chain fw {
    type filter hook forward priority 0; policy accept;
    ip daddr 10.84.2.2 tcp dport 8080 accept
    ip daddr 10.84.2.2 drop
  }
}
"""


def _run(*argv: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, input=input, timeout=60)


BRIDGE_NFT = """table bridge tf4b {
  chain fw {
    type filter hook forward priority 0; policy accept;
    iifname "tf4-vb-h" oifname "tf4-vc-h" tcp dport 8081 accept
    iifname "tf4-vb-h" oifname "tf4-vc-h" ether type ip drop
    iifname "tf4-vd-h" oifname "tf4-vc-h" tcp dport 8081 accept
    iifname "tf4-vd-h" oifname "tf4-vc-h" drop
  }
}
"""


def _cleanup() -> None:
    _run("nft", "delete", "table", "bridge", "tf4b", check=False)
    for name in (*VMS, ROUTER):
        if os.path.exists(f"/run/netns/{name}"):
            _run("ip", "netns", "del", name, check=False)
    for link in (
        "tf4-va-h",
        "tf4-vb-h",
        "tf4-vc-h",
        "tf4-vd-h",
        "tf4-r1-h",
        "tf4-r2-h",
        "tf4-br1",
        "tf4-br2",
    ):
        _run("ip", "link", "del", link, check=False)


@pytest.fixture
def lab() -> Iterator[None]:
    _cleanup()
    try:
        for br in ("tf4-br1", "tf4-br2"):
            _run("ip", "link", "add", br, "type", "bridge")
            _run("ip", "link", "set", br, "up")
        _run("ip", "netns", "add", ROUTER)
        _run("ip", "netns", "exec", ROUTER, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for leg, br, cidr in (("r1", "tf4-br1", "10.84.1.1/24"), ("r2", "tf4-br2", "10.84.2.1/24")):
            _run("ip", "link", "add", f"tf4-{leg}-h", "type", "veth", "peer", "name", leg, "netns", ROUTER)
            _run("ip", "-n", ROUTER, "addr", "add", cidr, "dev", leg)
            _run("ip", "-n", ROUTER, "link", "set", leg, "up")
            _run("ip", "link", "set", f"tf4-{leg}-h", "master", br, "up")
        for i, (name, (ip, br, gw, _)) in enumerate(VMS.items()):
            _run("ip", "netns", "add", name)
            _run("ip", "link", "add", f"{name}-h", "type", "veth", "peer", "name", "eth0", "netns", name)
            _run("ip", "-n", name, "link", "set", "eth0", "address", f"52:54:00:f4:04:0{i + 2}")
            _run("ip", "-n", name, "addr", "add", f"{ip}/24", "dev", "eth0")
            _run("ip", "-n", name, "link", "set", "eth0", "up")
            _run("ip", "-n", name, "route", "add", "default", "via", gw)
            _run("ip", "link", "set", f"{name}-h", "master", br, "up")
        _run("ip", "netns", "exec", ROUTER, "nft", "-f", "-", input=NFT)
        _run("nft", "-f", "-", input=BRIDGE_NFT)
        yield
    finally:
        _cleanup()


def _vm(name: str, bridge: str, tenant: str, i: int) -> Workload:
    xml = (
        f"<domain type='qemu'><name>{name}</name><uuid>d2b1e5a0-3f00-4c1e-9a7b-0000000014{i:02d}</uuid>"
        f"<devices><interface type='bridge'><mac address='52:54:00:f4:04:0{i + 2}'/>"
        f"<source bridge='{bridge}'/><target dev='{name}-h'/></interface></devices></domain>"
    )
    return Workload(
        WorkloadKind.VM, name, "tf4host", uuid=f"tf4-{i}", state="running", tenant=tenant,
        placed_by=Placement.CONFIG, vm=parse_domain(xml).vm,
    )  # fmt: skip


def _ping(src: str, ip: str) -> bool:
    return _run("ip", "netns", "exec", src, "ping", "-c", "1", "-W", "1", ip, check=False).returncode == 0


def _connects(src: str, dst_ns: str, ip: str, port: int) -> bool:
    """A real TCP connection from namespace `src` to a listener in `dst_ns` (ended by PID)."""
    serve = (
        "import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
        f"s.bind(('{ip}', {port})); s.listen(); s.settimeout(5); print('up', flush=True); s.accept()[0].close()"
    )
    server = subprocess.Popen(
        ["ip", "netns", "exec", dst_ns, "python3", "-c", serve], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "up"
        connect = f"import socket; socket.create_connection(('{ip}', {port}), timeout=2).close()"
        return _run("ip", "netns", "exec", src, "python3", "-c", connect, check=False).returncode == 0
    finally:
        server.kill()
        server.wait()


async def test_vm_pairs_across_a_router_are_walked_through_its_filters(lab) -> None:
    policy = Policy(
        allow=(
            AllowRule("acme", "globex", ports=(8080,), both_ways=False),
            AllowRule("globex", "initech", ports=(8081,), both_ways=False),
            AllowRule("umbrella", "initech", ports=(8081,), both_ways=False),
        ),
        static_addresses=tuple((n, (v[0],)) for n, v in VMS.items()),
    )
    probe = TopologyProbe(policy=policy)
    try:
        topo = await probe.collect(LocalHost("tf4host", libvirt_uri=None))
    finally:
        await probe.close()
    wls = tuple(_vm(n, v[1], v[3], i) for i, (n, v) in enumerate(VMS.items()))
    m = predict.matrix(HostState(Host("tf4host"), workloads=wls, topology=topo))

    def pair(a: str, b: str) -> predict.PairPrediction:
        c = m.cell(a, b)
        assert c is not None and c.pairs
        return c.pairs[0]

    # acme -> globex: through the router, whose rule drops what goes to 10.84.2.2 (named), but
    # TCP 8080 (the port the policy opens): tried too, and it passes
    ab = pair("acme", "globex")
    assert ab.reachable and ab.method == "tcp:8080", ab.path
    assert ab.methods == (("icmp", False), ("tcp:8080", True)) and ab.filter_state == "reach-through-filter"
    assert "tcp dport 8080 accept" in ab.deciding_rule and ab.path.startswith("tcp:8080: via tf4-r")
    assert not _ping("tf4-va", "10.84.2.2") and _connects("tf4-va", "tf4-vb", "10.84.2.2", 8080)
    # acme -> initech: the router forwards it and its answer (the chain's policy accepts)
    ac = pair("acme", "initech")
    assert ac.reachable and ac.hops and ac.hops[0].startswith("tf4-r") and ac.filter_state, ac.path
    assert _ping("tf4-va", "10.84.2.3")
    # globex -> acme: the echo passes, acme's answer to 10.84.2.2 meets the rule
    ba = pair("globex", "acme")
    assert not ba.reachable and "no way back" in ba.path and "10.84.2.2 drop" in ba.deciding_rule, ba.path
    assert not _ping("tf4-vb", "10.84.1.2")
    assert pair("initech", "acme").reachable and _ping("tf4-vc", "10.84.1.2")
    # globex -> initech share tf4-br2: a bridge-family rule drops all but TCP 8081 between their
    # ports: the pair is tried on the policy's port too, as namespace sources are
    bc = pair("globex", "initech")
    assert bc.reachable and not bc.hops and bc.method == "tcp:8081", bc.path
    assert bc.methods == (("icmp", False), ("tcp:8081", True)) and "tcp dport 8081 accept" in bc.deciding_rule
    assert not _ping("tf4-vb", "10.84.2.3") and _connects("tf4-vb", "tf4-vc", "10.84.2.3", 8081)
    # umbrella -> initech: TCP 8081 is accepted, but the rule after it drops every other frame
    # between their ports, the ARP request too: nothing reaches (ARP is decided on the bridge)
    dc = pair("umbrella", "initech")
    assert not dc.reachable and "its ARP request blocked" in dc.path, dc.path
    assert "iifname tf4-vd-h oifname tf4-vc-h drop" in dc.deciding_rule
    assert not _connects("tf4-vd", "tf4-vc", "10.84.2.3", 8081)
    cb = pair("initech", "globex")  # globex's answers meet the rule (no port opened this way)
    assert not cb.reachable and "no way back" in cb.path, cb.path
    assert not _ping("tf4-vc", "10.84.2.2")
