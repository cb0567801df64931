"""LOG-01..LOG-04: what the hosts' logs say about isolation, and whether they keep logs at all.

The checks read the isolation signals each host's LogView carries (tagged by
probes/logs/classify.py), group them per workload, and point at the lines as evidence
(`log:HOST#SEQ`, which the Logs pane can jump to). Tenants are looked up from the current
State, and entries that arrived before the inventory are attributed here again, so the
conclusion does not depend on which probe answered first.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from probes.checks.base import CheckSpec, Skip, check, finding, memo
from probes.checks.common import DEMO_NO_FILES
from probes.hosts.libvirt_uri import why_not_read
from probes.logs import classify
from probes.logs.attribute import Attributor, Index
from probes.logs.model import LogEvent, SourceState, evidence_ref
from probes.model import Evidence, Finding, HostKind, HostState, Severity, State, Status

MAX_EVIDENCE = 8


def _signals(state: State, tags: Iterable[str]) -> Iterator[LogEvent]:
    want = set(tags)
    hosts = [hs for hs in state.hosts if hs.logs is not None]
    if not hosts:
        raise Skip(_no_logs(state))
    for e in _attributed(state, hosts):
        if want.intersection(e.tags):
            yield e


def _no_logs(state: State) -> str:
    views = [hs.host for hs in state.hosts if hs.host.kind == HostKind.LIBVIRT]
    if views and len(views) == len(state.hosts):  # only hosts seen through libvirt: say why
        return why_not_read(views[0].name, views[0].libvirt_uri, "logs")
    return "no logs collected (no log source ran on any host)"


def _attributed(state: State, hosts: list[HostState]) -> tuple[LogEvent, ...]:
    # every LOG check of one run asks for these, and building the attribution index is the
    # expensive part: made once per run (memo() keeps it on the run's view of the State)
    return memo(state, "logs.attributed", lambda: _attribute(state, hosts))


def _attribute(state: State, hosts: list[HostState]) -> tuple[LogEvent, ...]:
    out: list[LogEvent] = []
    attributor: Attributor | None = None
    for hs in hosts:
        assert hs.logs is not None
        for e in hs.logs.signals:
            # every signal goes through the attributor in order: an `oom-kill:` line teaches
            # it the pid that the next `Killed process` line names
            if not e.workload:
                if attributor is None:
                    attributor = Attributor(Index(state))
                e = attributor.attribute(e)
            out.append(e)
    return tuple(out)


def _name(key: str) -> str:
    """A workload's name from its key (host/kind/name), as the other checks' summaries say it
    (the Workloads field of the finding keeps the keys)."""
    return key.split("/", 2)[-1]


def _tenant_of(state: State, wl: dict[str, str], key: str, fallback: str) -> str:
    return wl.get(key, fallback) if key else fallback


def _when(e: LogEvent) -> str:
    if not e.at:
        return "?"
    return datetime.fromtimestamp(e.at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _evidence(events: list[LogEvent]) -> tuple[Evidence, ...]:
    # raw host text (cut): made safe where it is shown, like every other model string
    return tuple(
        Evidence(evidence_ref(e), f"{_when(e)} {e.source}: {e.message[:300]}") for e in events[-MAX_EVIDENCE:]
    )


def _group(
    state: State, events: Iterable[LogEvent], with_target: bool = False
) -> tuple[dict[tuple[str, str, str], list[LogEvent]], dict[tuple[str, str, str], tuple[str, str]]]:
    wl = {w.key: w.tenant for w in state.workloads()}
    groups: dict[tuple[str, str, str], list[LogEvent]] = {}
    tenants: dict[tuple[str, str, str], tuple[str, str]] = {}
    for e in events:
        k = (e.host, e.workload, e.target_workload if with_target else "")
        groups.setdefault(k, []).append(e)
        tenants[k] = (
            _tenant_of(state, wl, e.workload, e.tenant),
            _tenant_of(state, wl, e.target_workload, e.target_tenant),
        )
    return groups, tenants


@check(
    "LOG-01",
    "logs",
    "MAC denials involving tenant workloads",
    why="An SELinux (svirt) or AppArmor denial means a confined process tried something its "
    "policy forbids: a qemu of one tenant opening another tenant's disk is a breakout "
    "attempt, stopped only by that policy.",
    severity=Severity.HIGH,
    fix="Find the process and the object in the evidence (ausearch -m AVC,APPARMOR -i); check "
    "the domains' <seclabel> and disk paths; never relabel a disk shared between tenants.",
    reads=("workloads", "topology", "logs"),
)
def log01_mac_denials(state: State, spec: CheckSpec) -> Iterator[Finding]:
    groups, tenants = _group(state, _signals(state, [classify.MAC_DENIAL]), with_target=True)
    for (host, wk, tk), evs in groups.items():
        st, tt = tenants[(host, wk, tk)]
        last = evs[-1]
        what = last.field("comm") or last.program or "a process"
        obj = last.field("path") or last.field("name") or last.field("tcontext") or "an object"
        if st and tt and st != tt:
            yield finding(
                spec,
                Status.FAIL,
                f"{len(evs)} denial(s): tenant {st}'s {what} ({_name(wk)}) touched tenant {tt}'s {obj} ({_name(tk)})",
                host=host,
                tenants=(st, tt),
                workloads=tuple(x for x in (wk, tk) if x),
                evidence=_evidence(evs),
                severity=Severity.CRITICAL,
            )
        elif st or tt:
            t = st or tt
            yield finding(
                spec,
                Status.FAIL,
                f"{len(evs)} denial(s) for tenant {t}: {what} on {obj}",
                host=host,
                tenants=(t,),
                workloads=tuple(x for x in (wk, tk) if x),
                evidence=_evidence(evs),
            )
        elif wk or tk:
            yield finding(
                spec,
                Status.WARN,
                f"{len(evs)} denial(s) for an unplaced workload: {what} on {obj}",
                host=host,
                workloads=tuple(x for x in (wk, tk) if x),
                evidence=_evidence(evs),
                severity=Severity.MEDIUM,
            )
        else:
            yield finding(
                spec,
                Status.WARN,
                f"{len(evs)} denial(s) not linked to a workload: {what} on {obj}",
                host=host,
                evidence=_evidence(evs),
                severity=Severity.LOW,
            )


@check(
    "LOG-02",
    "logs",
    "qemu/KVM errors and guest crashes",
    why="Emulation failures, KVM internal errors and crashed guests are how hypervisor bugs "
    "and escape attempts show up first; a crash loop also denies service to the tenant.",
    severity=Severity.HIGH,
    fix="Read /var/log/libvirt/qemu/NAME.log around the time shown; check the host kernel, "
    "qemu and firmware versions against security advisories; keep a crashed domain's core.",
    reads=("workloads", "topology", "logs"),
)
def log02_qemu_errors(state: State, spec: CheckSpec) -> Iterator[Finding]:
    tags = (classify.QEMU_ERROR, classify.GUEST_CRASH, classify.DISK_LOCK)
    groups, tenants = _group(state, _signals(state, tags))
    shared = _shared_disks(state)
    for (host, wk, _), evs in groups.items():
        t = tenants[(host, wk, "")][0]
        kinds = sorted({tag for e in evs for tag in e.tags if tag in tags})
        summary = f"{len(evs)} {' and '.join(kinds)} line(s)" + (
            f" for {_name(wk)}" if wk else " not linked to a workload"
        )
        # a lock failure on a disk attached to two tenants' domains: VM-09's sharing is live
        live = sorted(
            {(d, shared[(host, d)]) for e in evs for d in [_norm(e.field("disk"))] if (host, d) in shared}
        )
        link = [
            Evidence(
                "VM-09",
                f"{d} is attached to domains of {', '.join(ts)}: qemu could not lock it, "
                "so another domain has it open now (the sharing is live)",
            )
            for d, ts in live
        ]
        yield finding(
            spec,
            Status.FAIL if wk else Status.WARN,
            summary + (f"; {live[0][0]} is shared with another tenant (VM-09)" if live else ""),
            host=host,
            tenants=(t,) if t else (),
            workloads=(wk,) if wk else (),
            evidence=(*link, *_evidence(evs)),
            severity=None if wk else Severity.MEDIUM,
            related=("VM-09",) if live else (),
        )


def _norm(path: str) -> str:
    import os

    return os.path.normpath(path) if path.startswith("/") else path


def _shared_disks(state: State) -> dict[tuple[str, str], tuple[str, ...]]:
    """(host, disk source) -> tenants, for disks attached to domains of two or more tenants."""
    out: dict[tuple[str, str], tuple[str, ...]] = {}
    for hs in state.hosts:
        by_disk: dict[str, set[str]] = {}
        for w in hs.workloads:
            if w.vm is None:
                continue
            for d in w.vm.disks:
                if d.source:
                    by_disk.setdefault(_norm(d.source), set()).add(w.tenant or f"unplaced:{w.name}")
        for src, ts in by_disk.items():
            if len(ts) > 1:
                out[(hs.host.name, src)] = tuple(sorted(ts))
    return out


@check(
    "LOG-03",
    "logs",
    "OOM kills of tenant workloads",
    why="The kernel killed a tenant's process for memory: a neighbour without a memory limit "
    "or an overcommitted host takes down other tenants.",
    severity=Severity.HIGH,
    fix="Give every domain a memory limit (virsh memtune NAME --hard-limit ...) and every "
    "container a memory.max; check host overcommit (RES checks).",
    reads=("workloads", "topology", "logs"),
)
def log03_oom_kills(state: State, spec: CheckSpec) -> Iterator[Finding]:
    groups, tenants = _group(state, _signals(state, [classify.OOM_KILL]))
    for (host, wk, _), evs in groups.items():
        t = tenants[(host, wk, "")][0]
        victim = evs[-1].field("comm") or "a process"
        if wk:
            yield finding(
                spec,
                Status.FAIL,
                f"{len(evs)} OOM kill(s) of {victim} in {_name(wk)}",
                host=host,
                tenants=(t,) if t else (),
                workloads=(wk,),
                evidence=_evidence(evs),
            )
        else:
            yield finding(
                spec,
                Status.WARN,
                f"{len(evs)} OOM kill(s) of {victim}, not linked to a workload",
                host=host,
                evidence=_evidence(evs),
                severity=Severity.MEDIUM,
            )


@check(
    "LOG-04",
    "logs",
    "Insufficient logging",
    why="Without a persistent journal, an audit log and readable log sources, the evidence of "
    "an isolation failure is gone after a reboot or was never written.",
    severity=Severity.MEDIUM,
    fix="mkdir -p /var/log/journal && systemctl restart systemd-journald (or Storage=persistent "
    "in journald.conf); apt install auditd; run tenantscope as root or in group adm.",
    reads=("logs", "source"),
)
def log04_insufficient_logging(state: State, spec: CheckSpec) -> Iterator[Finding]:
    hosts = [hs for hs in state.hosts if hs.logs is not None]
    if not hosts:
        raise Skip(_no_logs(state))
    if state.source == "demo":  # its lines are simulated (probes/demo/logs.py): no set-up to judge
        raise Skip(DEMO_NO_FILES)
    for hs in hosts:
        host = hs.host.name
        v = hs.logs
        assert v is not None
        s = v.setup
        if s is not None:
            if s.journald and s.journal_persistent is False:
                yield finding(
                    spec,
                    Status.WARN,
                    "the journal is not persistent (lost at reboot)",
                    host=host,
                    evidence=(
                        Evidence(
                            "/var/log/journal",
                            "missing" if not s.journald_storage else f"Storage={s.journald_storage}",
                        ),
                    ),
                )
            if not s.audit_log and not s.auditd:
                yield finding(
                    spec,
                    Status.WARN,
                    "no audit log (no auditd, no /var/log/audit/audit.log)",
                    host=host,
                    evidence=(Evidence("/var/log/audit/audit.log", "missing"),),
                )
        bad = [src for src in v.sources if src.state == SourceState.UNREADABLE]
        for src in bad:
            yield finding(
                spec,
                Status.WARN,
                f"log source unreadable: {src.name}",
                host=host,
                evidence=(Evidence(src.name, src.detail),),
            )
        following = [src for src in v.sources if src.state in (SourceState.FOLLOWING, SourceState.DONE)]
        if v.sources and not following:
            yield finding(
                spec,
                Status.FAIL,
                "no log source can be read",
                host=host,
                evidence=tuple(
                    Evidence(src.name, f"{src.state}: {src.detail}") for src in v.sources[:MAX_EVIDENCE]
                ),
                severity=Severity.HIGH,
            )
