"""ResourcesProbe: per-workload samples, host totals, history and spikes, every refresh.

One refresh reads, concurrently: libvirt's bulk domain stats (VMs), the cgroup files of the
containers the inventory found, interface counters of network namespaces, and the host's
totals. Counters become rates (rates.py), each rate feeds its rolling baseline (baseline.py),
and the result is one ResourceSnapshot for HostState.samples.

Which containers and namespaces to read comes from the host's workloads as the inventory
probes last reported them: `merge` notes them for the next `collect` (its result is still a
pure function of its inputs). VMs need no inventory: the bulk call returns every domain.

A source that fails (libvirt down, a cgroup removed mid-read) is reported in
`ResourceSnapshot.problems` and the other sources still count; only when every source fails
does the probe fail as a whole.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Protocol

from probes.engine import Probe
from probes.hosts.base import HostError, HostTransport, LibvirtAbsent
from probes.inventory.libvirt_link import LibvirtLink
from probes.model import HostState, Workload, WorkloadKind
from probes.resources import cgroups
from probes.resources.baseline import Baseline, SpikeDetector, Tuning
from probes.resources.domstats import DomainReading, DomainStats
from probes.resources.hosttotals import FILES as TOTALS_FILES
from probes.resources.hosttotals import RawTotals, read_totals
from probes.resources.model import (
    HISTORY_LEN,
    History,
    HostTotals,
    Limits,
    Metric,
    ResourceSnapshot,
    Sample,
    sample_at,
)
from probes.resources.netcounters import NetCounters, NetnsReader
from probes.resources.rates import RateTracker, cpu_percent

log = logging.getLogger(__name__)

_HIST_METRICS = (Metric.CPU, Metric.MEM, Metric.DISK, Metric.NET)
_ALL_METRICS = _HIST_METRICS + (Metric.STEAL,)
_CG_COUNTERS = ("cpu", "blk_r", "blk_w")  # a container's counters from its cgroup
# a container's last reading, live limits, net counters and the sample made of them
_LastSample = tuple["cgroups.GroupReading", "Limits | None", "NetCounters | None", "Sample"]
_RUNNING = {
    1: "running",
    2: "blocked",
    3: "paused",
    4: "shutting down",
    5: "shut off",
    6: "crashed",
    7: "suspended",
}


PROC_FILES_KEPT = 4096  # /proc/PID/cgroup files kept open (more containers: opened by path)


class ResourcesProbe(Probe[ResourceSnapshot]):
    name = "resources"
    figures = True  # read less often on hosts not on screen (Engine.show_hosts)

    def __init__(
        self,
        interval: float = 2.0,
        *,
        limits_every: int = 5,
        libvirt: bool = True,
        host_totals: bool = True,
        tuning: dict[Metric, Tuning] | None = None,
        clock=time.time,
        link: LibvirtLink | None = None,
        pushed: PushedTotals | None = None,
    ) -> None:
        self.interval = interval
        self.timeout = max(10.0, 3 * interval)
        self.limits_every = max(1, limits_every)
        self.paused = False
        self._use_libvirt = libvirt
        self._host_totals = host_totals  # off for the demo fleet: this machine is not demo-hv1
        self._clock = clock
        self._rates = RateTracker()
        self.detector = SpikeDetector(tuning)
        self._hist: dict[str, dict[Metric, deque[float]]] = {}
        self._hist_at: deque[float] = deque(maxlen=HISTORY_LEN)
        self._bases: dict[str, tuple[Baseline, ...]] = {}  # the detector's, per workload (_ALL_METRICS)
        # per workload: its last points (cpu, mem, disk, net) and how many refreshes in a row
        # brought those same points; and the History objects of the last snapshot
        self._same_points: dict[str, tuple[tuple[float, float, float, float], int]] = {}
        self._last_samples: dict[str, _LastSample] = {}
        self._histories: dict[str, History] = {}
        self._limits: dict[str, Limits] = {}
        self._tried: set[str] = set()  # containers whose limits were read at least once
        self._cg_paths: dict[int, tuple[tuple[str, str], ...]] = {}  # pid -> controller paths
        self._cg_texts: dict[int, tuple[str, tuple[tuple[str, str], ...]]] = {}  # its /proc/PID/cgroup
        self._open_procs: cgroups.OpenFiles | None = None  # the /proc/PID/cgroup files (local)
        self._workloads: tuple[Workload, ...] = ()
        self._layout: cgroups.Layout | None = None
        self._plans: cgroups.PlanCache = {}
        self._readings: cgroups.Readings = {}
        self._prepared: cgroups.PreparedCache = {}
        # (the workloads they were made from, the groups' refs): the same list while they stay
        self._refs: tuple[tuple[Workload, ...], list[cgroups.GroupRef]] | None = None
        self._open: cgroups.OpenFiles | None = None
        self._open_totals: cgroups.OpenFiles | None = None  # the host's /proc files (local)
        self._dom: DomainStats | None = None
        # (the workloads as of the last bulk call, its readings) when no domain was running:
        # until the inventory changes or limits are due, no call (fewer libvirt calls when
        # every domain is shut off; a domain that starts changes the inventory)
        self._idle_vms: tuple[tuple[Workload, ...], tuple[DomainReading, ...]] | None = None
        # libvirt calls of this host on a thread of their own (see LibvirtProbe._thread)
        # (or the host's libvirt thread and connection: probes/inventory/libvirt_link.py)
        self._link = link.retain() if link is not None else None
        self._dom_thread = (
            link.thread if link is not None else ThreadPoolExecutor(1, thread_name_prefix="libvirt-stats")
        )
        self._netns = NetnsReader()
        # an SSH host's remote helper pushes its totals (probes/hosts/remote_events.py): the
        # newest is taken instead of asking, each once
        self._pushed = pushed
        self._pushed_seen = 0
        self._n = 0
        self._limits_at = time.monotonic()  # when limits were last read
        self._merges = 0
        self._keys: set[str] = set()
        self._last: ResourceSnapshot | None = None

    # ------------------------------------------------------------------ run-time controls

    def set_interval(self, seconds: float) -> None:
        self.interval = max(0.2, float(seconds))
        self.timeout = max(10.0, 3 * self.interval)

    # ------------------------------------------------------------------ Probe

    def merge(self, state: HostState, result: ResourceSnapshot) -> HostState:
        # Which groups/namespaces to read next time. The first merges may come before the
        # inventory's: until it has reported, keep what this probe discovered itself.
        self._merges += 1
        if self._merges > 3 or any(w.kind != WorkloadKind.VM for w in state.workloads):
            self._workloads = state.workloads
        return replace(state, samples=result)

    async def _discover(self, host: HostTransport) -> tuple[Workload, ...]:
        """The first refresh runs before (or beside) the inventory probes: ask their discovery
        directly, so that even a single headless pass (`tenantscope check`) reads the
        containers' limits."""
        found: list[Workload] = []
        for mod in ("probes.inventory.containers", "probes.inventory.netns"):
            try:
                import importlib

                found += await importlib.import_module(mod).discover(host)
            except Exception as e:
                log.debug("resources: %s discovery failed: %s", mod, e)
        return tuple(found)

    async def close(self) -> None:
        for f in (self._open, self._open_totals, self._open_procs):
            if f is not None:
                f.close()
        self._open = self._open_totals = self._open_procs = None
        if self._dom is not None:
            await asyncio.get_running_loop().run_in_executor(self._dom_thread, self._dom.close)
        if self._link is not None:
            self._link.release()
        else:
            self._dom_thread.shutdown(wait=False)
        self._netns.close()

    async def collect(self, host: HostTransport) -> ResourceSnapshot:
        if self.paused and self._last is not None:
            return self._last
        # limits every `limits_every` runs, or as often in time when the engine reads this
        # host's figures less often (not on screen): then at every run
        mono = time.monotonic()
        with_limits = (
            self._n % self.limits_every == 0 or mono - self._limits_at >= self.limits_every * self.interval
        )
        if with_limits:
            self._limits_at = mono
        if self._n == 0 and self._merges == 0 and not self._workloads and self._host_totals:
            # not when this machine is not the host (the demo fleet, libvirt's view of another
            # host): its containers and namespaces are not that host's either
            self._workloads = await self._discover(host)
        self._n += 1
        workloads = list(self._workloads)  # this host's (merge sees one HostState)
        containers = [w for w in workloads if w.kind == WorkloadKind.CONTAINER and w.container]
        netns = [w for w in workloads if w.kind == WorkloadKind.NETNS and w.netns is not None]
        # a container seen for the first time gets its limits read at once (cgroups only)
        cg_limits = with_limits or any(w.key not in self._tried for w in containers)
        self._tried.update(w.key for w in containers)

        jobs: dict[str, asyncio.Future] = {}
        uri = host.host.libvirt_uri
        if self._use_libvirt and uri:
            try:  # an SSH host's libvirt: its socket forwarded over the same connection
                uri = await host.open_libvirt_uri()
            except LibvirtAbsent:
                uri = None
            except HostError as e:
                jobs["libvirt"] = asyncio.ensure_future(_raise(e))
                uri = None
        asked = None
        if self._use_libvirt and uri:
            if self._dom is None or self._dom.uri != uri:
                self._dom = DomainStats(uri, self._link)
                self._idle_vms = None
            idle = self._idle_vms
            if idle is not None and idle[0] is self._workloads and not with_limits:
                # no domain ran at the last call and the inventory (libvirt's lifecycle events)
                # has changed nothing since: the same shut-off domains, without a call
                jobs["libvirt"] = asyncio.ensure_future(_given(idle[1]))
            else:
                asked = self._workloads
                jobs["libvirt"] = asyncio.ensure_future(
                    asyncio.get_running_loop().run_in_executor(
                        self._dom_thread, self._dom.collect, with_limits
                    )
                )
        if containers:
            jobs["cgroups"] = asyncio.ensure_future(
                self._read_containers(host, containers, cg_limits, self._workloads)
            )
        net_targets = _net_targets(containers, netns)
        if net_targets:
            jobs["netns"] = asyncio.ensure_future(self._netns.read(host, net_targets))
        pushed = self._fresh_push() if self._host_totals else None
        if self._host_totals and pushed is None:
            if host.is_local and self._open_totals is None:
                self._open_totals = cgroups.OpenFiles(budget=len(TOTALS_FILES))
            jobs["host"] = asyncio.ensure_future(read_totals(host, self._open_totals))
        names = list(jobs)
        results = await asyncio.gather(*jobs.values(), return_exceptions=True)
        got = {}
        problems = []
        for n, r in zip(names, results):
            if isinstance(r, BaseException):
                if isinstance(r, asyncio.CancelledError):
                    raise r
                problems.append(f"{n}: {_first_line(r)}")
            else:
                got[n] = r
        if problems and not got:
            raise RuntimeError("; ".join(problems))
        now = self._clock()
        samples: list[Sample] = []
        if "libvirt" in got:
            samples += self._vm_samples(host.name, workloads, got["libvirt"], now)
            if asked is not None:
                running = any(r.state in (1, 2, 3) for r in got["libvirt"])
                self._idle_vms = None if running else (asked, tuple(got["libvirt"]))
        elif asked is not None:
            self._idle_vms = None
        nets: dict[str, NetCounters | None] = got.get("netns", {})
        if "cgroups" in got:
            samples += self._container_samples(containers, got["cgroups"], nets, now)
        for w in netns:
            samples.append(self._netns_sample(w, nets.get(w.key), now))
        totals = self._totals(pushed or got.get("host"), now)
        snap = self._finish(samples, totals, tuple(problems), now)
        self._last = snap
        return snap

    # ------------------------------------------------------------------ sources

    async def _read_containers(
        self,
        host: HostTransport,
        containers: Sequence[Workload],
        with_limits: bool,
        source: tuple[Workload, ...] = (),
    ) -> list[cgroups.GroupReading]:
        """`source`: the workloads `containers` was taken from (the same tuple while the
        inventory has not changed: the groups' refs are then those of the last refresh)."""
        if self._layout is None:
            self._layout = await cgroups.detect_layout(host)
        pids = [
            w.container.init_pid
            for w in containers
            if w.container
            and w.container.init_pid > 0
            and (with_limits or w.container.init_pid not in self._cg_paths)
        ]
        if pids:
            # locally kept open too (re-read at every limits refresh: 50 opens by path and a
            # worker hop every 10 s); the same text (the same str from OpenFiles) is not parsed again
            if host.is_local and self._open_procs is None:
                self._open_procs = cgroups.OpenFiles(budget=PROC_FILES_KEPT)
            names = [f"/proc/{p}/cgroup" for p in pids]
            files = await cgroups.read_files(host, names, keep=self._open_procs)
            # only a limits refresh asks for every container (another asks for the new ones):
            # then what was not asked for is a gone process's
            if with_limits and self._open_procs is not None and len(self._open_procs) > len(names):
                self._open_procs.keep_only({host.root + n for n in names})
            if with_limits and len(self._cg_texts) > len(pids):
                asked = set(pids)
                self._cg_texts = {p: v for p, v in self._cg_texts.items() if p in asked}
            for p in pids:
                text = files.get(f"/proc/{p}/cgroup")
                seen = self._cg_texts.get(p)
                if text and seen is not None and seen[0] is text:
                    paths = seen[1]
                elif text:
                    paths = tuple(sorted(cgroups.parse_proc_cgroup(text).items()))
                    self._cg_texts[p] = (text, paths)
                else:
                    paths = None
                    self._cg_texts.pop(p, None)
                if self._cg_paths.get(p) != paths:
                    self._refs = None  # a group moved (or its process went): refs anew
                    if paths:
                        self._cg_paths[p] = paths
                    else:
                        self._cg_paths.pop(p, None)
        if self._refs is not None and self._refs[0] is source and source:
            refs = self._refs[1]  # the same groups: the same list (read_groups' `prepared`)
        else:
            refs = []
            for w in containers:
                c = w.container
                assert c is not None
                paths = self._cg_paths.get(c.init_pid) if c.init_pid > 0 else None
                if paths:
                    refs.append(cgroups.GroupRef(w.key, paths))
                else:
                    refs.append(cgroups.GroupRef.same_everywhere(w.key, c.cgroup or "/"))
            self._refs = (source, refs)
        if len(self._plans) > 4 * len(refs) + 64:  # workloads came and went: start afresh
            self._plans.clear()
        if self._open is None and host.is_local:
            self._open = cgroups.OpenFiles()
        return await cgroups.read_groups(
            host,
            self._layout,
            refs,
            limits=with_limits,
            cache=self._plans,
            keep=self._open,
            last=self._readings,
            prepared=self._prepared,
        )

    # ------------------------------------------------------------------ samples

    def _vm_samples(
        self, host: str, workloads: Sequence[Workload], readings: Sequence[DomainReading], now: float
    ) -> list[Sample]:
        by_uuid = {w.uuid: w.key for w in workloads if w.kind == WorkloadKind.VM and w.uuid}
        by_name = {w.name: w.key for w in workloads if w.kind == WorkloadKind.VM}
        out = []
        for r in readings:
            key = by_uuid.get(r.uuid) or by_name.get(r.name) or f"{host}/{WorkloadKind.VM}/{r.name}"
            if r.live is not None:
                self._limits[key] = r.live
            live = self._limits.get(key)
            if r.state not in (1, 2, 3):
                out.append(
                    Sample(key, now, "vm", "libvirt", note=_RUNNING.get(r.state, "not running"), live=live)
                )
                continue
            own = f"{key}#{r.dom_id}"  # a restarted domain gets a new id: its counters start over
            rt = self._rates.rate
            rx, tx = rt(own, "net_rx", r.net_rx, now), rt(own, "net_tx", r.net_tx, now)
            mem = r.rss_kib or r.balloon_kib
            out.append(
                Sample(
                    key,
                    now,
                    "vm",
                    "libvirt",
                    cpu_pct=cpu_percent(rt(own, "cpu", r.cpu_ns, now)),
                    steal_pct=cpu_percent(rt(own, "delay", r.vcpu_delay_ns, now)),
                    vcpus=r.vcpus,
                    mem_bytes=mem * 1024 if mem is not None else None,
                    mem_limit_bytes=live.mem_limit_bytes if live else None,
                    blk_read_bps=rt(own, "blk_r", r.blk_read, now),
                    blk_write_bps=rt(own, "blk_w", r.blk_write, now),
                    net_rx_bps=rx,
                    net_tx_bps=tx,
                    net_drops_ps=rt(own, "drops", r.net_drops, now),
                    live=live,
                    note="" if r.cpu_ns is not None else "no counters from libvirt",
                )
            )
        return out

    def _container_samples(
        self,
        containers: Sequence[Workload],
        readings: Sequence[cgroups.GroupReading],
        nets: dict[str, NetCounters | None],
        now: float,
    ) -> list[Sample]:
        out = []
        rates = self._rates
        rt = rates.rate
        # per workload: the reading, live limits, net counters and sample of the last refresh
        prev = self._last_samples
        fresh: dict[str, _LastSample] = {}
        for w, g in zip(containers, readings):
            key = w.key
            if g.limits is not None:
                self._limits[key] = g.limits
            live = self._limits.get(key)
            if not g.exists:
                self._limits.pop(key, None)
                out.append(Sample(key, now, "container", "", note="cgroup not found", pids=None))
                for c in ("cpu", "blk_r", "blk_w"):
                    rt(key, c, None, now)
                continue
            n = nets.get(key)
            last = prev.get(key)
            if (
                last is not None
                and last[0] is g
                and last[1] is live
                and n is None
                and last[2] is None  # (no net counters then either: none kept in the rates)
                and last[3].cpu_pct == 0.0
                and last[3].blk_read_bps == 0.0
                and last[3].blk_write_bps == 0.0
                and rates.still(key, _CG_COUNTERS, now)
            ):
                # the same reading as last time, whose rates were already 0: the same sample
                # at `now` (what the rates and Sample(...) below would make of it)
                s = sample_at(last[3], now)
                out.append(s)
                fresh[key] = (g, live, n, s)
                continue
            out.append(
                Sample(
                    key,
                    now,
                    "container",
                    g.version,
                    cpu_pct=cpu_percent(rt(key, "cpu", g.cpu_ns, now)),
                    mem_bytes=g.mem_bytes,
                    mem_limit_bytes=live.mem_limit_bytes if live else None,
                    blk_read_bps=rt(key, "blk_r", g.blk_read, now),
                    blk_write_bps=rt(key, "blk_w", g.blk_write, now),
                    net_rx_bps=rt(key, "net_rx", n.rx_bytes if n else None, now),
                    net_tx_bps=rt(key, "net_tx", n.tx_bytes if n else None, now),
                    net_drops_ps=rt(key, "drops", n.drops if n else None, now),
                    pids=g.pids,
                    live=live,
                )
            )
            fresh[key] = (g, live, n, out[-1])
        self._last_samples = fresh
        return out

    def _netns_sample(self, w: Workload, n: NetCounters | None, now: float) -> Sample:
        rt = self._rates.rate
        if n is None:
            for c in ("net_rx", "net_tx", "drops"):
                rt(w.key, c, None, now)
            return Sample(w.key, now, "netns", "netns", note="namespace not readable")
        return Sample(
            w.key,
            now,
            "netns",
            "netns",
            net_rx_bps=rt(w.key, "net_rx", n.rx_bytes, now),
            net_tx_bps=rt(w.key, "net_tx", n.tx_bytes, now),
            net_drops_ps=rt(w.key, "drops", n.drops, now),
        )

    def _fresh_push(self) -> RawTotals | None:
        p = self._pushed
        got = p.fresh_totals(self._pushed_seen) if p is not None else None
        if got is None:
            return None
        self._pushed_seen, t, at = got
        return RawTotals(
            int(t[0]),
            t[1],
            t[2],
            t[3],
            int(t[4]),
            int(t[5]),
            int(t[6]),
            int(t[7]),
            int(t[8]),
            int(t[9]),
            "/proc (pushed by the remote helper)",
            at,
        )

    def _totals(self, raw: RawTotals | None, now: float) -> HostTotals:
        if raw is None:
            return HostTotals()
        if raw.at is not None:  # rates over the times the totals were sampled
            now = raw.at
        rt = self._rates.rate
        total = rt("@host", "total", raw.cpu_total, now)
        idle = rt("@host", "idle", raw.cpu_idle, now)
        steal = rt("@host", "steal", raw.cpu_steal, now)
        busy = steal_pct = None
        if total and idle is not None:
            busy = max(0.0, min(100.0, 100.0 * (total - idle) / total))
            steal_pct = 100.0 * (steal or 0.0) / total
        return HostTotals(
            cpus=raw.cpus,
            cpu_pct=busy,
            steal_pct=steal_pct,
            mem_total=raw.mem_total,
            mem_used=raw.mem_used,
            blk_read_bps=rt("@host", "blk_r", raw.blk_read, now),
            blk_write_bps=rt("@host", "blk_w", raw.blk_write, now),
            net_rx_bps=rt("@host", "net_rx", raw.net_rx, now),
            net_tx_bps=rt("@host", "net_tx", raw.net_tx, now),
            source=raw.source,
        )

    def _finish(
        self, samples: list[Sample], totals: HostTotals, problems: tuple[str, ...], now: float
    ) -> ResourceSnapshot:
        keys = {s.workload for s in samples}
        self._hist_at.append(now)
        detector = self.detector
        update = detector.update_one
        hists, bases, lasts = self._hist, self._bases, self._same_points
        cpu_m, mem_m, disk_m, net_m, steal_m = _ALL_METRICS
        for s in samples:  # (Sample.value of each metric, inline: 50 workloads x 5 a refresh)
            w = s.workload
            h = hists.get(w)
            if h is None:
                h = hists[w] = {m: deque(maxlen=HISTORY_LEN) for m in _HIST_METRICS}
            bs = bases.get(w)
            if bs is None:
                bs = bases[w] = detector.baselines(w, _ALL_METRICS)
            cpu, mem, disk, net, steal = s.cpu_pct, s.mem_bytes, s.disk_bps, s.net_bps, s.steal_pct
            memf = float(mem) if mem is not None else None
            points = (cpu or 0.0, memf or 0.0, disk or 0.0, net or 0.0)
            prev = lasts.get(w)
            if prev is not None and prev[0] == points:
                lasts[w] = (points, prev[1] + 1)
            else:
                lasts[w] = (points, 1)
            h[cpu_m].append(points[0])
            h[mem_m].append(points[1])
            h[disk_m].append(points[2])
            h[net_m].append(points[3])
            if cpu is not None:
                update(bs[0], w, cpu_m, cpu, now)
            if memf is not None:
                update(bs[1], w, mem_m, memf, now)
            if disk is not None:
                update(bs[2], w, disk_m, disk, now)
            if net is not None:
                update(bs[3], w, net_m, net, now)
            if steal is not None:
                update(bs[4], w, steal_m, steal, now)
        if keys != self._keys:  # workloads came or went: drop what belonged to the gone ones
            self._keys = keys
            for k in [k for k in self._hist if k not in keys]:
                del self._hist[k]
            for k in [k for k in bases if k not in keys]:
                del bases[k]  # (the detector forgets their baselines below)
            for k in [k for k in lasts if k not in keys]:
                del lasts[k]
            self._rates.forget_missing(keys | {"@host"})
            for k in [k for k in self._limits if k not in keys]:
                del self._limits[k]
            self._tried &= keys
        self.detector.forget_missing(keys, now)
        # a workload whose last HISTORY_LEN + 1 points were all the same (an idle one: zeros and
        # a constant memory) has the very same history as last time: that History is handed on
        made = self._histories
        history = tuple(
            made[k]
            if k in made and lasts[k][1] > HISTORY_LEN
            else History(
                k, tuple(h[Metric.CPU]), tuple(h[Metric.MEM]), tuple(h[Metric.DISK]), tuple(h[Metric.NET])
            )
            for k, h in sorted(self._hist.items())
        )
        self._histories = {hi.workload: hi for hi in history}
        return ResourceSnapshot(
            samples=tuple(sorted(samples, key=lambda s: s.workload)),
            at=now,
            interval=self.interval,
            totals=totals,
            history=history,
            history_at=tuple(self._hist_at),
            spikes=self.detector.spikes(now),
            problems=problems,
        )


class PushedTotals(Protocol):
    """Where an SSH host's pushed totals come from (probes/hosts/remote_events.RemoteNetEvents)."""

    def fresh_totals(self, seen: int) -> tuple[int, tuple[float, ...], float] | None: ...


def _net_targets(containers: Sequence[Workload], netns: Sequence[Workload]) -> list[tuple[str, str, int]]:
    out = []
    for w in containers:
        c = w.container
        if c and c.init_pid > 0 and "net" not in c.shared_namespaces:
            out.append((w.key, f"/proc/{c.init_pid}/ns/net", c.init_pid))
    for w in netns:
        n = w.netns
        assert n is not None
        pid = n.pids[0] if n.pids else 0
        out.append((w.key, n.path or w.name, pid))
    return out


async def _raise(e: BaseException) -> None:
    raise e


async def _given(readings: tuple[DomainReading, ...]) -> list[DomainReading]:
    return list(readings)


def _first_line(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text.splitlines()[0][:300]
