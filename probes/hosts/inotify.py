"""inotify on the event loop: a non-blocking descriptor read by `loop.add_reader`.

Python has no inotify in its standard library, and pyroute2's (pyroute2.inotify) blocks in
poll() and cannot remove a watch; this is the few libc calls needed, used for /run/netns (a
namespace added or deleted) and for followed log files (written, rotated, truncated).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import struct
from collections.abc import Callable

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x1000000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000

_HEADER = struct.Struct("=iIII")  # wd, mask, cookie, len
_libc = ctypes.CDLL(None, use_errno=True)

# (watch descriptor, mask, name) of one event; wd -1 with IN_Q_OVERFLOW: events were lost
Handler = Callable[[int, int, str], None]


class Inotify:
    """One inotify descriptor; `handler(wd, mask, name)` is called on the loop per event."""

    def __init__(self, handler: Handler) -> None:
        fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self.fd = fd
        self._handler = handler
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(self.fd, self._readable)

    def add(self, path: str, mask: int) -> int:
        """A watch on `path` (raises OSError: missing, not permitted); returns its wd."""
        wd = _libc.inotify_add_watch(self.fd, os.fsencode(path), ctypes.c_uint32(mask))
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify watch {path}: {os.strerror(err)}")
        return int(wd)

    def remove(self, wd: int) -> None:
        _libc.inotify_rm_watch(self.fd, wd)  # fails harmlessly for a watch already gone

    def _readable(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return
            except OSError:
                return
            if not data:
                return
            off = 0
            while off + _HEADER.size <= len(data):
                wd, mask, _cookie, n = _HEADER.unpack_from(data, off)
                raw = data[off + _HEADER.size : off + _HEADER.size + n]
                name = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                off += _HEADER.size + n
                self._handler(wd, mask, name)

    def close(self) -> None:
        if self.fd < 0:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self.fd)
        os.close(self.fd)
        self.fd = -1
