"""Network change notifications on the local host: netlink in each namespace, inotify on
/run/netns. The topology and netns probes re-read when told, instead of every few seconds.
(Over SSH the remote helper streams the same: probes/hosts/remote_events.py.)

- One NETLINK_ROUTE socket per namespace (the host's and each named one), bound to the link,
  address and route multicast groups, opened inside the namespace by a thread that entered
  it with setns (probes/network/rtnl.py; nothing forked). The messages are only a trigger:
  which namespace changed; the probes then read it (the decoding is theirs).
- One NETLINK_NETFILTER socket per namespace bound to nftables' notification group
  (probes/network/filterread.nft_event_socket): a rule change (nftables, iptables-nft,
  ebtables-nft, libvirt's nwfilter, Docker) wakes the topology probe, which re-reads that
  namespace's filters (legacy iptables sends nothing: read again at the safety poll).
- inotify on /run/netns (or on /run until it exists): a namespace added, deleted or renamed.
  A deleted namespace's socket is closed at once, on that event: an open socket keeps a
  namespace alive, and a tenant's deleted namespace must go (with its veths) as it would
  without tenantscope.

- With `proc_scan` (the session's): every few seconds the PIDs that are new since the last
  scan have their namespaces read (probes/hosts/remote_helper.ProcScan, in a worker thread;
  at idle one listdir of /proc, on the loop): a container or a namespace only processes hold that comes
  or goes, or a runtime daemon, sends PROCS (no socket is opened there: it would keep the
  namespace of an exited container alive).

Not followed by events (the probes' slow safety poll catches them): a process that changes
its namespaces in place, a container's details that change while it runs, neighbour tables
(no probe keeps them: the prober reads them on demand), and anything whose notification was
lost (ENOBUFS: then every namespace counts as changed).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
from collections.abc import Callable, Iterable
from typing import Protocol

from probes.hosts.inotify import (
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_ONLYDIR,
    IN_Q_OVERFLOW,
    Inotify,
)
from probes.hosts.remote_helper import ProcScan, Relevance
from probes.network.filterread import nft_event_socket
from probes.network.rtnl import TOPOLOGY_GROUPS, route_socket

log = logging.getLogger(__name__)

NETNS_DIR = "/run/netns"
ALL = "*"  # what subscribers get when every namespace may have changed (lost events)
LIST = "/"  # what they get when the set of named namespaces changed
OVS = "//ovsdb"  # the OVSDB database changed (remote hosts; never a namespace name: it has a /)
PROCS = "//procs"  # namespaces only processes hold, or runtime daemons, changed (remote hosts)
NFT = "//nft:"  # + a namespace name ('' the host's): its nftables rules changed (remote hosts)


class NetEvents(Protocol):
    """What the netns and topology probes need of an event source: LocalNetEvents here, and
    probes/hosts/remote_events.RemoteNetEvents for an SSH host (its helper streams the same)."""

    error: str
    received: dict[str, int]

    def subscribe(self, fn: Callable[[str], None]) -> None: ...

    @property
    def live(self) -> bool: ...

    @property
    def namespaces(self) -> tuple[str, ...]: ...

    async def start(self) -> None: ...

    async def sync(self, named: Iterable[str]) -> None: ...

    def close(self) -> None: ...


# a /proc with more PIDs than this is listed in the worker thread (its listdir no longer cheap)
ON_LOOP_PIDS = 2000


class LocalNetEvents:
    """Owned by the session, one per local host, shared by the probes that subscribe."""

    def __init__(self, netns_dir: str = NETNS_DIR, *, proc_scan: float = 0.0) -> None:
        self.netns_dir = netns_dir
        # every `proc_scan` s (0: off) new PIDs' namespaces are read (one listdir of /proc at
        # idle, on the loop; new PIDs in a worker thread): containers and namespaces only
        # processes hold -> PROCS
        self.proc_scan = proc_scan
        self._procs = ProcScan()
        self._scanner: asyncio.Task[None] | None = None
        self._subs: list[Callable[[str], None]] = []
        self._socks: dict[str, socket.socket] = {}
        self._nft: dict[str, socket.socket] = {}  # nftables rule changes, per namespace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ino: Inotify | None = None
        self._dir_wd = -1
        self._parent_wd = -1
        self.error = ""  # why events are not (all) available
        self.received: dict[str, int] = {}  # messages per namespace ('' the host's): tests, bench
        self._syncing = asyncio.Lock()
        self._retries: dict[str, int] = {}
        self._relevance: dict[str, Relevance] = {}  # per namespace: which messages matter

    # -- for probes

    def subscribe(self, fn: Callable[[str], None]) -> None:
        """`fn(namespace)` on the loop: '' the host's, a name, ALL or LIST."""
        if fn not in self._subs:
            self._subs.append(fn)

    @property
    def live(self) -> bool:
        return "" in self._socks and self._ino is not None

    @property
    def procs(self) -> bool:
        """The /proc scan runs (PROCS is sent when processes' namespaces or daemons change)."""
        return self._scanner is not None and not self._scanner.done() and bool(self._procs.procs)

    @property
    def nft(self) -> bool:
        """nftables rule changes come as events (the host's netfilter socket is open)."""
        return "" in self._nft

    @property
    def notifications(self) -> int:
        return sum(self.received.values())

    @property
    def namespaces(self) -> tuple[str, ...]:
        return tuple(sorted(n for n in self._socks if n))

    async def start(self) -> None:
        """Open the host's socket and the inotify watch (once; errors kept in `error`)."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        try:
            self._ino = Inotify(self._on_inotify)
            self._ino.start(self._loop)
            self._watch_dir()
        except OSError as e:
            self.error = f"inotify: {e.strerror or e}"
            self._ino = None
        try:
            self._add("", route_socket("", groups=TOPOLOGY_GROUPS))
        except OSError as e:
            self.error = f"netlink: {e.strerror or e}"
        with contextlib.suppress(OSError):  # no nf_tables here: rule changes wait for the poll
            self._add_nft("", nft_event_socket(""))
        if self.proc_scan > 0:
            await asyncio.to_thread(self._procs.scan)  # learn what runs now
            self._scanner = asyncio.create_task(self._scan_procs())

    async def _scan_procs(self) -> None:
        procs = self._procs
        while True:
            await asyncio.sleep(self.proc_scan)
            try:
                # a settled host (the same processes as the last scan) is one listdir of /proc
                # (~0.1 ms for a few hundred PIDs): on the loop, not a worker-thread hop and
                # its wake-ups every few seconds; new PIDs are read in a worker thread
                pids = procs.listed() if len(procs.procs) <= ON_LOOP_PIDS else None
                if pids is not None and procs.settled(pids):
                    continue
                changed = await asyncio.to_thread(procs.scan, pids)
            except Exception:  # never stop scanning for one bad read
                log.exception("/proc scan")
                continue
            if changed:
                self.received[PROCS] = self.received.get(PROCS, 0) + 1
                self._fire(PROCS)

    async def sync(self, named: Iterable[str]) -> None:
        """Follow exactly these named namespaces (called after each read of /run/netns)."""
        if self._loop is None:
            return
        async with self._syncing:
            want = set(named)
            for gone in [n for n in self._socks if n and n not in want]:
                self._drop(gone)
            new = sorted(n for n in want if n not in self._socks)
            if not new:
                return
            from probes.network.nsenter import in_fresh_thread

            def open_all() -> list[tuple[str, socket.socket | OSError, socket.socket | None]]:
                out: list[tuple[str, socket.socket | OSError, socket.socket | None]] = []
                for n in new:
                    try:
                        rs = route_socket(f"{self.netns_dir}/{n}", groups=TOPOLOGY_GROUPS)
                    except (OSError, RuntimeError) as e:  # gone meanwhile
                        out.append((n, OSError(str(e)), None))
                        continue
                    try:
                        nfs: socket.socket | None = nft_event_socket(f"{self.netns_dir}/{n}")
                    except (OSError, RuntimeError):
                        nfs = None
                    out.append((n, rs, nfs))
                return out

            retry = False
            for n, s, nfs in await in_fresh_thread(open_all):
                if isinstance(s, OSError):
                    # `ip netns add` creates the file, then mounts the namespace on it: an
                    # event can come in between. Look again shortly (a few times).
                    self._retries[n] = self._retries.get(n, 0) + 1
                    retry = retry or self._retries[n] <= 3
                    continue
                self._retries.pop(n, None)
                if n in self._socks or not os.path.exists(f"{self.netns_dir}/{n}"):
                    s.close()  # deleted while we opened it: do not keep it alive
                    if nfs is not None:
                        nfs.close()
                    continue
                self._add(n, s)
                if nfs is not None:
                    self._add_nft(n, nfs)
            if retry:
                self._loop.call_later(0.2, self._fire, LIST)

    def close(self) -> None:
        if self._scanner is not None:
            self._scanner.cancel()
            self._scanner = None
        for n in list(self._socks) + list(self._nft):
            self._drop(n)
        if self._ino is not None:
            self._ino.close()
            self._ino = None
        self._subs.clear()

    # -- internals

    def _add(self, name: str, s: socket.socket) -> None:
        assert self._loop is not None
        s.setblocking(False)
        with contextlib.suppress(OSError):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self._socks[name] = s
        self._loop.add_reader(s.fileno(), self._readable, name, s)

    def _add_nft(self, name: str, s: socket.socket) -> None:
        assert self._loop is not None
        s.setblocking(False)
        self._nft[name] = s
        self._loop.add_reader(s.fileno(), self._readable, name, s)

    def _drop(self, name: str) -> None:
        self._relevance.pop(name, None)
        for socks in (self._nft, self._socks):  # both: either would keep the namespace alive
            s = socks.pop(name, None)
            if s is None:
                continue
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(s.fileno())
            s.close()

    def _readable(self, name: str, s: socket.socket) -> None:
        lost = False
        hit = False
        rel = self._relevance.setdefault(name, Relevance())
        while True:
            try:
                data = s.recv(1 << 16)
                if not data:
                    break
                if not rel.any(data):  # neighbour state flaps, IPv6 routes: not read anyway
                    continue
                hit = True
                self.received[name] = self.received.get(name, 0) + 1
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.ENOBUFS:  # the kernel dropped notifications
                    lost = True
                    continue
                self._drop(name)
                hit = True
                break
        if lost or hit:
            self._fire(ALL if lost else name)

    def _fire(self, what: str) -> None:
        for fn in list(self._subs):
            try:
                fn(what)
            except Exception:
                log.exception("network event subscriber")

    def _watch_dir(self) -> None:
        assert self._ino is not None
        mask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF
        try:
            self._dir_wd = self._ino.add(self.netns_dir, mask | IN_ONLYDIR)
        except FileNotFoundError:  # no namespace was ever named: wait for the directory
            self._dir_wd = -1
            parent = os.path.dirname(self.netns_dir)
            if self._parent_wd < 0:
                self._parent_wd = self._ino.add(parent, IN_CREATE | IN_MOVED_TO | IN_ONLYDIR)

    def _on_inotify(self, wd: int, mask: int, name: str) -> None:
        if mask & IN_Q_OVERFLOW:
            self._fire(ALL)
            return
        if wd == self._parent_wd and wd >= 0:
            if name == os.path.basename(self.netns_dir) and self._dir_wd < 0 and self._ino is not None:
                with contextlib.suppress(OSError):
                    self._watch_dir()
                    self._fire(LIST)
            return
        if wd != self._dir_wd:
            return
        if mask & (IN_DELETE | IN_MOVED_FROM) and name:
            self._drop(name)  # at once: our socket must not keep a deleted namespace alive
        if mask & (IN_DELETE_SELF | IN_MOVE_SELF):
            for n in [n for n in self._socks if n]:
                self._drop(n)
            self._dir_wd = -1
            if self._ino is not None:
                with contextlib.suppress(OSError):
                    self._watch_dir()
        self._fire(LIST)
