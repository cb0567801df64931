"""Where the app's State comes from: the live session, a fixed State, or a replay.

The app needs `state`, `subscribe`, `start`, `stop`, and the request path: `request` (a typed
request from probes/requests.py, answered in State.requests) and `cancel`. The live
`probes.session.Session` runs requests on its engine. `StaticSource` serves a State built
elsewhere (a test, a loaded snapshot) through the same interface: it runs an audit (the
checks need only the State) and answers what needs a live host as unavailable. The Logs pane
reads a host's whole log ring with `log_entries` (None: only the State's newest entries).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from probes.heap import HeapKeeper
from probes.logs.model import LogSlice
from probes.model import State
from probes.requests import Request, RequestHandle
from probes.session import FixedRequests


class StateSource(Protocol):
    @property
    def state(self) -> State: ...

    def subscribe(self, fn: Callable[[State], Any]) -> None: ...

    @property
    def heap(self) -> HeapKeeper:
        """The keeper of gc's freezing the app asks (probes/heap.py): a session's engine's,
        or the source's own."""
        ...

    def start(self) -> None: ...

    async def stop(self) -> None: ...

    def request(self, req: Request) -> RequestHandle: ...

    def cancel(self, rid: int) -> bool: ...

    def log_entries(self, host: str, after: int | None) -> LogSlice | None: ...


class RingLike(Protocol):
    """A host's log ring as a source hands it out (probes/logs/ring.py Ring)."""

    def slice(self, after: int | None) -> LogSlice: ...


class StaticSource:
    """A State that changes only when `push` is called (tests, snapshots)."""

    def __init__(
        self, state: State, *, what: str = "a saved State", rings: dict[str, RingLike] | None = None
    ) -> None:
        self.state = state
        self.rings = rings or {}  # tests: rings that stand for a session's
        self._subscribers: list[Callable[[State], Any]] = []
        self.started = False
        self.stopped = False
        self._requests = FixedRequests(lambda: self.state, self._publish, what)
        self.heap = HeapKeeper()

    def subscribe(self, fn: Callable[[State], Any]) -> None:
        self._subscribers.append(fn)

    def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True
        await self._requests.stop()

    def push(self, state: State) -> None:
        self._publish(self._requests.with_requests(state))

    def _publish(self, state: State) -> None:
        self.state = state
        for fn in list(self._subscribers):
            fn(state)

    def request(self, req: Request) -> RequestHandle:
        return self._requests.request(req)

    def cancel(self, rid: int) -> bool:
        return self._requests.cancel(rid)

    def log_entries(self, host: str, after: int | None) -> LogSlice | None:
        ring = self.rings.get(host)
        return ring.slice(after) if ring is not None else None
