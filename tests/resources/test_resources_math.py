"""Unit tests: rate and baseline maths, counter resets, first samples, missing groups, parsers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from probes.checks.base import run_checks
from probes.hosts.local import LocalHost
from probes.model import (
    ContainerDetails,
    CpuTune,
    HostState,
    MemTune,
    State,
    Status,
    Tenant,
    VmDetails,
    Workload,
    WorkloadKind,
)
from probes.resources import cgroups
from probes.resources.baseline import Baseline, SpikeDetector, Tuning
from probes.resources.domstats import DomainReading, live_limits, parse_stats
from probes.resources.hosttotals import parse_diskstats, parse_meminfo, parse_proc_stat
from probes.resources.model import HostTotals, Limits, Metric, ResourceSnapshot, Sample
from probes.resources.netcounters import parse_all_netns, parse_net_dev
from probes.resources.probe import ResourcesProbe
from probes.resources.rates import RateTracker, cpu_percent
from probes.resources.tenants import by_tenant

# ------------------------------------------------------------------ rates


def test_first_sample_has_no_rate_then_rates_follow():
    r = RateTracker()
    assert r.rate("w", "cpu", 1_000, at=10.0) is None
    assert r.rate("w", "cpu", 3_000, at=12.0) == pytest.approx(1_000)
    assert r.rate("w", "cpu", 3_000, at=14.0) == 0.0


def test_counter_reset_gives_no_rate_and_restarts_from_new_value():
    r = RateTracker()
    r.rate("w", "net", 5_000_000, 0.0)
    assert r.rate("w", "net", 6_000_000, 1.0) == pytest.approx(1_000_000)
    assert r.rate("w", "net", 1_000, 2.0) is None  # restarted: never a negative rate
    assert r.resets == 1
    assert r.rate("w", "net", 3_000, 3.0) == pytest.approx(2_000)


def test_missing_value_and_no_elapsed_time():
    r = RateTracker()
    r.rate("w", "c", 10, 1.0)
    assert r.rate("w", "c", None, 2.0) is None  # group gone: forgotten
    assert r.rate("w", "c", 20, 3.0) is None  # so this is a first sample again
    assert r.rate("w", "c", 30, 3.0) is None  # dt == 0


def test_forget_missing_keeps_generations_of_live_owners():
    r = RateTracker()
    r.rate("h/vm/a#3", "cpu", 1, 0.0)
    r.rate("h/vm/b#4", "cpu", 1, 0.0)
    r.rate("h/container/c", "cpu", 1, 0.0)
    r.forget_missing({"h/vm/a", "h/container/c"})
    assert len(r) == 2
    assert cpu_percent(1e9) == pytest.approx(100.0)  # 1 s of CPU per second = one core


# ------------------------------------------------------------------ baselines


def feed(b: Baseline, values, t0=0.0, step=2.0):
    out = []
    for i, v in enumerate(values):
        out.append(b.update("w", Metric.CPU, v, t0 + i * step))
    return out


def test_warmup_then_spike_needs_confirmation_and_min_abs():
    b = Baseline(Tuning(min_abs=25.0, warmup=5, confirm=2))
    assert feed(b, [90.0] * 3) == [None] * 3  # during warm-up even big values are learned
    b = Baseline(Tuning(min_abs=25.0, warmup=5, confirm=2))
    assert all(x is None for x in feed(b, [1.0, 2.0, 0.5, 1.5, 1.0, 2.0, 3.0]))
    assert b.threshold() == pytest.approx(b.mean + 25.0)  # idle: min_abs dominates k*dev
    first = b.update("w", Metric.CPU, 100.0, 20.0)
    assert first is None  # one value above is not yet a spike
    s = b.update("w", Metric.CPU, 100.0, 22.0)
    assert s is not None and s.active and s.metric is Metric.CPU
    assert s.baseline < 5 and s.peak == 100.0 and s.started_at == 22.0
    mean = b.mean
    s = b.update("w", Metric.CPU, 150.0, 24.0)
    assert s.peak == 150.0 and s.peak_at == 24.0 and b.mean == mean  # frozen while spiking
    s = b.update("w", Metric.CPU, 1.0, 26.0)
    assert s is not None and not s.active and s.ended_at == 26.0 and s.peak == 150.0


def test_idle_noise_never_alarms():
    b = Baseline(Tuning(min_abs=25.0))
    import random

    rnd = random.Random(4)
    assert all(x is None for x in feed(b, [rnd.uniform(0, 8) for _ in range(500)]))


def test_relative_margin_and_adaptation():
    b = Baseline(Tuning(min_abs=10.0, rel=1.0, warmup=3, confirm=1, adapt_after=10.0))
    feed(b, [100.0] * 5)
    assert b.update("w", Metric.CPU, 180.0, 100.0) is None  # under mean + 100 %
    s = b.update("w", Metric.CPU, 250.0, 102.0)
    assert s is not None and s.active
    s = b.update("w", Metric.CPU, 250.0, 113.0)  # lasted past adapt_after: the new normal
    assert not s.active and b.mean == 250.0


def test_detector_holds_ended_spikes_then_forgets_and_ends_vanished():
    d = SpikeDetector({Metric.CPU: Tuning(warmup=2, confirm=1, min_abs=10.0)}, hold=60.0)
    for i, v in enumerate([0, 0, 90, 0]):
        d.update("w", Metric.CPU, float(v), float(i))
    sp = d.spikes(now=10.0)
    assert len(sp) == 1 and sp[0].ended_at == 3.0
    assert d.spikes(now=100.0) == ()
    for i, v in enumerate([0, 0, 90]):
        d.update("x", Metric.CPU, float(v), 200.0 + i)
    d.forget_missing(set(), now=300.0)
    assert d.spikes(now=300.0)[0].ended_at == 300.0


# ------------------------------------------------------------------ parsers


def test_cgroup_parsers():
    assert cgroups.parse_blkio_v1("8:0 Read 100\n8:0 Write 50\n8:16 Read 1\nTotal 151\n") == (101, 50)
    assert cgroups.parse_io_stat_v2("8:0 rbytes=10 wbytes=20 rios=1\n8:16 rbytes=1 wbytes=2\n") == (11, 22)
    assert cgroups.parse_cpu_stat_usec("usage_usec 1234\nuser_usec 1\n") == 1234
    pc = cgroups.parse_proc_cgroup("4:memory:/a\n2:cpu,cpuacct:/b\n0::/c\n")
    assert pc == {"memory": "/a", "cpu": "/b", "cpuacct": "/b", "": "/c"}
    lay = cgroups.parse_mounts(
        "cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n"
    )
    assert lay.kind == "hybrid" and lay.v1_mount("cpu") == "/sys/fs/cgroup/cpu"
    out = cgroups.parse_grep_h("/x/a:b/f:12\n/x/c/f:1\n/x/c/f:2\n", ["/x/a:b/f", "/x/c/f", "/x/d"])
    assert out == {"/x/a:b/f": "12\n", "/x/c/f": "1\n2\n", "/x/d": None}


def fake_v2_host(root, groups: dict[str, dict[str, str]]) -> LocalHost:
    """A FAKE pure-v2 cgroup tree under `root` (a pure-v2 host cannot be made here: the v2 mount
    has no controllers): each group's files with their text; a LocalHost reading it."""
    (root / "proc").mkdir()
    (root / "proc/mounts").write_text("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n")
    (root / "sys/fs/cgroup").mkdir(parents=True)
    (root / "sys/fs/cgroup/cgroup.controllers").write_text("cpu io memory pids\n")
    for name, files in groups.items():
        g = root / "sys/fs/cgroup" / name
        g.mkdir()
        for k, v in files.items():
            (g / k).write_text(v)
    return LocalHost(libvirt_uri=None, root=str(root))


async def test_pure_v2_tree_limits_and_counters(tmp_path):
    """A pure-v2 host cannot be made here (the v2 mount has no controllers): a FAKE file tree
    under a root prefix stands in for one, to test the v2 file formats and `max`."""
    root = tmp_path
    files = {
        "cpu.stat": "usage_usec 5000\n",
        "memory.current": "4096\n",
        "memory.max": "max\n",
        "io.stat": "8:0 rbytes=7 wbytes=9\n",
        "pids.current": "3\n",
        "pids.max": "100\n",
        "cpu.max": "50000 100000\n",
        "cpu.weight": "100\n",
    }
    host = fake_v2_host(root, {"ctr": files})
    g = root / "sys/fs/cgroup/ctr"
    lay = await cgroups.detect_layout(host)
    assert lay.kind == "v2" and "memory" in lay.v2_controllers
    [r] = await cgroups.read_groups(host, lay, [cgroups.GroupRef.same_everywhere("k", "/ctr")], limits=True)
    assert r.exists and r.cpu_ns == 5_000_000 and r.mem_bytes == 4096 and (r.blk_read, r.blk_write) == (7, 9)
    assert r.limits == Limits(
        source="cgroup v2",
        cpu_quota_cores=0.5,
        cpu_shares=100,
        mem_limit_bytes=None,
        pids_limit=100,
        where="/sys/fs/cgroup/ctr",
    )
    assert r.limits.mem_known  # memory.max = max: known to be unlimited
    # a child under a limited parent (a pod, a slice) inherits the tighter limit
    kid = g / "kid"
    kid.mkdir()
    for k, v in files.items():
        (kid / k).write_text(v)
    (g / "memory.max").write_text("1048576\n")
    (kid / "cpu.max").write_text("max 100000\n")
    [k] = await cgroups.read_groups(
        host, lay, [cgroups.GroupRef.same_everywhere("k", "/ctr/kid")], limits=True
    )
    assert k.limits.mem_limit_bytes == 1048576 and k.limits.cpu_quota_cores == 0.5
    assert "memory limit from /sys/fs/cgroup/ctr" in k.limits.where
    [gone] = await cgroups.read_groups(
        host, lay, [cgroups.GroupRef.same_everywhere("k", "/nope")], limits=True
    )
    assert not gone.exists and gone.limits is None


async def test_a_prepared_refresh_reads_what_a_refresh_from_scratch_reads(tmp_path):
    """read_groups with `prepared` (the probe hands the very same list of refs while its
    groups stay): plans, file order and last readings are kept by place. Refresh after refresh
    its readings equal a read with nothing kept; an unchanged group's reading is reused (the
    same object), a changed one is read anew, limits or not. A FAKE pure-v2 tree stands in
    (a real group's counters move between two reads: they could not be compared)."""
    root = tmp_path
    files = {
        "cpu.stat": "usage_usec 5000\n",
        "memory.current": "4096\n",
        "memory.max": "max\n",
        "io.stat": "8:0 rbytes=7 wbytes=9\n",
        "pids.current": "3\n",
        "pids.max": "100\n",
        "cpu.max": "max 100000\n",
        "cpu.weight": "100\n",
    }
    host = fake_v2_host(root, {"a": files, "b": files})
    lay = await cgroups.detect_layout(host)
    refs = [cgroups.GroupRef.same_everywhere("a", "/a"), cgroups.GroupRef.same_everywhere("b", "/b")]
    keep, plans, last, prepared = cgroups.OpenFiles(), {}, {}, {}
    steps = [  # (limits, a file changed, the groups read anew since the last such refresh)
        (True, None, "ab"),
        (False, None, "ab"),
        (False, ("a", "cpu.stat", "usage_usec 7000\n"), "a"),  # a's counter moves
        (False, ("b", "memory.max", "1048576\n"), ""),  # a limit: not read without limits
        (True, None, "ab"),  # (a's counter, b's limit)
        (True, ("a", "pids.current", "4\n"), "a"),
        (False, None, "a"),
        (False, None, ""),
    ]
    prev: dict[bool, list[cgroups.GroupReading]] = {}
    for limits, change, anew in steps:
        if change:
            (root / "sys/fs/cgroup" / change[0] / change[1]).write_text(change[2])
        got = await cgroups.read_groups(
            host, lay, refs, limits=limits, cache=plans, keep=keep, last=last, prepared=prepared
        )
        assert got == await cgroups.read_groups(host, lay, refs, limits=limits)
        was = prev.get(limits, [None, None])
        assert "".join(g.owner for g, p in zip(got, was) if g is not p) == anew, (limits, change)
        prev[limits] = got
    assert got[1].limits is None and got[0].cpu_ns == 7_000_000 and got[0].pids == 4
    assert prev[True][1].limits is not None and prev[True][1].limits.mem_limit_bytes == 1048576


def test_net_and_host_parsers():
    dev = (
        "Inter-|   Receive\n face |bytes packets errs drop fifo frame compressed multicast|\n"
        "    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n"
        "  eth0: 2000 5 0 3 0 0 0 0 1000 4 0 1 0 0 0 0\n"
    )
    n = parse_net_dev(dev)
    assert (n.rx_bytes, n.tx_bytes, n.drops, n.interfaces) == (2000, 1000, 4, 1)
    assert parse_all_netns(f"netns: a\n{dev}\nnetns: b\n{dev}")["b"].rx_bytes == 2000
    cpus, total, idle, steal = parse_proc_stat("cpu  100 0 100 700 100 0 0 50 0 0\ncpu0 1\ncpu1 1\n")
    assert (cpus, total, idle, steal) == (2, 10.5, 8.0, 0.5)
    assert parse_meminfo("MemTotal: 100 kB\nMemAvailable: 40 kB\n") == (102400, 61440)
    ds = (
        "   8       0 sda 1 0 10 0 1 0 20 0 0 0 0\n   8       1 sda1 1 0 10 0 1 0 20 0 0 0 0\n"
        "   7       0 loop0 1 0 99 0 1 0 99 0 0 0 0\n"
    )
    assert parse_diskstats(ds) == (10 * 512, 20 * 512)


def test_domain_stats_and_live_limits():
    s = {
        "state.state": 1,
        "cpu.time": 10,
        "balloon.current": 65536,
        "balloon.rss": 40000,
        "vcpu.current": 2,
        "vcpu.maximum": 2,
        "vcpu.0.delay": 5,
        "vcpu.1.delay": 7,
        "net.count": 2,
        "net.0.rx.bytes": 1,
        "net.0.tx.bytes": 2,
        "net.0.rx.drop": 1,
        "net.1.rx.bytes": 10,
        "net.1.tx.bytes": 20,
        "net.1.tx.drop": 2,
        "block.count": 1,
        "block.0.rd.bytes": 512,
        "block.0.wr.bytes": 1024,
    }
    r = parse_stats("d", "u", 3, s)
    assert (r.vcpu_delay_ns, r.net_rx, r.net_tx, r.net_drops, r.blk_read, r.blk_write) == (
        12,
        11,
        22,
        3,
        512,
        1024,
    )
    lim = live_limits(
        {
            "vcpu_quota": 50000,
            "vcpu_period": 100000,
            "cpu_shares": 512,
            "global_quota": -1,
            "global_period": 100000,
        },
        {"hard_limit": 9007199254740991},
        vcpus=2,
    )
    assert lim.cpu_quota_cores == 1.0 and lim.cpu_shares == 512 and lim.mem_limit_bytes is None
    assert live_limits({"vcpu_quota": -1, "vcpu_period": 100000}, {"hard_limit": 1024}, 1) == Limits(
        source="libvirt live",
        cpu_quota_cores=None,
        cpu_shares=None,
        mem_limit_bytes=1 << 20,
        where="schedinfo/memtune --live",
        pids_known=False,
    )
    unknown = live_limits(None, {"hard_limit": 1024}, 1)  # e.g. the test driver: no scheduler info
    assert not unknown.cpu_known and unknown.mem_known


def test_restarted_domain_starts_fresh_counters():
    p = ResourcesProbe(libvirt=False)
    r1 = DomainReading("d", "u", dom_id=5, state=1, cpu_ns=50_000_000_000, net_rx=10_000)
    r2 = DomainReading("d", "u", dom_id=5, state=1, cpu_ns=51_000_000_000, net_rx=12_000)
    r3 = DomainReading("d", "u", dom_id=6, state=1, cpu_ns=100_000_000, net_rx=100)  # restarted
    r4 = DomainReading("d", "u", dom_id=6, state=1, cpu_ns=600_000_000, net_rx=300)
    out = [p._vm_samples("h", [], [r], t)[0] for r, t in ((r1, 0.0), (r2, 2.0), (r3, 4.0), (r4, 6.0))]
    assert out[0].cpu_pct is None  # first sample
    assert out[1].cpu_pct == pytest.approx(50.0) and out[1].net_rx_bps == pytest.approx(1000)
    assert out[2].cpu_pct is None and out[2].net_rx_bps is None  # new domain id: no rate
    assert out[3].cpu_pct == pytest.approx(25.0) and out[3].net_rx_bps == pytest.approx(100)
    off = p._vm_samples("h", [], [DomainReading("d", "u", state=5)], 8.0)[0]
    assert off.cpu_pct is None and off.note == "shut off"


# ------------------------------------------------------------------ tenants and checks (pure)


def _vm(name, tenant, **kw):
    return Workload(
        WorkloadKind.VM,
        name,
        "h",
        state="running",
        tenant=tenant,
        vm=VmDetails(vcpus=1, memory_kib=65536, **kw),
    )


def _state(workloads, samples, totals=HostTotals(cpus=2, cpu_pct=90.0, mem_total=1 << 30)):
    from probes.model import Host

    hs = HostState(
        host=Host("h"),
        workloads=tuple(workloads),
        samples=ResourceSnapshot(samples=tuple(samples), totals=totals),
    )
    tenants = {}
    for w in workloads:
        tenants.setdefault(w.tenant, []).append(w.key)
    return State(hosts=(hs,), tenants=tuple(Tenant(t, tuple(k)) for t, k in tenants.items()))


def _bad(state, cid):
    return [f for f in run_checks(state, [cid]) if f.status in (Status.WARN, Status.FAIL)]


def test_vm_limits_and_drift_checks():
    capped = _vm(
        "capped", "a", cputune=CpuTune(quota=50000, period=100000), memtune=MemTune(hard_limit_kib=300000)
    )
    bare = _vm("bare", "b")
    drift = _vm("drift", "b", cputune=CpuTune(quota=50000, period=100000))
    lim = Limits("libvirt live", cpu_quota_cores=0.5, cpu_shares=1024, mem_limit_bytes=300000 * 1024)
    none = Limits("libvirt live", cpu_shares=1024)
    st = _state(
        [capped, bare, drift],
        [
            Sample(capped.key, 0, "vm", live=lim),
            Sample(bare.key, 0, "vm", live=none),
            Sample(drift.key, 0, "vm", live=none),
        ],
    )
    assert {f.workloads for f in _bad(st, "VM-04")} == {(bare.key,), (drift.key,)}
    assert {f.workloads for f in _bad(st, "VM-05")} == {(bare.key,), (drift.key,)}
    d = _bad(st, "VM-12")
    assert [f.workloads for f in d] == [(drift.key,)] and "CPU quota" in d[0].summary


def test_noisy_neighbour_by_steal_and_by_share():
    hog = _vm("hog", "a")
    victim = _vm("victim", "b")
    st = _state(
        [hog, victim],
        [
            Sample(hog.key, 0, "vm", cpu_pct=180.0, live=Limits(cpu_shares=1024)),
            Sample(victim.key, 0, "vm", cpu_pct=15.0, steal_pct=35.0, live=Limits(cpu_shares=1024)),
        ],
    )
    f = _bad(st, "RES-02")
    assert len(f) == 1 and f[0].tenants == ("a", "b") and "victim" in f[0].summary
    assert "configured share of 50%" in f[0].summary
    quiet = _state(
        [hog, victim],
        [Sample(hog.key, 0, "vm", cpu_pct=30.0), Sample(victim.key, 0, "vm", cpu_pct=20.0, steal_pct=1.0)],
    )
    assert _bad(quiet, "RES-02") == []
    [hu] = by_tenant(st)
    assert [t.name for t in hu.tenants] == ["a", "b"]
    assert hu.tenants[0].cpu_share == pytest.approx(90.0)  # 180 % of a core on 2 cores


def test_container_check_skips_until_limits_are_read():
    c = Workload(WorkloadKind.CONTAINER, "c", "h", container=ContainerDetails(cgroup="/c"))
    st = _state([c], [Sample(c.key, 0, "container", note="cgroup not found")])
    [f] = run_checks(st, ["CTR-07"])
    assert f.status is Status.SKIPPED
    # once the cgroup is read, the same container is judged: no pids and no memory limit fail
    unlimited = _state([c], [Sample(c.key, 0, "container", live=Limits(source="cgroup v2"))])
    [f] = [f for f in run_checks(unlimited, ["CTR-07"]) if f.status is not Status.PASS]
    assert f.status is Status.FAIL and "no pids, memory, cpu limit" in f.summary
    limited = Limits(source="cgroup v2", cpu_quota_cores=1.0, mem_limit_bytes=1 << 30, pids_limit=512)
    ok = _state([c], [Sample(c.key, 0, "container", live=limited)])
    assert [f.status for f in run_checks(ok, ["CTR-07"])] == [Status.PASS]


def test_snapshot_round_trip_of_resource_samples():
    from probes import snapshot
    from probes.resources.model import History, Spike

    hog = _vm("hog", "a")
    snap = ResourceSnapshot(
        samples=(
            Sample(
                hog.key,
                1.0,
                "vm",
                "libvirt",
                cpu_pct=50.0,
                mem_bytes=1 << 20,
                live=Limits("libvirt live", cpu_quota_cores=0.5, cpu_known=True, pids_known=False),
            ),
        ),
        at=1.0,
        interval=2.0,
        totals=HostTotals(cpus=2, cpu_pct=5.0, mem_total=1 << 30, source="psutil"),
        history=(History(hog.key, cpu=(1.0, 2.0), mem=(3.0,)),),
        history_at=(0.0, 1.0),
        spikes=(Spike(hog.key, Metric.CPU, 1.0, 0.5, 26.0, 99.0, 0.5, 1.0, first=90.0),),
        problems=("libvirt: down",),
    )
    from probes.model import Host

    state = State(hosts=(HostState(Host("h"), workloads=(hog,), samples=snap),))
    back = snapshot.loads(snapshot.dumps(state))
    assert back == state and back.hosts[0].samples.spikes[0].metric is Metric.CPU


def test_bulk_stats_retry_without_nowait_on_an_older_daemon():
    """FAKE connection (an old daemon cannot be run here): NOWAIT refused with
    VIR_ERR_INVALID_ARG -> the same call again without flags, remembered for next time."""
    import libvirt

    from probes.resources.domstats import DomainStats

    class Dom:
        def name(self):
            return "d"

        def UUIDString(self):
            return "u"

        def ID(self):
            return 1

    class OldDaemon:
        calls: list[int] = []

        def isAlive(self):
            return True

        def getAllDomainStats(self, stats, flags):
            self.calls.append(flags)
            if flags:
                e = libvirt.libvirtError("unsupported flags")
                e.err = (libvirt.VIR_ERR_INVALID_ARG, 0, "unsupported flags", 0, "", None, None, 0, 0)
                raise e
            return [(Dom(), {"state.state": 1, "cpu.time": 5})]

    ds = DomainStats("fake:///")
    ds._conn = OldDaemon()
    [r] = ds.collect(with_limits=False)
    assert r.cpu_ns == 5 and not ds._flags_ok
    ds.collect(with_limits=False)
    assert OldDaemon.calls == [libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT, 0, 0]


def test_tenant_series_sum_is_the_point_by_point_loop():
    """The tenant's summed history (map(add) in C) gives exactly what adding each point in
    series order gives, aligned on the newest point, for series of any lengths."""
    import random

    from probes.resources.tenants import _sum_series

    def loop(series):
        series = [s for s in series if s]
        if not series:
            return ()
        n = max(len(s) for s in series)
        out = [0.0] * n
        for s in series:
            for i, v in enumerate(s):
                out[n - len(s) + i] += v
        return tuple(out)

    r = random.Random(16)
    for _ in range(500):
        series = [
            tuple(
                r.choice((0.0, r.random() * 1e9, r.uniform(-1, 1) * 1e-3, 0.1))
                for _ in range(r.randint(0, 62))
            )
            for _ in range(r.randint(0, 30))
        ]
        assert _sum_series(iter(series)) == loop(series)
    assert _sum_series([(1.0, 2.0), (5.0,), ()]) == (1.0, 7.0)


def test_sparkline_points_are_the_last_of_the_whole_sums():
    """The pane sums only the sparklines' last points of each history at every redraw
    (by_tenant points=), and its chart's row the whole history (series_of): both are exactly
    the whole sums' (the same additions in the same order), for workloads of any age."""
    import random

    from probes.resources.model import History
    from probes.resources.tenants import series_of

    r = random.Random(6)
    ws = [_vm(f"w{i}", "a" if i % 3 else "b") for i in range(9)]

    def pts(n):
        return tuple(r.random() * 100 for _ in range(n))

    hist = tuple(
        History(w.key, pts(n), pts(n), pts(n), pts(n)) for w, n in zip(ws, (60, 60, 3, 60, 1, 0, 60, 7, 60))
    )
    st = _state(ws, [Sample(w.key, 0, "vm", cpu_pct=1.0) for w in ws])
    hs = st.hosts[0]
    assert hs.samples is not None
    st = replace(st, hosts=(replace(hs, samples=replace(hs.samples, history=hist)),))
    [whole] = by_tenant(st)
    [short] = by_tenant(st, points=6)
    for a, b in zip(
        whole.tenants + tuple(u for _, u in whole.workloads),
        short.tenants + tuple(u for _, u in short.workloads),
    ):
        assert a.name == b.name
        for m in ("cpu", "mem", "disk", "net"):
            full = getattr(a, f"{m}_hist")
            assert getattr(b, f"{m}_hist") == full[-6:]
            assert series_of(st, a.workloads, m) == full


async def test_an_idle_workloads_history_is_handed_on_unchanged(tmp_path):
    """A workload whose points stayed the same for the whole history (an idle container:
    zero rates, the same memory) has the very same History object as the last snapshot (it
    was made anew, four tuples of HISTORY_LEN points, at every refresh); a point that moves
    makes a new one, with the same values a fresh one would have. A FAKE v2 tree stands in
    for the groups (a real one's memory moves now and then)."""
    from probes.model import ContainerDetails, HostState, Workload, WorkloadKind
    from probes.resources.model import HISTORY_LEN
    from probes.resources.probe import ResourcesProbe

    root = tmp_path
    counters = {
        "cpu.stat": "usage_usec 5000\n",
        "memory.current": "4096\n",
        "io.stat": "",
        "pids.current": "1\n",
    }
    host = fake_v2_host(root, {"idle": counters, "busy": counters})
    ws = tuple(
        Workload(
            WorkloadKind.CONTAINER, n, host.name, container=ContainerDetails(runtime="test", cgroup=f"/{n}")
        )
        for n in ("busy", "idle")
    )
    probe = ResourcesProbe(libvirt=False, host_totals=False)
    hs = HostState(host=host.host, workloads=ws)
    snaps = []
    for i in range(HISTORY_LEN + 3):
        (root / "sys/fs/cgroup/busy/cpu.stat").write_text(f"usage_usec {5000 + 1000 * i}\n")
        hs = probe.merge(hs, await probe.collect(host))
        snaps.append(hs.samples)
    await probe.close()
    (busy_a, idle_a), (busy_b, idle_b) = snaps[-2].history, snaps[-1].history
    assert idle_b is idle_a and idle_b.cpu == (0.0,) * HISTORY_LEN and idle_b.mem == (4096.0,) * HISTORY_LEN
    assert busy_b is not busy_a and busy_b.cpu[-1] > 0
    # handed on from the first refresh whose last snapshot already held HISTORY_LEN such points
    idle = [sn.history[1] for sn in snaps[1:]]  # (the first collect came before the first merge)
    assert (
        idle[HISTORY_LEN - 1] is not idle[HISTORY_LEN - 2]
        and len(idle[HISTORY_LEN - 2].cpu) == HISTORY_LEN - 1
    )
    assert idle[HISTORY_LEN] is idle[HISTORY_LEN - 1] and len(snaps[-1].history_at) == HISTORY_LEN


async def test_an_idle_containers_sample_is_the_last_one_at_the_new_time(tmp_path, monkeypatch):
    """A container whose reading did not change and whose rates were already 0 gets its last
    sample at the new time (sample_at: no rates computed, no Sample(...) made): exactly what the
    full path makes (compared with a probe that never takes the short path), and its rates
    follow when its counters move again. A FAKE v2 tree stands in for the group."""
    from probes.model import ContainerDetails, HostState, Workload, WorkloadKind
    from probes.resources import probe as probe_mod
    from probes.resources.model import Sample, sample_at
    from probes.resources.probe import ResourcesProbe

    s = Sample("k", 1.0, "container", "cgroup v2", cpu_pct=0.5, mem_bytes=3, blk_read_bps=1.0, pids=2)
    assert sample_at(s, 2.0) == replace(s, at=2.0) and sample_at(s, 2.0).at == 2.0 and s.at == 1.0
    root = tmp_path
    counters = {
        "cpu.stat": "usage_usec 5000\n",
        "memory.current": "4096\n",
        "io.stat": "",
        "pids.current": "1\n",
    }
    host = fake_v2_host(root, {"c": counters})
    g = root / "sys/fs/cgroup/c"
    w = Workload(
        WorkloadKind.CONTAINER, "c", host.name, container=ContainerDetails(runtime="test", cgroup="/c")
    )
    short, full = (
        ResourcesProbe(libvirt=False, host_totals=False),
        ResourcesProbe(libvirt=False, host_totals=False),
    )
    monkeypatch.setattr(full._rates, "still", lambda *a: False)  # this one: never the short path
    taken: list[float] = []
    monkeypatch.setattr(probe_mod, "sample_at", lambda sample, at: taken.append(at) or sample_at(sample, at))
    hs_s = hs_f = HostState(host=host.host, workloads=(w,))
    try:
        for i in range(8):
            if i == 5:
                (g / "cpu.stat").write_text("usage_usec 9000\n")  # it works again
            clock = 1000.0 + i
            short._clock = full._clock = lambda clock=clock: clock
            hs_s = short.merge(hs_s, await short.collect(host))
            hs_f = full.merge(hs_f, await full.collect(host))
            assert hs_s.samples.samples == hs_f.samples.samples, i
            if i == 5:
                assert hs_s.samples.samples[0].cpu_pct > 0
    finally:
        await short.close()
        await full.close()
    # (1: no workloads yet; 2: the first rates; 5, 6: the counter moved, its rate was not 0)
    assert taken == [1003.0, 1004.0, 1007.0] and hs_s.samples.samples[0].cpu_pct == 0.0
