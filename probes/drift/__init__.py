"""What changed between two observed States: the first question of an isolation incident.

A baseline is any saved State (`tenantscope snapshot -o good.json`, or one instant of a
recording). `diff(before, after)` is a pure function of the two, so `check --baseline`, `diff`,
the console's Changes view and replay's "changes since T" are one code path.

Identity rules (what counts as "the same" across the two States):
- a finding is the same when its check, host, workloads and tenants are (its summary may carry
  numbers that move, e.g. a CPU figure); only findings that need attention count (fail, warn,
  error): a check that went from pass to fail is a new finding;
- a workload is the same when its kind and uuid are (name when it has no uuid): the same VM
  seen on another host moved, it was not removed and added;
- topology and limits are compared per host, by link, OVS port, namespace and workload.
"""

from __future__ import annotations

from collections.abc import Iterator

from probes.drift.model import Area, Change, Drift, Mark
from probes.model import Finding, State, Status, Workload
from probes.network.model import Topology

ATTENTION = (Status.FAIL, Status.WARN, Status.ERROR)
__all__ = ["ATTENTION", "Area", "Change", "Drift", "Mark", "counts", "diff", "finding_identity"]


def finding_identity(f: Finding) -> tuple[str, str, tuple[str, ...], tuple[str, ...]]:
    return (f.check_id, f.host, tuple(sorted(f.workloads)), tuple(sorted(f.tenants)))


def _attention(state: State) -> list[Finding]:
    return [f for f in state.findings if f.status in ATTENTION]


def _findings(
    before: State, after: State, at: float
) -> tuple[list[Change], list[tuple[str, Mark]], list[Finding]]:
    old = {finding_identity(f): f for f in _attention(before)}
    changes: list[Change] = []
    marks: list[tuple[str, Mark]] = []
    seen: set[tuple[str, str, tuple[str, ...], tuple[str, ...]]] = set()
    for f in _attention(after):
        ident = finding_identity(f)
        seen.add(ident)
        if ident in old:
            marks.append((f.key, Mark.UNCHANGED))
            continue
        marks.append((f.key, Mark.NEW))
        changes.append(
            Change(
                Area.FINDINGS,
                "finding-new",
                f.host,
                f"{f.check_id} {f.status}: {f.summary or f.title}",
                after=str(f.status),
                at=at,
                finding=f.key,
            )
        )
    cleared = [f for ident, f in old.items() if ident not in seen]
    changes += [
        Change(
            Area.FINDINGS,
            "finding-cleared",
            f.host,
            f"{f.check_id} cleared: {f.summary or f.title}",
            before=str(f.status),
            at=at,
            finding=f.key,
        )
        for f in cleared
    ]
    return changes, marks, cleared


def _workload_identity(w: Workload) -> tuple[str, str]:
    return (str(w.kind), w.uuid or w.name)


def _workloads(before: State, after: State, at: float) -> list[Change]:
    old = {_workload_identity(w): w for w in before.workloads()}
    new = {_workload_identity(w): w for w in after.workloads()}
    out: list[Change] = []
    for ident, w in new.items():
        was = old.get(ident)
        if was is None:
            out.append(
                Change(
                    Area.WORKLOADS,
                    "workload-added",
                    w.host,
                    f"{w.kind} {w.name} added (tenant {w.tenant or 'unplaced'})",
                    after=w.tenant,
                    at=at,
                    workload=w.key,
                )
            )
            continue
        if was.host != w.host:
            out.append(
                Change(
                    Area.WORKLOADS,
                    "workload-moved-host",
                    w.host,
                    f"{w.kind} {w.name} moved from host {was.host} to {w.host}",
                    before=was.host,
                    after=w.host,
                    at=at,
                    workload=w.key,
                )
            )
        if was.tenant != w.tenant:
            out.append(
                Change(
                    Area.WORKLOADS,
                    "workload-moved-tenant",
                    w.host,
                    f"{w.kind} {w.name} moved from tenant {was.tenant or 'unplaced'} "
                    f"to {w.tenant or 'unplaced'}",
                    before=was.tenant,
                    after=w.tenant,
                    at=at,
                    workload=w.key,
                )
            )
        out += _workload_config(was, w, at)
    for ident, w in old.items():
        if ident not in new:
            out.append(
                Change(
                    Area.WORKLOADS,
                    "workload-removed",
                    w.host,
                    f"{w.kind} {w.name} removed (was tenant {w.tenant or 'unplaced'})",
                    before=w.tenant,
                    at=at,
                    workload=w.key,
                )
            )
    return out


def _nic_key(mac: str, target: str, i: int) -> str:
    return mac or target or f"nic{i}"


def _workload_config(was: Workload, w: Workload, at: float) -> list[Change]:
    """A VM's NICs (bridge, VLAN, nwfilter) and its declared limits."""
    out: list[Change] = []
    if was.vm is None or w.vm is None:
        return out
    old_nics = {_nic_key(n.mac, n.target_dev, i): n for i, n in enumerate(was.vm.nics)}
    for i, n in enumerate(w.vm.nics):
        o = old_nics.get(_nic_key(n.mac, n.target_dev, i))
        if o is None:
            continue
        where = f"{w.name} NIC {n.mac or n.target_dev or i}"
        if (o.source, o.bridge) != (n.source, n.bridge):
            out.append(
                Change(
                    Area.TOPOLOGY,
                    "nic-segment-changed",
                    w.host,
                    f"{where} moved from {o.bridge or o.source} to {n.bridge or n.source}",
                    before=o.bridge or o.source,
                    after=n.bridge or n.source,
                    at=at,
                    workload=w.key,
                )
            )
        if (o.vlan_tags, o.vlan_trunk) != (n.vlan_tags, n.vlan_trunk):
            out.append(
                Change(
                    Area.TOPOLOGY,
                    "vlan-changed",
                    w.host,
                    f"{where} VLAN {_vlans(o.vlan_tags, o.vlan_trunk)} -> {_vlans(n.vlan_tags, n.vlan_trunk)}",
                    before=_vlans(o.vlan_tags, o.vlan_trunk),
                    after=_vlans(n.vlan_tags, n.vlan_trunk),
                    at=at,
                    workload=w.key,
                )
            )
        if o.filterref != n.filterref:
            kind = "nwfilter-removed" if not n.filterref else "nwfilter-changed"
            out.append(
                Change(
                    Area.TOPOLOGY,
                    kind,
                    w.host,
                    f"{where} nwfilter {o.filterref or 'none'} -> {n.filterref or 'none'}",
                    before=o.filterref,
                    after=n.filterref,
                    at=at,
                    workload=w.key,
                )
            )
    for label, a, b in (
        ("memory hard limit (KiB)", was.vm.memtune.hard_limit_kib, w.vm.memtune.hard_limit_kib),
        ("cpu quota", was.vm.cputune.quota, w.vm.cputune.quota),
        ("cpu shares", was.vm.cputune.shares, w.vm.cputune.shares),
        ("vcpu pinning", was.vm.cputune.vcpupin, w.vm.cputune.vcpupin),
    ):
        if a != b:
            out.append(
                Change(
                    Area.LIMITS,
                    "limit-changed",
                    w.host,
                    f"{w.name} {label} {_v(a)} -> {_v(b)}",
                    before=_v(a),
                    after=_v(b),
                    at=at,
                    workload=w.key,
                )
            )
    return out


def _v(value: object) -> str:
    return "none" if value in (None, (), "") else str(value)


def _vlans(tags: tuple[int, ...], trunk: bool) -> str:
    if not tags:
        return "untagged"
    return ("trunk " if trunk else "") + ",".join(map(str, tags))


def _topologies(state: State) -> dict[str, Topology]:
    return {h.host.name: h.topology for h in state.hosts if h.topology is not None}


def _topology(before: State, after: State, at: float) -> list[Change]:
    out: list[Change] = []
    old_by_host = _topologies(before)
    for host, topo in _topologies(after).items():
        old = old_by_host.get(host)
        if old is None:
            continue
        out += _bridge_ports(host, old, topo, at)
        out += _ovs_ports(host, old, topo, at)
        out += _forwarding(host, old, topo, at)
    return out


def _bridge_ports(host: str, old: Topology, new: Topology, at: float) -> Iterator[Change]:
    was = {lk.where: lk.master for lk in old.links}
    now = {lk.where: lk.master for lk in new.links}
    for where in sorted(set(was) | set(now)):
        a, b = was.get(where, ""), now.get(where, "")
        if a == b:
            continue
        if b:
            summary = f"{where} joined bridge {b}" + (f" (left {a})" if a else "")
            kind = "port-joined"
        else:
            summary = f"{where} left bridge {a}" + ("" if where in now else " (link gone)")
            kind = "port-left"
        yield Change(Area.TOPOLOGY, kind, host, summary, before=a, after=b, at=at, link=where)


def _ovs_ports(host: str, old: Topology, new: Topology, at: float) -> Iterator[Change]:
    def ports(t: Topology) -> dict[str, tuple[int | None, tuple[int, ...], str]]:
        return {f"{p.bridge}/{p.name}": (p.tag, p.trunks, p.vlan_mode) for b in t.ovs for p in b.ports}

    was, now = ports(old), ports(new)
    for key in sorted(set(was) | set(now)):
        a, b = was.get(key), now.get(key)
        if a == b:
            continue
        if a is None or b is None:
            kind = "ovs-port-added" if a is None else "ovs-port-removed"
            yield Change(
                Area.TOPOLOGY,
                kind,
                host,
                f"OVS port {key} {'added' if a is None else 'removed'}",
                at=at,
                link=key,
            )
            continue
        if a[0] != b[0]:
            yield Change(
                Area.TOPOLOGY,
                "vlan-changed",
                host,
                f"OVS port {key} tag {_v(a[0])} -> {_v(b[0])}",
                before=_v(a[0]),
                after=_v(b[0]),
                at=at,
                link=key,
            )
        if a[1:] != b[1:]:
            yield Change(
                Area.TOPOLOGY,
                "trunk-changed",
                host,
                f"OVS port {key} trunks {_v(a[1])} ({a[2] or 'default'}) -> {_v(b[1])} ({b[2] or 'default'})",
                before=_v(a[1]),
                after=_v(b[1]),
                at=at,
                link=key,
            )


def _forwarding(host: str, old: Topology, new: Topology, at: float) -> Iterator[Change]:
    was = {ns.name: ns.ip_forward for ns in old.namespaces}
    was.setdefault("", old.ip_forward)
    now = {ns.name: ns.ip_forward for ns in new.namespaces}
    now.setdefault("", new.ip_forward)
    for name in sorted(set(was) & set(now)):
        if was[name] != now[name]:
            on = now[name]
            where = name or "host"
            yield Change(
                Area.TOPOLOGY,
                "forwarding-on" if on else "forwarding-off",
                host,
                f"IPv4 forwarding turned {'on' if on else 'off'} in {where}",
                before=str(was[name]).lower(),
                after=str(on).lower(),
                at=at,
                link=f"{where}/",
            )


def _limits(before: State, after: State, at: float) -> list[Change]:
    """Live limits read from cgroups or libvirt (containers and VMs alike)."""

    def live(state: State) -> dict[str, tuple[float | None, int | None, int | None]]:
        out = {}
        for h in state.hosts:
            for s in h.samples.samples if h.samples else ():
                if s.live is not None:
                    out[s.workload] = (s.live.cpu_quota_cores, s.live.mem_limit_bytes, s.live.pids_limit)
        return out

    was, now = live(before), live(after)
    out: list[Change] = []
    host_of = {w.key: w.host for w in after.workloads()}
    for key in sorted(set(was) & set(now)):
        for label, a, b in zip(
            ("cpu quota (cores)", "memory limit (bytes)", "pids limit"), was[key], now[key]
        ):
            if a != b:
                name = key.rsplit("/", 1)[-1]
                out.append(
                    Change(
                        Area.LIMITS,
                        "limit-changed",
                        host_of.get(key, ""),
                        f"{name} {label} {_v(a)} -> {_v(b)}",
                        before=_v(a),
                        after=_v(b),
                        at=at,
                        workload=key,
                    )
                )
    return out


def _logs(before: State, after: State) -> list[Change]:
    """Isolation signals logged after the baseline was taken."""
    since = before.taken_at
    out: list[Change] = []
    for h in after.hosts:
        for e in h.logs.signals if h.logs else ():
            if e.at > since:
                tags = ",".join(e.tags)
                out.append(
                    Change(
                        Area.LOGS,
                        "log-signal",
                        h.host.name,
                        f"{tags}: {e.message}",
                        after=tags,
                        at=e.at,
                        workload=e.workload,
                    )
                )
    return out


def diff(before: State, after: State, baseline: str = "") -> Drift:
    """`after` against `before`; `baseline` names where `before` came from (a file, an instant)."""
    at = after.taken_at
    finding_changes, marks, cleared = _findings(before, after, at)
    changes = finding_changes + _workloads(before, after, at) + _topology(before, after, at)
    changes += _limits(before, after, at) + _logs(before, after)
    return Drift(
        before.taken_at, after.taken_at, tuple(changes), tuple(marks), tuple(f.key for f in cleared), baseline
    )


def counts(drift: Drift) -> dict[str, int]:
    """How many changes of each area (for a summary line)."""
    out: dict[str, int] = {}
    for c in drift.changes:
        out[str(c.area)] = out.get(str(c.area), 0) + 1
    return out
