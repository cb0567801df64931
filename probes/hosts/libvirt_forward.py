"""libvirt of an SSH host through tenantscope's own SSH connection to it.

Why: libvirt's `qemu+ssh://` runs the system `ssh` client, which knows nothing of the
ssh_config, identities, known_hosts and `--accept-new-host-keys` tenantscope was given, opens a
second connection per host and may prompt or trust differently. Instead, the remote read-only
libvirt socket (libvirtd's `libvirt-sock-ro`, or the modular `virtqemud-sock-ro`, whichever
exists) is forwarded through the host's asyncssh connection to a local unix socket, and libvirt
opens `qemu+unix:///system?socket=LOCAL` read-only. So host keys are checked once, by us, and
one connection per host carries everything.

The local sockets live in one private directory per process (mode 0700, in
$XDG_RUNTIME_DIR/tenantscope or /tmp/tenantscope-UID, itself 0700 and ours): no other user can
reach the remote libvirt through them. A socket is removed when its host is closed, the
process's directory at exit, and directories of processes that no longer run (a crash) when
the next tenantscope starts forwarding. The forward dies with its SSH connection; the next
`uri()` after a reconnect builds it again (same path, so libvirt reconnects to the same URI).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from probes.hosts.base import HostError, LibvirtAbsent

if TYPE_CHECKING:
    from probes.hosts.ssh import SSHHost

log = logging.getLogger(__name__)

# libvirtd's read-only socket first (the monolithic daemon), then the modular QEMU daemon's
REMOTE_SOCKETS = ("/var/run/libvirt/libvirt-sock-ro", "/var/run/libvirt/virtqemud-sock-ro")
ABSENT_RECHECK = 30.0  # seconds before a host without a libvirt socket is asked again

_FIND = 'for s in "$@"; do if [ -S "$s" ]; then printf "%s\\n" "$s"; exit 0; fi; done; exit 3'


def _start_time(pid: int | str) -> str:
    """The process's start time in clock ticks (field 22 of /proc/PID/stat); '' if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return ""
    return stat.rsplit(b")", 1)[-1].split()[19].decode()


def _private_base() -> str:
    """The per-user directory holding every process's forward directory (0700, ours)."""
    uid = os.getuid()
    run = os.environ.get("XDG_RUNTIME_DIR")
    base = os.path.join(run, "tenantscope") if run and os.path.isdir(run) else f"/tmp/tenantscope-{uid}"
    with contextlib.suppress(FileExistsError):
        os.mkdir(base, 0o700)
    st = os.lstat(base)
    import stat as st_mod

    if not st_mod.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        raise HostError(
            f"{base} is not a private directory of this user (mode {st.st_mode & 0o7777:o}, "
            f"owner {st.st_uid}): refusing to put libvirt sockets there; remove it or set XDG_RUNTIME_DIR"
        )
    return base


def clean_stale(base: str) -> list[str]:
    """Remove forward directories of tenantscope processes that no longer run."""
    removed: list[str] = []
    try:
        names = os.listdir(base)
    except OSError:
        return removed
    for name in names:
        parts = name.split("-")
        if len(parts) != 3 or parts[0] != "fwd" or not parts[1].isdigit():
            continue
        if _start_time(parts[1]) == parts[2]:
            continue  # that process still runs
        shutil.rmtree(os.path.join(base, name), ignore_errors=True)
        removed.append(name)
    return removed


class _ProcessDir:
    """This process's forward directory: made (and stale ones cleaned) on first use, removed
    at exit."""

    def __init__(self) -> None:
        self._path: str | None = None
        self._lock = threading.Lock()
        self._n = 0

    def socket_path(self) -> str:
        with self._lock:
            if self._path is None or not os.path.isdir(self._path):
                base = _private_base()
                stale = clean_stale(base)
                if stale:
                    log.info("removed %d stale libvirt forward dir(s) in %s", len(stale), base)
                pid = os.getpid()
                path = os.path.join(base, f"fwd-{pid}-{_start_time(pid) or '0'}")
                os.makedirs(path, mode=0o700, exist_ok=True)
                os.chmod(path, 0o700)
                if self._path is None:
                    atexit.register(self.remove)
                self._path = path
            self._n += 1
            # host names are untrusted and long: a counter names the socket
            return os.path.join(self._path, f"h{self._n}.sock")

    def remove(self) -> None:
        if self._path is not None:
            shutil.rmtree(self._path, ignore_errors=True)

    @property
    def path(self) -> str | None:
        return self._path


PROCESS_DIR = _ProcessDir()


class LibvirtForward:
    """The forward of one SSH host's libvirt socket (see the module doc)."""

    def __init__(self, host: SSHHost, candidates: Sequence[str] = REMOTE_SOCKETS) -> None:
        self._host = host
        self._candidates = tuple(candidates)
        self._path: str | None = None
        self._listener: Any = None
        self._conn: Any = None
        self._remote: str | None = None
        self._absent_until = 0.0
        self._absent_why = ""
        self._lock = asyncio.Lock()

    @property
    def path(self) -> str | None:
        """The local socket while a forward is up."""
        return self._path if self._listener is not None else None

    @property
    def remote(self) -> str | None:
        return self._remote

    async def uri(self) -> str:
        """The URI to open: the forward of the live connection, built if needed. Raises
        HostError (the connection is down: its own message), LibvirtAbsent (no socket)."""
        conn = await self._host.ensure_connected()
        if self._conn is conn and self._listener is not None and self._path and os.path.exists(self._path):
            return self._uri()
        async with self._lock:
            conn = await self._host.ensure_connected()
            if (
                self._conn is conn
                and self._listener is not None
                and self._path
                and os.path.exists(self._path)
            ):
                return self._uri()
            self._drop_listener()
            if time.monotonic() < self._absent_until and self._conn is conn:
                raise LibvirtAbsent(self._absent_why)
            self._conn = conn
            remote = await self._find()
            if self._path is None:
                self._path = PROCESS_DIR.socket_path()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)
            try:
                listener = await conn.forward_local_path(self._path, remote)
            except OSError as e:
                raise HostError(f"{self._host.name}: cannot forward libvirt's socket: {e}") from None
            os.chmod(self._path, 0o600)
            self._listener, self._remote = listener, remote
            log.info("ssh %s: libvirt %s forwarded to %s", self._host.name, remote, self._path)
            return self._uri()

    def _uri(self) -> str:
        assert self._path is not None
        return "qemu+unix:///system?socket=" + quote(self._path, safe="/")

    async def _find(self) -> str:
        r = await self._host.run(["sh", "-c", _FIND, "sh", *self._candidates], timeout=10)
        found = r.stdout.strip()
        if r.ok and found in self._candidates:
            return found
        if r.returncode == 3:
            self._absent_until = time.monotonic() + ABSENT_RECHECK
            self._absent_why = (
                "no libvirt on this host: no libvirt socket (" + ", ".join(self._candidates) + ")"
            )
            raise LibvirtAbsent(self._absent_why)
        raise HostError(f"{self._host.name}: looking for libvirt's socket failed: {r.stderr.strip()[:200]}")

    def _drop_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                listener.close()
        if self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)

    def connection_lost(self) -> None:
        """The SSH connection went away: so did the forward (the socket file is removed)."""
        self._drop_listener()
        self._conn = None

    async def close(self) -> None:
        listener = self._listener
        self._drop_listener()
        if listener is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.wait_closed(), 1)
