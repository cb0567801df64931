"""What the UI may ask of a session beyond rendering: typed requests and their status.

A pane or a command never runs a probe itself: it hands one of these to its session
(`Session.request`, probes/session.py). The engine runs it with its deadlines, error
isolation and the session's read-only policy; what it observed lands in the State (reach,
facts, ...), and its progress and outcome in `State.requests` (one RequestStatus per request).
A source that cannot run a request (a static State, a replay) answers it at once with
UNAVAILABLE and a sentence saying why, never with silence.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from probes.model import RequestState, RequestStatus


@dataclass(frozen=True)
class ActiveProbe:
    """Send reachability probes from inside each tenant's namespace (changes nothing, but
    sends traffic: refused in read-only sessions). None: from the config's `[network]` table.
    `sources` may add VM sources: "segment" (a temporary probe port on each VM's segment,
    removed after the run: probes/network/probeport.py) and "guest" (commands through each
    VM's guest agent: probes/network/guestprobe.py); the UI confirms them first."""

    hosts: tuple[str, ...] = ()  # empty: every host with a topology
    ports: tuple[int, ...] | None = None
    timeout: float | None = None
    sources: tuple[str, ...] = ("namespace",)


@dataclass(frozen=True)
class UpdatesLookup:
    """Ask each host's package manager for pending security updates (SW-02; slow; refused in
    read-only sessions)."""

    hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Audit:
    """Run the check catalog (or these ids) one check at a time, with progress."""

    checks: tuple[str, ...] = ()


@dataclass(frozen=True)
class FactsRefresh:
    """Run the facts probe once more now; `stale_only`: only on hosts where it learned of
    things it has not looked at yet (disk images found by the first pass, for VM-10)."""

    hosts: tuple[str, ...] = ()
    stale_only: bool = False


@dataclass(frozen=True)
class PollSchedule:
    """Poll the named probe every `seconds` from now on, or pause/resume it (None: unchanged);
    it runs once at once."""

    probe: str
    seconds: float | None = None
    paused: bool | None = None


Request = ActiveProbe | UpdatesLookup | Audit | FactsRefresh | PollSchedule

KIND: dict[type, str] = {
    ActiveProbe: "active-probe",
    UpdatesLookup: "updates",
    Audit: "audit",
    FactsRefresh: "facts-refresh",
    PollSchedule: "poll-schedule",
}
CHANGING = (ActiveProbe, UpdatesLookup)  # what a read-only session refuses


def kind_of(req: Request) -> str:
    return KIND[type(req)]


class RequestHandle:
    """What `request()` returns: the request's id, and its final status to await."""

    def __init__(self, status: RequestStatus, task: asyncio.Future[RequestStatus] | None = None) -> None:
        self.id = status.id
        self.kind = status.kind
        self.first = status  # its status when it was accepted
        self._task = task

    async def result(self) -> RequestStatus:
        if self._task is None:
            return self.first
        return await asyncio.shield(self._task)


def answered(req: Request, rid: int, state: RequestState, message: str, now: float) -> RequestHandle:
    """A handle for a request answered at once (refused, unavailable)."""
    return RequestHandle(
        RequestStatus(rid, kind_of(req), state, message=message, started_at=now, finished_at=now)
    )


__all__ = [
    "CHANGING",
    "KIND",
    "ActiveProbe",
    "Audit",
    "FactsRefresh",
    "PollSchedule",
    "Request",
    "RequestHandle",
    "RequestState",
    "RequestStatus",
    "UpdatesLookup",
    "answered",
    "kind_of",
]
