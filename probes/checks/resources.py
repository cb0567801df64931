"""Resource checks: spikes, noisy neighbours, missing limits and drift between XML and cgroup.

Inputs: HostState.samples (probes/resources: rates, live limits read from cgroups or libvirt's
live parameters, and the spikes its baselines found) and the inventory's workloads (libvirt
XML cputune/memtune, container details). A workload without any limit can take the whole
host's CPU or memory and starve every other tenant: isolation of performance is isolation too.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterable, Iterator

from probes.checks.base import CheckSpec, Skip, check, finding
from probes.model import Evidence, Finding, HostState, Severity, State, Status, Workload, WorkloadKind
from probes.resources.model import Limits, Metric
from probes.resources.tenants import UNPLACED, by_tenant, tenant_of

# RES-02 thresholds
BUSY_HOST_PCT = 70.0  # host CPU busy (% of all cores) before "far more than its share" matters
SHARE_FACTOR = 1.5  # usage share at least this many times the configured share
SHARE_MARGIN = 25.0  # ... and this many percentage points above it
MIN_TENANT_CPU = 50.0  # % of one core: below this nobody is noisy
VICTIM_STEAL_PCT = 10.0  # vCPU delay (% of one core) that counts as being starved

DRIFT_TOLERANCE = 0.01


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


def fmt_bytes(v: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(v) < 1024 or unit == "TiB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    return f"{v:.1f} TiB"


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
        for t, u in hu.workloads:
            if u.steal_pct is not None and u.steal_pct >= VICTIM_STEAL_PCT:
                victims.setdefault(t, []).append((u.name, u.steal_pct))
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


def _vms(hs: HostState) -> Iterable[Workload]:
    return (w for w in hs.workloads if w.kind == WorkloadKind.VM and w.vm is not None)


def _live(hs: HostState, key: str) -> Limits | None:
    s = hs.samples.sample(key) if hs.samples else None
    return s.live if s else None


def _running(w: Workload) -> bool:
    return w.state in ("running", "blocked", "paused", "")


def _virsh(*argv: str) -> str:
    return shlex.join(["virsh", *argv])


@check(
    "VM-04",
    "vm",
    "VM without a CPU limit",
    "A VM without a CPU quota can use every host core it has vCPUs for; shares only weigh "
    "tenants against each other when the host is full, they never cap anyone.",
    Severity.MEDIUM,
    "virsh schedinfo DOMAIN --live --config vcpu_quota=50000 vcpu_period=100000",
)
def vm04_cpu(state: State, spec: CheckSpec) -> Iterator[Finding]:
    for hs in state.hosts:
        for w in _vms(hs):
            assert w.vm is not None
            ct = w.vm.cputune
            xml_cap = bool((ct.quota and ct.quota > 0) or (ct.emulator_quota and ct.emulator_quota > 0))
            live = _live(hs, w.key)
            if live is not None and _running(w) and live.cpu_known:
                capped = live.cpu_quota_cores is not None
                where = f"live: {live.where}"
            else:
                capped = bool(ct.quota and ct.quota > 0)
                where = "XML /domain/cputune/quota"
            if capped:
                continue
            shares = ct.shares or (live.cpu_shares if live else None)
            weight = f"; only a relative weight (shares {ct.shares})" if ct.shares else ""
            drifted = " (the XML has a quota, the live cgroup does not)" if xml_cap else ""
            yield finding(
                spec,
                Status.WARN if ct.shares else Status.FAIL,
                f"{w.name}: no CPU quota{drifted}{weight}; it can use {w.vm.vcpus or '?'} full core(s)",
                host=hs.host.name,
                tenants=[w.tenant] if w.tenant else [],
                workloads=[w.key],
                evidence=[Evidence(where, f"quota={ct.quota} period={ct.period} shares={shares}")],
                fix=_virsh(
                    "schedinfo", w.name, "--live", "--config", "vcpu_quota=50000", "vcpu_period=100000"
                ),
            )


@check(
    "VM-05",
    "vm",
    "VM without a memory limit",
    "<memory> sizes the guest, but QEMU's own allocations on the host are unbounded without "
    "memtune hard_limit: a runaway VM can push the host into swap or the OOM killer, which "
    "then kills other tenants' VMs.",
    Severity.MEDIUM,
    "virsh memtune DOMAIN --hard-limit KIB --live --config (guest memory + ~256 MiB)",
)
def vm05_memory(state: State, spec: CheckSpec) -> Iterator[Finding]:
    for hs in state.hosts:
        for w in _vms(hs):
            assert w.vm is not None
            xml = w.vm.memtune.hard_limit_kib
            live = _live(hs, w.key)
            if live is not None and _running(w) and live.mem_known:
                limited = live.mem_limit_bytes is not None
                where = f"live: {live.where}"
            else:
                limited = xml is not None
                where = "XML /domain/memtune/hard_limit"
            if limited:
                continue
            suggest = (w.vm.memory_kib or 0) + 256 * 1024
            yield finding(
                spec,
                Status.WARN,
                f"{w.name}: no memory hard limit (guest memory "
                f"{(w.vm.memory_kib or 0) // 1024} MiB, QEMU overhead unbounded)",
                host=hs.host.name,
                tenants=[w.tenant] if w.tenant else [],
                workloads=[w.key],
                evidence=[Evidence(where, f"hard_limit_kib={xml}")],
                fix=_virsh("memtune", w.name, "--hard-limit", str(suggest), "--live", "--config"),
            )


@check(
    "VM-12",
    "vm",
    "Limits in the XML differ from the live cgroup",
    "What libvirt's XML promises and what the kernel enforces have drifted apart (someone "
    "wrote the cgroup directly, or a change was applied --config only): the reviewed "
    "configuration is not the one in force.",
    Severity.MEDIUM,
    "Re-apply the XML values live (`virsh schedinfo` / `virsh memtune` with --live), or "
    "update the XML to what is intended.",
)
def vm12_drift(state: State, spec: CheckSpec) -> Iterator[Finding]:
    seen = False
    for hs in state.hosts:
        for w in _vms(hs):
            assert w.vm is not None
            live = _live(hs, w.key)
            if live is None or not _running(w) or live.source != "libvirt live":
                continue
            seen = True
            ct, mt = w.vm.cputune, w.vm.memtune
            diffs: list[tuple[str, str, str]] = []
            xml_cores = None
            if ct.quota and ct.quota > 0:
                xml_cores = ct.quota / (ct.period or 100000) * max(1, w.vm.vcpus or 1)
            if live.cpu_known and not _close(xml_cores, live.cpu_quota_cores):
                diffs.append(("CPU quota (cores)", _f(xml_cores), _f(live.cpu_quota_cores)))
            if ct.shares is not None and live.cpu_shares is not None and ct.shares != live.cpu_shares:
                diffs.append(("cpu shares", str(ct.shares), str(live.cpu_shares)))
            xml_mem = mt.hard_limit_kib * 1024 if mt.hard_limit_kib else None
            if live.mem_known and not _close(xml_mem, live.mem_limit_bytes):
                diffs.append(("memory hard limit", _b(xml_mem), _b(live.mem_limit_bytes)))
            if diffs:
                yield finding(
                    spec,
                    Status.WARN,
                    f"{w.name}: " + "; ".join(f"{what} XML {x} vs live {lv}" for what, x, lv in diffs),
                    host=hs.host.name,
                    tenants=[w.tenant] if w.tenant else [],
                    workloads=[w.key],
                    evidence=[
                        Evidence(
                            "XML /domain/cputune, /domain/memtune",
                            f"quota={ct.quota} period={ct.period} shares={ct.shares} "
                            f"hard_limit_kib={mt.hard_limit_kib}",
                        ),
                        Evidence(
                            f"live: {live.where}",
                            f"cpu_quota_cores={live.cpu_quota_cores} "
                            f"shares={live.cpu_shares} mem_limit={live.mem_limit_bytes}",
                        ),
                    ],
                )
    if not seen and not any(True for hs in state.hosts for _ in _vms(hs)):
        return
    if not seen:
        raise Skip("no live limits read yet for any running VM")


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= DRIFT_TOLERANCE * max(abs(a), abs(b), 1e-9)


def _f(v: float | None) -> str:
    return "none" if v is None else f"{v:.2f}"


def _b(v: float | None) -> str:
    return "none" if v is None else fmt_bytes(v)


@check(
    "CTR-07",
    "container",
    "Container without pids, memory or CPU limits",
    "A container without a pids limit can fork-bomb the host, without a memory limit it "
    "can push the host into the OOM killer, and without a CPU cap it can take every core: "
    "each starves the other tenants.",
    Severity.MEDIUM,
    "Set limits in the runtime (e.g. `docker update --pids-limit 512 --memory 1g --cpus 1 "
    "NAME`) or on the cgroup (pids.max, memory.max / memory.limit_in_bytes, cpu.max / "
    "cpu.cfs_quota_us).",
)
def ctr07_limits(state: State, spec: CheckSpec) -> Iterator[Finding]:
    containers = [(hs, w) for hs in state.hosts for w in hs.workloads if w.kind == WorkloadKind.CONTAINER]
    if not containers:
        return
    read = 0
    for hs, w in containers:
        live = _live(hs, w.key)
        if live is None:
            continue
        read += 1
        missing = [
            what
            for what, v, known in (
                ("pids", live.pids_limit, live.pids_known),
                ("memory", live.mem_limit_bytes, live.mem_known),
                ("cpu", live.cpu_quota_cores, live.cpu_known),
            )
            if known and v is None
        ]
        if not missing:
            continue
        sev = Severity.MEDIUM if "memory" in missing or "pids" in missing else Severity.LOW
        yield finding(
            spec,
            Status.FAIL if ("memory" in missing and "pids" in missing) else Status.WARN,
            f"{w.name}: no {', '.join(missing)} limit",
            host=hs.host.name,
            tenants=[w.tenant] if w.tenant else [],
            workloads=[w.key],
            evidence=[
                Evidence(
                    f"{live.source}: {live.where}",
                    f"pids.max={live.pids_limit or 'max'} "
                    f"memory={live.mem_limit_bytes or 'max'} "
                    f"cpu quota={live.cpu_quota_cores or 'max'} cores",
                )
            ],
            severity=sev,
        )
    if read == 0:
        raise Skip("no cgroup limits read yet for any container")
