"""Where the app's State comes from: the live Engine, or a fixed State.

The app needs only `state`, `subscribe`, `start` and `stop`, which `probes.engine.Engine`
provides. `StaticSource` serves a State built elsewhere (a test, a loaded snapshot, a replay
step) through the same interface, so the TUI has one code path whatever feeds it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from probes.model import State


class StateSource(Protocol):
    state: State

    def subscribe(self, fn: Callable[[State], Any]) -> None: ...

    def start(self) -> None: ...

    async def stop(self) -> None: ...


class StaticSource:
    """A State that changes only when `push` is called (tests, snapshots, replay)."""

    def __init__(self, state: State) -> None:
        self.state = state
        self._subscribers: list[Callable[[State], Any]] = []
        self.started = False
        self.stopped = False

    def subscribe(self, fn: Callable[[State], Any]) -> None:
        self._subscribers.append(fn)

    def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def push(self, state: State) -> None:
        self.state = state
        for fn in list(self._subscribers):
            fn(state)
