"""VM checks over domain XML written for the purpose (tests/data/checkxml), parsed by the real
parser and placed in tenants by the real tenancy rules; host facts from real file trees."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from probes.checks import silence
from probes.checks.base import run_checks
from probes.facts.probe import FactsProbe, parse_vfinfo
from probes.hosts.local import LocalHost
from probes.model import (
    Connection,
    ConnState,
    Graphics,
    ProbeError,
    Severity,
    Status,
    VmDetails,
    Workload,
    WorkloadKind,
)
from tests.fixtures.checks import (
    FACTS_DIR,
    HOST,
    XML_DIR,
    all_xml,
    bad,
    collect_facts,
    facts_tree,
    make_tree,
    results,
    statuses,
    with_facts,
    xml_state,
)

__all__ = ["facts_tree"]


def x(*names: str) -> list[Path]:
    return [XML_DIR / f"{n}.xml" for n in names]


def test_tenants_are_placed_by_prefix_and_nova():
    st = xml_state(all_xml())
    placed = {w.name: w.tenant for w in st.workloads()}
    assert placed["acme-web-1"] == "acme"
    assert placed["globex-db-1"] == "globex"
    assert placed["instance-0000002a"] == "umbrella"  # nova:project


def test_vm01_unconfined_domain_fails_with_its_tenant():
    fs = bad(xml_state(all_xml()), "VM-01")
    assert [(f.status, f.tenants) for f in fs] == [(Status.FAIL, ("globex",))]
    assert "globex-app-1" in fs[0].summary
    assert fs[0].evidence[0].where.endswith("/domain/seclabel[1]")
    assert "seclabel" in fs[0].fix
    assert statuses(xml_state(x("acme-web-1", "acme-db-1")), "VM-01") == {Status.PASS}


def test_vm01_security_driver_none_in_qemu_conf(tmp_path):
    facts = collect_facts(make_tree("weak", tmp_path))
    fs = bad(xml_state(x("initech-build-1", "acme-web-1"), facts=facts), "VM-01")
    # initech-build-1 has no seclabel at all and the host's driver is none; acme-web-1 has an
    # explicit selinux label (libvirt would refuse to start it, but it is not "unconfined")
    assert [f.workloads for f in fs] == [(f"{HOST}/vm/initech-build-1",)]
    assert any("qemu.conf:" in e.where for e in fs[0].evidence)


def test_vm01_parse_error_is_an_error_not_a_pass():
    w = Workload(kind=WorkloadKind.VM, name="broken", host=HOST, vm=VmDetails(parse_error="malformed XML"))
    fs = results(xml_state(extra=[w]), "VM-01")
    assert Status.ERROR in {f.status for f in fs}


def test_vm02_same_mcs_level_across_tenants():
    fs = bad(xml_state(all_xml()), "VM-02")
    assert len(fs) == 1 and fs[0].status == Status.FAIL
    assert fs[0].tenants == ("acme", "globex") and "s0:c10,c20" in fs[0].summary
    assert statuses(xml_state(x("acme-db-1", "acme-web-1")), "VM-02") == {Status.PASS}


def test_vm03_static_without_relabel():
    fs = bad(xml_state(all_xml()), "VM-03")
    assert [f.workloads for f in fs] == [(f"{HOST}/vm/acme-db-1",)]
    assert fs[0].status == Status.WARN


def test_vm06_same_cpu_siblings_and_unpinned(tmp_path):
    no_facts = bad(xml_state(all_xml()), "VM-06")
    same = [f for f in no_facts if "same host CPUs" in f.summary]
    assert len(same) == 1 and same[0].tenants == ("acme", "globex") and "CPUs 2" in same[0].summary
    assert not any("SMT" in f.summary for f in no_facts)  # siblings unknown without facts
    unpinned = [f for f in no_facts if "float" in f.summary]
    assert unpinned and unpinned[0].workloads == (f"{HOST}/vm/initech-build-1",)

    facts = collect_facts(make_tree("hardened", tmp_path))  # cpu4 and cpu5 are siblings
    fs = bad(xml_state(all_xml(), facts=facts), "VM-06")
    smt = [f for f in fs if "SMT" in f.summary]
    assert len(smt) == 1 and set(smt[0].tenants) == {"globex", "initech"}
    assert "thread_siblings_list" in smt[0].evidence[-1].where
    # one tenant alone never conflicts with itself
    assert statuses(xml_state(x("acme-web-1", "acme-db-1"), facts=facts), "VM-06") == {Status.PASS}


def test_vm07_emulated_devices():
    fs = bad(xml_state(all_xml()), "VM-07")
    names = {f.workloads[0].split("/")[-1] for f in fs}
    assert names == {"globex-app-1", "acme-db-1", "initech-build-1"}  # not the sata cdrom of globex-db-1
    build = next(f for f in fs if "initech-build-1" in f.workloads[0])
    assert "ide" in build.summary and "rtl8139" in build.summary


def test_vm08_graphics():
    fs = {f.workloads[0].split("/")[-1]: f for f in bad(xml_state(all_xml()), "VM-08")}
    assert fs["globex-app-1"].status == Status.FAIL and fs["globex-app-1"].severity == Severity.HIGH
    assert fs["initech-ci-1"].status == Status.WARN  # beyond loopback, with a password
    assert "acme-web-1" not in fs  # loopback + password


def test_vm08_default_listen_from_qemu_conf_and_read_only_password(tmp_path):
    facts = collect_facts(make_tree("weak", tmp_path))  # vnc_listen = "0.0.0.0"
    g = Graphics(type="vnc", autoport=True, passwd_known=True)
    w = Workload(kind=WorkloadKind.VM, name="acme-x", host=HOST, state="running", vm=VmDetails(graphics=(g,)))
    fs = bad(xml_state(extra=[w], facts=facts), "VM-08")
    assert fs[0].status == Status.FAIL and any("vnc_listen" in e.detail for e in fs[0].evidence)
    assert bad(xml_state(extra=[w]), "VM-08")[0].severity == Severity.LOW  # default 127.0.0.1
    # read-only connection: the password cannot be seen -> a warning, not a false "no password"
    ro = replace(w, vm=VmDetails(graphics=(Graphics(type="vnc", listen="0.0.0.0"),)))
    f = bad(xml_state(extra=[ro]), "VM-08")[0]
    assert f.status == Status.WARN and "not visible" in f.summary


def test_vm09_shared_disks():
    fs = bad(xml_state(all_xml()), "VM-09")
    shared = next(f for f in fs if "shared.img" in f.summary)
    assert shared.status == Status.FAIL and shared.severity == Severity.CRITICAL
    assert shared.tenants == ("acme", "globex")  # one path written two ways (../images/) is one disk
    iso = next(f for f in fs if "debian.iso" in f.summary)
    assert iso.status == Status.WARN and iso.tenants == ("globex", "initech")
    assert statuses(xml_state(x("acme-db-1", "acme-web-1")), "VM-09") == {Status.PASS}


def test_vm09_fix_is_a_command_a_line_for_the_other_tenants_domains():
    """The fix was prose and commands on one line ('Detach it from all but one tenant: virsh
    detach-disk ...; virsh ...'), and it detached every domain but the first, its own tenant's
    too. Now: one command a line for the other tenants' domains, the why as a shell comment
    (as NET-01's and NET-03's fixes), names quoted for the shell."""
    two = x("acme-db-1", "globex-db-1")
    acme = next(w for w in xml_state(two).hosts[0].workloads if w.name == "acme-db-1")
    twins = [replace(acme, name="acme-db-2"), replace(acme, name="acme db;3")]
    [f] = [f for f in bad(xml_state(two, extra=twins), "VM-09") if "shared.img" in f.summary]
    assert f.fix.split("\n") == [  # ('acme db;3' has no tenant: not acme's)
        "virsh detach-disk globex-db-1 vdb --config  # the disk stays with tenant acme (acme-db-1, acme-db-2) only",
        "virsh detach-disk 'acme db;3' vdb --config",
    ]


def test_vm10_image_modes_from_real_files(tmp_path):
    import asyncio

    root = make_tree("hardened", tmp_path)
    img = root / "var/lib/libvirt/images"
    img.mkdir(parents=True)
    for name, mode in (("acme-web-1.qcow2", 0o600), ("globex-app-1.qcow2", 0o644), ("shared.img", 0o660)):
        (img / name).write_bytes(b"\0" * 16)
        os.chmod(img / name, mode)
    state = xml_state(x("acme-web-1", "globex-app-1", "globex-db-1"))
    probe = FactsProbe()
    hs = state.hosts[0]
    assert probe.wants_rerun(hs)  # knows the images now, has stat'ed none
    facts = asyncio.run(probe.collect(LocalHost(HOST, root=str(root))))
    assert not probe.wants_rerun(replace(hs, facts=facts))
    fs = bad(with_facts(state, facts), "VM-10")
    by = {f.summary.split()[0]: f for f in fs}
    assert by["/var/lib/libvirt/images/globex-app-1.qcow2"].status == Status.FAIL
    assert "0644" in by["/var/lib/libvirt/images/globex-app-1.qcow2"].summary
    assert by["/var/lib/libvirt/images/shared.img"].status == Status.WARN  # group root, not kvm
    assert "/var/lib/libvirt/images/acme-web-1.qcow2" not in by


def test_vm11_and_host05_passthrough_without_iommu(tmp_path):
    weak = collect_facts(make_tree("weak", tmp_path / "w"))
    hard = collect_facts(make_tree("hardened", tmp_path / "h"))
    fs = bad(xml_state(all_xml(), facts=weak), "VM-11")
    assert fs[0].status == Status.FAIL and set(fs[0].tenants) == {"acme", "globex"}
    assert statuses(xml_state(all_xml(), facts=hard), "VM-11") == {Status.PASS}
    assert statuses(xml_state(all_xml(), facts=weak), "HOST-05") == {Status.FAIL}
    assert statuses(xml_state(all_xml()), "VM-11") == {Status.SKIPPED}  # IOMMU unknown


def test_vm14_iommu_group_split_across_tenants(tmp_path):
    hard = collect_facts(make_tree("hardened", tmp_path))
    assert [g.group for g in hard.iommu_groups] == ["7", "8", "12"]
    fs = bad(xml_state(all_xml(), facts=hard), "VM-14")
    assert len(fs) == 1 and "group 7" in fs[0].summary and fs[0].tenants == ("acme", "globex")
    assert statuses(xml_state(x("acme-db-1"), facts=hard), "VM-14") == {Status.PASS}


def test_vm13_unencrypted_and_silenced_per_tenant():
    st = xml_state(all_xml())
    fs = bad(st, "VM-13")
    assert len({f.tenants for f in fs}) == len(fs)  # one warning per tenant
    names = {k.split("/")[-1] for f in fs for k in f.workloads}
    assert "acme-web-1" not in names  # LUKS
    assert {"globex-app-1", "initech-build-1", "instance-0000002a"} <= names
    out = silence.apply(
        run_checks(st, ["VM-13", "VM-01"]),
        (("VM-13", frozenset({"globex"})), ("VM-01", frozenset({"globex"}))),
        "cfg.toml",
    )
    g = [f for f in out if f.check_id == "VM-13" and "globex" in f.tenants]
    assert g and all(f.status == Status.PASS and "silenced" in f.summary for f in g)
    assert any(f.check_id == "VM-13" and f.status == Status.WARN for f in out)  # other tenants stay
    assert any(f.check_id == "VM-01" and f.status == Status.FAIL for f in out)  # a FAIL is never silenced


def test_silence_config_validation():
    from probes.config import parse

    cfg = parse('[checks]\nsilence = { "VM-13" = ["acme"] }\n', "c.toml")
    assert silence.silences_from(cfg, ["VM-13"]) == (("VM-13", frozenset({"acme"})),)
    bad_id = parse('[checks]\nsilence = { "VM-99" = ["acme"] }\n', "c.toml")
    try:
        silence.silences_from(bad_id, ["VM-13"])
    except silence.SilenceError as e:
        assert str(e).startswith("c.toml:2: checks.silence.VM-99: unknown check id"), str(e)
    else:
        raise AssertionError("unknown check id accepted")
    from probes.config import ConfigError

    for text, want in (  # the table's shape: refused when the file is read, with the line
        ('[checks]\n\nsilence = { "VM-13" = "acme" }\n', "c.toml:3: checks.silence.VM-13: expected a list"),
        ("[checks]\nsilense = {}\n", "c.toml:2: checks.silense: unknown key"),
    ):
        try:
            parse(text, "c.toml")
        except ConfigError as e:
            assert str(e).startswith(want), str(e)
        else:
            raise AssertionError(f"accepted: {text!r}")


def test_net08_sriov_vfs():
    vfs = parse_vfinfo((FACTS_DIR / "ip-link-sriov.json").read_text())
    assert [(v.vf, v.spoofchk, v.trust) for v in vfs] == [
        (0, False, True),
        (1, True, False),
        (2, False, False),
    ]
    from probes.facts.model import HostFacts

    fs = bad(xml_state(all_xml(), facts=HostFacts(sriov_vfs=vfs)), "NET-08")
    fail = [f for f in fs if f.status == Status.FAIL]
    assert len(fail) == 1 and fail[0].tenants == ("acme",) and "spoofchk off" in fail[0].summary
    assert "trust on" in fail[0].summary and "vf 0 spoofchk on trust off" in fail[0].fix
    assert [f.status for f in fs if f.status == Status.WARN] == [Status.WARN]  # VF 2, nobody's
    assert statuses(xml_state(all_xml(), facts=HostFacts()), "NET-08") == {Status.PASS}


def test_no_libvirt_is_skipped_not_passed():
    st = xml_state(libvirt=False)
    for cid in ("VM-01", "VM-06", "VM-08", "VM-09"):
        fs = results(st, cid)
        assert [f.status for f in fs] == [Status.SKIPPED] and "no libvirt" in fs[0].summary
    hs = st.hosts[0]
    absent = replace(
        st, hosts=(replace(hs, connections=(Connection("libvirt", ConnState.ABSENT, "no socket"),)),)
    )
    assert statuses(absent, "VM-01") == {Status.SKIPPED}
    down = replace(
        st,
        hosts=(
            replace(
                hs,
                host=replace(hs.host, libvirt_uri="qemu:///system"),
                connections=(Connection("libvirt", ConnState.UNREACHABLE, "refused"),),
            ),
        ),
    )
    assert statuses(down, "VM-01") == {Status.ERROR}
    failed = replace(st, hosts=(replace(hs, probe_errors=(ProbeError("facts", HOST, "boom", 1.0),)),))
    f = results(failed, "HOST-02")[0]
    assert f.status == Status.ERROR and "boom" in f.summary


def test_every_vm_check_runs_clean_on_the_whole_set(tmp_path):
    facts = collect_facts(make_tree("hardened", tmp_path))
    out = run_checks(xml_state(all_xml(), facts=facts))
    assert not [f for f in out if f.status == Status.ERROR], [
        f.summary for f in out if f.status == Status.ERROR
    ]


def test_facts_probe_comes_back_soon_for_new_disk_images(tmp_path):
    """In the TUI the engine re-reads `interval` after each run: 5 s while images wait for a
    stat (so VM-10 does not wait a whole minute), the normal interval once they are stat'ed."""
    import asyncio

    root = make_tree("hardened", tmp_path)
    state = xml_state(x("acme-web-1"))
    probe = FactsProbe(interval=60.0)
    host = LocalHost(HOST, root=str(root))
    first = asyncio.run(probe.collect(host))
    hs = probe.merge(state.hosts[0], first)
    assert probe.interval == 5.0
    second = asyncio.run(probe.collect(host))
    probe.merge(hs, second)
    assert probe.interval == 60.0 and second.stat("/var/lib/libvirt/images/acme-web-1.qcow2") is not None
