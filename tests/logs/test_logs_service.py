"""The logs service end to end: sources -> batches -> engine State -> checks; lifecycle events
from a real libvirtd + QEMU domain; tenantscope's own events; backpressure. The inventory is a
stand-in (FleetProbe: the fixture fleet instead of this machine's VMs); the rest is real."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from probes.engine import Engine, Probe
from probes.hosts.local import LocalHost
from probes.logs import service as svcmod
from probes.logs.model import SourceState
from probes.logs.service import LogService
from probes.logs.sources import LogsConfig, follow_libvirt_events
from probes.model import HostState, Status
from probes.session import Options, make_deriver
from tests.fixtures.journal import DATA, fleet_state, local_host
from tests.fixtures.libvirtd import libvirtd, qemu_domain  # noqa: F401 - fixtures
from tests.logs.test_logs_sources import CollectSink, wait_for


class FleetProbe(Probe):
    """Stand-in for the inventory and topology probes (libvirt, netns): answers the fixture
    fleet's workloads and links instead of observing this machine, so the log lines of the
    corpus have known VMs and namespaces to be attributed to. The log service, its sources
    (real files), the engine, the tenancy rules and the checks are the real ones."""

    name = "fleet"
    interval = 3600.0
    timeout = 5.0

    async def collect(self, host):
        return fleet_state().hosts[0]

    def merge(self, state, result):
        return replace(state, workloads=result.workloads, topology=result.topology)

    def failed(self, state, error, now):
        return state

    async def close(self) -> None:
        return None


async def test_service_feeds_the_engine_and_the_checks(tmp_path):
    root = tmp_path
    (root / "var/log/libvirt/qemu").mkdir(parents=True)
    syslog = root / "var/log/syslog"
    corpus = (DATA / "corpus.log").read_text().splitlines()
    syslog.write_text("\n".join(corpus[:12]) + "\n")
    (root / "var/log/libvirt/qemu/acme-web.log").write_text("\n".join(corpus[13:]) + "\n")
    cfg = LogsConfig(
        files=("/var/log/syslog", "/var/log/libvirt/qemu/*.log", "/var/log/audit/audit.log"),
        journal=False,
        libvirt_events=False,
    )
    svc = LogService(cfg)
    host = local_host(root)
    engine = Engine([host], lambda h: [FleetProbe(), svc.probe()], make_deriver(Options()))
    engine.subscribe(svc.observe)  # as the session wires it (probes/session.py make_engine)

    def ring() -> tuple:  # the session's ring of hv1, as the Logs pane reads it
        got = svc.entries("hv1", 0)
        return got.entries if got is not None else ()

    try:
        st = await engine.refresh_once()  # the headless path: backlog read within the first run
        lv = st.hosts[0].logs
        assert lv is not None and lv.total >= 14
        srcs = {s.name: s.state for s in lv.sources}
        assert srcs["file:/var/log/syslog"] == SourceState.FOLLOWING
        assert srcs["file:/var/log/libvirt/qemu/acme-web.log"] == SourceState.FOLLOWING
        assert srcs["file:/var/log/audit/audit.log"] == SourceState.WAITING
        by = {
            c: [f for f in st.findings if f.check_id == c] for c in ("LOG-01", "LOG-02", "LOG-03", "LOG-04")
        }
        assert any(f.status == Status.FAIL and f.severity == "critical" for f in by["LOG-01"])
        assert any(f.status == Status.FAIL and f.tenants == ("acme",) for f in by["LOG-02"])
        assert any(f.status == Status.FAIL and f.tenants == ("globex",) for f in by["LOG-03"])
        # the entries themselves are attributed (the fleet was known when they were flushed,
        # or they were re-attributed when it became known)
        engine.start()
        await wait_for(lambda: any(e.tenant == "initech" for e in ring()), "re-attribution")
        # live: a new file line and a new qemu log file (found by the rescan)
        with open(syslog, "a") as f:
            f.write("Nov 27 10:10:00 hv1 kernel: br0: port 3(tapglobex1) entered disabled state\n")
        await wait_for(
            lambda: any("tapglobex1" in e.message for e in engine.state.hosts[0].logs.events),
            "the appended line in the State",
        )
        e = next(e for e in engine.state.hosts[0].logs.events if "tapglobex1" in e.message)
        assert e.tenant == "globex" and e.tags == ("bridge-port",)
        # tenantscope's own events: the findings raised appear as log entries
        own = [x.message for x in ring() if x.source == "tenantscope"]
        assert any(
            "finding raised: LOG-01" in m or ("findings raised" in m and "LOG-01" in m) for m in own
        ), own
        (root / "var/log/libvirt/qemu/globex-db.log").write_text(
            "2026-11-27 10:11:00.000+0000: shutting down, reason=crashed\n"
        )
        svc_probe = engine.probes_of("hv1")[1]
        await svc.ensure(host)  # what the probe's run every SETUP_EVERY s does: rescan the globs
        await wait_for(lambda: any("reason=crashed" in x.message for x in ring()), "new qemu log")
        crash = next(x for x in ring() if "reason=crashed" in x.message)
        assert crash.tenant == "globex" and crash.attributed_by == "file" and crash.tags == ("guest-crash",)
        assert svc_probe.name == "logs"
    finally:
        await engine.stop()
    assert svc.entries("hv1", 0) is None  # stopped: its sources and ring are gone


async def test_backpressure_drops_oldest_pending_and_counts_them(tmp_path, monkeypatch):
    monkeypatch.setattr(svcmod, "MAX_PENDING", 100)
    svc = LogService(LogsConfig(files=(), journal=False, libvirt_events=False, ring=1000))
    hl = svcmod.HostLogs(local_host(tmp_path), svc.cfg)
    from probes.logs import parsers

    hl.put([parsers.parse_plain(f"l{i}", "hv1", "x") for i in range(250)])
    out = hl.take(svc.attributor)
    assert [e.message for e in out] == [f"l{i}" for i in range(150, 250)]
    assert hl.ring.dropped == 150 and hl.ring.total == 250 and out[0].seq == 151
    v = hl.view(None)
    assert v.dropped == 150 and v.total == 250


async def test_lifecycle_events_from_a_real_qemu_domain(libvirtd, qemu_domain):
    host = LocalHost("hv1", libvirt_uri=libvirtd)
    sink = CollectSink()
    task = asyncio.create_task(follow_libvirt_events(host, sink))
    try:
        await wait_for(lambda: any(s[1] == SourceState.FOLLOWING for s in sink.states), "virsh event")
        await asyncio.sleep(1.0)  # let virsh register its callbacks
        d = await asyncio.to_thread(qemu_domain)
        await wait_for(
            lambda: any(e.field("domain") == d.name and "Started" in e.message for e in sink.events),
            "the Started event",
        )
        await asyncio.to_thread(qemu_domain.destroy, d.name)
        await wait_for(
            lambda: any(e.field("domain") == d.name and "Stopped" in e.message for e in sink.events),
            "the Stopped event",
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    mine = [e for e in sink.events if e.field("domain") == d.name]
    details = [e.field("detail").split()[0] for e in mine]
    assert details.index("Started") < details.index("Stopped")
    assert all(e.kind == "lifecycle" and e.source == "libvirt-events" and e.at > 0 for e in mine)
    # attributed to the domain once the inventory knows it
    from probes.logs.attribute import Attributor, Index
    from probes.model import Host, HostState, State, Workload, WorkloadKind

    st = State(
        hosts=(
            HostState(
                Host("hv1"), workloads=(Workload(WorkloadKind.VM, d.name, "hv1", uuid=d.uuid, tenant="tsa"),)
            ),
        )
    )
    att = Attributor(Index(st))
    assert {att.attribute(e).workload for e in mine} == {f"hv1/vm/{d.name}"}


def test_session_registers_the_logs_probe():
    from probes.session import make_probes

    opts = Options()
    probes = make_probes(opts)(LocalHost("hv1", libvirt_uri=None))
    assert any(p.name == "logs" for p in probes)
    svc = LogService()
    mine = make_probes(opts, svc)(LocalHost("hv1", libvirt_uri=None))
    assert [p.service for p in mine if p.name == "logs"] == [svc]  # the session's service
    demo = make_probes(Options(demo=True))(LocalHost("demo", libvirt_uri=None))
    # the demo's logs are its simulated lines (probes/demo/logs.py), no source of this machine
    assert [p.service.own_sources is not None for p in demo if p.name == "logs"] == [True]


def test_own_events_findings_and_probe_errors(tmp_path):
    from probes.model import Finding, ProbeError, Severity

    svc = LogService(LogsConfig(files=(), journal=False, libvirt_events=False))
    hl = svc.hosts["hv1"] = svcmod.HostLogs(local_host(tmp_path), svc.cfg)
    base = fleet_state()

    def f(i, status=Status.FAIL):
        return Finding(f"X-{i:02d}", "vm", "t", status, Severity.HIGH, "hv1", summary=f"s{i}")

    def msgs():
        out = [e.message for e in hl.pending]
        hl.pending.clear()
        return out

    svc._own_events(replace(base, findings=(f(1), f(2, Status.PASS))))
    assert msgs() == ["finding raised: X-01 t: s1"]
    svc._own_events(replace(base, findings=tuple(f(i) for i in range(1, 16))))
    assert msgs() == ["14 findings raised (14 failing): " + ", ".join(f"X-{i:02d}" for i in range(2, 14))]
    svc._own_events(replace(base, findings=tuple(f(i) for i in range(2, 16))))
    assert msgs() == ["finding cleared: X-01 t: s1"]
    hs = replace(base.hosts[0], probe_errors=(ProbeError("libvirt", "hv1", "no answer", 1.0),))
    svc._own_events(replace(base, hosts=(hs,), findings=tuple(f(i) for i in range(2, 16))))
    assert msgs() == ["probe libvirt failed: no answer"]
    svc._own_events(replace(base, findings=tuple(f(i) for i in range(2, 16))))
    assert msgs() == ["probe libvirt recovered"]


def test_own_events_resource_spikes(tmp_path):
    from probes.resources.model import Metric, ResourceSnapshot, Spike

    svc = LogService(LogsConfig(files=(), journal=False, libvirt_events=False))
    hl = svc.hosts["hv1"] = svcmod.HostLogs(local_host(tmp_path), svc.cfg)
    base = fleet_state()
    sp = Spike("hv1/vm/acme-web", Metric.CPU, 10.0, 2.0, 20.0, 95.0, 100.0, 101.0, first=90.0)

    def with_spikes(*spikes):
        return replace(base, hosts=(replace(base.hosts[0], samples=ResourceSnapshot(spikes=spikes)),))

    svc._own_spikes(with_spikes(sp))
    svc._own_spikes(with_spikes(sp))  # the same spike again: one entry only
    e = hl.pending[-1]
    assert len(hl.pending) == 1 and e.tenant == "acme" and e.workload == "hv1/vm/acme-web"
    assert e.message.startswith("spike: hv1/vm/acme-web cpu 90.0")
    svc._own_spikes(with_spikes(replace(sp, ended_at=130.0)))
    assert len(hl.pending) == 2 and hl.pending[-1].message.startswith("spike ended:")


def test_reattribution_is_skipped_when_the_index_only_lost_workloads():
    """Namespaces of another tool come and go all day: an index that only lost entries
    cannot attribute what the old one could not, so the ring is not walked again; a new
    workload's name still re-attributes the newest entries that name it."""
    from probes.logs.attribute import Index
    from probes.logs.model import LogEvent
    from probes.logs.ring import Ring
    from probes.model import Host, HostState, NetnsDetails, State, Workload, WorkloadKind

    def state(*names: str) -> State:
        ws = tuple(
            Workload(WorkloadKind.NETNS, n, "h", tenant="acme", netns=NetnsDetails(interfaces=(f"veth-{n}",)))
            for n in names
        )
        return State(hosts=(HostState(Host("h"), workloads=ws),))

    a, ab, abc = (
        Index(state("tsl-a")),
        Index(state("tsl-a", "tsl-b")),
        Index(state("tsl-a", "tsl-b", "tsl-c")),
    )
    assert a.within(ab) and ab.within(abc) and not abc.within(ab) and not ab.within(a)
    ring = Ring(100)
    ring.append_many(LogEvent(0.0, "h", "journal", "info", f"line {i} veth-tsl-c up") for i in range(50))
    seen: list[int] = []
    ring.update(lambda e: seen.append(e.seq), 10)
    assert seen == list(range(41, 51))  # only the newest 10 were looked at, oldest first
    assert [e.seq for e in ring] == list(range(1, 51))  # and the order kept


def test_reattribution_walks_only_the_hosts_whose_index_changed(tmp_path):
    """A workload new on one host of a fleet re-attributes that host's newest entries only:
    the other hosts' rings are not walked (their part of the index did not change); a State
    whose hosts' workloads and topology are the same objects is not indexed again at all."""
    from probes.model import Host, HostState, NetnsDetails, State, Workload, WorkloadKind

    svc = LogService(LogsConfig(files=(), journal=False, libvirt_events=False))
    walked: list[str] = []
    for name in ("tsl-h1", "tsl-h2"):
        hl = svc.hosts[name] = svcmod.HostLogs(local_host(tmp_path, name), svc.cfg)
        real = hl.ring.update

        def spy(fn, n, name=name, real=real):  # type: ignore[no-untyped-def]
            walked.append(name)
            return real(fn, n)

        hl.ring.update = spy  # type: ignore[method-assign]

    def hs(host: str, *names: str) -> HostState:
        ws = tuple(
            Workload(
                WorkloadKind.NETNS, n, host, tenant="acme", netns=NetnsDetails(interfaces=(f"veth-{n}",))
            )
            for n in names
        )
        return HostState(Host(host), workloads=ws)

    h2 = hs("tsl-h2", "tsl-b")
    svc._index(State(hosts=(hs("tsl-h1", "tsl-a"), h2)))
    walked.clear()
    st = State(hosts=(hs("tsl-h1", "tsl-a", "tsl-c"), h2))
    svc._index(st)
    assert walked == ["tsl-h1"]
    walked.clear()
    svc._index(replace(st, taken_at=5.0))  # the same hosts' objects: nothing looked at
    assert walked == [] and svc._index_from[0][0] is st.hosts[0].workloads


async def test_the_flusher_sleeps_at_idle_and_wakes_for_a_new_line(tmp_path, monkeypatch):
    """No flush pass while nothing arrives (it polled 4 times a second); a line appended to a
    real followed file is in the ring within a fraction of a second."""
    (tmp_path / "var/log").mkdir(parents=True)
    syslog = tmp_path / "var/log/syslog"
    syslog.write_text("Nov 27 10:00:00 hv1 kernel: booted\n")
    svc = LogService(LogsConfig(files=("/var/log/syslog",), journal=False, libvirt_events=False))
    passes = []
    real_flush = svc.flush
    monkeypatch.setattr(svc, "flush", lambda hl: passes.append(1) or real_flush(hl))

    def messages() -> list[str]:
        got = svc.entries("hv1", 0)
        return [e.message for e in got.entries] if got is not None else []

    await svc.ensure(local_host(tmp_path))
    try:
        await wait_for(lambda: any("booted" in m for m in messages()), "the backlog")
        await asyncio.sleep(0.4)  # the backlog's last flush
        before = len(passes)
        await asyncio.sleep(1.0)
        assert len(passes) == before  # asleep: nothing pending
        with open(syslog, "a") as f:
            f.write("Nov 27 10:10:00 hv1 kernel: br0: port 3(tapglobex1) entered disabled state\n")
        t0 = asyncio.get_running_loop().time()
        await wait_for(lambda: any("tapglobex1" in m for m in messages()), "the appended line")
        assert asyncio.get_running_loop().time() - t0 < 1.0
        assert len(passes) - before <= 3
    finally:
        await svc.stop_host("hv1")


def test_the_index_built_in_the_derive_thread_is_the_one_observe_takes():
    """The session's derive primes the logs index of the State it made (off the loop);
    publishing that State takes it instead of building it on the loop; a State with other
    workloads (or one published without priming) gets its own index, built there."""
    import threading

    from probes.model import Host, HostState, State, Workload, WorkloadKind
    from probes.session import _priming

    def state(*names: str) -> State:
        ws = tuple(Workload(WorkloadKind.VM, n, "h", tenant="acme", uuid=f"u-{n}") for n in names)
        return State(hosts=(HostState(Host("h"), workloads=ws),))

    svc = LogService(LogsConfig(files=(), journal=False, libvirt_events=False))
    one = state("acme-a", "acme-b")
    out: list[State] = []
    th = threading.Thread(target=lambda: out.append(_priming(lambda s: s, svc)(one)))
    th.start()
    th.join()
    assert out == [one] and svc._primed is not None
    primed = svc._primed[1]
    svc.observe(one)
    assert svc.attributor.index is primed and svc._primed is None
    assert svc.attributor.index.by_host == svcmod.Index(one).by_host
    two = state("acme-a", "acme-c")
    svc.prime(one)  # what it has already: nothing built
    assert svc._primed is None
    svc.observe(two)
    assert svc.attributor.index is not primed and "acme-c" in str(svc.attributor.index.by_host)


async def test_a_setup_check_that_finds_what_the_last_found_changes_nothing(tmp_path):
    """Issue 19: the logs probe's safety poll re-checks the logging set-up every SETUP_EVERY s;
    finding what it found last time leaves the host's logs as they were (its check time is not
    news). A new LoggingSetup each time made every host's poll an urgent publish and a derive."""
    (tmp_path / "var/log").mkdir(parents=True)
    (tmp_path / "var/log/syslog").write_text("Nov 27 10:00:00 hv1 kernel: booted\n")
    svc = LogService(LogsConfig(files=("/var/log/syslog",), journal=False, libvirt_events=False))
    host = local_host(tmp_path)
    probe = svc.probe()
    try:
        first = probe.merge(HostState(host=host.host), await probe.collect(host))
        await asyncio.sleep(0.4)  # the backlog's flush
        first = probe.merge(HostState(host=host.host), await probe.collect(host))
        probe._setup_at = -svcmod.SETUP_EVERY  # its next run checks the set-up again
        second = probe.merge(HostState(host=host.host), await probe.collect(host))
        assert first.logs is not None and first.logs.setup is not None
        assert second.logs == first.logs
        assert second.logs is not None and second.logs.setup is first.logs.setup
    finally:
        await probe.close()
