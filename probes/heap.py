"""The one owner of the cyclic garbage collector's freezing (gc.freeze / gc.unfreeze).

A live console holds a large heap of long-lived objects: the imported modules, its widgets,
the States (a fleet of 200 hosts: ~200 MiB of small objects). Every full collection walked it
again, 0.3-0.8 s with the loop stopped, every few seconds (most of the key presses' slow tail
and ~15% of a core at idle); at 1,000 domains the first inventory's allocations set off several
(0.1-0.7 s each) inside the first frame. Frozen objects are never walked again and are still
freed by reference counting. gc's freezing is process-wide: a console asks one keeper (its
session's engine's, or its own for a replay or a saved State) rather than calling gc itself.
"""

from __future__ import annotations

import asyncio
import gc
import time

# Every HEAP_FREEZE seconds the young generations are collected and what survives is frozen;
# every HEAP_UNFREEZE seconds the heap is unfrozen once, so cyclic garbage among frozen objects
# is collected by the next full collection (one long pause then, not every few seconds).
HEAP_FREEZE = 5.0
HEAP_UNFREEZE = 600.0


class HeapKeeper:
    """Freezes the heap when asked (what exists now lives on: a console's imports at compose,
    an engine's widgets at start, a first inventory before its derive) and, once started on a
    loop, what survives the young collections every HEAP_FREEZE s; unfreezes every
    HEAP_UNFREEZE s and when stopped or asked (an app or engine ending in a longer process:
    tests, benches)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._since = 0.0
        self._handle: asyncio.TimerHandle | None = None

    @property
    def running(self) -> bool:
        """Started (an engine that runs its probes), not yet stopped."""
        return self._handle is not None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._since = time.monotonic()
        self._handle = loop.call_later(HEAP_FREEZE, self._tick)

    def _tick(self) -> None:
        now = time.monotonic()
        if now - self._since >= HEAP_UNFREEZE:
            gc.unfreeze()  # the next full collection sees everything once
            self._since = now
        else:
            self.freeze()
        assert self._loop is not None
        self._handle = self._loop.call_later(HEAP_FREEZE, self._tick)

    def freeze(self, *, young: bool = True) -> None:
        """Freeze what exists; `young`: collect the young generations first (their cyclic
        garbage is not frozen with the rest)."""
        if young:
            gc.collect(1)
        gc.freeze()

    def stop(self) -> None:
        """The periodic freezing stops; the heap is unfrozen if it ran."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
            gc.unfreeze()

    def unfreeze(self) -> None:
        """Unfreeze now (an app ending in a longer process); a started keeper goes on."""
        gc.unfreeze()
