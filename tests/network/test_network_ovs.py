"""Open vSwitch: tags, trunks and ofports on a private userspace OVS with real namespaces."""

from __future__ import annotations

import asyncio

from probes.checks.base import run_checks
from probes.hosts.local import LocalHost
from probes.model import State, Status
from probes.network import predict, prober
from probes.network.ovs import build, parse_table
from probes.network.topology import TopologyProbe
from tests.fixtures.netlab import sh
from tests.fixtures.ovs import BRIDGE, OvsLab, ovslab  # noqa: F401
from tests.helpers import needs_root, needs_tool

pytestmark = [needs_root, needs_tool("ovs-vsctl", "ovsdb-server", "ovs-vswitchd", "ovsdb-tool")]


async def observe(lab: OvsLab, probe: bool = True):
    topo = await TopologyProbe(ovs_db=lab.db).collect(LocalHost(lab.host, libvirt_uri=None))
    hs = lab.state(topo)
    if not probe:  # the topology alone: no traffic
        return hs
    # userspace switching on a loaded machine: a generous timeout per probe
    return lab.state(topo, await prober.probe_matrix(hs, timeout=2.0))


def failing(hs, cid):
    return [f for f in run_checks(State(hosts=(hs,)), (cid,)) if f.status == Status.FAIL]


async def test_tags_isolate_trunk_port_flagged_and_tag_change_leaks(ovslab: OvsLab) -> None:
    hs = await observe(ovslab)
    topo = hs.topology
    assert topo.ovs_state == "ok"
    br = next(b for b in topo.ovs if b.name == BRIDGE)
    assert br.datapath_type == "netdev"
    ports = {p.name: p for p in br.ports}
    assert ports["tsf-o-pa1"].tag == 100 and ports["tsf-o-pg1"].tag == 200
    assert ports["tsf-o-pi1"].trunks_all and all(
        p.attached for n, p in ports.items() if n.startswith("tsf-o-p")
    )

    m = predict.matrix(hs)
    assert m.cell("acme", "acme").observed is True and m.cell("acme", "acme").predicted is True
    assert m.cell("acme", "globex").observed is False and m.cell("acme", "globex").predicted is False
    assert m.cell("globex", "acme").status == "correct"
    # the trunk-all port is exposed to every VLAN (by tagging) though untagged pings fail
    assert m.cell("initech", "acme").exposed and m.cell("initech", "acme").observed is False
    net03 = failing(hs, "NET-03")
    assert len(net03) == 1 and "tsf-o-pi1" in net03[0].summary and net03[0].tenants == ("initech",)
    assert "tsf-o-pi1" in net03[0].fix
    assert not failing(hs, "NET-05") and not failing(hs, "NET-02")

    await asyncio.to_thread(ovslab.set_tag, "tsf-o-pg1", 100)
    # The first run left ARP resolutions from tsf-o-g1 in progress; a probe queued on them now
    # would fail with them ("host unreachable"), as ping would. Let the kernel finish them.
    for _ in range(100):
        out = await asyncio.to_thread(sh, "ip", "-n", "tsf-o-g1", "neigh", "show")
        if "INCOMPLETE" not in out.stdout:
            break
        await asyncio.sleep(0.1)
    hs = await observe(ovslab)
    cell = predict.matrix(hs).cell("globex", "acme")
    assert cell.observed is True and cell.predicted is True and cell.status == "wrong"
    assert any("VLAN 100" in p.path for p in cell.pairs if p.reachable)
    net05 = failing(hs, "NET-05")
    assert {f.tenants for f in net05} == {("acme", "globex")}
    net02 = failing(hs, "NET-02")
    assert any("VLAN 100" in f.summary for f in net02)


async def test_db_row_without_ofport_is_not_attached(ovslab: OvsLab) -> None:
    # a port whose interface does not exist: the row is in the db, the switch has no ofport
    await asyncio.to_thread(ovslab.vsctl, "add-port", BRIDGE, "tsf-o-ghost", "tag=100")
    hs = await observe(ovslab, probe=False)
    assert hs.reach is None  # nothing was probed
    ghost = next(p for b in hs.topology.ovs for p in b.ports if p.name == "tsf-o-ghost")
    assert not ghost.attached
    text = await asyncio.to_thread(ovslab.vsctl, "--format=json", "list", "Interface")
    rows = parse_table(text, "Interface")
    assert any(r["name"] == "tsf-o-ghost" for r in rows)


def test_ovsdb_json_values() -> None:
    bridge = {
        "_uuid": ["uuid", "b1"],
        "name": "br0",
        "datapath_type": "netdev",
        "ports": ["set", [["uuid", "p1"], ["uuid", "p2"]]],
    }
    ports = [
        {
            "_uuid": ["uuid", "p1"],
            "name": "a",
            "tag": 100,
            "trunks": ["set", []],
            "vlan_mode": ["set", []],
            "interfaces": ["uuid", "i1"],
        },
        {
            "_uuid": ["uuid", "p2"],
            "name": "b",
            "tag": ["set", []],
            "trunks": ["set", [10, 20]],
            "vlan_mode": "trunk",
            "interfaces": ["uuid", "i2"],
        },
    ]
    ifaces = [
        {
            "_uuid": ["uuid", "i1"],
            "name": "a",
            "type": "",
            "ofport": 3,
            "external_ids": ["map", [["vm-id", "u-1"], ["iface-id", "x"]]],
            "mac_in_use": "aa:bb",
            "error": ["set", []],
        },
        {
            "_uuid": ["uuid", "i2"],
            "name": "b",
            "type": "",
            "ofport": ["set", []],
            "external_ids": ["map", []],
            "mac_in_use": ["set", []],
            "error": "could not open",
        },
    ]
    (br,) = build([bridge], ports, ifaces)
    a, b = br.ports
    assert (a.tag, a.trunks, a.vlan_mode, a.attached, a.trunks_all) == (100, (), "", True, False)
    assert a.interfaces[0].external_ids == (("iface-id", "x"), ("vm-id", "u-1"))
    assert (b.tag, b.trunks, b.vlan_mode, b.attached, b.trunks_all) == (None, (10, 20), "trunk", False, False)
    assert b.interfaces[0].error == "could not open"
