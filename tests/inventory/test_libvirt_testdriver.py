"""LibvirtProbe over libvirt's test driver (the real libvirt API, simulated hypervisor):
the demo fleet, change detection by events and by state, XML errors isolated per domain,
and the unreachable/stale/recovered path of merge() and failed()."""

from __future__ import annotations

import asyncio
import time

import pytest

from probes.engine import Engine
from probes.hosts.local import LocalHost
from probes.inventory import domxml
from probes.inventory.libvirt import XML_ERRORS_PROBE, LibvirtProbe, LibvirtResult
from probes.model import (
    Connection,
    ConnState,
    HostState,
    NetnsDetails,
    State,
    Workload,
    WorkloadKind,
)
from probes.session import Options, demo_uri, make_engine

SHUT_OFF = {"globex-db-1", "initech-ci-2", "instance-0000001c"}


@pytest.fixture
async def probe():
    p = LibvirtProbe(interval=1.0)
    yield p
    await p.close()


def demo_host() -> LocalHost:
    return LocalHost("demo-hv1", libvirt_uri=demo_uri())


async def test_demo_fleet_inventory(probe: LibvirtProbe) -> None:
    h = demo_host()
    r = await probe.collect(h)
    assert len(r.vms) == 12 and r.parsed == 12 and r.xml_errors == ()
    states = {w.name: w.state for w in r.vms}
    assert {n for n, s in states.items() if s == "shut off"} == SHUT_OFF
    assert {s for n, s in states.items() if n not in SHUT_OFF} == {"running"}
    w = next(w for w in r.vms if w.name == "acme-db-1")
    assert (w.kind, w.host, w.uuid) == (WorkloadKind.VM, "demo-hv1", "a0000000-0000-4000-8000-000000000003")
    assert [n.model for n in w.vm.nics] == ["virtio", "e1000"]
    assert w.vm.nics[1].bridge == "br-shared"
    # the test driver is opened read-write to get secure XML: passwords are known
    g = next(w for w in r.vms if w.name == "acme-web-1").vm.graphics[0]
    assert g.passwd_known and g.passwd_set
    g = next(w for w in r.vms if w.name == "globex-app-2").vm.graphics[0]
    assert g.passwd_known and not g.passwd_set and g.listen == "0.0.0.0"

    st = probe.merge(HostState(host=h.host), r)
    c = st.connection("libvirt")
    assert c is not None and c.state == ConnState.UP and c.detail == demo_uri()
    assert len(st.workloads) == 12


async def test_merge_replaces_only_vms(probe: LibvirtProbe) -> None:
    h = demo_host()
    ns = Workload(kind=WorkloadKind.NETNS, name="tenant-ns", host=h.name, netns=NetnsDetails())
    old_vm = Workload(kind=WorkloadKind.VM, name="gone-vm", host=h.name)
    st = HostState(host=h.host, workloads=(ns, old_vm))
    st = probe.merge(st, await probe.collect(h))
    names = [w.name for w in st.workloads]
    assert "tenant-ns" in names and "gone-vm" not in names and len(names) == 13


async def _collect_until(probe: LibvirtProbe, h: LocalHost, cond, tries: int = 40) -> LibvirtResult:
    """Collect until cond(result) holds (events arrive on another thread), bounded."""
    r = await probe.collect(h)
    for _ in range(tries):
        if cond(r):
            return r
        await asyncio.sleep(0.05)
        r = await probe.collect(h)
    return r


def _model(r: LibvirtResult, name: str) -> str:
    return next(w for w in r.vms if w.name == name).vm.nics[0].model


def _redefine_with_e1000(probe: LibvirtProbe, name: str) -> None:
    import libvirt

    conn = probe._conn  # the test driver lives inside this connection: change it there
    xml = conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)
    conn.defineXML(xml.replace("<model type='virtio'/>", "<model type='e1000'/>"))


async def test_steady_refresh_parses_nothing_and_events_reparse(probe: LibvirtProbe) -> None:
    h = demo_host()
    r1 = await probe.collect(h)
    r2 = await probe.collect(h)
    assert r2.events and r2.parsed == 0 and r2.vms == r1.vms
    # a state change (suspend) is seen
    probe._conn.lookupByName("acme-web-1").suspend()
    r3 = await _collect_until(
        probe, h, lambda r: any(w.name == "acme-web-1" and w.state == "paused" for w in r.vms)
    )
    assert next(w for w in r3.vms if w.name == "acme-web-1").state == "paused"
    # a configuration change without a state change is seen through the DEFINED event
    assert _model(r3, "globex-db-1") == "virtio"
    _redefine_with_e1000(probe, "globex-db-1")
    r4 = await _collect_until(probe, h, lambda r: _model(r, "globex-db-1") == "e1000")
    assert _model(r4, "globex-db-1") == "e1000"


async def test_without_events_config_changes_wait_for_resync() -> None:
    h = demo_host()
    p = LibvirtProbe(events=False, resync_without_events=3600)
    try:
        await p.collect(h)
        _redefine_with_e1000(p, "globex-db-1")
        r = await p.collect(h)
        assert not r.events and r.parsed == 0 and _model(r, "globex-db-1") == "virtio"
        p.resync_without_events = 0  # the safety net
        r = await p.collect(h)
        assert r.parsed == 12 and _model(r, "globex-db-1") == "e1000"
    finally:
        await p.close()


async def test_a_bad_domain_xml_is_isolated(probe: LibvirtProbe, monkeypatch) -> None:
    import libvirt

    h = demo_host()
    conn = libvirt.open(demo_uri())
    sizes = {d.name(): len(d.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)) for d in conn.listAllDomains()}
    conn.close()
    biggest = max(sizes, key=sizes.__getitem__)
    monkeypatch.setattr(domxml, "MAX_XML", sizes[biggest] - 1)
    r = await probe.collect(h)
    assert len(r.vms) == 12
    bad = [w for w in r.vms if w.vm.parse_error]
    assert [w.name for w in bad] == [biggest]
    assert r.xml_errors == (bad[0].vm.parse_error,) and repr(biggest) in r.xml_errors[0]
    st = probe.merge(HostState(host=h.host), r)
    errs = [e for e in st.probe_errors if e.probe == XML_ERRORS_PROBE]
    assert len(errs) == 1 and biggest in errs[0].message
    assert st.connection("libvirt").state == ConnState.UP
    # fixed: the error goes away
    monkeypatch.setattr(domxml, "MAX_XML", 8 << 20)
    probe.resync = 0
    st = probe.merge(st, await probe.collect(h))
    assert not [e for e in st.probe_errors if e.probe == XML_ERRORS_PROBE]


def test_failed_keeps_vms_stale_and_says_since_when() -> None:
    p = LibvirtProbe()
    vm = Workload(
        kind=WorkloadKind.VM,
        name="a",
        host="h",
        state="running",
        vm=domxml.parse_domain("<domain><name>a</name></domain>").vm,
    )
    ns = Workload(kind=WorkloadKind.NETNS, name="n", host="h")
    t0 = time.mktime((2026, 11, 27, 14, 2, 0, 0, 0, -1))
    st = HostState(
        host=LocalHost("h").host,
        workloads=(vm, ns),
        connections=(Connection("libvirt", ConnState.UP, "qemu:///system", t0 - 60),),
    )
    st1 = p.failed(st, "qemu:///system: Cannot recv data: Connection reset by peer", t0)
    c = st1.connection("libvirt")
    assert c.state == ConnState.UNREACHABLE and c.since == t0
    assert c.detail.startswith("unreachable since 14:02, retrying") and "Connection reset" in c.detail
    vms = [w for w in st1.workloads if w.kind == WorkloadKind.VM]
    assert [(w.name, w.state, w.vm.stale) for w in vms] == [("a", "running", True)]
    assert ns in st1.workloads
    st2 = p.failed(st1, "cannot connect to qemu:///system: Connection refused", t0 + 300)
    assert st2.connection("libvirt").since == t0  # the streak began at 14:02
    assert "since 14:02" in st2.connection("libvirt").detail


def test_no_libvirt_at_all_is_absent() -> None:
    p = LibvirtProbe()
    st = HostState(host=LocalHost("h").host)
    err = (
        "cannot connect to qemu:///system: Failed to connect socket to "
        "'/var/run/libvirt/libvirt-sock-ro': No such file or directory"
    )
    c = p.failed(st, err, 1000.0).connection("libvirt")
    assert c.state == ConnState.ABSENT and "No such file" in c.detail


def test_a_uri_named_by_the_user_is_decided_once_where_the_host_is_made() -> None:
    """`--libvirt URI` (even the default's value) or a libvirt view's own URI sets
    Host.libvirt_uri_given where the hosts are made; the inventory's "absent or an error" and
    the headless commands' exit status both read it (each decided it on its own before: the
    inventory from the URI's value, the CLI from its arguments, and they disagreed on an
    explicit `--libvirt qemu:///system`)."""
    from probes.hosts.libvirt_uri import DEFAULT_URI
    from probes.session import make_hosts
    from tui.commands.common import observation_problems

    err = (
        "cannot connect to qemu:///system: Failed to connect socket to "
        "'/var/run/libvirt/libvirt-sock-ro': No such file or directory"
    )
    [default] = make_hosts(Options())
    [named] = make_hosts(Options(libvirt_uri=DEFAULT_URI))
    [view] = make_hosts(Options(libvirt_uri="test:///default"))
    assert [h.host.libvirt_uri_given for h in (default, named, view)] == [False, True, True]
    assert default.host.libvirt_uri == named.host.libvirt_uri == DEFAULT_URI
    p = LibvirtProbe()
    got = {}
    for name, h in (("default", default), ("named", named)):
        st = p.failed(HostState(host=h.host), err, 1000.0)
        got[name] = (st.connection("libvirt").state, len(observation_problems(State(hosts=(st,)))))
    assert got == {"default": (ConnState.ABSENT, 0), "named": (ConnState.UNREACHABLE, 1)}


async def test_engine_on_the_demo_fleet_and_on_a_bad_uri() -> None:
    eng = make_engine(Options(demo=True))
    try:
        state = await eng.refresh_once()
    finally:
        await eng.stop()
    (hs,) = state.hosts
    assert len([w for w in hs.workloads if w.kind == WorkloadKind.VM]) == 12
    assert hs.connection("libvirt").state == ConnState.UP
    assert not [e for e in hs.probe_errors if e.probe.startswith("libvirt")]

    h = LocalHost("h", libvirt_uri="test:///nonexistent/tsa-fleet.xml")
    p = LibvirtProbe()
    eng = Engine([h], lambda _h: [p])
    try:
        state = await eng.refresh_once()
    finally:
        await eng.stop()
    (hs,) = state.hosts
    (err,) = [e for e in hs.probe_errors if e.probe == "libvirt"]
    assert "tsa-fleet.xml" in err.message
    assert hs.connection("libvirt").state in (ConnState.UNREACHABLE, ConnState.ABSENT)


async def test_default_test_uri(probe: LibvirtProbe) -> None:
    r = await probe.collect(LocalHost("h", libvirt_uri="test:///default"))
    assert [(w.name, w.state) for w in r.vms] == [("test", "running")]


def test_ssh_uris_never_prompt_and_own_files_only_for_the_same_host() -> None:
    from probes.inventory.libvirt import _batch_uri, _reads_own_files

    assert _batch_uri("qemu+ssh://root@hv1/system") == "qemu+ssh://root@hv1/system?no_tty=1"
    assert _batch_uri("qemu+ssh://hv1/system?keyfile=/k") == "qemu+ssh://hv1/system?keyfile=/k&no_tty=1"
    assert _batch_uri("qemu+ssh://hv1/system?no_tty=0") == "qemu+ssh://hv1/system?no_tty=0"
    assert _batch_uri("qemu:///system") == "qemu:///system"
    local = LocalHost("h")
    assert _reads_own_files("qemu:///system", local)
    assert not _reads_own_files("qemu:///session", local)
    assert not _reads_own_files("qemu+tcp://other/system", local)  # not this host's files
    assert not _reads_own_files(demo_uri(), local)


async def test_libvirt_errors_never_reach_the_terminal(capfd) -> None:
    """libvirt prints errors on fd 2 by default, which is where Textual draws."""
    p = LibvirtProbe()
    with pytest.raises(Exception, match="tsa-missing"):
        await p.collect(LocalHost("h", libvirt_uri="test:///nonexistent/tsa-missing.xml"))
    await p.close()
    out, err = capfd.readouterr()
    assert "libvirt" not in err and "tsa-missing" not in err


async def test_bench_fleet_generator_stays_loadable(tmp_path) -> None:
    """bench/inventory.py's generated fleet (small here) loads and parses completely."""
    from bench.inventory import fleet_xml

    path = tmp_path / "fleet.xml"
    path.write_text(fleet_xml(40, 4))
    p = LibvirtProbe()
    try:
        r = await p.collect(LocalHost("h", libvirt_uri=f"test://{path}"))
    finally:
        await p.close()
    assert len(r.vms) == 40 and not r.xml_errors
    assert len({w.name.split("-")[0] for w in r.vms}) == 4
    assert sum(w.state == "shut off" for w in r.vms) == 8


async def test_a_domain_event_shows_at_once_without_a_poll() -> None:
    """A lifecycle event wakes the probe: the paused domain is published within 0.5 s while
    the poll (the safety net) is a minute away."""
    p = LibvirtProbe(interval=60.0, safety=60.0)
    engine = Engine([demo_host()], lambda h: [p])
    seen: dict[str, float] = {}

    def paused(st) -> bool:  # type: ignore[no-untyped-def]
        return any(w.name == "acme-web-1" and w.state == "paused" for w in st.workloads())

    engine.subscribe(lambda st: seen.setdefault("paused", time.monotonic()) if paused(st) else None)
    engine.start()
    try:
        for _ in range(200):
            if engine.state.workloads():
                break
            await asyncio.sleep(0.02)
        assert p.feed().mode == "events" and p.interval == 60.0
        await asyncio.sleep(0.1)
        t0 = time.monotonic()
        p._conn.lookupByName("acme-web-1").suspend()
        for _ in range(100):
            if "paused" in seen:
                break
            await asyncio.sleep(0.02)
        assert "paused" in seen and seen["paused"] - t0 <= 0.5
        assert engine.state.hosts[0].feeds[0].mode == "events"
    finally:
        await engine.stop()


async def test_warm_up_opens_the_test_driver_before_the_first_collect_which_uses_it(tmp_path) -> None:
    """The console warms its probes up while it composes (Engine.warm_up): the test driver's
    node XML is opened on the probe's thread before start, and the first collect takes that
    connection; a URI that cannot open leaves the first collect to say why, as before."""
    from probes.hosts.libvirt_view import LibvirtViewHost

    for host in (demo_host(), LibvirtViewHost(demo_uri(), name="view")):  # bench.fleet's hosts
        p = LibvirtProbe(interval=1.0)
        try:
            p.warm_up(host)
            for _ in range(200):
                if p._conn is not None:
                    break
                await asyncio.sleep(0.01)
            conn = p._conn
            assert conn is not None  # open before any collect
            r = await p.collect(host)
            assert len(r.vms) == 12 and p._conn is conn  # the same connection, not a second open
        finally:
            await p.close()
    missing = LocalHost("nowhere", libvirt_uri=f"test://{tmp_path}/missing.xml")
    p = LibvirtProbe(interval=1.0)
    try:
        p.warm_up(missing)
        await asyncio.sleep(0.1)
        assert p._conn is None
        with pytest.raises(Exception, match="no such file"):
            await p.collect(missing)
    finally:
        await p.close()
    daemon = LocalHost("x", libvirt_uri="qemu:///system")  # a daemon (or none): nothing early
    p = LibvirtProbe(interval=1.0)
    try:
        p.warm_up(daemon)
        await asyncio.sleep(0.05)
        assert p._conn is None
    finally:
        await p.close()


async def test_warm_up_imports_the_domain_parser_while_the_test_driver_opens(monkeypatch) -> None:
    """The first collect parses every domain right after the test driver's open: the parser's
    imports (xml.etree, defusedxml: ~10 ms) are made by warm_up while the open runs in C, not
    after it. A host whose libvirt is a daemon is not warmed up and imports nothing early."""
    import sys

    import probes.inventory

    # the parser as if not imported yet (both put back after the test)
    monkeypatch.delitem(sys.modules, "probes.inventory.domxml")
    monkeypatch.setattr(probes.inventory, "domxml", domxml)
    for host, imported in ((LocalHost("x", libvirt_uri="qemu:///system"), False), (demo_host(), True)):
        p = LibvirtProbe(interval=1.0)
        try:
            p.warm_up(host)
            assert ("probes.inventory.domxml" in sys.modules) is imported, host.name
        finally:
            await p.close()
