"""Per-tenant sums of the workload samples, and each tenant's share of its host.

Pure functions of State, used by the Resources pane and the RES-02 check alike, so the
numbers on screen and in `tenantscope check` are the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import add, attrgetter

from probes.model import State, Workload
from probes.resources.model import History, Sample

UNPLACED = "(unplaced)"


@dataclass(frozen=True)
class Usage:
    """Sums over some workloads (one tenant, or one workload)."""

    name: str  # tenant name, or workload key for a single workload
    workloads: tuple[str, ...] = ()
    cpu_pct: float | None = None  # % of one core
    cpu_share: float | None = None  # % of the host's CPU capacity (all cores)
    steal_pct: float | None = None  # worst vCPU delay among its VMs, % of one core
    mem_bytes: int | None = None
    mem_limit_bytes: int | None = None  # None when any workload has no memory limit
    mem_unlimited: int = 0  # workloads without a memory limit
    cpu_unlimited: int = 0  # workloads without a CPU cap
    mem_share: float | None = None  # % of the host's memory
    disk_bps: float | None = None
    net_bps: float | None = None
    cpu_quota_cores: float | None = None  # sum of caps; None when any workload is uncapped
    cpu_weight: int | None = None  # sum of shares/weights where known
    cpu_hist: tuple[float, ...] = ()
    mem_hist: tuple[float, ...] = ()
    disk_hist: tuple[float, ...] = ()
    net_hist: tuple[float, ...] = ()


def _sum(vals: Iterable[float | int | None]) -> float | None:
    got = [v for v in vals if v is not None]
    return sum(got) if got else None


def _sum_series(series: Iterable[tuple[float, ...]]) -> tuple[float, ...]:
    """Element-wise sum, aligned on the newest point (shorter series are newer workloads).
    Each point is added in series order, as a loop would (`map(add)` runs it in C: a tenant of
    50 workloads with 60 points per metric was ~0.6 ms per metric at every redraw)."""
    series = [s for s in series if s]
    if not series:
        return ()
    n = max(map(len, series))
    out = [0.0] * n
    for s in series:
        if len(s) == n:
            out = list(map(add, out, s))
        else:
            off = n - len(s)
            out[off:] = map(add, out[off:], s)
    return tuple(out)


def usage_of(
    name: str, samples: list[Sample], hist: list[History], cpus: int, mem_total: int, points: int = 0
) -> Usage:
    cpu = _sum(s.cpu_pct for s in samples)
    mem = _sum(s.mem_bytes for s in samples)
    # only limits the source actually reported count: unknown is neither capped nor "no limit"
    cpu_known = [s for s in samples if s.kind != "netns" and s.live and s.live.cpu_known]
    mem_known = [s for s in samples if s.kind != "netns" and s.live and s.live.mem_known]
    quotas = [s.live.cpu_quota_cores for s in cpu_known if s.live]
    mem_unl = sum(1 for s in mem_known if s.mem_limit_bytes is None)
    cpu_unl = sum(1 for q in quotas if q is None)
    limits = [s.mem_limit_bytes for s in mem_known]
    weights = [s.live.cpu_shares for s in samples if s.live and s.live.cpu_shares]
    steals = [s.steal_pct for s in samples if s.steal_pct is not None]
    return Usage(
        name=name,
        workloads=tuple(s.workload for s in samples),
        cpu_pct=cpu,
        cpu_share=cpu / cpus if cpu is not None and cpus else None,
        steal_pct=max(steals) if steals else None,
        mem_bytes=int(mem) if mem is not None else None,
        mem_limit_bytes=(int(sum(x for x in limits if x is not None)) if limits and mem_unl == 0 else None),
        mem_unlimited=mem_unl,
        cpu_unlimited=cpu_unl,
        mem_share=100.0 * mem / mem_total if mem is not None and mem_total else None,
        disk_bps=_sum(s.disk_bps for s in samples),
        net_bps=_sum(s.net_bps for s in samples),
        cpu_quota_cores=sum(q for q in quotas if q is not None) if quotas and cpu_unl == 0 else None,
        cpu_weight=sum(weights) if weights else None,
        cpu_hist=_sum_series(_last(hist, "cpu", points)),
        mem_hist=_sum_series(_last(hist, "mem", points)),
        disk_hist=_sum_series(_last(hist, "disk", points)),
        net_hist=_sum_series(_last(hist, "net", points)),
    )


def _last(hist: list[History], metric: str, points: int) -> list[tuple[float, ...]]:
    """Each history's series of `metric`, its last `points` only when given (one pass, no
    call per series: the pane sums them at every redraw)."""
    series = list(map(attrgetter(metric), hist))
    return [s[-points:] for s in series] if points > 0 else series


def series_of(state: State, workloads: Iterable[str], metric: str) -> tuple[float, ...]:
    """The summed history of `metric` ("cpu", "mem", "disk" or "net") over `workloads`
    (a Usage's), all of it: what by_tenant gives with points=0."""
    want = set(workloads)
    return _sum_series(
        getattr(h, metric)
        for hs in state.hosts
        if hs.samples
        for h in hs.samples.history
        if h.workload in want
    )


def tenant_of(w: Workload | None) -> str:
    return w.tenant if w is not None and w.tenant else UNPLACED


@dataclass(frozen=True)
class HostUsage:
    host: str
    tenants: tuple[Usage, ...]
    workloads: tuple[tuple[str, Usage], ...]  # (tenant, usage of one workload)


def by_tenant(
    state: State,
    *,
    history: bool = True,
    per_workload: Callable[[str, str], bool] | None = None,
    points: int = 0,
) -> tuple[HostUsage, ...]:
    """For each host with samples: usage per tenant and per workload (with the summed
    history series for the pane's sparklines unless `history` is False, as checks need not;
    only the last `points` of them when given: a sparkline's, summed at every redraw).
    `per_workload(host, tenant)`: whether that tenant's workloads get a usage each (the pane
    asks only for the tenants it shows expanded; default all)."""
    out = []
    for hs in state.hosts:
        snap = hs.samples
        if snap is None:
            continue
        wl = {w.key: w for w in hs.workloads}
        cpus = snap.totals.cpus or 1
        groups: dict[str, list[Sample]] = {}
        for s in snap.samples:
            groups.setdefault(tenant_of(wl.get(s.workload)), []).append(s)
        hist = {h.workload: h for h in snap.history} if history else {}
        tenants = []
        per_wl = []
        for t, ss in sorted(groups.items()):
            hs_ = [hist[s.workload] for s in ss if s.workload in hist]
            tenants.append(usage_of(t, ss, hs_, cpus, snap.totals.mem_total, points))
            if per_workload is not None and not per_workload(hs.host.name, t):
                continue
            for s in ss:
                h = [hist[s.workload]] if s.workload in hist else []
                per_wl.append((t, usage_of(s.workload, [s], h, cpus, snap.totals.mem_total, points)))
        out.append(HostUsage(hs.host.name, tuple(tenants), tuple(per_wl)))
    return tuple(out)
