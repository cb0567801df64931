"""Issue 14 item 1: a libvirt URI for another host (or a test driver fleet file) is a host of
its own, seen only through libvirt: its topology is libvirt's view (domain interfaces, libvirt
networks and bridges, OVS virtualport, nwfilter), marked so in the header, the matrix and the
report; this machine's namespaces, containers, facts and logs are never mixed into it. With
`--host` naming the same host, the URI is that host's libvirt (both views merge).

Real parts: libvirt's test driver reading tests/data/fleets/*.xml through the real Engine,
probes, tenancy and checks; make_hosts for qemu+ssh/tcp URIs (no connection is made)."""

from __future__ import annotations

import json

import pytest

from probes.checks.base import run_checks
from probes.hosts.libvirt_uri import place, seen_only_through_libvirt
from probes.hosts.libvirt_view import LibvirtViewHost
from probes.model import HostKind, Status, WorkloadKind
from probes.session import Options, make_engine, make_hosts
from tests.helpers import DATA
from tui.cli import main

FLEET = DATA / "fleets" / "two-tenants-one-bridge.xml"
URI = f"test://{FLEET}"


def test_uri_places():
    assert place(None).this_machine and place("qemu:///system").this_machine
    assert place("qemu+ssh://localhost/system").this_machine
    assert place("qemu+ssh://root@hv2/system?no_tty=1").remote_host == "hv2"
    assert place("qemu+tls://hv3.example:16514/system").remote_host == "hv3.example"
    assert place("test:///default").simulated
    for remote in ("qemu+ssh://hv2/system", "qemu+tcp://hv2/system", "qemu+tls://hv2/system", URI):
        assert seen_only_through_libvirt(remote), remote
    for local in (
        None,
        "qemu:///system",
        "qemu+unix:///system",
        "test:///default",
        "qemu+ssh://127.0.0.1/system",
    ):
        assert not seen_only_through_libvirt(local), local


def test_make_hosts_separates_or_merges_by_the_host_a_uri_names():
    # alone: the other host is seen only through libvirt (not this machine with its domains)
    (h,) = make_hosts(Options(libvirt_uri="qemu+ssh://root@hv2/system"))
    assert isinstance(h, LibvirtViewHost) and h.host.kind == HostKind.LIBVIRT and h.host.name == "hv2"
    (h,) = make_hosts(Options(libvirt_uri="qemu+tcp://hv2/system"))
    assert h.host.kind == HostKind.LIBVIRT
    (h,) = make_hosts(Options(libvirt_uri=URI))
    assert h.host.kind == HostKind.LIBVIRT and h.host.name == "test-two-tenants-one-bridge"
    # this machine's libvirt: the local host as before
    (h,) = make_hosts(Options(libvirt_uri="qemu:///system"))
    assert h.host.kind == HostKind.LOCAL
    # --host hv2 with a URI for hv2: one host, both views; the URI opened as given (no forwarding)
    (h,) = make_hosts(Options(hosts=("root@hv2",), libvirt_uri="qemu+tcp://hv2/system"))
    assert h.host.kind == HostKind.SSH and h.host.libvirt_uri == "qemu+tcp://hv2/system"
    assert h.libvirt_forward is None
    two = make_hosts(Options(hosts=("hv1", "hv2"), libvirt_uri="qemu+tls://hv2/system"))
    assert [(x.host.name, x.host.kind) for x in two] == [("hv1", HostKind.SSH), ("hv2", HostKind.SSH)]
    assert two[1].host.libvirt_uri == "qemu+tls://hv2/system" and "hv1" in (two[0].host.libvirt_uri or "")
    assert two[1].libvirt_forward is None and two[0].libvirt_forward is not None
    # --host hv3 with a URI for hv2: hv3 keeps its own libvirt, hv2 is a host of its own
    hv3, hv2 = make_hosts(Options(hosts=("hv3",), libvirt_uri="qemu+ssh://hv2/system"))
    assert hv3.host.kind == HostKind.SSH and "hv3" in (hv3.host.libvirt_uri or "")
    assert hv2.host.kind == HostKind.LIBVIRT and hv2.host.name == "hv2"


async def test_the_view_host_refuses_this_machines_files():
    h = LibvirtViewHost("qemu+ssh://hv2/system")
    with pytest.raises(Exception, match=r"libvirt.s view only .*add --host hv2"):
        await h.read_text("/etc/os-release")
    with pytest.raises(Exception, match="libvirt's view only"):
        await h.run(["ip", "-j", "link"])


@pytest.fixture(scope="module")
def view_state():
    import asyncio

    async def observe():
        engine = make_engine(Options(libvirt_uri=URI, interval=0.5))
        try:
            await engine.refresh_once()
            return await engine.refresh_once()
        finally:
            await engine.stop()

    return asyncio.run(observe())


def test_a_test_fleet_is_libvirts_view_only(view_state):
    (hs,) = view_state.hosts
    assert hs.host.kind == HostKind.LIBVIRT
    # nothing of this machine: no namespaces, containers, facts or logs; libvirt's topology
    assert {w.kind for w in hs.workloads} == {WorkloadKind.VM}
    assert hs.facts is None and hs.logs is None
    assert hs.topology is not None and hs.topology.source == "libvirt"
    assert {n.name for n in hs.topology.libvirt_networks} == {"shared", "ovs-tsd"}
    links = {lk.name for lk in hs.topology.links}
    assert "virbr-tsd" in links and not links & {"lo", "eth0", "docker0"}


def test_shared_bridge_without_vlans_fails_net02_and_net04_from_libvirts_view(view_state):
    def bad(cid):
        return [f for f in run_checks(view_state, [cid]) if f.status == Status.FAIL]

    (net02,) = bad("NET-02")
    assert net02.tenants == ("acme", "globex") and "virbr-tsd" in net02.summary
    (net04,) = bad("NET-04")
    assert net04.tenants == ("acme", "globex")
    # initech and umbrella share the OVS network on VLAN tags 10 and 20: separated
    assert not any({"initech", "umbrella"} & set(f.tenants) for f in bad("NET-02") + bad("NET-03"))


def test_facts_containers_and_logs_skip_with_the_reason(view_state):
    for cid in ("HOST-01", "CTR-01", "LOG-01", "LOG-02", "SW-01"):
        (f,) = run_checks(view_state, [cid])
        assert f.status == Status.SKIPPED, cid
        assert "libvirt's view only" in f.summary and "simulated hypervisor" in f.summary, (cid, f.summary)


def test_marked_in_the_header_the_matrix_and_the_report(view_state, capsys):
    from probes.network.predict import matrix
    from tui.header import header_parts
    from tui.panes.reachability import describe

    header = " | ".join(p.plain for p in header_parts(view_state, 0.0, None, 60.0, {}))
    assert "test-two-tenants-one-bridge (libvirt's view" in header
    (hs,) = view_state.hosts
    m = matrix(hs)
    cell = m.cell("acme", "globex")
    assert cell is not None and "libvirt's view" in describe(hs, cell).plain
    rc = main(["check", "--libvirt", URI, "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert any(f["check_id"] == "NET-02" and f["status"] == "fail" for f in out["results"])


def test_a_hostless_uri_with_ssh_targets_is_refused(capsys):
    # qemu:///system next to --host would open THIS machine's libvirt as hv2's: one clear line
    rc = main(["check", "--host", "hv2", "--libvirt", "qemu:///system"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert err.strip().startswith("tenantscope: --libvirt qemu:///system: that is this machine's libvirt")
    assert "qemu+ssh://HOST/system" in err
