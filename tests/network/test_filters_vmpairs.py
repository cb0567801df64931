"""VM-to-VM pairs through the filters: a VM source's concrete packet on the bridge it shares
with the destination, through the bridge family's (and br_netfilter's) rules and the
destination's libvirt nwfilter, and its answer out of that nwfilter.

VM-like endpoints (a second and third booted guest would cost minutes here, and a guest
cannot be pinged from without its agent): three namespaces tf3-va/vb/vc, each with a veth
whose host side (tf3-va-h, ...) is on the test bridge tf3-br and is named as the NIC's
`target dev` of a VM workload (what endpoints() sees of a real VM's tap). Real parts: a real
nftables bridge-family rule (table bridge tf3) dropping tf3-va-h -> tf3-vb-h, a real nwfilter
binding made by the real libvirtd on tf3-vc-h (clean-traffic with IP=10.79.4.99, not the
address the endpoint uses: its answers are dropped as spoofed), and real pings from inside the
source's namespace confirming each prediction. Everything is removed by name afterwards.
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
from probes.network.model import Policy
from probes.network.topology import TopologyProbe
from tests.fixtures.libvirtd import libvirtd  # noqa: F401

BR = "tf3-br"
VMS = {
    "tf3-va": ("10.79.4.2", "acme"),
    "tf3-vb": ("10.79.4.3", "globex"),
    "tf3-vc": ("10.79.4.4", "initech"),
    "tf3-vd": ("10.79.4.5", "umbrella"),
}
NFT = """table bridge tf3 {
  chain fw3 {
    type filter hook forward priority 0; policy accept;
    iifname "tf3-va-h" oifname "tf3-vb-h" drop
  }
}
"""
BINDING = """<filterbinding>
  <owner><name>{name}</name><uuid>d2b1e5a0-3f00-4c1e-9a7b-00000000f3f{i}</uuid></owner>
  <portdev name='{name}-h'/>
  <mac address='52:54:00:f3:04:0{i}'/>
  <filterref filter='clean-traffic'><parameter name='IP' value='{ip}'/></filterref>
</filterbinding>
"""
BOUND = {"tf3-vc": ("10.79.4.99", 4), "tf3-vd": ("10.79.4.5", 5)}  # vc's IP is not the one it uses


def _run(*argv: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, input=input, timeout=60)


def _cleanup() -> None:
    for name in BOUND:
        _run("virsh", "-c", "qemu:///system", "nwfilter-binding-delete", f"{name}-h", check=False)
    _run("nft", "delete", "table", "bridge", "tf3", check=False)
    for name in VMS:
        if os.path.exists(f"/run/netns/{name}"):
            _run("ip", "netns", "del", name, check=False)
        _run("ip", "link", "del", f"{name}-h", check=False)
    _run("ip", "link", "del", BR, check=False)


@pytest.fixture
def lab(libvirtd: str, tmp_path) -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("needs root (namespaces, bridge, nftables, nwfilter binding)")
    _cleanup()
    try:
        _run("ip", "link", "add", BR, "type", "bridge")
        _run("ip", "link", "set", BR, "up")
        for i, (name, (ip, _)) in enumerate(VMS.items()):
            _run("ip", "netns", "add", name)
            _run("ip", "link", "add", f"{name}-h", "type", "veth", "peer", "name", "eth0", "netns", name)
            _run("ip", "-n", name, "link", "set", "eth0", "address", f"52:54:00:f3:04:0{i + 2}")
            _run("ip", "-n", name, "addr", "add", f"{ip}/24", "dev", "eth0")
            _run("ip", "-n", name, "link", "set", "eth0", "up")
            _run("ip", "link", "set", f"{name}-h", "master", BR, "up")
        _run("nft", "-f", "-", input=NFT)
        for name, (ip, i) in BOUND.items():
            xml = tmp_path / f"{name}.xml"
            xml.write_text(BINDING.format(name=name, ip=ip, i=i))
            _run("virsh", "-c", "qemu:///system", "nwfilter-binding-create", str(xml))
        yield
    finally:
        _cleanup()


def _vm(name: str, tenant: str, i: int) -> Workload:
    xml = (
        f"<domain type='qemu'><name>{name}</name><uuid>d2b1e5a0-3f00-4c1e-9a7b-0000000004{i:02d}</uuid>"
        f"<devices><interface type='bridge'><mac address='52:54:00:f3:04:0{i + 2}'/>"
        f"<source bridge='{BR}'/><target dev='{name}-h'/></interface></devices></domain>"
    )
    vm = parse_domain(xml).vm
    return Workload(
        WorkloadKind.VM, name, "tf3host", uuid=f"tf3-{i}", state="running", tenant=tenant,
        placed_by=Placement.CONFIG, vm=vm,
    )  # fmt: skip


def _ping(src: str, ip: str) -> bool:
    return _run("ip", "netns", "exec", src, "ping", "-c", "1", "-W", "1", ip, check=False).returncode == 0


@pytest.mark.timeout(300)
async def test_vm_pairs_through_bridge_filters_and_nwfilter_probes_agree(lab) -> None:
    policy = Policy(static_addresses=tuple((n, (ip,)) for n, (ip, _) in VMS.items()))
    probe = TopologyProbe(policy=policy)
    try:
        topo = await probe.collect(LocalHost("tf3host", libvirt_uri="qemu:///system"))
    finally:
        await probe.close()
    wls = tuple(_vm(n, t, i) for i, (n, (_, t)) in enumerate(VMS.items()))
    hs = HostState(Host("tf3host"), workloads=wls, topology=topo)
    m = predict.matrix(hs)

    def cell(a: str, b: str) -> predict.Cell:
        c = m.cell(a, b)
        assert c is not None
        return c

    # acme -> globex: the bridge-family rule drops it, named; a real ping agrees
    ab = cell("acme", "globex")
    assert ab.predicted is False and ab.filter_state == "blocked-by-filter", ab.pairs[0].path
    assert "iifname tf3-va-h oifname tf3-vb-h drop" in ab.pairs[0].deciding_rule
    assert "nft bridge tf3 fw3" in ab.pairs[0].deciding_rule
    assert not _ping("tf3-va", "10.79.4.3")
    # globex -> acme: the echo would pass, but acme's answers (tf3-va-h -> tf3-vb-h) meet the
    # same rule, its ARP reply first; a real ping agrees
    ba = cell("globex", "acme")
    assert ba.predicted is False and ba.filter_state == "blocked-by-filter", ba.pairs[0].path
    assert (
        "the ARP reply blocked" in ba.pairs[0].path
        and "tf3-va-h oifname tf3-vb-h drop" in ba.pairs[0].deciding_rule
    )
    assert not _ping("tf3-vb", "10.79.4.2")
    # acme -> initech: in through initech's nwfilter, but its answer (from an address the
    # filter does not give it) is dropped by no-ip-spoofing; a real ping agrees
    ac = cell("acme", "initech")
    assert ac.predicted is False and ac.filter_state == "blocked-by-filter", ac.pairs[0].path
    assert "no way back" in ac.pairs[0].path and "no-ip-spoofing" in ac.pairs[0].deciding_rule
    assert not _ping("tf3-va", "10.79.4.4")
    # initech -> acme: its own nwfilter drops what it sends (the spoofed source)
    ca = cell("initech", "acme")
    assert ca.predicted is False and "its own nwfilter" in ca.pairs[0].path
    assert not _ping("tf3-vc", "10.79.4.2")
    # acme -> umbrella: the bridge chain accepts (its policy), umbrella's clean-traffic lets
    # the echo in (allow-incoming-ipv4) and its answer out (its own address); a real ping reaches
    ad = cell("acme", "umbrella")
    assert ad.predicted is True and ad.filter_state == "reach-through-filter", ad.pairs[0].path
    assert (
        "allow-incoming-ipv4" in ad.pairs[0].deciding_rule
        and "nft bridge tf3 fw3" in ad.pairs[0].deciding_rule
    )
    assert _ping("tf3-va", "10.79.4.5")
