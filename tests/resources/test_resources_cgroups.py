"""Resources probe against real cgroups with real CPU-burning and memory-allocating processes."""

from __future__ import annotations

import asyncio

import pytest

from probes.checks.base import run_checks
from probes.hosts.local import LocalHost
from probes.model import ContainerDetails, HostState, State, Status, Workload, WorkloadKind
from probes.resources.model import Metric
from probes.resources.probe import ResourcesProbe
from tests.fixtures.cgroups import BURN, IDLE, alloc_argv, cgroup_factory  # noqa: F401
from tests.helpers import needs_root, needs_tool

STEP = 0.25  # seconds between refreshes in these tests

# cpu.shares for the groups whose burners must get real CPU. On cgroup v1 a group is one
# scheduling entity: at the default 1024 it weighs as much as ONE task outside it, so on a
# machine with ten other runnable tasks its burners got ~18% of a core whatever their number,
# and the CPU thresholds of the checks (a quarter of a core for RES-01, half a core for RES-02)
# were never reached (failed at load ~10). Eight tasks' worth keeps them above those at load
# 20, while the test process itself (1024) still gets a fifth of a core beside a burner when
# the machine is quiet. What the probe and the checks see is unchanged: usage, not weight.
BURN_SHARES = 8192


def container(host: LocalHost, name: str, cgroup: str, init_pid: int = 0) -> Workload:
    return Workload(
        WorkloadKind.CONTAINER,
        name,
        host.name,
        tenant="acme",
        container=ContainerDetails(runtime="test", cgroup=cgroup, init_pid=init_pid),
    )


class Rig:
    """A probe plus the host state it feeds, refreshed by hand like the engine would."""

    def __init__(self, workloads: list[Workload], **kw) -> None:
        self.host = LocalHost(libvirt_uri=None)
        self.probe = ResourcesProbe(interval=STEP, libvirt=False, **kw)
        self.hs = HostState(host=self.host.host, workloads=tuple(workloads))
        self.hs = self.probe.merge(self.hs, ResourceSnapshot_empty())

    async def refresh(self, n: int = 1) -> State:
        for _ in range(n):
            await asyncio.sleep(STEP)
            self.hs = self.probe.merge(self.hs, await self.probe.collect(self.host))
        return State(hosts=(self.hs,))

    def sample(self, key: str):
        assert self.hs.samples is not None
        return self.hs.samples.sample(key)


def ResourceSnapshot_empty():
    from probes.resources.model import ResourceSnapshot

    return ResourceSnapshot()


def ids(state: State, check: str, status=(Status.WARN, Status.FAIL)) -> list:
    return [f for f in run_checks(state, [check]) if f.status in status]


async def test_burn_and_alloc_show_as_load_and_spike(cgroup_factory):
    cg = cgroup_factory()
    init = cg.spawn(IDLE)
    w = container(LocalHost(libvirt_uri=None), cg.name, cg.path, init)
    rig = Rig([w])
    state = await rig.refresh(7)  # warm-up: an idle group
    s = rig.sample(w.key)
    assert s.source.startswith("cgroup v1")
    assert s.cpu_pct is not None and s.cpu_pct < 20
    assert s.pids == 1
    assert ids(state, "RES-01") == [], "no spike before the burn"

    cg.write("cpu", "cpu.shares", str(BURN_SHARES))
    cg.spawn(BURN)
    cg.spawn(BURN)  # two burners: the shared test machine may give one only part of a core
    cg.spawn(alloc_argv(200))
    for _ in range(12):
        state = await rig.refresh()
        if ids(state, "RES-01"):
            break
    s = rig.sample(w.key)
    assert s.cpu_pct is not None and s.cpu_pct > 40, s
    assert s.pids == 4
    spikes = ids(state, "RES-01")
    assert spikes, "the burn must raise RES-01"
    cpu = [f for f in spikes if "cpu spike from" in f.summary]
    assert cpu and cpu[0].workloads == (w.key,)
    ev = cpu[0].evidence[0].detail
    assert "metric=cpu" in ev and "baseline=" in ev and "peak=" in ev and "started_at=" in ev
    # the memory allocation shows up within a few more refreshes
    for _ in range(8):
        if (rig.sample(w.key).mem_bytes or 0) >= 200 << 20:
            break
        await rig.refresh()
    assert rig.sample(w.key).mem_bytes >= 200 << 20
    hist = rig.hs.samples.history_of(w.key)
    assert hist is not None and max(hist.cpu) > 40 and len(hist.cpu) >= 8
    spk = [sp for sp in rig.hs.samples.spikes if sp.metric is Metric.CPU]
    assert spk and spk[0].active and spk[0].peak > spk[0].threshold > spk[0].baseline


async def test_missing_limits_until_the_fixture_sets_them(cgroup_factory):
    cg = cgroup_factory()
    init = cg.spawn(IDLE)
    w = container(LocalHost(libvirt_uri=None), cg.name, cg.path, init)
    rig = Rig([w])
    state = await rig.refresh(2)
    found = ids(state, "CTR-07")
    assert len(found) == 1 and found[0].workloads == (w.key,)
    assert "pids" in found[0].summary and "memory" in found[0].summary and "cpu" in found[0].summary
    assert found[0].status is Status.FAIL

    cg.set_limits(mem_bytes=256 << 20, quota_us=50000, pids=32)
    for _ in range(rig.probe.limits_every + 1):
        state = await rig.refresh()
    assert ids(state, "CTR-07") == []
    live = rig.sample(w.key).live
    assert live.mem_limit_bytes == 256 << 20 and live.pids_limit == 32
    assert live.cpu_quota_cores == pytest.approx(0.5)
    assert rig.sample(w.key).mem_limit_bytes == 256 << 20


async def test_v2_group_cpu_from_cpu_stat(cgroup_factory):
    """On this hybrid host a group only in the v2 hierarchy still reports CPU (cpu.stat)."""
    cg = cgroup_factory(v1=False, v2=True)
    init = cg.spawn(BURN)
    w = container(LocalHost(libvirt_uri=None), cg.name, cg.path, init)
    rig = Rig([w])
    await rig.refresh(3)
    s = rig.sample(w.key)
    assert "v2" in s.source
    assert s.cpu_pct is not None and s.cpu_pct > 20  # idle is < 5; a loaded machine shares the core


async def test_missing_and_vanishing_groups(cgroup_factory):
    cg = cgroup_factory()
    init = cg.spawn(IDLE)
    host = LocalHost(libvirt_uri=None)
    gone = container(host, "tsh-never-made", "/tsh-never-made-xyz")
    w = container(host, cg.name, cg.path, init)
    rig = Rig([gone, w])
    await rig.refresh(2)
    assert rig.sample(gone.key).note == "cgroup not found"
    assert rig.sample(gone.key).cpu_pct is None
    assert rig.sample(w.key).cpu_pct is not None
    cg.cleanup()  # processes killed by PID, groups removed by name
    state = await rig.refresh(2)
    s = rig.sample(w.key)
    assert s.cpu_pct is None and s.note == "cgroup not found"
    assert all(f.status is not Status.ERROR for f in run_checks(state, ["CTR-07", "RES-01"]))


async def test_noisy_neighbour_real_groups(cgroup_factory):
    """Tenant 'hog' (a quarter of meek's cpu.shares) burns both cores while tenant 'meek' idles:
    hog uses far more than its configured fifth of the CPU -> RES-02 names it."""
    hog, meek = cgroup_factory(), cgroup_factory()
    hog.write("cpu", "cpu.shares", str(BURN_SHARES))
    meek.write("cpu", "cpu.shares", str(4 * BURN_SHARES))
    host = LocalHost(libvirt_uri=None)
    wh = container(host, hog.name, hog.path, hog.spawn(IDLE))
    wm = container(host, meek.name, meek.path, meek.spawn(IDLE))
    wh = Workload(wh.kind, wh.name, wh.host, tenant="hog", container=wh.container)
    wm = Workload(wm.kind, wm.name, wm.host, tenant="meek", container=wm.container)
    rig = Rig([wh, wm])
    state = await rig.refresh(2)
    assert ids(state, "RES-02") == []
    hog.spawn(BURN)
    hog.spawn(BURN)
    for _ in range(10):
        state = await rig.refresh()
        found = ids(state, "RES-02")
        if found:
            break
    assert found and found[0].tenants == ("hog",), [f.summary for f in run_checks(state, ["RES-02"])]
    assert "configured share of 20%" in found[0].summary


async def test_limit_set_on_a_parent_group_counts(cgroup_factory):
    """Kubernetes pods, systemd slices and docker's parent group limit their children: a
    container whose own files say 'max' under a limited parent is limited."""
    import os

    from tests.fixtures.cgroups import TestCgroup

    parent = cgroup_factory()
    child = TestCgroup(
        f"{parent.name}/tsh-inner", {c: os.path.join(d, "tsh-inner") for c, d in parent.dirs.items()}
    )
    for d in child.dirs.values():
        os.mkdir(d)
    try:
        parent.set_limits(mem_bytes=300 << 20, quota_us=20000, pids=50)
        init = child.spawn(IDLE)
        w = container(LocalHost(libvirt_uri=None), "tsh-inner", child.path, init)
        rig = Rig([w])
        state = await rig.refresh(2)
        live = rig.sample(w.key).live
        assert live.mem_limit_bytes == 300 << 20 and live.pids_limit == 50
        assert live.cpu_quota_cores == pytest.approx(0.2)
        assert f"memory limit from /sys/fs/cgroup/memory/{parent.name}" in live.where
        assert ids(state, "CTR-07") == []
    finally:
        child.cleanup()


@needs_root
@needs_tool("ip")
async def test_a_host_that_is_not_this_machine_gets_none_of_its_namespaces():
    """The first refresh discovers this machine's containers and namespaces itself, but not
    when this machine is not the host (the demo fleet, libvirt's view of another host:
    host_totals=False): there they would be shown as that host's."""
    import os
    import subprocess

    name = f"tsh-notmine-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        mine = ResourcesProbe(libvirt=False)
        other = ResourcesProbe(libvirt=False, host_totals=False)
        try:
            seen = await mine.collect(LocalHost("tsh-local", libvirt_uri=None))
            not_seen = await other.collect(LocalHost("tsh-other", libvirt_uri=None))
        finally:
            await mine.close()
            await other.close()
        assert any(s.workload.endswith(f"/netns/{name}") for s in seen.samples)
        assert not_seen.samples == ()
    finally:
        subprocess.run(["ip", "netns", "del", name])


async def test_a_local_refresh_reads_kept_open_files_on_the_loop(cgroup_factory, monkeypatch):
    """Locally, a refresh of a few groups' counters and of the host's totals re-reads files kept
    open, on the event loop: no worker-thread hop (and no psutil), which cost more than the
    reads at every refresh of an idle console. The totals are this machine's."""
    import psutil

    cg = cgroup_factory()
    init = cg.spawn(IDLE)
    host = LocalHost(libvirt_uri=None)
    w = container(host, cg.name, cg.path, init)
    rig = Rig([w], limits_every=10**9)
    await rig.refresh(2)  # the first refresh also reads the limits (by path: a worker's job)

    def hop(*a, **k):
        raise AssertionError("a worker-thread hop")

    monkeypatch.setattr(asyncio, "to_thread", hop)
    await rig.refresh(2)
    for _ in range(3):  # a link of another test gone between two reads: the sum fell, no rate
        if rig.hs.samples is not None and rig.hs.samples.totals.net_rx_bps is not None:
            break
        await rig.refresh(2)
    s = rig.sample(w.key)
    assert s.cpu_pct is not None and s.mem_bytes and s.pids
    assert rig.hs.samples is not None
    t = rig.hs.samples.totals
    assert t.source == "/proc" and t.cpus == psutil.cpu_count()
    assert t.mem_total == psutil.virtual_memory().total and t.cpu_pct is not None
    assert t.net_rx_bps is not None and t.blk_read_bps is not None


async def test_an_idle_groups_files_stay_open_and_its_reading_is_reused(cgroup_factory, monkeypatch):
    """Locally every file of a refresh stays open, the limits' too (they were opened by path
    at every limits refresh: a path walk each, most of an idle console's refresh cost), and
    a group whose files all read the same as last time is not parsed again: its reading is
    reused. A group that is gone reads as gone."""
    import os

    from probes.resources import cgroups

    cg = cgroup_factory()
    cg.spawn(IDLE)
    host = LocalHost(libvirt_uri=None)
    lay = await cgroups.detect_layout(host)
    ref = cgroups.GroupRef.same_everywhere("k", cg.path)
    keep, plans, last = cgroups.OpenFiles(), {}, {}

    async def read(limits: bool) -> cgroups.GroupReading:
        (g,) = await cgroups.read_groups(host, lay, [ref], limits=limits, cache=plans, keep=keep, last=last)
        return g

    first = await read(True)
    assert first.exists and first.limits is not None
    await read(False)
    opened: list[str] = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, *a, **k: opened.append(p) or real_open(p, *a, **k))
    again = await read(True)
    assert opened == [] and again.limits == first.limits
    pairs = [(await read(False), await read(False)) for _ in range(3)]  # (an idle sleep: the same)
    assert any(a is b for a, b in pairs)
    monkeypatch.setattr(os, "open", real_open)
    cg.cleanup()
    assert not (await read(False)).exists


async def test_a_limits_refresh_rereads_the_init_processes_cgroup_files_without_opening_them(
    cgroup_factory, monkeypatch
):
    """Every limits refresh re-reads each container's /proc/PID/cgroup (a container moved to
    another group is followed): locally those files stay open too (they were opened by path,
    in a worker-thread hop, every 10 s). A process that is gone reads as gone."""
    import os

    cg = cgroup_factory()
    init = cg.spawn(IDLE)
    w = container(LocalHost(libvirt_uri=None), cg.name, cg.path, init)
    rig = Rig([w], limits_every=1)
    await rig.refresh(2)
    assert rig.sample(w.key).live is not None and rig.sample(w.key).pids == 1
    opened: list[str] = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, *a, **k: opened.append(p) or real_open(p, *a, **k))
    await rig.refresh(2)  # two limits refreshes
    monkeypatch.setattr(os, "open", real_open)
    assert opened and f"/proc/{init}/cgroup" not in opened  # (its net counters: opened)
    assert rig.sample(w.key).live is not None and rig.sample(w.key).pids == 1
    cg.cleanup()
    await rig.refresh(1)
    assert rig.sample(w.key).note == "cgroup not found"


async def test_a_refresh_between_limits_refreshes_leaves_the_others_files_open(cgroup_factory, monkeypatch):
    """A refresh without limits reads /proc/PID/cgroup only for the containers whose groups are
    not known (here one whose init process is gone: the inventory still lists it until its next
    poll): the others' files stay open for the next limits refresh (they were closed as if gone,
    at every refresh)."""
    import os
    import subprocess

    cg1, cg2 = cgroup_factory(), cgroup_factory()
    init1, init2 = cg1.spawn(IDLE), cg2.spawn(IDLE)
    gone = subprocess.Popen(["true"])
    gone.wait()
    host = LocalHost(libvirt_uri=None)
    w1, w2 = container(host, cg1.name, cg1.path, init1), container(host, cg2.name, cg2.path, init2)
    w3 = container(host, cg1.name + "-gone", cg1.path, gone.pid)
    rig = Rig([w1, w2, w3], limits_every=1000)
    await rig.refresh(2)  # a limits refresh (the first), then one without: it asks for w3's file
    rig.probe.limits_every = 1
    opened: list[str] = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, *a, **k: opened.append(p) or real_open(p, *a, **k))
    await rig.refresh(1)  # a limits refresh
    monkeypatch.setattr(os, "open", real_open)
    assert not {f"/proc/{init1}/cgroup", f"/proc/{init2}/cgroup"} & set(opened), opened
    assert rig.sample(w1.key).live is not None and rig.sample(w2.key).live is not None
