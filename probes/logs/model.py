"""Log entries. Owned by the logs area. Must not import probes.model."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LogEvent:
    at: float
    host: str
    source: str  # journal, file:/var/log/..., libvirt-events, tenantscope
    severity: str  # emerg..debug as syslog names
    message: str  # raw: made safe only where shown
    tenant: str = ""
    workload: str = ""  # workload key
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class LogView:
    """The newest entries kept in State (the full ring lives in the logs area)."""

    events: tuple[LogEvent, ...] = ()
    dropped: int = 0
