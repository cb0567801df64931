"""Open sockets inside a network namespace without forking.

`setns(2)` changes the namespace of the calling thread only, and a socket stays in the
namespace it was created in. So a short-lived thread enters the namespace, creates what it was
asked to create, returns to where it was, and ends: the event loop then uses the sockets. The
namespace is opened by path and never created (a missing path is FileNotFoundError).
A fresh thread per call means a failure to switch back can never leak into a pooled worker.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def netns_path(name_or_path: str) -> str:
    return name_or_path if name_or_path.startswith("/") else f"/run/netns/{name_or_path}"


def in_netns(path: str, fn: Callable[[], T], inode: int = 0) -> T:
    """Blocking: run `fn` with this thread in the network namespace at `path` (and, when
    `inode` is given, only if that is still the namespace: a /proc/PID path can be reused)."""
    target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if inode and os.fstat(target).st_ino != inode:
            raise FileNotFoundError(f"{path} is no longer network namespace {inode}")
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns {path}: {os.strerror(err)}")
            try:
                return fn()
            finally:
                if _libc.setns(home, CLONE_NEWNET) != 0:  # the thread ends anyway
                    raise RuntimeError("could not return to the original network namespace")
        finally:
            os.close(home)
    finally:
        os.close(target)


async def run_in_netns(path: str, fn: Callable[[], T], inode: int = 0) -> T:
    return await in_fresh_thread(lambda: in_netns(path, fn, inode))


async def in_fresh_thread(fn: Callable[[], T]) -> T:
    """Run blocking `fn` (which may enter namespaces) in a new thread that then ends; what
    it returns after the caller was cancelled is closed (sockets)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def done(ok: bool, value: object) -> None:
        if fut.cancelled():
            if ok:  # nobody will use what was made: close sockets
                _close_all(value)
            return
        fut.set_result(value) if ok else fut.set_exception(value)  # type: ignore[arg-type]

    def target() -> None:
        value: object
        try:
            value = fn()
            ok = True
        except BaseException as e:
            ok, value = False, e
        try:
            loop.call_soon_threadsafe(done, ok, value)
        except RuntimeError:  # the loop closed meanwhile (shutdown): nobody waits for it
            if ok:
                _close_all(value)

    threading.Thread(target=target, name="tsf-netns", daemon=True).start()
    return await fut


def _close_all(value: object) -> None:
    items = value if isinstance(value, (list, tuple)) else [value]
    for v in items:
        close = getattr(v, "close", None)
        if close:
            try:
                close()
            except OSError:
                pass
