"""VMs in the reachability matrix, against real booted guests (libvirtd + QEMU/TCG, root).

One module-scoped lab (guests take CPU under TCG: four guests serve every case):

    tsv-bra (acme):   tsv-a1 netns 10.74.1.1/16   guest `acme`  10.74.1.10/16 (real agent)
                      guest `leak` 10.74.1.20/16: tenant globex plugged into acme's bridge
                      (its agent hangs: opens the channel, never answers)
    tsv-brg (globex): tsv-g1 netns 10.74.2.1/16   guest `glx`   10.74.2.10/16 and 10.75.2.10/24,
                      default route via 10.75.2.254 (its "agent" writes garbage)
                      guest `fld` 10.74.2.30/16 (a real agent whose commands print 4 MB)

Everything is named tsv-* (guests tsv-g-*, probe ports tsp-*) and removed by name.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from probes.checks.base import run_checks
from probes.hosts.local import LocalHost
from probes.inventory.domxml import parse_domain
from probes.model import Host, HostState, NetnsDetails, Placement, State, Status, Workload, WorkloadKind
from probes.network import predict, probeport, prober, vmaddr
from probes.network.model import Policy
from probes.network.topology import TopologyProbe
from tests.fixtures.guest import Guest, GuestSpec, guest_factory, leftover_domains, skip_reason
from tests.fixtures.libvirtd import libvirtd  # noqa: F401
from tests.fixtures.netlab import cleanup, sh, tsf_names

REASON = skip_reason()
# booting TCG guests on a loaded 2-core machine can take minutes: the bound covers it
pytestmark = [pytest.mark.skipif(bool(REASON), reason=REASON or ""), pytest.mark.timeout(600)]
HOST = "vmhost"
LOCAL = LocalHost(HOST, libvirt_uri="qemu:///system")
T = 1.0
NET = tuple(f"NET-0{i}" for i in range(1, 9))


@dataclass
class VmLab:
    guests: dict[str, Guest]
    tenants: dict[str, str]  # guest tag or netns -> tenant
    run_dir: Path
    ovs: object = None

    def workloads(self) -> tuple[Workload, ...]:
        import libvirt

        conn = libvirt.openReadOnly("qemu:///system")
        try:
            out = []
            for tag, g in self.guests.items():
                d = parse_domain(conn.lookupByName(g.name).XMLDesc(0))
                out.append(
                    Workload(
                        WorkloadKind.VM,
                        g.name,
                        HOST,
                        uuid=g.uuid,
                        state="running",
                        tenant=self.tenants[tag],
                        placed_by=Placement.CONFIG,
                        vm=d.vm,
                    )
                )
        finally:
            conn.close()
        for ns in ("tsv-a1", "tsv-g1", "tsv-oa", "tsv-og"):
            if os.path.exists(f"/run/netns/{ns}"):
                out.append(
                    Workload(
                        WorkloadKind.NETNS,
                        ns,
                        HOST,
                        tenant=self.tenants[ns],
                        placed_by=Placement.CONFIG,
                        netns=NetnsDetails(path=f"/run/netns/{ns}"),
                    )
                )
        return tuple(out)

    def key(self, tag: str) -> str:
        g = self.guests.get(tag)
        return f"{HOST}/vm/{g.name}" if g else f"{HOST}/netns/{tag}"

    async def observe(
        self, policy: Policy | None = None, ovs_db: str | None = None, uri: str | None = None
    ) -> HostState:
        topo = await TopologyProbe(policy=policy or Policy(), ovs_db=ovs_db).collect(
            LocalHost(HOST, libvirt_uri=uri)  # with a URI: libvirt's networks and leases too
        )
        return HostState(Host(HOST), workloads=self.workloads(), topology=topo)


def _ns(name: str, bridge: str, addr: str) -> None:
    host_if = "tsv-h-" + name[4:]
    sh("ip", "netns", "add", name)
    sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", name)
    sh("ip", "link", "set", host_if, "master", bridge, "up")
    sh("ip", "-n", name, "addr", "add", addr, "dev", "eth0")
    sh("ip", "-n", name, "link", "set", "eth0", "up")
    sh("ip", "-n", name, "link", "set", "lo", "up")


def _cleanup_all(run_dir: Path | None = None) -> None:
    cleanup("tsv-")
    if run_dir is not None:  # probe ports this module's runs recorded (never another run's)
        probeport.sweep(run_dir)


_LOCK = "/run/tsv-tests.lock"  # one session at a time uses the tsv-* names (fixed bridge names)


@pytest.fixture(scope="module")
def vmlab(libvirtd: str) -> Iterator[VmLab]:
    import libvirt

    from tests.fixtures.locks import wait_exclusive

    lock = open(_LOCK, "a+")
    # another session (the lead's full run) may be using the names: wait for it
    if not wait_exclusive(lock, 600, 1):
        pytest.fail(f"another test session held {_LOCK} for 10 minutes")
    conn = libvirt.open(libvirtd)
    for name in leftover_domains():  # a killed session's guests
        try:
            conn.lookupByName(name).destroy()
        except libvirt.libvirtError:
            pass
    conn.close()
    _cleanup_all()
    run_dir = Path(tempfile.mkdtemp(prefix="tsv-run-"))
    try:
        for br in ("tsv-bra", "tsv-brg"):
            sh("ip", "link", "add", br, "type", "bridge")
            sh("ip", "link", "set", br, "up")
        _ns("tsv-a1", "tsv-bra", "10.74.1.1/16")
        _ns("tsv-g1", "tsv-brg", "10.74.2.1/16")
        with guest_factory(libvirtd) as f:
            gs = f.boot(
                GuestSpec("acme", bridge="tsv-bra", address="10.74.1.10/16", agent="real"),
                GuestSpec("leak", bridge="tsv-bra", address="10.74.1.20/16", agent="hang"),
                GuestSpec(
                    "glx",
                    bridge="tsv-brg",
                    address="10.74.2.10/16",
                    address2="10.75.2.10/24",
                    gateway="10.75.2.254",
                    agent="garbage",
                ),
                GuestSpec("fld", bridge="tsv-brg", address="10.74.2.30/16", agent="flood"),
                timeout=400,
            )
            tenants = {
                "acme": "acme",
                "leak": "globex",
                "glx": "globex",
                "fld": "globex",
                "tsv-a1": "acme",
                "tsv-g1": "globex",
            }
            tenants |= {"tsv-oa": "acme", "tsv-og": "globex"}
            yield VmLab({g.spec.tag: g for g in gs}, tenants, run_dir)
    finally:
        _cleanup_all(run_dir)
        subprocess.run(["rm", "-rf", str(run_dir)], check=False)
        lock.close()


def fails(hs: HostState, cid: str, status: Status = Status.FAIL):
    return [f for f in run_checks(State(hosts=(hs,)), NET) if f.check_id == cid and f.status == status]


def static(lab: VmLab) -> Policy:
    """Addresses from the config for guests nothing has talked to yet (the static source)."""
    return Policy(static_addresses=tuple((g.name, (g.ip,)) for g in lab.guests.values()))


def leftovers() -> list[str]:
    nss = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    links = os.listdir("/sys/class/net")
    return [n for n in nss + links if n.startswith("tsp")]


# ---------------------------------------------------------------- addresses


async def test_vm_addresses_say_their_source_or_why_unknown(vmlab: VmLab) -> None:
    hs = await vmlab.observe()
    addrs = vmaddr.vm_addresses(hs)
    leak = addrs[vmlab.key("leak")]
    assert len(leak) == 1 and leak[0].mac == vmlab.guests["leak"].mac
    if not leak[0].addresses:  # nothing has talked to it yet on this host
        assert "agent not asked" in leak[0].unknown_why
        assert "no lease" in leak[0].unknown_why and "MAC not in any neighbour table" in leak[0].unknown_why
    # a namespace talks to the guest: its neighbour table now knows the MAC
    sh("ip", "netns", "exec", "tsv-a1", "ping", "-c1", "-W2", "10.74.1.20")
    hs = await vmlab.observe()
    leak = vmaddr.vm_addresses(hs)[vmlab.key("leak")][0]
    assert [(a.address, a.source) for a in leak.addresses] == [("10.74.1.20", "neighbour")]
    assert "tsv-a1" in leak.addresses[0].detail and "eth0" in leak.addresses[0].detail
    # the config is the last source
    hs = await vmlab.observe(static(vmlab))
    glx = vmaddr.vm_addresses(hs)[vmlab.key("glx")][0]
    assert glx.addresses and glx.addresses[0].source in ("config", "neighbour")
    assert any("10.74.2.10" in line for line in vmaddr.describe([glx]))


# ---------------------------------------------------------------- separate bridges


async def test_separate_bridges_blocked_for_the_right_reason(vmlab: VmLab) -> None:
    hs = await vmlab.observe(static(vmlab))
    rm = await prober.probe_host(LOCAL, hs, timeout=T, sources=("namespace",), ports=(8080,))
    hs = replace(hs, reach=rm)
    own = [r for r in rm.results if r.src == vmlab.key("tsv-a1") and r.dst == vmlab.key("acme")]
    assert {(r.method, r.outcome) for r in own} == {("icmp", "reply"), ("tcp:8080", "reply")}
    assert all(r.via == "namespace" for r in own)
    cross = [r for r in rm.results if r.src == vmlab.key("tsv-a1") and r.dst == vmlab.key("glx")]
    assert cross and all(r.outcome == "no-arp" for r in cross if r.address == "10.74.2.10")
    assert all(
        "L2 separated" in r.detail or "unreachable" in r.detail for r in cross if r.address == "10.74.2.10"
    )
    m = predict.matrix(hs)
    cell = m.cell("globex", "acme")
    # the prediction names the separation: nobody on the globex bridge has acme's VM address
    pred = [p for p in cell.pairs if p.dst == vmlab.key("acme") and p.src == vmlab.key("tsv-g1")]
    assert pred and not any(p.reachable for p in pred)
    assert any("tsv-brg" in p.path and "10.74.1.10" in p.path for p in pred), [p.path for p in pred]
    # ... while the globex guest plugged into acme's bridge is predicted to reach it
    leak = [p for p in cell.pairs if p.dst == vmlab.key("acme") and p.src == vmlab.key("leak")]
    assert leak and leak[0].reachable and "tsv-bra" in leak[0].path


# ---------------------------------------------------------------- tenant B's VM on tenant A's bridge


async def test_vm_on_another_tenants_bridge_is_net05_from_segment_and_guest(vmlab: VmLab) -> None:
    hs = await vmlab.observe(static(vmlab))
    rm = await prober.probe_host(
        LOCAL,
        hs,
        timeout=T,
        sources=("namespace", "segment", "guest"),
        ports=(8080,),
        run_dir=vmlab.run_dir,
        agent_timeout=15.0,  # generous: TCG guests on a loaded machine answer slowly
    )
    assert not leftovers(), leftovers()
    assert rm.sources == ("namespace", "segment", "guest")
    assert any("tsv-bra" in c and "acme" in c for c in rm.changes)
    hs = replace(hs, reach=rm)
    cell = predict.matrix(hs).cell("acme", "globex")
    assert cell.observed and cell.status == "wrong"
    vias = {r.via for r in cell.violations}
    assert {"namespace", "segment", "guest"} <= vias, vias
    seg = [r for r in cell.violations if r.via == "segment" and r.dst == vmlab.key("leak")]
    assert seg and seg[0].src == vmlab.key("acme") and "from segment" in seg[0].detail
    guest = [r for r in cell.violations if r.via == "guest" and r.address == "10.74.1.20"]
    assert guest and guest[0].outcome == "reply" and guest[0].rtt_ms is not None
    assert "guest-exec ping" in guest[0].detail
    # the agent's own view of the acme guest's address is now the best source
    nic = vmaddr.vm_addresses(hs)[vmlab.key("acme")][0]
    assert nic.addresses[0].source == "agent" and nic.addresses[0].prefix == 16
    net05 = fails(hs, "NET-05")
    mine = [f for f in net05 if f.tenants == ("acme", "globex")]
    assert mine, [f.summary for f in net05]
    wheres = [e.where for e in mine[0].evidence]
    assert any(w.startswith("icmp from segment") for w in wheres), wheres
    assert any(w.startswith("icmp from guest") for w in wheres), wheres
    # the guests whose agent is broken: the cell says what happened, no false "blocked"
    hang = [r for r in rm.results if r.src == vmlab.key("leak") and r.via == "guest"]
    assert hang and all(r.outcome == "error" and "from guest: agent" in r.detail for r in hang)
    assert all("did not answer" in r.detail or "not connected" in r.detail for r in hang)
    garbage = [r for r in rm.results if r.src == vmlab.key("glx") and r.via == "guest"]
    assert garbage and all(r.outcome == "error" and "garbage" in r.detail for r in garbage)
    # a guest whose commands flood 4 MB of output: the reply is refused (over MAX_REPLY), or
    # libvirt drops the agent; either way an error that says so, never a "blocked"
    flood = [r for r in rm.results if r.src == vmlab.key("fld") and r.via == "guest"]
    details = {r.detail for r in flood}
    assert flood and all(r.outcome == "error" and r.detail.startswith("from guest: ") for r in flood)
    assert any("flooded" in d or "disappeared" in d for d in details), details
    assert any(vmlab.guests["leak"].name in e for e in rm.errors)


# ---------------------------------------------------------------- a routed leak


async def test_routed_leak_through_a_forwarding_namespace_shows_hops(vmlab: VmLab) -> None:
    sh("ip", "netns", "add", "tsv-gw")
    try:
        for leg, br, addr in (
            ("tsv-h-gwa", "tsv-bra", "10.75.1.254/24"),
            ("tsv-h-gwg", "tsv-brg", "10.75.2.254/24"),
        ):
            sh("ip", "link", "add", leg, "type", "veth", "peer", "name", leg + "x", "netns", "tsv-gw")
            sh("ip", "link", "set", leg, "master", br, "up")
            sh("ip", "-n", "tsv-gw", "addr", "add", addr, "dev", leg + "x")
            sh("ip", "-n", "tsv-gw", "link", "set", leg + "x", "up")
        sh("ip", "netns", "exec", "tsv-gw", "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh("ip", "-n", "tsv-a1", "addr", "add", "10.75.1.1/24", "dev", "eth0")
        sh("ip", "-n", "tsv-a1", "route", "add", "10.75.2.0/24", "via", "10.75.1.254")
        pol = Policy(static_addresses=((vmlab.guests["glx"].name, ("10.75.2.10",)),))
        hs = await vmlab.observe(pol)
        hs = replace(hs, reach=await prober.probe_host(LOCAL, hs, timeout=T))
        leak = [r for r in hs.reach.results if r.src == vmlab.key("tsv-a1") and r.address == "10.75.2.10"]
        assert len(leak) == 1 and leak[0].outcome == "reply"
        assert [h.where for h in leak[0].hops] == ["tsv-gw/tsv-h-gwax"] and leak[0].hops[
            0
        ].address == "10.75.1.254"
        cell = predict.matrix(hs).cell("acme", "globex")
        assert cell.status == "wrong" and any(r.dst == vmlab.key("glx") for r in cell.violations)
        pred = [p for p in cell.pairs if p.reachable and p.dst == vmlab.key("glx")]
        assert pred and "tsv-gw" in pred[0].path
        net05 = [f for f in fails(hs, "NET-05") if f.tenants == ("acme", "globex")]
        assert net05 and any("tsv-gw" in e.detail and "10.75.2.10" in e.where for e in net05[0].evidence)
        assert [f for f in fails(hs, "NET-07") if "tsv-gw" in f.summary]
    finally:
        sh("ip", "netns", "del", "tsv-gw", check=False)
        sh("ip", "-n", "tsv-a1", "addr", "del", "10.75.1.1/24", "dev", "eth0", check=False)
        for leg in ("tsv-h-gwa", "tsv-h-gwg"):
            sh("ip", "link", "del", leg, check=False)


# ---------------------------------------------------------------- an OVS port with the wrong VLAN tag


async def test_vm_ovs_port_with_the_wrong_vlan_tag(vmlab: VmLab) -> None:
    from tests.fixtures.ovs import OvsLab, own_netdev

    if subprocess.run(["sh", "-c", "command -v ovs-vswitchd"], capture_output=True).returncode:
        pytest.skip("needs openvswitch-switch (make test installs it)")
    leak = vmlab.guests["leak"]
    with (
        tsf_names(),
        own_netdev(),
        tempfile.TemporaryDirectory(prefix="tsv-ovs-") as d,
    ):  # the one OVS datapath
        lab = OvsLab(d, host=HOST, bridge="tsv-ovs")
        lab.start()
        try:
            lab.add("tsv-oa", "acme", "tsv-o-pa", "10.74.9.1", 100)  # acme's VLAN
            lab.add("tsv-og", "globex", "tsv-o-pg", "10.74.9.2", 200)  # globex's VLAN
            for ns in ("tsv-oa", "tsv-og"):
                sh("ip", "-n", ns, "addr", "add", f"10.74.9.{1 if ns == 'tsv-oa' else 2}/16", "dev", "eth0")
            # the globex guest's port is moved off its bridge onto OVS with acme's tag (the fault)
            sh("ip", "link", "set", leak.tap, "nomaster")
            lab.vsctl("add-port", "tsv-ovs", leak.tap, "tag=100")
            for _ in range(100):  # vswitchd attaches the port a moment later
                if (
                    lab.vsctl("get", "Interface", leak.tap, "ofport").strip().lstrip("-").isdigit()
                    and int(lab.vsctl("get", "Interface", leak.tap, "ofport")) > 0
                ):
                    break
                time.sleep(0.05)
            # the guest learns nothing by itself: a first ping from the right VLAN settles ARP
            sh("ip", "netns", "exec", "tsv-oa", "ping", "-c1", "-W3", leak.ip, check=False)
            hs = await vmlab.observe(static(vmlab), ovs_db=lab.db)
            rm = await prober.probe_host(
                LOCAL, hs, timeout=T, sources=("namespace", "segment"), ovs_db=lab.db, run_dir=vmlab.run_dir
            )
            assert not leftovers(), leftovers()
            hs = replace(hs, reach=rm)
            wrong = [r for r in rm.results if r.src == vmlab.key("tsv-oa") and r.dst == vmlab.key("leak")]
            assert wrong and wrong[0].outcome == "reply"
            right = [r for r in rm.results if r.src == vmlab.key("tsv-og") and r.dst == vmlab.key("leak")]
            assert right and not any(r.reached for r in right)
            seg = [r for r in rm.results if r.src == vmlab.key("leak") and r.via == "segment"]
            assert seg and any(r.dst == vmlab.key("tsv-oa") and r.reached for r in seg)
            assert any("tsv-ovs" in r.detail for r in seg)
            assert any("VLAN tag 100" in c for c in rm.changes)
            cell = predict.matrix(hs).cell("acme", "globex")
            assert cell.status == "wrong"
            net05 = [f for f in fails(hs, "NET-05") if f.tenants == ("acme", "globex")]
            assert net05 and vmlab.key("leak") in net05[0].workloads
            net02 = [f for f in fails(hs, "NET-02") if "OVS tsv-ovs VLAN 100" in f.summary]
            assert net02 and any(leak.tap in e.where for e in net02[0].evidence)
        finally:
            lab.vsctl("--if-exists", "del-port", "tsv-ovs", leak.tap)
            sh("ip", "link", "set", leak.tap, "master", "tsv-bra", check=False)
            lab.stop()
            cleanup("tsv-o")


# ---------------------------------------------------------------- the probe port itself


async def test_bridge_disappearing_mid_run_is_an_error_and_leaves_nothing(vmlab: VmLab) -> None:
    glx = vmlab.guests["glx"]
    sh("ip", "link", "add", "tsv-brx", "type", "bridge")
    sh("ip", "link", "set", "tsv-brx", "up")
    sh("ip", "link", "set", glx.tap, "master", "tsv-brx")
    try:
        hs = await vmlab.observe(static(vmlab))

        def pull(made):
            assert all(not m.error for m in made), [m.error for m in made]
            assert leftovers()  # the ports exist now
            sh("ip", "link", "del", "tsv-brx")

        run = await probeport.probe_from_segments(
            hs, timeout=T, vms=[vmlab.key("glx")], run_dir=vmlab.run_dir, after_setup=pull
        )
        mine = [r for r in run.results if r.src == vmlab.key("glx")]
        assert mine and all(r.outcome == "error" and "tsv-brx disappeared" in r.detail for r in mine)
        assert any("tsv-brx disappeared" in e for e in run.errors)
        assert not leftovers(), leftovers()
        assert not list(vmlab.run_dir.glob("probe-ports-*.json"))
    finally:
        sh("ip", "link", "del", "tsv-brx", check=False)
        sh("ip", "link", "set", glx.tap, "master", "tsv-brg", check=False)


async def test_confirmation_lists_exactly_what_is_added(vmlab: VmLab) -> None:
    hs = await vmlab.observe(static(vmlab))
    plans, skipped = probeport.plan_ports(hs)
    assert {p.vm for p in plans} == {vmlab.key(t) for t in ("acme", "leak", "glx", "fld")} and not skipped
    text = probeport.describe(plans)
    acme = next(t for t, p in zip(text, plans) if p.vm == vmlab.key("acme"))
    assert "Linux bridge tsv-bra" in acme and "removed after the run" in acme
    p = next(p for p in plans if p.vm == vmlab.key("acme"))
    assert p.netns in acme and p.host_if in acme and p.subnet == "10.74.0.0/16"
    assert p.candidates[0] in acme and p.candidates[0] not in ("10.74.1.1", "10.74.1.10", "10.74.1.20")


def test_killed_run_is_cleaned_at_the_next_start(vmlab: VmLab, tmp_path: Path) -> None:
    """A real child process makes its probe ports and is SIGKILLed mid-run; `sweep` (what the
    next start runs) removes every recorded object and the record."""
    script = f"""
import asyncio, json, sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from pathlib import Path
from probes.network import probeport
from probes.model import HostState
import pickle
hs = pickle.loads(bytes.fromhex(sys.argv[1]))
def hold(made):
    print("READY", flush=True)
    time.sleep(60)
asyncio.run(probeport.probe_from_segments(hs, run_dir=Path({str(tmp_path)!r}), after_setup=hold))
"""
    import pickle

    hs = asyncio.run(vmlab.observe(static(vmlab)))
    child = subprocess.Popen(
        [sys.executable, "-c", script, pickle.dumps(hs).hex()], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "READY"
        made = leftovers()
        assert made
        records = list(tmp_path.glob("probe-ports-*.json"))
        assert len(records) == 1
        rec = json.loads(records[0].read_text())
        assert set(rec["netns"]) | set(rec["links"]) == set(made)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    time.sleep(0.1)
    removed, left = probeport.sweep(tmp_path)
    assert not left and set(removed) >= set(made)
    assert not leftovers() and not list(tmp_path.glob("probe-ports-*.json"))


# ---------------------------------------------------------------- a DHCP lease as the source


async def test_dhcp_lease_on_a_libvirt_network_is_the_address_source(vmlab: VmLab, libvirtd: str) -> None:
    """A guest on a libvirt-managed network takes a DHCP lease (dnsmasq, udhcpc in the guest);
    the topology reads the lease over the read-only connection and it becomes the address."""
    import shutil

    import libvirt

    if shutil.which("dnsmasq") is None:
        pytest.skip("needs dnsmasq-base (libvirt's DHCP server; make test installs it)")
    conn = libvirt.open(libvirtd)
    net = conn.networkCreateXML(
        "<network><name>tsv-net</name><bridge name='tsv-vbr0'/><forward mode='route'/>"
        "<ip address='10.76.0.1' netmask='255.255.255.0'><dhcp><range start='10.76.0.100' "
        "end='10.76.0.150'/></dhcp></ip></network>"
    )
    try:
        with guest_factory(libvirtd) as f:
            (g,) = await asyncio.to_thread(
                f.boot, GuestSpec("dh", network="tsv-net", dhcp=True, agent="none"), timeout=400
            )
            lab = VmLab({"dh": g}, {**vmlab.tenants, "dh": "acme"}, vmlab.run_dir)
            for _ in range(60):
                hs = await lab.observe(uri=libvirtd)
                nic = vmaddr.vm_addresses(
                    replace(hs, workloads=tuple(w for w in hs.workloads if w.kind == WorkloadKind.VM))
                )[lab.key("dh")][0]
                if any(a.source == "lease" for a in nic.addresses):
                    break  # (the host, DHCP server here, may know the MAC from ARP first)
                await asyncio.sleep(0.5)
            # the lease wins over the host's neighbour entry for the same MAC
            assert [a.source for a in nic.addresses] == ["lease"], nic
            assert nic.addresses[0].address.startswith("10.76.0.") and nic.addresses[0].prefix == 24
            assert "tsv-net" in nic.addresses[0].detail
    finally:
        net.destroy()
        conn.close()
