"""Resource samples. Owned by the resources area. Must not import probes.model.

What the resources probe puts into HostState.samples: one Sample per workload (rates already
computed from counter deltas), the limits found for it, a short bounded history for the
sparklines, the host's totals, and the spikes its baselines detected. Everything is plain
frozen data so that snapshots and replay show the same picture as the live console.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

HISTORY_LEN = 60  # points kept per workload and metric (2 min at the default 2 s)


class Metric(StrEnum):
    """The per-workload series the probe keeps (and the baselines watch)."""

    CPU = "cpu"  # % of one core
    MEM = "mem"  # bytes
    DISK = "disk"  # read + write bytes/s
    NET = "net"  # rx + tx bytes/s
    STEAL = "steal"  # VMs: vCPU run delay, % of one core


METRIC_UNITS = {
    Metric.CPU: "% of a core",
    Metric.MEM: "bytes",
    Metric.DISK: "B/s",
    Metric.NET: "B/s",
    Metric.STEAL: "% of a core",
}


@dataclass(frozen=True)
class Limits:
    """Limits of one workload as one source states them (None: no such limit there).

    `cpu_quota_cores` is quota/period in cores (0.5 = half a core), summed over vCPUs for
    libvirt's per-vCPU quota; `cpu_shares` is a relative weight (v1 shares, v2 weight, or
    libvirt cputune shares), never a cap.
    """

    source: str = ""  # "xml", "cgroup v1", "cgroup v2", "libvirt live"
    cpu_quota_cores: float | None = None
    cpu_shares: int | None = None
    mem_limit_bytes: int | None = None
    pids_limit: int | None = None
    where: str = ""  # the cgroup path or API the values came from
    # which values the source actually reported: None above means "no limit" only when known
    cpu_known: bool = True
    mem_known: bool = True
    pids_known: bool = True


@dataclass(frozen=True)
class Sample:
    workload: str  # workload key
    at: float
    kind: str = ""  # vm, container, netns
    source: str = ""  # libvirt, cgroup v1, cgroup v2, netns
    cpu_pct: float | None = None  # % of one core (200 = two cores busy)
    steal_pct: float | None = None  # VMs: vCPU delay, % of one core
    vcpus: int | None = None
    mem_bytes: int | None = None
    mem_limit_bytes: int | None = None  # the enforced limit where known (None: unlimited/unknown)
    blk_read_bps: float | None = None
    blk_write_bps: float | None = None
    net_rx_bps: float | None = None
    net_tx_bps: float | None = None
    net_drops_ps: float | None = None  # rx + tx drops per second
    pids: int | None = None
    live: Limits | None = None  # limits read from the running workload (cgroup / libvirt live)
    note: str = ""  # why some values are missing (e.g. "cgroup gone", "first sample")

    @property
    def disk_bps(self) -> float | None:
        if self.blk_read_bps is None and self.blk_write_bps is None:
            return None
        return (self.blk_read_bps or 0.0) + (self.blk_write_bps or 0.0)

    @property
    def net_bps(self) -> float | None:
        if self.net_rx_bps is None and self.net_tx_bps is None:
            return None
        return (self.net_rx_bps or 0.0) + (self.net_tx_bps or 0.0)

    def value(self, metric: Metric) -> float | None:
        if metric is Metric.CPU:
            return self.cpu_pct
        if metric is Metric.MEM:
            return float(self.mem_bytes) if self.mem_bytes is not None else None
        if metric is Metric.DISK:
            return self.disk_bps
        if metric is Metric.NET:
            return self.net_bps
        return self.steal_pct


def sample_at(s: Sample, at: float) -> Sample:
    """`s` taken at `at`: what replace(s, at=at) makes, without its __init__ (~0.8 us against
    ~6: an idle workload's sample at every refresh is this)."""
    new = object.__new__(Sample)
    d = new.__dict__
    d.update(s.__dict__)
    d["at"] = at
    return new


@dataclass(frozen=True)
class History:
    """The last HISTORY_LEN values of one workload, oldest first; None-free (0.0 for gaps).
    All workloads of a host are sampled together, so index i is the same refresh for all."""

    workload: str
    cpu: tuple[float, ...] = ()
    mem: tuple[float, ...] = ()
    disk: tuple[float, ...] = ()
    net: tuple[float, ...] = ()

    def series(self, metric: Metric) -> tuple[float, ...]:
        return {Metric.CPU: self.cpu, Metric.MEM: self.mem, Metric.DISK: self.disk, Metric.NET: self.net}.get(
            metric, ()
        )


@dataclass(frozen=True)
class Spike:
    """A value far above its workload's rolling baseline (RES-01)."""

    workload: str
    metric: Metric
    baseline: float  # EWMA mean before the spike
    deviation: float  # EWMA mean absolute deviation before the spike
    threshold: float  # what the value had to exceed
    peak: float
    started_at: float
    peak_at: float
    ended_at: float | None = None  # None while still above the threshold
    first: float = 0.0  # the value that confirmed the spike (stable, unlike the peak)

    @property
    def active(self) -> bool:
        return self.ended_at is None


@dataclass(frozen=True)
class HostTotals:
    cpus: int = 0
    cpu_pct: float | None = None  # busy, % of the whole host (100 = all CPUs)
    steal_pct: float | None = None  # the host's own steal, % of the whole host
    mem_total: int = 0
    mem_used: int = 0
    blk_read_bps: float | None = None
    blk_write_bps: float | None = None
    net_rx_bps: float | None = None
    net_tx_bps: float | None = None
    source: str = ""  # psutil or /proc


@dataclass(frozen=True)
class ResourceSnapshot:
    samples: tuple[Sample, ...] = ()
    at: float = 0.0
    interval: float = 0.0  # seconds between refreshes
    totals: HostTotals = field(default_factory=HostTotals)
    history: tuple[History, ...] = ()
    history_at: tuple[float, ...] = ()  # the refresh times of the history points
    spikes: tuple[Spike, ...] = ()  # active spikes and those that ended recently
    problems: tuple[str, ...] = ()  # partial failures (e.g. "libvirt: connection refused")

    def sample(self, workload: str) -> Sample | None:
        return next((s for s in self.samples if s.workload == workload), None)

    def history_of(self, workload: str) -> History | None:
        return next((h for h in self.history if h.workload == workload), None)
