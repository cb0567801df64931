"""Helpers shared by the catalog's check modules: per-host iteration with honest skips,
tenant comparisons, CPU lists, evidence wording.

Why per host: a fleet mixes hosts with and without libvirt, with and without host facts; a check
reports each host on its own (PASS, or SKIPPED with the reason: "no libvirt on this host" is
a skip, never a pass), so one host's gap never hides another host's fault.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from probes.checks.base import CheckSpec, Skip, finding, memo
from probes.facts.model import HostFacts
from probes.hosts.libvirt_uri import why_not_read
from probes.model import ConnState, Finding, HostKind, HostState, State, Status, Workload, WorkloadKind
from probes.resources.model import Limits, ResourceSnapshot

Body = Callable[[HostState], Iterable[Finding]]


def host_label(hs: HostState) -> str:
    return hs.host.name


def vms(hs: HostState) -> list[Workload]:
    """The host's VMs whose XML could be read: the one VM iterator of the catalog. A domain
    whose XML could not be read has no details to judge (VM-01 reports it as an ERROR); a
    check that judged its empty details would report limits or labels it never saw."""
    return [w for w in hs.workloads if w.kind == WorkloadKind.VM and w.vm and not w.vm.parse_error]


# libvirt's states (probes/inventory/libvirt.py STATE_NAMES, and the older "blocked") in which
# the domain's QEMU process exists: its cgroup and live limits are real, and it runs under
# whatever confinement it got. "" and "no state": not known, taken as running (the safe side).
QEMU_ALIVE = frozenset({"running", "idle", "blocked", "paused", "in shutdown", "pmsuspended", "no state", ""})


def qemu_running(w: Workload) -> bool:
    """The one "is running" predicate: the domain's QEMU process exists (a guest suspended to
    RAM, pmsuspended, still has its QEMU, its memory and its cgroup)."""
    return w.state in QEMU_ALIVE


def live_limits(hs: HostState, key: str) -> Limits | None:
    """The limits in force for a workload, as the resources probe read them (None: not read)."""
    snap = hs.samples
    if snap is None:
        return None
    # indexed once per run: a scan per workload was quadratic in a fleet of 1,000 domains
    by_key = memo(hs, "samples.by_workload", lambda: {s.workload: s for s in reversed(snap.samples)})
    s = by_key.get(key)
    return s.live if s else None


def limits_of(snap: ResourceSnapshot) -> tuple[tuple[str, Limits | None], ...]:
    """All that live_limits reads of a host's figures: each workload's live limits (the
    figures key of the checks that judge limits: their counters move at every refresh, the
    limits objects stay the same until a limit changes)."""
    return tuple([(s.workload, s.live) for s in snap.samples])


def containers(hs: HostState) -> list[Workload]:
    return [w for w in hs.workloads if w.kind == WorkloadKind.CONTAINER and w.container]


def libvirt_gap(hs: HostState) -> tuple[Status, str] | None:
    """Why VM checks cannot run on this host, or None when they can."""
    if any(w.kind == WorkloadKind.VM for w in hs.workloads):
        return None  # domains are known (possibly the last picture before libvirt went away)
    c = hs.connection("libvirt")
    err = next((e for e in hs.probe_errors if e.probe in ("libvirt", "inventory")), None)
    if c is None:
        if err:
            return Status.ERROR, f"libvirt inventory failed: {err.message}"
        if hs.host.libvirt_uri:
            return None  # connected, no domains (or a probe that does not record connections)
        return Status.SKIPPED, "no libvirt on this host"
    if c.state == ConnState.UP:
        return None
    if c.state == ConnState.ABSENT:
        return Status.SKIPPED, "no libvirt on this host" + (f": {c.detail}" if c.detail else "")
    return Status.ERROR, f"libvirt {c.state}" + (f": {c.detail}" if c.detail else "")


DEMO_NO_FILES = "demo fleet: a simulated hypervisor has no host files to read"


def facts_gap(hs: HostState, source: str = "live") -> tuple[Status, str] | None:
    if hs.facts is not None:
        return None
    err = next((e for e in hs.probe_errors if e.probe == "facts"), None)
    if err:
        return Status.ERROR, f"host facts could not be read: {err.message}"
    if source == "demo":
        return Status.SKIPPED, DEMO_NO_FILES
    if hs.host.kind == HostKind.LIBVIRT:  # a remote or simulated hypervisor seen through libvirt
        return Status.SKIPPED, why_not_read(hs.host.name, hs.host.libvirt_uri, "host facts")
    return Status.SKIPPED, "host facts not collected on this host"


def per_host(
    state: State,
    spec: CheckSpec,
    body: Callable[..., Iterable[Finding]],
    *,
    libvirt: bool = False,
    facts: bool = False,
    gap: Callable[[HostState], tuple[Status, str] | None] | None = None,
) -> Iterator[Finding]:
    """Run `body(hs)` (or `body(hs, facts)` when facts=True) on every host that has what the
    check needs; other hosts get one SKIPPED or ERROR result with the reason (libvirt_gap,
    facts_gap, or the area's own `gap`, e.g. the container inventory's)."""
    if not state.hosts:
        raise Skip("no host observed")
    for hs in state.hosts:
        why = (
            (libvirt_gap(hs) if libvirt else None)
            or (facts_gap(hs, state.source) if facts else None)
            or (gap(hs) if gap else None)
        )
        if why:
            yield finding(spec, why[0], why[1], host=hs.host.name)
            continue
        if libvirt and not any(w.kind == WorkloadKind.VM for w in hs.workloads):
            yield finding(spec, Status.PASS, "no libvirt domains on this host", host=hs.host.name)
            continue
        yield from (body(hs, hs.facts) if facts else body(hs))


def passed(spec: CheckSpec, hs: HostState, summary: str) -> Finding:
    return finding(spec, Status.PASS, summary, host=hs.host.name)


def tenant(w: Workload) -> str:
    return w.tenant or ""


def who(w: Workload) -> str:
    return f"{w.name} ({w.tenant or 'unplaced'})"


def cross_tenant(ws: Iterable[Workload]) -> Status | None:
    """FAIL when the workloads belong to two or more known tenants; WARN when some owner is
    unknown (unplaced) and more than one workload is involved; None when one tenant owns all."""
    ws = list({w.key: w for w in ws}.values())
    known = {w.tenant for w in ws if w.tenant}
    if len(known) >= 2:
        return Status.FAIL
    if len(ws) >= 2 and any(not w.tenant for w in ws):
        return Status.WARN
    return None


def tenants_of(ws: Iterable[Workload]) -> tuple[str, ...]:
    return tuple(sorted({w.tenant for w in ws if w.tenant}))


def keys(ws: Iterable[Workload]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(w.key for w in ws))


def parse_cpuset(text: str, limit: int = 8192) -> frozenset[int]:
    """libvirt's cpuset syntax: "0-3,^2,8" -> {0, 1, 3, 8}. Bad parts raise ValueError."""
    add: set[int] = set()
    drop: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        target = drop if part.startswith("^") else add
        part = part.lstrip("^")
        lo, _, hi = part.partition("-")
        a, b = int(lo), int(hi or lo)
        if a < 0 or b < a or b > limit:
            raise ValueError(f"bad cpuset part {part!r}")
        target.update(range(a, b + 1))
    return frozenset(add - drop)


def cpulist(cpus: Iterable[int]) -> str:
    """{0,1,2,5} -> "0-2,5"."""
    out: list[str] = []
    run: list[int] = []
    for c in sorted(set(cpus)):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [c]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def dom(w: Workload) -> str:
    """How a domain is named in evidence: `domain 'NAME'`."""
    return f"domain '{w.name}'"


def facts_of(hs: HostState) -> HostFacts | None:
    return hs.facts


def is_loopback(addr: str) -> bool:
    a = addr.strip("[]").lower()
    return a in ("localhost", "::1") or a.startswith("127.")
