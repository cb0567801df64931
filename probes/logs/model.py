"""Log entries, log sources and the logging set-up of a host. Owned by the logs area.

Must not import probes.model (it imports this module). Everything here round-trips through
probes/snapshot.py: the newest entries and the isolation signals travel in the State; the
full ring (default 100,000 entries) stays in probes/logs/ring.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, cast

# syslog severities, most severe first (journal PRIORITY is the index)
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One entry, whatever its source. `message` is raw host text: shown only via visible()."""

    at: float
    host: str
    source: str  # journal, file:/var/log/..., libvirt-events, tenantscope
    severity: str  # emerg..debug as syslog names
    message: str  # raw: made safe only where shown
    tenant: str = ""
    workload: str = ""  # workload key
    tags: tuple[str, ...] = ()  # isolation signals: mac-denial, qemu-error, oom-kill, ...
    seq: int = 0  # per host, 1, 2, ... in arrival order (the id findings point at)
    kind: str = ""  # parser: journal, syslog, audit, kernel, qemu, libvirtd, lifecycle, tenantscope
    program: str = ""  # syslog identifier, unit or comm
    pid: int = 0
    fields: tuple[tuple[str, str], ...] = ()  # parsed key fields (scontext, profile, ...)
    attributed_by: str = ""  # file, uuid, profile, mcs, name, cgroup, tap, mac, ip, pid
    target_tenant: str = ""  # for MAC denials: the owner of the object that was touched
    target_workload: str = ""

    def field(self, name: str) -> str:
        for k, v in self.fields:
            if k == name:
                return v
        return ""


class _Building:
    """LogEvent's layout (the same slots, in order) without its frozen __setattr__: an entry is
    built as this with plain slot stores, then becomes a LogEvent (`__class__` assignment
    between layout-identical classes). Half the cost of setting 16 slots through their
    descriptors, a quarter of the frozen dataclass's __init__ (16 object.__setattr__ calls)."""

    __slots__ = LogEvent.__slots__

    def __init__(
        self,
        at: float,
        host: str,
        source: str,
        severity: str,
        message: str,
        tenant: str,
        workload: str,
        tags: tuple[str, ...],
        seq: int,
        kind: str,
        program: str,
        pid: int,
        fields: tuple[tuple[str, str], ...],
        attributed_by: str,
        target_tenant: str,
        target_workload: str,
    ) -> None:
        self.at = at
        self.host = host
        self.source = source
        self.severity = severity
        self.message = message
        self.tenant = tenant
        self.workload = workload
        self.tags = tags
        self.seq = seq
        self.kind = kind
        self.program = program
        self.pid = pid
        self.fields = fields
        self.attributed_by = attributed_by
        self.target_tenant = target_tenant
        self.target_workload = target_workload


def new_event(
    at: float,
    host: str,
    source: str,
    severity: str,
    message: str,
    tenant: str,
    workload: str,
    tags: tuple[str, ...],
    seq: int,
    kind: str,
    program: str,
    pid: int,
    fields: tuple[tuple[str, str], ...],
    attributed_by: str,
    target_tenant: str,
    target_workload: str,
) -> LogEvent:
    """LogEvent(every field, in order), 4x cheaper (see _Building). For the paths that build an
    entry per signal line (parsers, attribution); the result is an ordinary LogEvent."""
    e: Any = _Building(
        at,
        host,
        source,
        severity,
        message,
        tenant,
        workload,
        tags,
        seq,
        kind,
        program,
        pid,
        fields,
        attributed_by,
        target_tenant,
        target_workload,
    )
    e.__class__ = LogEvent
    return cast(LogEvent, e)


# the fields attribution sets (set_attribution's arguments, in order)
ATTRIBUTION = ("tenant", "workload", "attributed_by", "target_tenant", "target_workload")
_set_tenant, _set_workload, _set_attributed_by, _set_target_tenant, _set_target_workload = (
    LogEvent.__dict__[name].__set__ for name in ATTRIBUTION
)


def set_attribution(
    e: LogEvent, tenant: str, workload: str, attributed_by: str, target_tenant: str, target_workload: str
) -> LogEvent:
    """Attribution written into an entry nobody else holds yet (fresh from a parser at
    ingest: probes/logs/lazy.py), instead of a copy of its 16 fields."""
    _set_tenant(e, tenant)
    _set_workload(e, workload)
    _set_attributed_by(e, attributed_by)
    _set_target_tenant(e, target_tenant)
    _set_target_workload(e, target_workload)
    return e


class LogEntry(Protocol):
    """What readers of a ring see: a LogEvent, or a lazy line (probes/logs/lazy.py) that
    parses and attributes itself when one of these is read."""

    @property
    def at(self) -> float: ...
    @property
    def host(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def tenant(self) -> str: ...
    @property
    def workload(self) -> str: ...
    @property
    def tags(self) -> tuple[str, ...]: ...
    @property
    def seq(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def program(self) -> str: ...
    @property
    def pid(self) -> int: ...
    @property
    def fields(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def attributed_by(self) -> str: ...
    @property
    def target_tenant(self) -> str: ...
    @property
    def target_workload(self) -> str: ...
    def field(self, name: str) -> str: ...


def evidence_ref(e: LogEvent) -> str:
    """The `Evidence.where` of a finding that points at this entry (see parse_ref)."""
    return f"log:{e.host}#{e.seq}"


def parse_ref(where: str) -> tuple[str, int] | None:
    """(host, seq) from an evidence_ref string, None for any other evidence."""
    if not where.startswith("log:") or "#" not in where:
        return None
    host, _, seq = where[4:].rpartition("#")
    return (host, int(seq)) if seq.isdigit() else None


class SourceState(StrEnum):
    STARTING = "starting"
    FOLLOWING = "following"
    WAITING = "waiting"  # the file does not exist yet
    UNREADABLE = "unreadable"  # permission denied
    ABSENT = "absent"  # the tool or service is not there
    FAILED = "failed"  # the stream ended with an error; retried
    STOPPED = "stopped"
    DONE = "done"  # a saved journal or file read to its end


@dataclass(frozen=True)
class LogSource:
    """One source and how it is doing (shown in the pane, read by LOG-04)."""

    name: str  # journal, file:/var/log/syslog, libvirt-events, tenantscope
    kind: str  # journal, file, libvirt-events, tenantscope
    state: SourceState = SourceState.STARTING
    detail: str = ""
    entries: int = 0
    since: float = 0.0


@dataclass(frozen=True)
class LoggingSetup:
    """What LOG-04 looks at: is the host keeping the logs an investigation needs?"""

    journald: bool | None = None  # a journal exists (socket or journal directories)
    journal_persistent: bool | None = None  # /var/log/journal exists and Storage= allows it
    journald_storage: str = ""  # Storage= from journald.conf ("" = default auto)
    audit_log: bool | None = None  # /var/log/audit/audit.log exists
    auditd: bool | None = None  # an auditd process runs
    checked_at: float = 0.0
    problems: tuple[str, ...] = ()  # e.g. "cannot read /var/log/audit: permission denied"


DEFAULT_CAPACITY = 100_000  # entries a host's ring keeps (probes/logs/ring.py)


@dataclass(frozen=True)
class LogSlice:
    """One host's ring after a cursor: what the Logs pane reads (the ring is the session's;
    the State carries only the newest entries)."""

    entries: tuple[LogEntry, ...]  # newer than the cursor, oldest first (lazy lines among them)
    total: int  # seq of the newest entry
    dropped: int
    generation: int  # bumped when kept entries were re-attributed: reload everything
    capacity: int


@dataclass(frozen=True)
class LogView:
    """The newest entries kept in State (the full ring lives in the logs area)."""

    events: tuple[LogEvent, ...] = ()
    dropped: int = 0  # entries pushed out of the ring
    total: int = 0  # entries ever received (== seq of the newest)
    signals: tuple[LogEvent, ...] = ()  # newest isolation signals (bounded), for the checks
    sources: tuple[LogSource, ...] = ()
    setup: LoggingSetup | None = None
