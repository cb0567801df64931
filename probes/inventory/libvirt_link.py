"""One host's libvirt connection and thread, shared by that host's probes.

The inventory, the domain statistics and the libvirt networks of a host each kept a
connection and a thread of their own: three connections per host (a test:// fleet is parsed
and held in memory once per connection; a remote one is three sessions) and three threads.
With a link, the inventory probe opens the one connection (with its events and its close
callback, and closes it); the other probes borrow it and run their calls on the same thread,
so a host's libvirt calls stay one at a time, and a libvirtd that stalls holds this host's
thread only. A borrower opens a connection of its own only while the inventory's is not up
(before its first run, or after a failure), and drops it once the shared one is back.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class LibvirtLink:
    def __init__(self, name: str = "") -> None:
        self.thread = ThreadPoolExecutor(1, thread_name_prefix=f"libvirt-{name}" if name else "libvirt")
        self._conn: Any = None
        self._uri = ""
        self._users = 0
        self._lock = threading.Lock()

    # -- the owner (the inventory probe), on the thread

    def set(self, conn: Any, uri: str) -> None:
        """The owner's connection is up (conn) or gone (None)."""
        with self._lock:
            self._conn, self._uri = conn, uri if conn is not None else ""

    def drop(self, conn: Any) -> None:
        """The owner closed `conn`: nobody may borrow it any more."""
        with self._lock:
            if self._conn is conn:
                self._conn, self._uri = None, ""

    # -- borrowers, on the thread

    def borrow(self, uri: str) -> Any:
        """The shared connection when it is up and opened for `uri`, else None."""
        with self._lock:
            return self._conn if self._conn is not None and self._uri == uri else None

    # -- every user

    def retain(self) -> LibvirtLink:
        with self._lock:
            self._users += 1
        return self

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.thread, fn, *args)

    def release(self) -> None:
        """A user is done; the thread ends with the last one."""
        with self._lock:
            self._users -= 1
            last = self._users <= 0
        if last:
            self.thread.shutdown(wait=False)
