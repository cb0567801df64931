"""Domain XML -> VmDetails over hand-written XML (tests/data/domains), the demo fleet and the
corpus of real-world domain XML from libvirt's own test suite (read in place, never copied)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from probes import snapshot
from probes.inventory import domxml
from probes.inventory.domxml import DomainXmlError, parse_domain
from probes.model import Host, HostState, State, Workload, WorkloadKind
from tests.helpers import CORPUS, REPO
from tests.helpers import DATA as TEST_DATA

DATA = TEST_DATA / "domains"
FLEET = REPO / "probes" / "demo" / "fleet.xml"
NOVA = "http://openstack.org/xmlns/libvirt/nova/1.1"


def parse(name: str, **kw):
    return parse_domain((DATA / name).read_text(), name_hint=name, **kw)


# ------------------------------------------------------------------ full.xml: every element


@pytest.fixture(scope="module")
def full():
    return parse("full.xml", secure=True)


def test_identity_and_sizes(full) -> None:
    assert full.name == "full-1"
    assert full.uuid == "11111111-2222-4333-8444-555555555555"
    vm = full.vm
    assert vm.domain_type == "kvm"
    assert vm.vcpus == 4 and vm.cpuset == "0-3,^2"
    assert vm.memory_kib == 4 * 1024 * 1024
    assert vm.current_memory_kib == 3072 * 1024
    assert (vm.hugepages, vm.nosharepages, vm.locked_memory) == (True, True, True)
    assert vm.launch_security == "sev"
    assert vm.blkio_weight == 800
    assert vm.emulator == "/usr/bin/qemu-system-x86_64"
    assert vm.has_guest_agent
    assert vm.parse_error == "" and not vm.stale


def test_memtune_units(full) -> None:
    mt = full.vm.memtune
    assert mt.hard_limit_kib == 5 * 1024 * 1024  # unit G = GiB
    assert mt.soft_limit_kib == 4096 * 1024
    assert mt.swap_hard_limit_kib == 6291456
    assert mt.min_guarantee_kib == 1000 * 1000 * 1000 // 1024  # MB is decimal


def test_cputune_numatune_cpu(full) -> None:
    ct = full.vm.cputune
    assert (ct.shares, ct.period, ct.quota) == (2048, 100000, -1)
    assert (ct.emulator_period, ct.emulator_quota) == (50000, 25000)
    assert ct.vcpupin == ((0, "0"), (1, "1"), (2, "3"), (3, "0-1"))
    assert ct.emulatorpin == "1-3"
    assert (full.vm.numatune_mode, full.vm.numatune_nodeset) == ("preferred", "0")
    assert full.vm.cpu_mode == "host-passthrough"
    assert full.vm.cpu_features == (("vmx", "require"), ("svm", "disable"))


def test_disks(full) -> None:
    d = {x.target: x for x in full.vm.disks}
    assert set(d) == {"vda", "sda", "hdc", "vdb", "vdc"}
    assert (d["vda"].type, d["vda"].bus, d["vda"].source, d["vda"].driver_type) == (
        "file",
        "virtio",
        "/var/lib/libvirt/images/full-1.qcow2",
        "qcow2",
    )
    assert d["vda"].encrypted and not d["vda"].shareable
    assert (d["sda"].type, d["sda"].source, d["sda"].bus, d["sda"].shareable) == (
        "block",
        "/dev/vg0/shared-lv",
        "scsi",
        True,
    )
    assert (d["hdc"].device, d["hdc"].bus, d["hdc"].readonly) == ("cdrom", "ide", True)
    assert d["vdb"].source == "rbd:pool/full-1@mon1.example.org:6789"
    assert d["vdb"].encrypted  # <encryption> inside <source>
    assert (d["vdc"].type, d["vdc"].source, d["vdc"].bus) == ("volume", "default/full-1-data", "sata")
    assert not d["vdc"].encrypted


def test_nics(full) -> None:
    n = full.vm.nics
    assert [x.type for x in n] == ["network", "bridge", "bridge", "direct", "hostdev"]
    net, ovs, plain, direct, hostdev = n
    assert (net.source, net.bridge, net.target_dev, net.model, net.mac, net.portgroup) == (
        "tenant-net",
        "virbr7",
        "vnet3",
        "virtio",
        "52:54:00:11:11:01",
        "web",
    )
    assert net.filterref == "clean-traffic"
    assert net.filter_params == (("IP", "10.0.0.5"), ("MAC", "52:54:00:11:11:01"))
    assert net.port_isolated and (net.bandwidth_in_kbps, net.bandwidth_out_kbps) == (1000, 128)
    assert (ovs.source, ovs.bridge, ovs.model) == ("ovsbr0", "ovsbr0", "e1000")
    assert ovs.virtualport_type == "openvswitch"
    assert ovs.virtualport_interfaceid == "09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f"
    assert ovs.vlan_tags == (42, 48) and ovs.vlan_trunk
    assert ovs.filterref == "" and not ovs.port_isolated
    assert plain.vlan_tags == (100,) and not plain.vlan_trunk and plain.model == "rtl8139"
    assert direct.source == "eth0 (vepa)"
    assert hostdev.source == "0000:03:10.2"


def test_graphics_and_the_password_is_never_kept(full) -> None:
    vnc, spice, sock = full.vm.graphics
    assert (vnc.type, vnc.listen, vnc.listen_type, vnc.port, vnc.autoport) == (
        "vnc",
        "0.0.0.0",
        "address",
        5900,
        False,
    )
    assert vnc.passwd_set and vnc.passwd_known
    assert (spice.listen, spice.autoport, spice.tls, spice.passwd_set, spice.passwd_known) == (
        "192.0.2.10",
        True,
        True,
        False,
        True,
    )
    assert (sock.listen_type, sock.listen, sock.port) == ("socket", "/run/libvirt/qemu/full-1.vnc", -1)
    # nowhere in the model, nor in a snapshot of it
    assert "s3cr3t" not in repr(full.vm)
    st = State(
        hosts=(
            HostState(
                host=Host("h"),
                workloads=(Workload(kind=WorkloadKind.VM, name="full-1", host="h", vm=full.vm),),
            ),
        )
    )
    assert b"s3cr3t" not in snapshot.dumps(st)


def test_password_unknown_without_secure_xml() -> None:
    # read-only connections never see passwd: absence says nothing
    nova = parse("nova.xml")
    (g,) = nova.vm.graphics
    assert (g.passwd_set, g.passwd_known) == (False, False)
    assert parse("nova.xml", secure=True).vm.graphics[0].passwd_known


def test_hostdevs_and_seclabels(full) -> None:
    assert [(h.type, h.address, h.managed) for h in full.vm.hostdevs] == [
        ("pci", "0000:06:12.5", True),
        ("usb", "0x1234:0xbeef", False),
        ("mdev", "c2177883-f1bb-47f0-914d-32a22e3a8804", False),
    ]
    sel, dac = full.vm.seclabels
    assert (sel.type, sel.model, sel.relabel) == ("static", "selinux", False)
    assert sel.label == "system_u:system_r:svirt_t:s0:c10,c20"
    assert sel.imagelabel == "system_u:object_r:svirt_image_t:s0:c10,c20"
    assert (dac.type, dac.model, dac.relabel, dac.label) == ("dynamic", "dac", True, "+64055:+108")


def test_metadata(full) -> None:
    md = {(m.namespace, m.path): m for m in full.vm.metadata}
    t = md[("http://example.com/tenantscope/1", "tenant")]
    assert dict(t.attrs) == {"name": "acme", "tier": "gold"}
    assert md[("http://example.com/tenantscope/1", "tenant/contact")].text == "ops@example.com"


def test_nova_metadata_and_ovs() -> None:
    p = parse("nova.xml")
    md = {m.path: m for m in p.vm.metadata if m.namespace == NOVA}
    proj = md["instance/owner/project"]
    assert proj.text == "umbrella" and dict(proj.attrs)["uuid"] == "6f3b2c1d9e8a4b7c8d9e0f1a2b3c4d5e"
    assert md["instance/owner/user"].text == "alice"
    assert md["instance/name"].text == "web-frontend"
    assert p.vm.seclabels[0].type == "none" and not p.vm.seclabels[0].relabel
    (nic,) = p.vm.nics
    assert nic.virtualport_type == "openvswitch" and nic.vlan_tags == () and not nic.vlan_trunk
    assert p.vm.cpu_mode == "host-model" and p.vm.cpu_features == ()


def test_minimal_defaults() -> None:
    p = parse("minimal.xml")
    vm = p.vm
    assert (vm.vcpus, vm.memory_kib, vm.domain_type) == (1, 131072, "qemu")
    assert vm.memtune.hard_limit_kib is None and vm.cputune.vcpupin == ()
    assert (vm.disks, vm.nics, vm.graphics, vm.seclabels, vm.metadata) == ((), (), (), (), ())
    assert vm.cpu_mode == "" and not vm.has_guest_agent


def test_odd_values_are_unknown_not_errors() -> None:
    vm = parse("odd-values.xml").vm
    assert vm.vcpus == 0 and vm.memory_kib == 0  # 'two', unit 'parsecs'
    assert vm.memtune.hard_limit_kib is None  # libvirt's "unlimited"
    assert vm.memtune.soft_limit_kib is None  # 'lots'
    assert vm.cputune.shares is None and vm.cputune.vcpupin == ((1, "1"),)
    assert vm.nics[0].vlan_tags == (7,)
    assert vm.graphics[0].port == -1 and vm.graphics[0].autoport
    assert vm.disks[0].target == "" and vm.disks[0].source == ""
    assert vm.seclabels[0].type == "dynamic" and vm.seclabels[0].relabel


# ------------------------------------------------------------------ bad input


def test_malformed_xml_names_the_domain() -> None:
    with pytest.raises(DomainXmlError) as e:
        parse_domain((DATA / "malformed.xml").read_text(), name_hint="broken-1")
    msg = str(e.value)
    assert "'broken-1'" in msg and "malformed XML" in msg and "line" in msg


def test_doctype_and_entities_are_refused() -> None:
    with pytest.raises(DomainXmlError) as e:
        parse_domain((DATA / "entities.xml").read_text(), name_hint="bomb")
    assert "'bomb'" in str(e.value) and "not allowed" in str(e.value)


def test_not_a_domain_and_oversized() -> None:
    with pytest.raises(DomainXmlError, match="root element is <network>"):
        parse_domain("<network><name>x</name></network>", name_hint="x")
    with pytest.raises(DomainXmlError, match="over the"):
        parse_domain("<domain>" + " " * (domxml.MAX_XML + 1) + "</domain>", name_hint="big")


def test_parsed_details_round_trip_through_snapshots(full) -> None:
    nova = parse("nova.xml").vm
    st = State(
        hosts=(
            HostState(
                host=Host("h"),
                workloads=tuple(
                    Workload(kind=WorkloadKind.VM, name=n, host="h", vm=v)
                    for n, v in (("a", full.vm), ("b", nova))
                ),
            ),
        )
    )
    back = snapshot.loads(snapshot.dumps(st))
    assert back == st


# ------------------------------------------------------------------ the demo fleet


def _fleet_domains() -> dict[str, object]:
    root = ET.parse(FLEET).getroot()
    return {p.name: p.vm for p in (parse_domain(ET.tostring(d), secure=True) for d in root.findall("domain"))}


def test_demo_fleet_parses_with_its_planted_faults() -> None:
    vms = _fleet_domains()
    assert len(vms) == 12
    tenants = {n.split("-")[0] for n in vms if not n.startswith("instance-")}
    assert tenants == {"acme", "globex", "initech"}
    nova = [
        n
        for n, v in vms.items()
        if any(
            m.namespace == NOVA and m.path == "instance/owner/project" and m.text == "umbrella"
            for m in v.metadata
        )
    ]
    assert sorted(nova) == ["instance-0000001a", "instance-0000001b", "instance-0000001c"]
    # 1: br-shared carries two tenants
    on_shared = sorted(n for n, v in vms.items() if any(x.bridge == "br-shared" for x in v.nics))
    assert on_shared == ["acme-db-1", "initech-ci-1"]
    # 2: only initech-ci-1 is unconfined
    assert [n for n, v in vms.items() if any(s.type == "none" for s in v.seclabels)] == ["initech-ci-1"]
    # 3: emulated devices
    emulated = sorted(
        {n for n, v in vms.items() for x in v.nics if x.model in ("e1000", "rtl8139")}
        | {n for n, v in vms.items() for d in v.disks if d.bus in ("ide", "sata")}
    )
    assert emulated == ["acme-db-1", "initech-build-1"]
    # 4: VNC on 0.0.0.0 without password; every other display is on loopback with one
    open_vnc = [(n, g) for n, v in vms.items() for g in v.graphics]
    assert [n for n, g in open_vnc if g.listen == "0.0.0.0"] == ["globex-app-2"]
    assert all(g.passwd_set for n, g in open_vnc if n != "globex-app-2")
    assert not next(g for n, g in open_vnc if n == "globex-app-2").passwd_set
    # 5: one image, two tenants
    users = sorted(n for n, v in vms.items() for d in v.disks if d.source.endswith("shared-scratch.qcow2"))
    assert users == ["acme-db-1", "globex-db-1"]
    # 6: CPU 3 pinned by acme and globex, no other overlap among running-or-not domains
    from collections import defaultdict

    cpu_users: defaultdict[str, set[str]] = defaultdict(set)
    for n, v in vms.items():
        for _vcpu, cpus in v.cputune.vcpupin:
            cpu_users[cpus].add(n.split("-")[0] if not n.startswith("instance-") else "umbrella")
    assert {c: u for c, u in cpu_users.items() if len(u) > 1} == {"3": {"acme", "globex"}}
    # 7: one OVS port without VLAN
    ovs_no_vlan = [
        n for n, v in vms.items() for x in v.nics if x.virtualport_type == "openvswitch" and not x.vlan_tags
    ]
    assert ovs_no_vlan == ["instance-0000001b"]
    # 8: no hard limit / no quota
    assert sorted(n for n, v in vms.items() if v.memtune.hard_limit_kib is None) == [
        "initech-build-1",
        "initech-ci-1",
    ]
    assert [n for n, v in vms.items() if v.cputune.quota is None] == ["initech-build-1"]
    # 9: NICs without nwfilter: globex-app-2 and the two br-shared ports
    no_filter = sorted({n for n, v in vms.items() for x in v.nics if not x.filterref})
    assert no_filter == ["acme-db-1", "globex-app-2", "initech-ci-1"]


# ------------------------------------------------------------------ the real-world corpus


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus {CORPUS} absent (present in CI)")
def test_corpus_parses_or_fails_clearly() -> None:
    files = sorted(CORPUS.glob("*.xml"))
    assert len(files) > 100
    ok, failed = 0, []
    parsed: list[Workload] = []
    for f in files:
        try:
            p = parse_domain(f.read_bytes(), name_hint=f.name)
        except DomainXmlError as e:
            assert f.name in str(e)
            failed.append(f.name)
            continue
        ok += 1
        assert p.name
        parsed.append(Workload(WorkloadKind.VM, p.name, "hv1", state="running", vm=p.vm))
    assert ok >= len(files) - 5, failed
    # what was parsed is plain data: a snapshot (what `snapshot`, `record` and replay write)
    # gives back every domain's details equal, field for field
    st = State(hosts=(HostState(Host("hv1"), workloads=tuple(parsed)),))
    back = snapshot.loads(snapshot.dumps(st))
    for w, b in zip(st.hosts[0].workloads, back.hosts[0].workloads, strict=True):
        assert b.vm == w.vm, w.name


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus {CORPUS} absent (present in CI)")
@pytest.mark.parametrize(
    "name,check",
    [
        ("seclabel-none.xml", lambda vm: vm.seclabels[0].type == "none"),
        (
            "seclabel-static.xml",
            lambda vm: (vm.seclabels[0].type, vm.seclabels[0].relabel) == ("static", False),
        ),
        ("seclabel-dynamic-baselabel.xml", lambda vm: vm.seclabels[0].type == "dynamic"),
        ("graphics-vnc-no-listen-attr.xml", lambda vm: vm.graphics[0].type == "vnc"),
        ("graphics-vnc-socket.xml", lambda vm: vm.graphics[0].listen_type == "socket"),
        ("graphics-listen-network.xml", lambda vm: vm.graphics[0].listen_type == "network"),
        (
            "net-openvswitch.xml",
            lambda vm: vm.nics[0].virtualport_type == "openvswitch" and vm.nics[0].vlan_trunk,
        ),
        ("memtune-unlimited.xml", lambda vm: vm.memtune.hard_limit_kib is None),
        ("memtune.xml", lambda vm: vm.memtune.hard_limit_kib is not None),
        ("disk-shared.xml", lambda vm: any(d.shareable for d in vm.disks)),
        ("encrypted-disk.xml", lambda vm: any(d.encrypted for d in vm.disks)),
        ("hostdev-vfio.xml", lambda vm: vm.hostdevs[0].type == "pci" and vm.hostdevs[0].address),
        ("cputune.xml", lambda vm: vm.cputune.vcpupin and vm.cputune.shares is not None),
        ("net-many-models.xml", lambda vm: len({n.model for n in vm.nics}) > 2),
        ("metadata.xml", lambda vm: len(vm.metadata) >= 2),
    ],
)
def test_corpus_samples(name: str, check) -> None:
    p = parse_domain((CORPUS / name).read_bytes(), name_hint=name)
    assert check(p.vm), p.vm


def test_the_stdlib_guard_refuses_dtds_too(monkeypatch) -> None:
    """Without defusedxml (a stale venv) DTDs and entities are still refused."""
    monkeypatch.setattr(domxml, "_defused_fromstring", None)
    with pytest.raises(DomainXmlError, match="not allowed"):
        parse_domain((DATA / "entities.xml").read_text(), name_hint="bomb")
    assert parse("minimal.xml").vm.vcpus == 1
