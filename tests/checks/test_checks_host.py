"""FactsProbe over real file trees (tests/data/facts copied to a temp root) and the HOST-*,
SW-* checks on what it read; HOST-11 also against a real process on this machine."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import replace

import pytest

from probes.facts.model import PendingUpdates
from probes.facts.probe import (
    FactsProbe,
    parse_apt_simulation,
    parse_conf,
    parse_dnf_security,
    parse_listen_ports,
)
from probes.hosts.local import LocalHost
from probes.model import Severity, Status, VmDetails, Workload, WorkloadKind
from tests.fixtures.checks import HOST, XML_DIR, bad, collect_facts, make_tree, results, statuses, xml_state
from tests.fixtures.sshd import sshd  # noqa: F401 - fixture
from tests.helpers import needs_root


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp("facts")
    return {n: collect_facts(make_tree(n, base)) for n in ("hardened", "weak")}


def test_facts_read_from_the_tree(trees):
    h, w = trees["hardened"], trees["weak"]
    assert h.selinux == "enforcing" and w.selinux == "" and w.apparmor == ""
    assert h.kvm_device and h.kvm_device.exists and not w.kvm_device.exists  # type: ignore[union-attr]
    assert "vmx" in h.cpu_flags and "vmx" not in w.cpu_flags and h.cpu_vendor == "GenuineIntel"
    assert h.qemu_conf.value("security_driver") == '[ "selinux" ]'  # type: ignore[union-attr]
    assert w.qemu_conf.get("security_driver").line == 2  # type: ignore[union-attr]
    assert w.ksm_run == 1 and w.ksm_pages_sharing == 1234
    assert ("kvm_intel", "Y") in w.kvm_nested
    assert "memory" in h.cgroup_controllers and "memory" not in w.cgroup_controllers
    assert w.tcp_listen_ports == (16509,) and h.tcp_listen_ports == (22,)
    assert {s.path: s.mode for s in w.libvirt_sockets}["/run/libvirt/libvirt-sock"] == 0o777
    assert [(c.cpu, c.siblings) for c in h.cpu_siblings][:2] == [(0, "0-1"), (1, "0-1")]
    assert h.kernel == "6.1.0-test-amd64" and h.version("kernel") == "6.1.0-test-amd64"
    ghost = [p for p in w.hypervisor_processes if p.pid == 4242]
    assert ghost and ghost[0].guest_name == "ghost" and ghost[0].uid == 0
    assert "TOPSECRET" not in ghost[0].cmdline  # secrets in QEMU arguments are not kept
    assert not [p for p in w.hypervisor_processes if p.pid == 4243]  # the kernel's kvm thread


def test_host_checks_pass_on_the_hardened_tree(trees):
    st = xml_state([XML_DIR / "acme-web-1.xml"], facts=trees["hardened"])
    for cid in (
        "HOST-01",
        "HOST-02",
        "HOST-03",
        "HOST-04",
        "HOST-05",
        "HOST-06",
        "HOST-07",
        "HOST-08",
        "HOST-09",
        "HOST-10",
        "HOST-11",
        "HOST-12",
    ):
        assert statuses(st, cid) == {Status.PASS}, (cid, [f.summary for f in results(st, cid)])


def test_host_checks_fail_on_the_weak_tree(trees):
    st = xml_state(sorted(XML_DIR.glob("*.xml")), facts=trees["weak"])
    got = {
        cid: {f.status for f in bad(st, cid)}
        for cid in (
            "HOST-01",
            "HOST-02",
            "HOST-03",
            "HOST-04",
            "HOST-06",
            "HOST-07",
            "HOST-08",
            "HOST-09",
            "HOST-10",
            "HOST-11",
            "HOST-12",
        )
    }
    assert got == {
        "HOST-01": {Status.FAIL},  # no /dev/kvm, no vmx
        "HOST-02": {Status.FAIL},
        "HOST-03": {Status.FAIL, Status.WARN},  # driver none, user root, a root QEMU; not required
        "HOST-04": {Status.FAIL},  # memory controller disabled
        "HOST-06": {Status.FAIL, Status.WARN},  # Vulnerable; SMT on with SMT-vulnerable
        "HOST-07": {Status.FAIL},  # 0777 socket with auth none; TCP without auth
        "HOST-08": {Status.FAIL, Status.WARN},
        "HOST-09": {Status.FAIL},  # KSM merging on a multi-tenant host
        "HOST-10": {Status.WARN},
        "HOST-11": {Status.WARN},
        "HOST-12": {Status.FAIL},  # docker.sock 0666
    }
    h03 = bad(st, "HOST-03")
    assert any(e.where == "/etc/libvirt/qemu.conf:2" for f in h03 for e in f.evidence)
    h06 = next(f for f in bad(st, "HOST-06") if f.status == Status.FAIL)
    assert "mds" in h06.summary and any("mitigations=off" in e.detail for e in h06.evidence)
    h10 = bad(st, "HOST-10")[0]
    assert {"acme", "initech"} <= set(h10.tenants)  # host-passthrough; vmx required


def test_host01_tcg_domain_on_kvm_host(trees):
    st = xml_state([XML_DIR / "initech-ci-1.xml"], facts=trees["hardened"])
    f = bad(st, "HOST-01")[0]
    assert f.status == Status.WARN and f.tenants == ("initech",)


def test_host11_managed_when_a_domain_matches(trees):
    ghost = Workload(kind=WorkloadKind.VM, name="ghost", host=HOST, vm=VmDetails())
    assert statuses(xml_state(extra=[ghost], facts=trees["weak"]), "HOST-11") == {Status.PASS}


def test_no_facts_means_skipped_and_demo_says_why(trees):
    assert statuses(xml_state(), "HOST-02") == {Status.SKIPPED}
    f = results(xml_state(source="demo"), "HOST-02")[0]
    assert f.status == Status.SKIPPED and "demo" in f.summary


@needs_root
def test_host11_and_host03_see_a_real_unmanaged_qemu_process(tmp_path):
    """A real process whose executable is named like QEMU (a copy of sh) with QEMU's -name and
    -uuid arguments: the facts probe finds it in the real /proc."""
    exe = tmp_path / "qemu-system-x86_64"
    shutil.copy("/bin/sh", exe)
    u = str(uuid.uuid4())
    p = subprocess.Popen(
        [str(exe), "-c", "sleep 30; :", "sh", "-name", "guest=tsd-ghost,debug-threads=on", "-uuid", u],
        start_new_session=True,
    )
    try:
        for _ in range(100):  # wait until exec is done and /proc shows the new comm
            try:
                if open(f"/proc/{p.pid}/comm").read().startswith("qemu-system"):
                    break
            except OSError:
                pass
            time.sleep(0.01)
        facts = asyncio.run(FactsProbe().collect(LocalHost(HOST, root="")))
        mine = [h for h in facts.hypervisor_processes if h.pid == p.pid]
        assert mine and mine[0].guest_name == "tsd-ghost" and mine[0].uuid == u
        st = xml_state(facts=facts)
        h11 = [f for f in bad(st, "HOST-11") if f"pid {p.pid}" in f.summary]
        assert h11 and "tsd-ghost" in h11[0].summary
        assert any(f"pid {p.pid}" in f.summary for f in bad(st, "HOST-03"))  # runs as root
        managed = Workload(kind=WorkloadKind.VM, name="other", uuid=u, host=HOST, vm=VmDetails())
        assert not [
            f for f in bad(xml_state(extra=[managed], facts=facts), "HOST-11") if f"pid {p.pid}" in f.summary
        ]
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def test_facts_on_this_machine_do_not_error():
    facts = asyncio.run(FactsProbe().collect(LocalHost(HOST)))
    assert facts.kernel == os.uname().release
    assert not facts.errors, facts.errors
    st = xml_state(facts=facts)
    from probes.checks.base import run_checks

    errs = [f for f in run_checks(st) if f.status == Status.ERROR and f.area in ("host", "software")]
    assert not errs, [(f.check_id, f.summary) for f in errs]


def test_conf_parser_lists_comments_and_lines():
    c = parse_conf("/x.conf", 'a = 1 # c\n# b = 2\nnames = [\n  "x", # one\n  "y"\n]\ns = "q#r"\n')
    assert [(s.key, s.value, s.line) for s in c.settings] == [
        ("a", "1", 1),
        ("names", '[ "x", "y" ]', 3),
        ("s", "q#r", 7),
    ]


def test_listen_ports_parser():
    text = "hdr\n 0: 0100007F:3ED5 00000000:0000 0A x\n 1: 0100007F:3ED6 0200007F:0016 01 x\n"
    assert parse_listen_ports(text) == (16085,)


def test_sw02_updates_parsers_and_check():
    apt = (
        "Inst libvirt0 [9.0.0-4] (9.0.0-4+deb12u1 Debian-Security:12/stable-security [amd64])\n"
        "Inst tzdata [2024a-0] (2025b-0+deb12u1 Debian:12.11/stable [all])\nConf libvirt0 (...)\n"
    )
    assert parse_apt_simulation(apt) == (("libvirt0",), 2)
    assert parse_dnf_security("FEDORA-2025-1 Important/Sec. qemu-kvm-8.2.0-1.x86_64\n") == (
        "qemu-kvm-8.2.0-1.x86_64",
    )
    from probes.facts.model import HostFacts

    now = 1_800_000_000.0
    pending = HostFacts(collected_at=now, updates=PendingUpdates("apt", now - 3600, ("libvirt0",), 2))
    f = results(xml_state(facts=pending), "SW-02")[0]
    assert f.status == Status.FAIL and "1 security update" in f.summary and "60 min" in f.summary
    old = HostFacts(collected_at=now, updates=PendingUpdates("apt", now - 30 * 86400, (), 3, from_cache=True))
    f = results(xml_state(facts=old), "SW-02")[0]
    assert f.status == Status.WARN and "cached" in f.summary and f.severity == Severity.LOW
    assert statuses(xml_state(facts=HostFacts(collected_at=now)), "SW-02") == {Status.SKIPPED}


def test_sw02_cache_is_read_without_asking_again(tmp_path):
    """--updates runs the package manager and caches; a later run without it reads the cache."""
    host = LocalHost(HOST, root="")
    probe = FactsProbe(updates=True, cache_dir=str(tmp_path))
    first = asyncio.run(probe._updates(host))
    assert first is not None and first.manager in ("apt", "dnf", "")
    later = asyncio.run(FactsProbe(cache_dir=str(tmp_path))._updates(host))
    if first.error:
        assert later is None  # failures are not cached
    else:
        assert later is not None and later.from_cache and later.checked_at == first.checked_at
    assert asyncio.run(FactsProbe(cache_dir=str(tmp_path / "none"))._updates(host)) is None


def test_sw01_lists_versions(trees):
    f = results(xml_state(facts=trees["hardened"]), "SW-01")[0]
    assert f.status == Status.PASS and "kernel 6.1.0-test-amd64" in f.summary


def test_facts_round_trip_through_snapshots(trees):
    """HostFacts is part of the State: a snapshot of it loads back equal (msgspec types)."""
    from dataclasses import replace

    from probes import snapshot
    from probes.facts.probe import parse_vfinfo
    from tests.fixtures.checks import FACTS_DIR

    f = replace(
        trees["weak"],
        sriov_vfs=parse_vfinfo((FACTS_DIR / "ip-link-sriov.json").read_text()),
        updates=PendingUpdates("apt", 1.5, ("libvirt0",), 3),
    )
    st = xml_state([XML_DIR / "acme-db-1.xml"], facts=f)
    assert snapshot.loads(snapshot.dumps(st)) == st


def test_host01_kvm_device_only_root_can_open(tmp_path):
    root = make_tree("hardened", tmp_path)
    os.chmod(root / "dev/kvm", 0o600)
    facts = collect_facts(root)
    assert facts.kvm_device.mode == 0o600  # type: ignore[union-attr]
    assert facts.kvm_device.uid == os.geteuid()  # type: ignore[union-attr]  # the tree is ours
    # as a host's /dev/kvm is root's: judged the same whoever runs the test
    as_root = replace(facts, kvm_device=replace(facts.kvm_device, uid=0, user="root"))
    f = bad(xml_state(facts=as_root), "HOST-01")
    assert f and f[0].status == Status.WARN and "only root" in f[0].summary and "qemu" in f[0].summary
    # owned by another user, 0600 is not "only root": no such warning
    other = replace(facts, kvm_device=replace(facts.kvm_device, uid=1000, user="alice"))
    assert not [x for x in bad(xml_state(facts=other), "HOST-01") if "only root" in x.summary]


def test_versions_parser():
    from probes.facts.probe import parse_versions

    out = (
        "qemu\tQEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)\n"
        "libvirt\tlibvirtd (libvirt) 9.0.0\novs\tovs-vswitchd (Open vSwitch) 3.1.0\nbogus\tno number\n"
    )
    assert parse_versions(out) == [("qemu", "7.2.22"), ("libvirt", "9.0.0"), ("ovs", "3.1.0")]


def test_facts_over_real_ssh_equal_local(sshd):
    """The same probe over SSH (a real sshd on 127.0.0.1, this machine) reads the same facts."""
    from tests.fixtures.sshd import ssh_host

    async def both():  # type: ignore[no-untyped-def]
        h = ssh_host(sshd)
        try:
            remote = await FactsProbe().collect(h)
        finally:
            await h.close()
        return remote, await FactsProbe().collect(LocalHost(HOST))

    remote, local = asyncio.run(both())
    assert remote.kernel == local.kernel and remote.versions == local.versions
    assert remote.cpu_flags == local.cpu_flags and remote.cgroup_controllers == local.cgroup_controllers
    assert remote.qemu_conf == local.qemu_conf and remote.vulnerabilities == local.vulnerabilities
    assert not remote.errors
