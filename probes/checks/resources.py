"""Resource checks: spikes, noisy neighbours, missing limits and drift between XML and cgroup.

Inputs: HostState.samples (probes/resources: rates, live limits read from cgroups or libvirt's
live parameters, and the spikes its baselines found) and the inventory's workloads (libvirt
XML cputune/memtune, container details). A workload without any limit can take the whole
host's CPU or memory and starve every other tenant: isolation of performance is isolation too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from probes.checks.base import CheckSpec, Skip, check, finding
from probes.model import Evidence, Finding, HostState, Severity, State, Status, Workload
from probes.resources.model import Metric, ResourceSnapshot, Spike
from probes.resources.tenants import UNPLACED, by_tenant, tenant_of
from probes.units import fmt_bytes

# RES-02 thresholds
BUSY_HOST_PCT = 70.0  # host CPU busy (% of all cores) before "far more than its share" matters
SHARE_FACTOR = 1.5  # usage share at least this many times the configured share
SHARE_MARGIN = 25.0  # ... and this many percentage points above it
MIN_TENANT_CPU = 50.0  # % of one core: below this nobody is noisy
VICTIM_STEAL_PCT = 10.0  # vCPU delay (% of one core) that counts as being starved


def spikes_of(snap: ResourceSnapshot) -> tuple[Spike, ...]:
    """All RES-01 reads of a host's figures (its figures key)."""
    return snap.spikes


QUIET = "no tenant can be noisy"


def noisy_figures(snap: ResourceSnapshot) -> object:
    """RES-02's figures key: while the host's workloads together use less than MIN_TENANT_CPU
    (a margin below it: no tenant's sum, in whatever order it is added, reaches it), no tenant
    is noisy whatever the other figures say; else the figures themselves (judged anew)."""
    busy = 0.0
    for s in snap.samples:
        if s.cpu_pct is not None and s.cpu_pct > 0.0:
            busy += s.cpu_pct
    return QUIET if busy < 0.99 * MIN_TENANT_CPU else snap


def _hosts_with_samples(state: State) -> list[HostState]:
    hosts = [h for h in state.hosts if h.samples is not None]
    if not hosts:
        raise Skip("no resource samples yet (the resources probe has not reported)")
    return hosts


def fmt_value(metric: Metric, v: float) -> str:
    if metric in (Metric.CPU, Metric.STEAL):
        return f"{v:.0f}% of a core"
    if metric is Metric.MEM:
        return fmt_bytes(v)
    return fmt_bytes(v) + "/s"


def _when(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def _wl_name(w: Workload | None, key: str) -> str:
    return w.name if w is not None else key.rsplit("/", 1)[-1]


@check(
    "RES-01",
    "resources",
    "Resource spike",
    "A sudden jump in CPU, memory, disk or network use far above a workload's own baseline "
    "can be a breach (a cryptominer, exfiltration, a fork bomb) or a tenant starving others.",
    Severity.MEDIUM,
    "Look at the workload's processes and connections at the time of the peak (Logs pane, "
    "`virsh domstats NAME`, `top` inside the guest); if it is legitimate, cap it.",
    reads=("workloads", "samples"),
    figures=spikes_of,
    scope="host",
)
def res01_spikes(state: State, spec: CheckSpec) -> Iterator[Finding]:
    for hs in _hosts_with_samples(state):
        wl = {w.key: w for w in hs.workloads}
        assert hs.samples is not None
        for sp in hs.samples.spikes:
            w = wl.get(sp.workload)
            # The summary stays the same for the whole spike (it is part of the finding's key,
            # which the Logs timeline uses to report "raised" once); the evolving peak and the
            # end are in the evidence.
            yield finding(
                spec,
                Status.WARN,
                f"{_wl_name(w, sp.workload)}: {sp.metric} spike from {_when(sp.started_at)}: "
                f"{fmt_value(sp.metric, sp.first or sp.peak)} against a baseline of "
                f"{fmt_value(sp.metric, sp.baseline)}",
                host=hs.host.name,
                tenants=[tenant_of(w)] if w and w.tenant else [],
                workloads=[sp.workload],
                evidence=[
                    Evidence(
                        f"resources: {sp.metric} of {sp.workload}",
                        f"peak {fmt_value(sp.metric, sp.peak)} at {_when(sp.peak_at)}"
                        + (f", ended {_when(sp.ended_at)}" if sp.ended_at else ", still above")
                        + f"; metric={sp.metric} baseline={sp.baseline:.4g} "
                        f"deviation={sp.deviation:.4g} threshold={sp.threshold:.4g} "
                        f"peak={sp.peak:.4g} peak_at={sp.peak_at:.0f} "
                        f"started_at={sp.started_at:.0f} "
                        f"ended_at={'' if sp.ended_at is None else f'{sp.ended_at:.0f}'}",
                    )
                ],
                severity=Severity.MEDIUM if sp.active else Severity.LOW,
            )


@check(
    "RES-02",
    "resources",
    "Noisy neighbour",
    "One tenant using far more CPU than its configured share, or driving up the vCPU delay "
    "(steal) of other tenants' VMs, breaks performance isolation: the others slow down "
    "for reasons they cannot see or fix.",
    Severity.HIGH,
    "Cap the noisy tenant's workloads (`virsh schedinfo NAME --live --config vcpu_quota=Q "
    "vcpu_period=100000`, cgroup cpu.max / cpu.cfs_quota_us) or give the victims more "
    "weight; pin tenants to separate cores with <vcpupin>.",
    reads=("workloads", "samples"),
    figures=noisy_figures,
    scope="host",
)
def res02_noisy(state: State, spec: CheckSpec) -> Iterator[Finding]:
    hosts = {h.host.name: h for h in _hosts_with_samples(state)}
    for hu in by_tenant(state, history=False):
        hs = hosts[hu.host]
        assert hs.samples is not None
        total_cpu = sum(t.cpu_pct or 0.0 for t in hu.tenants)
        busy = hs.samples.totals.cpu_pct or 0.0
        weights = {t.name: t.cpu_weight for t in hu.tenants if t.cpu_weight}
        total_w = sum(weights.values())
        wl = {w.key: w for w in hs.workloads}
        victims: dict[str, list[tuple[str, float]]] = {}
        for owner, u in hu.workloads:
            if u.steal_pct is not None and u.steal_pct >= VICTIM_STEAL_PCT:
                victims.setdefault(owner, []).append((u.name, u.steal_pct))
        for t in hu.tenants:
            if t.name == UNPLACED or (t.cpu_pct or 0.0) < MIN_TENANT_CPU or total_cpu <= 0:
                continue
            use_share = 100.0 * (t.cpu_pct or 0.0) / total_cpu
            reasons = []
            ev = [
                Evidence(
                    f"resources: tenant {t.name} on {hu.host}",
                    f"cpu={t.cpu_pct:.0f}% of a core, {use_share:.0f}% of all tenants' CPU, "
                    f"host busy {busy:.0f}%",
                )
            ]
            if busy >= BUSY_HOST_PCT and total_w and t.name in weights:
                conf_share = 100.0 * weights[t.name] / total_w
                if use_share >= SHARE_FACTOR * conf_share and use_share - conf_share >= SHARE_MARGIN:
                    reasons.append(
                        f"uses {use_share:.0f}% of the tenants' CPU against a "
                        f"configured share of {conf_share:.0f}%"
                    )
            others = [(v, s) for vt, vs in victims.items() if vt != t.name for v, s in vs]
            if others and use_share >= 50.0:
                names = ", ".join(f"{_wl_name(wl.get(v), v)} ({s:.0f}% delay)" for v, s in others)
                reasons.append(f"while other tenants' VMs wait for CPU: {names}")
                ev += [Evidence(f"libvirt: vcpu.*.delay of {v}", f"{s:.1f}% of a core") for v, s in others]
            if reasons:
                yield finding(
                    spec,
                    Status.FAIL,
                    f"tenant {t.name} " + "; ".join(reasons),
                    host=hu.host,
                    tenants=[t.name] + [tenant_of(wl.get(v)) for v, _ in others],
                    workloads=t.workloads,
                    evidence=ev,
                )
