"""inotify for the local log followers: a file is read when it was written, renamed, deleted
or re-created, instead of being looked at four times a second.

One Inotify per host (the logs service owns it). Each followed path has an asyncio.Event set
on any event about it: on the file itself (modified, attributes, moved, deleted) and on its
directory entry (created, moved to or away: rotation). When the file at the path is replaced,
the watch moves to the new file. The follower still reads on a slow timer (SAFETY) for what
inotify cannot see (a file on a network filesystem, a queue overflow).
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from probes.hosts.inotify import (
    IN_ATTRIB,
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_IGNORED,
    IN_MODIFY,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_ONLYDIR,
    IN_Q_OVERFLOW,
    Inotify,
)

SAFETY = 10.0  # seconds: a followed file is read at least this often whatever inotify says
FILE_MASK = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVE_SELF | IN_DELETE_SELF
DIR_MASK = IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR


class FileWatch:
    """Change events for the files one host's followers read."""

    def __init__(self) -> None:
        self._ino: Inotify | None = None
        self.error = ""
        self._events: dict[str, asyncio.Event] = {}
        self._file_wd: dict[int, set[str]] = {}
        self._dir_wd: dict[int, str] = {}
        self._dirs: dict[str, int] = {}
        self.received = 0  # events handled (tests)

    @property
    def live(self) -> bool:
        return self._ino is not None

    def follow(self, path: str) -> asyncio.Event | None:
        """The event set when `path` may have changed; None when inotify is unavailable."""
        if self._ino is None and not self.error:
            try:
                self._ino = Inotify(self._handle)
                self._ino.start(asyncio.get_running_loop())
            except OSError as e:
                self.error = f"inotify: {e.strerror or e}"
        if self._ino is None:
            return None
        ev = self._events.get(path)
        if ev is None:
            ev = self._events[path] = asyncio.Event()
            d = os.path.dirname(path) or "/"
            if d not in self._dirs:
                with contextlib.suppress(OSError):  # no directory yet: the safety read covers it
                    wd = self._ino.add(d, DIR_MASK)
                    self._dirs[d] = wd
                    self._dir_wd[wd] = d
            self._watch_file(path)
        return ev

    def forget(self, path: str) -> None:
        self._events.pop(path, None)
        for paths in self._file_wd.values():
            paths.discard(path)

    def close(self) -> None:
        if self._ino is not None:
            self._ino.close()
            self._ino = None
        self._events.clear()
        self._file_wd.clear()
        self._dir_wd.clear()
        self._dirs.clear()

    def _watch_file(self, path: str) -> None:
        if self._ino is None:
            return
        try:
            wd = self._ino.add(path, FILE_MASK)
        except OSError:
            return  # not there (yet): the directory watch says when it comes
        for paths in self._file_wd.values():
            paths.discard(path)
        self._file_wd.setdefault(wd, set()).add(path)

    def _set(self, path: str) -> None:
        ev = self._events.get(path)
        if ev is not None:
            ev.set()

    def _handle(self, wd: int, mask: int, name: str) -> None:
        self.received += 1
        if mask & IN_Q_OVERFLOW:
            for ev in self._events.values():
                ev.set()
            return
        d = self._dir_wd.get(wd)
        if d is not None:
            if not name:
                return
            path = os.path.join(d, name)
            if path in self._events:
                if mask & (IN_CREATE | IN_MOVED_TO):
                    self._watch_file(path)  # the new file at the path
                self._set(path)
            return
        paths = self._file_wd.get(wd)
        if paths is None:
            return
        for p in list(paths):
            self._set(p)
        if mask & IN_IGNORED:  # the file is gone (deleted, or its filesystem unmounted)
            self._file_wd.pop(wd, None)
