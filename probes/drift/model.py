"""What changed since a baseline, as data: derived into State.drift, like findings.

Must not import probes.model (it imports this module).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Mark(StrEnum):
    """A finding of the later State against the baseline."""

    NEW = "new"
    UNCHANGED = "unchanged"
    CLEARED = "cleared"  # in the baseline, gone now


class Area(StrEnum):
    FINDINGS = "findings"
    WORKLOADS = "workloads"
    TOPOLOGY = "topology"
    LIMITS = "limits"
    LOGS = "logs"


@dataclass(frozen=True)
class Change:
    """One difference, with what to open to see it (`finding`, `workload` or `link`)."""

    area: Area
    kind: str  # finding-new, finding-cleared, workload-added, port-joined, vlan-changed, ...
    host: str
    summary: str  # one line, untrusted names inside: shown through probes.untrusted
    before: str = ""
    after: str = ""
    at: float = 0.0  # when it was seen: the later State's time (a log line's own time)
    finding: str = ""  # Finding.key of the later State (or of the baseline when cleared)
    workload: str = ""  # Workload.key
    link: str = ""  # netns/name of a link or an OVS port as bridge/port


@dataclass(frozen=True)
class Drift:
    baseline_at: float
    now_at: float
    changes: tuple[Change, ...] = ()
    marks: tuple[tuple[str, Mark], ...] = ()  # Finding.key of the later State -> new/unchanged
    cleared: tuple[str, ...] = ()  # Finding.key of baseline findings that are gone
    baseline: str = ""  # where the baseline came from: a file, or a recording@HH:MM:SS

    def new_findings(self) -> tuple[str, ...]:
        return tuple(k for k, m in self.marks if m is Mark.NEW)

    def newest_first(self) -> tuple[Change, ...]:
        return tuple(sorted(self.changes, key=lambda c: -c.at))
