"""One row per host for the fleet view: is it up, is it fresh, and how bad is each area.

A console with hundreds of hosts cannot list each host in the header; the fleet view sorts
hosts by what needs attention first. Pure functions of the State (and the clock), so the view,
tests and a headless summary agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from probes.model import STATUS_ORDER, Connection, ConnState, HostState, State, Status

AREAS = ("host", "vm", "container", "runtime", "network", "resources", "logs", "software", "xen")
DOWN = (ConnState.UNREACHABLE, ConnState.AUTH_FAILED, ConnState.HOST_KEY_REFUSED)


def host_connection(h: HostState) -> ConnState:
    """A host's state by its connection: SSH's for a remote host; a local host is up once seen."""
    return connection_state(h.connections, bool(h.refreshed_at))


def connection_state(connections: Sequence[Connection], observed: bool) -> ConnState:
    """host_connection from a host's connections and whether it was observed at all."""
    for c in connections:
        if c.what == "ssh":
            return c.state
    return ConnState.UP if connections or observed else ConnState.CONNECTING


@dataclass(frozen=True)
class HostRow:
    host: str
    connection: ConnState
    stale_s: float | None  # seconds since the last observation (None: never observed)
    worst: tuple[tuple[str, Status | None], ...]  # (area, worst status) for AREAS; None: no result
    fails: int
    warns: int
    probe_errors: int
    workloads: int

    @property
    def down(self) -> bool:
        return self.connection in DOWN

    def worst_of(self, area: str) -> Status | None:
        return next((s for a, s in self.worst if a == area), None)

    @property
    def urgency(self) -> tuple[int, int, int, int, str]:
        """Sort key, most urgent first: down, then failing, then erroring/warning hosts."""
        best = min((STATUS_ORDER[s] for _, s in self.worst if s is not None), default=9)
        return (0 if self.down else 1, best, -self.fails, -self.warns, self.host)


def rows(state: State, now: float) -> tuple[HostRow, ...]:
    by_host: dict[str, list[Status]] = {}
    worst: dict[tuple[str, str], Status] = {}
    for f in state.findings:
        by_host.setdefault(f.host, []).append(f.status)
        k = (f.host, f.area)
        if k not in worst or STATUS_ORDER[f.status] < STATUS_ORDER[worst[k]]:
            worst[k] = f.status
    out = []
    for h in state.hosts:
        name = h.host.name
        sts = by_host.get(name, [])
        out.append(
            HostRow(
                host=name,
                connection=host_connection(h),
                stale_s=max(0.0, now - h.refreshed_at) if h.refreshed_at else None,
                worst=tuple((a, worst.get((name, a))) for a in AREAS),
                fails=sts.count(Status.FAIL),
                warns=sts.count(Status.WARN),
                probe_errors=len(h.probe_errors),
                workloads=len(h.workloads),
            )
        )
    return tuple(out)


SORTS = ("urgency", "host", "fails", "stale")


def sorted_rows(rs: Sequence[HostRow], by: str) -> list[HostRow]:
    if by == "host":
        return sorted(rs, key=lambda r: r.host)
    if by == "fails":
        return sorted(rs, key=lambda r: (-r.fails, -r.warns, r.host))
    if by == "stale":
        return sorted(rs, key=lambda r: (-(r.stale_s if r.stale_s is not None else float("inf")), r.host))
    return sorted(rs, key=lambda r: r.urgency)
