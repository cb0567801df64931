"""The remote helper: runs on an SSH host with python3 (>= 3.8, nothing else installed) and
tells tenantscope what changed there, so the topology and netns probes re-read on an event
instead of every few seconds.

This file is shipped as source text (`python3 -c SOURCE CONFIG`, argv joined with
shlex.join by the transport) and is stdlib-only: it must not import anything of tenantscope.
CONFIG is one JSON argument (data, never code): {"netns_dir", "groups", "settle", "heartbeat",
"files", "proc_scan", "totals", "nft"}. It watches:

- the host's network namespace and each namespace named in netns_dir: one NETLINK_ROUTE socket
  each (raw `socket` module; a namespace's socket is made after entering it with setns(2)
  through ctypes, then the thread goes back), bound to the link, address, route and neighbour
  groups. Only *which* namespace spoke is reported: the console re-reads that one.
  With "nft" set, a NETLINK_NETFILTER socket beside it, bound to nftables' notification
  group: a rule change there (nftables, iptables-nft, ebtables-nft, libvirt, Docker) is
  reported as "//nft:" + the name, so the console reads that namespace's filters again and
  only then (area "nftables": why not, e.g. not root; the route events go on without it).
- netns_dir with inotify (or its parent until it exists): a namespace added or deleted. A
  deleted namespace's socket is closed on that event: our socket must not keep it alive.
- `files` (e.g. the OVSDB database file, appended at every transaction) with inotify.
- processes, every `proc_scan` seconds (on the host, not over SSH): a new namespace only
  processes hold (a container, `unshare`), one gone, a runtime daemon (dockerd, podman) come
  or gone. Only new PIDs are read, so a scan of an idle host is one listdir of /proc.
- the host's totals, every `totals` seconds (0: off): /proc/stat, meminfo, diskstats and
  net/dev read on the host and pushed as ten numbers, so the console's resources probe takes
  the newest instead of asking (one short line instead of a request and an answer of the
  files' text). The console parses the same files with these functions when it asks itself.

Output: one JSON array per line, ASCII only (a namespace name is untrusted text; json escapes
anything), flushed at once:
  ["R", version, {area: "" or why it is not watched}]   started
  ["F", [names]]      the namespaces followed now (when the set changed)
  ["C", [what...]]    what changed, coalesced over `settle` seconds: "" the host's
                      namespace, a name, "/" the set of names, "*" everything (events lost),
                      "file:PATH" a watched file, "//procs" processes' namespaces,
                      "//nft:" + a name (or nothing: the host's) its nftables rules
  ["T", [cpus, cpu total s, idle+iowait s, steal s, mem total, mem used, disk read B,
        disk written B, net rx B, net tx B]]   the host's totals (counters since boot)
  ["H"]               heartbeat (a closed channel ends the helper at the next write)
  ["X", why]          the helper failed and exits
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import select
import socket
import struct
import sys
import time
from typing import Any

VERSION = 1
CLONE_NEWNET = 0x40000000
NETLINK_NETFILTER, NFNLGRP_NFTABLES = 12, 7
IN_MODIFY, IN_ATTRIB, IN_MOVED_FROM, IN_MOVED_TO = 0x2, 0x4, 0x40, 0x80
IN_CREATE, IN_DELETE, IN_DELETE_SELF, IN_MOVE_SELF = 0x100, 0x200, 0x400, 0x800
IN_Q_OVERFLOW, IN_IGNORED, IN_ONLYDIR, IN_NONBLOCK, IN_CLOEXEC = 0x4000, 0x8000, 0x1000000, 0o4000, 0o2000000
DIR_MASK = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF
FILE_MASK = IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF
HEADER = struct.Struct("=iIII")
ALL, LIST, PROCS, NFT = "*", "/", "//procs", "//nft:"


# what changes the topology, and what does not (noise on a busy hypervisor): the topology
# keeps IPv4 routes of the main table and complete IPv4 neighbours (address, MAC), so an
# IPv6 route, a local-table route, or a neighbour going REACHABLE -> STALE -> REACHABLE with
# the same MAC is not worth a re-read
RTM_NEWROUTE, RTM_DELROUTE, RTM_NEWNEIGH, RTM_DELNEIGH = 24, 25, 28, 29
NLMSG = struct.Struct("=IHHII")  # len, type, flags, seq, pid
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
NDMSG = struct.Struct("=BxxxiHBB")  # family, ifindex, state, flags, type
RTA = struct.Struct("=HH")
RT_TABLE_MAIN, RTA_TABLE, NDA_DST, NDA_LLADDR = 254, 15, 1, 2
NUD_BAD = 0x01 | 0x20 | 0x40  # INCOMPLETE, FAILED, NOARP


def _attr(data: bytes, off: int, end: int, want: int) -> bytes | None:
    while off + RTA.size <= end:
        n, kind = RTA.unpack_from(data, off)
        if n < RTA.size:
            return None
        if kind & 0x3FFF == want:
            return data[off + RTA.size : off + n]
        off += (n + 3) & ~3
    return None


class Relevance:
    """Tells which rtnetlink notifications can change what the topology reads. Shared with
    the local event source (probes/network/events.py): one rule for both."""

    def __init__(self) -> None:
        self.neigh: dict[tuple[int, bytes], bytes] = {}  # (ifindex, address) -> MAC of a complete entry

    def any(self, data: bytes) -> bool:
        """Whether any message of one recv() matters (unparseable: it does)."""
        off = 0
        hit = False
        while off + NLMSG.size <= len(data):
            n, kind = NLMSG.unpack_from(data, off)[:2]
            if n < NLMSG.size or off + n > len(data):
                return True
            if self.one(kind, data, off + NLMSG.size, off + n):
                hit = True  # not at once: later neighbour messages update the table too
            off += (n + 3) & ~3
        return hit

    def one(self, kind: int, data: bytes, off: int, end: int) -> bool:
        if kind in (RTM_NEWROUTE, RTM_DELROUTE):
            if end - off < RTMSG.size:
                return True
            family, table = data[off], data[off + 4]
            if family != socket.AF_INET:
                return False
            t = _attr(data, off + RTMSG.size, end, RTA_TABLE)
            if t is not None and len(t) >= 4:
                table = struct.unpack_from("=I", t)[0]
            return table == RT_TABLE_MAIN
        if kind in (RTM_NEWNEIGH, RTM_DELNEIGH):
            if end - off < NDMSG.size:
                return True
            family, ifindex, state = NDMSG.unpack_from(data, off)[:3]
            if family != socket.AF_INET:
                return False
            dst = _attr(data, off + NDMSG.size, end, NDA_DST) or b""
            mac = _attr(data, off + NDMSG.size, end, NDA_LLADDR) or b""
            key = (ifindex, dst)
            now = mac if kind == RTM_NEWNEIGH and mac and state and not state & NUD_BAD else b""
            was = self.neigh.get(key)
            if now:
                self.neigh[key] = now
            else:
                self.neigh.pop(key, None)
            return was != now and not (was is None and not now)
        return True  # links and addresses: always


# -- the host's totals (also the console's parsers of these files: probes/resources/hosttotals.py)

SKIP_DISK = re.compile(r"^(loop|ram|zram|sr|fd|dm-|md)\d*")


def proc_stat(text: str) -> tuple[int, float, float, float]:
    """(cpus, total s, idle+iowait s, steal s) from /proc/stat (USER_HZ = 100)."""
    cpus = 0
    total = idle = steal = 0.0
    for line in text.splitlines():
        if line.startswith("cpu "):
            f = [int(x) for x in line.split()[1:]]
            f += [0] * (10 - len(f))
            total = sum(f[:8]) / 100.0  # guest fields 8, 9 are included in user/nice
            idle = (f[3] + f[4]) / 100.0
            steal = f[7] / 100.0
        elif line.startswith("cpu"):
            cpus += 1
        elif cpus:
            break  # the per-CPU lines are done (the rest: interrupts, a long line)
    return max(cpus, 1), total, idle, steal


def meminfo(text: str) -> tuple[int, int]:
    """(total, used = total - available) bytes from /proc/meminfo."""
    vals: dict[str, int] = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        parts = v.split()
        if parts:
            vals[k] = int(parts[0]) * 1024
    total = vals.get("MemTotal", 0)
    avail = vals.get("MemAvailable", vals.get("MemFree", 0))
    return total, total - avail


def diskstats(text: str) -> tuple[int, int]:
    """Bytes read and written by whole disks (partitions and virtual devices left out)."""
    rows = []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 10 and not SKIP_DISK.match(f[2]):
            rows.append((f[2], int(f[5]) * 512, int(f[9]) * 512))
    names = {r[0] for r in rows}
    r = w = 0
    for name, rd, wr in rows:
        if any(name != n and name.startswith(n) for n in names):
            continue  # a partition of a disk already counted
        r += rd
        w += wr
    return r, w


def net_dev(text: str) -> tuple[int, int, int, int]:
    """(rx bytes, tx bytes, rx + tx drops, interfaces) over every interface but loopback."""
    rx = tx = drops = n = 0
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        if not sep or name.strip() == "lo":
            continue
        f = rest.split()
        if len(f) < 12:
            continue
        rx += int(f[0])
        drops += int(f[3]) + int(f[11])
        tx += int(f[8])
        n += 1
    return rx, tx, drops, n


def _text(path: str) -> str:
    with open(path) as f:
        return f.read()


def host_totals() -> list[float]:
    """The T frame's numbers (see the module's docstring)."""
    cpus, total, idle, steal = proc_stat(_text("/proc/stat"))
    mem_total, mem_used = meminfo(_text("/proc/meminfo"))
    try:
        blk_r, blk_w = diskstats(_text("/proc/diskstats"))
    except OSError:
        blk_r = blk_w = 0
    rx, tx, _drops, _n = net_dev(_text("/proc/net/dev"))
    return [cpus, total, idle, steal, mem_total, mem_used, blk_r, blk_w, rx, tx]


def emit(*frame: object) -> None:
    sys.stdout.write(json.dumps(list(frame), ensure_ascii=True, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class ProcScan:
    """Namespaces only processes hold (containers) and runtime daemons, from /proc. Only new
    PIDs are read (and read again at the next scans while they are young), so a scan of an idle
    host is one listdir of /proc; an older process that changes its namespaces in place is seen
    by the console's safety poll. The helper runs it on an
    SSH host; the console on its own host (probes/network/events.py)."""

    NS_KINDS = ("net", "mnt", "pid", "uts", "ipc", "cgroup")
    DAEMONS = ("dockerd", "podman")
    # A new process is read again at this many later scans: one read just after its fork sees
    # its parent's namespaces, and a container's init (runc's, `unshare`, `ip netns exec`)
    # switches them only then, in place; read once, it was seen at the safety poll.
    YOUNG_SCANS = 2

    def __init__(self, proc: str = "/proc") -> None:
        self.proc = proc
        self.procs: dict[str, tuple[str, ...]] = {}  # pid -> its namespaces (+ "d:comm" for a runtime daemon)
        self.young: dict[str, int] = {}  # pid -> scans left that read it again
        self.view: frozenset[str] | None = None
        self.listings = 0  # times /proc was listed

    def _entry(self, pid: str) -> tuple[str, ...]:
        out = []
        for k in self.NS_KINDS:
            try:
                out.append(os.readlink("%s/%s/ns/%s" % (self.proc, pid, k)))
            except OSError:
                pass
        try:
            with open("%s/%s/comm" % (self.proc, pid)) as f:
                comm = f.read().strip()
            if comm in self.DAEMONS:
                out.append("d:" + comm)
        except OSError:
            pass
        return tuple(out)

    def listed(self) -> list[str] | None:
        """The PIDs /proc lists now (None when it cannot be listed)."""
        self.listings += 1
        try:
            return [p for p in os.listdir(self.proc) if p.isdigit()]
        except OSError:
            return None

    def settled(self, pids: list[str]) -> bool:
        """Whether a scan of these PIDs would read nothing: the same processes as the last
        scan, none of them young (the union of namespaces cannot have changed)."""
        old = self.procs
        return (
            not self.young and self.view is not None and len(pids) == len(old) and all(p in old for p in pids)
        )

    def scan(self, pids: list[str] | None = None) -> bool:
        """True when the union of namespaces and daemons changed since the last scan (the
        first scan only learns it). `pids`: what `listed` gave just before (else listed now)."""
        if pids is None:
            pids = self.listed()
        if pids is None or self.settled(pids):
            return False  # the same settled processes: nothing to read, the union cannot change
        old, was_young = self.procs, self.young
        young: dict[str, int] = {}
        procs: dict[str, tuple[str, ...]] = {}
        for p in pids:
            if p in old and p not in was_young:
                procs[p] = old[p]
                continue
            procs[p] = self._entry(p)
            left = was_young[p] - 1 if p in was_young else self.YOUNG_SCANS
            if left > 0 and self.view is not None:  # (the first scan's processes are not new)
                young[p] = left
        self.procs, self.young = procs, young
        view = frozenset(x for entry in procs.values() for x in entry)
        changed = self.view is not None and view != self.view
        self.view = view
        return changed


class Helper:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.netns_dir = str(cfg.get("netns_dir") or "/run/netns")
        self.groups = int(cfg.get("groups") or 0)
        self.nft = bool(cfg.get("nft"))
        self.nft_error = ""  # why the host's nftables socket could not be made
        self.nft_fds: set[int] = set()
        self.settle = float(cfg.get("settle", 0.02))
        self.heartbeat = float(cfg.get("heartbeat", 30.0))
        self.files = [str(f) for f in cfg.get("files") or ()]
        self.proc_scan = float(cfg.get("proc_scan") or 0)  # s between /proc scans, 0: off
        self.next_scan = 0.0
        self.totals = float(cfg.get("totals") or 0)  # s between pushed totals, 0: off
        self.next_totals = 0.0
        self.procs = ProcScan()
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.poll = select.poll()
        self.socks: dict[int, tuple[str, socket.socket]] = {}  # fd -> (namespace, socket)
        self.relevance: dict[str, Relevance] = {}
        self.by_name: dict[str, int] = {}
        self.ino = -1
        self.dir_wd = self.parent_wd = -1
        self.file_wd: dict[int, str] = {}
        self.retry: dict[str, int] = {}  # namespace -> attempts (mounted after its file appears)
        self.retry_at = 0.0
        self.changed: set[str] = set()
        self.areas: dict[str, str] = {}
        self.followed: list[str] = []

    # -- netlink

    def _socket(self, proto: int = socket.NETLINK_ROUTE, groups: int = -1) -> socket.socket:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, proto)
        try:
            s.bind((0, self.groups if groups < 0 else groups))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.setblocking(False)
        except OSError:
            s.close()
            raise
        return s

    def _sockets(self) -> tuple[socket.socket, socket.socket | None]:
        """This namespace's route socket and (with "nft") its nftables one, None when that
        cannot be made (not root, no nf_tables): the route events go on without it."""
        s = self._socket()
        if not self.nft:
            return s, None
        try:
            return s, self._socket(NETLINK_NETFILTER, 1 << (NFNLGRP_NFTABLES - 1))
        except OSError as e:
            self.nft_error = "nftables: %s" % (e.strerror or e)
            return s, None

    def _socket_in(self, path: str) -> tuple[socket.socket, socket.socket | None]:
        """The sockets made inside the namespace at `path` (opened, never created)."""
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if self.libc.setns(target, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, os.strerror(e))
                try:
                    return self._sockets()
                finally:
                    if self.libc.setns(home, CLONE_NEWNET) != 0:
                        emit("X", "could not return to the host's network namespace")
                        os._exit(1)
            finally:
                os.close(home)
        finally:
            os.close(target)

    def _add(self, name: str, s: socket.socket, nft: socket.socket | None = None) -> None:
        self.socks[s.fileno()] = (name, s)
        self.by_name[name] = s.fileno()
        self.relevance[name] = Relevance()
        self.poll.register(s.fileno(), select.POLLIN)
        if nft is not None:
            self.socks[nft.fileno()] = (name, nft)
            self.nft_fds.add(nft.fileno())
            self.poll.register(nft.fileno(), select.POLLIN)

    def _drop(self, name: str) -> None:
        fd = self.by_name.pop(name, None)
        if fd is not None:
            for f in [f for f, (n, _s) in self.socks.items() if n == name]:  # route + nftables
                self.poll.unregister(f)
                self.socks.pop(f)[1].close()
                self.nft_fds.discard(f)
            self.relevance.pop(name, None)

    def _follow(self, name: str) -> bool:
        """Open the named namespace's socket; False when it should be tried again."""
        if name in self.by_name:
            return True
        try:
            s, nft = self._socket_in(os.path.join(self.netns_dir, name))
        except OSError as e:
            return e.errno not in (errno.EINVAL, errno.ENOENT) or not os.path.exists(
                os.path.join(self.netns_dir, name)
            )
        self._add(name, s, nft)
        return True

    def sync(self) -> None:
        """Follow exactly the namespaces named in netns_dir now."""
        try:
            names = sorted(n for n in os.listdir(self.netns_dir) if not n.startswith("."))
        except OSError:
            names = []
        for gone in [n for n in self.by_name if n and n not in names]:
            self._drop(gone)
        for n in names:
            if self._follow(n):
                self.retry.pop(n, None)
            else:  # `ip netns add` makes the file, then mounts the namespace on it
                self.retry[n] = self.retry.get(n, 0) + 1
                if self.retry[n] > 5:
                    self.retry.pop(n)
        if self.retry:
            self.retry_at = time.monotonic() + 0.1
        now = sorted(n for n in self.by_name if n)
        if now != self.followed:
            self.followed = now
            emit("F", now)

    def _drain(self, fd: int) -> None:
        name, s = self.socks[fd]
        rel = None if fd in self.nft_fds else self.relevance[name]  # a rule change always counts
        while True:
            try:
                data = s.recv(1 << 16)
                if not data:
                    break
                if rel is None:
                    self.changed.add(NFT + name)
                elif rel.any(data):
                    self.changed.add(name)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.ENOBUFS:  # the kernel dropped notifications
                    self.changed.add(ALL)
                    continue
                self._drop(name)
                self.changed.add(ALL)
                break

    # -- inotify

    def _watch(self, path: str, mask: int) -> int:
        wd = self.libc.inotify_add_watch(self.ino, os.fsencode(path), ctypes.c_uint32(mask))
        if wd < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return int(wd)

    def _watch_dir(self) -> None:
        try:
            self.dir_wd = self._watch(self.netns_dir, DIR_MASK | IN_ONLYDIR)
        except OSError:  # no namespace was ever named: wait for the directory
            self.dir_wd = -1
            if self.parent_wd < 0:
                self.parent_wd = self._watch(
                    os.path.dirname(self.netns_dir), IN_CREATE | IN_MOVED_TO | IN_ONLYDIR
                )

    def _watch_files(self) -> None:
        have = set(self.file_wd.values())
        for f in self.files:
            if f not in have:
                try:
                    self.file_wd[self._watch(f, FILE_MASK)] = f
                except OSError:
                    pass  # not there (yet): looked for again at each heartbeat

    def _inotify(self) -> None:
        while True:
            try:
                data = os.read(self.ino, 1 << 16)
            except OSError:
                return
            if not data:
                return
            off = 0
            while off + HEADER.size <= len(data):
                wd, mask, _cookie, n = HEADER.unpack_from(data, off)
                name = os.fsdecode(data[off + HEADER.size : off + HEADER.size + n].split(b"\0", 1)[0])
                off += HEADER.size + n
                self._on_inotify(wd, mask, name)

    def _on_inotify(self, wd: int, mask: int, name: str) -> None:
        if mask & IN_Q_OVERFLOW:
            self.changed.add(ALL)
            self.sync()
            return
        if wd in self.file_wd:
            f = self.file_wd[wd]
            self.changed.add("file:" + f)
            if mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED):
                del self.file_wd[wd]  # replaced (a compacted database): watch the new one
                self._watch_files()
            return
        if wd == self.parent_wd and wd >= 0:
            if name == os.path.basename(self.netns_dir) and self.dir_wd < 0:
                try:
                    self._watch_dir()
                    self.changed.add(LIST)
                    self.sync()
                except OSError:
                    pass
            return
        if wd != self.dir_wd:
            return
        if mask & (IN_DELETE | IN_MOVED_FROM) and name:
            self._drop(name)  # at once: our socket must not keep a deleted namespace alive
        if mask & (IN_DELETE_SELF | IN_MOVE_SELF):
            for n in [n for n in self.by_name if n]:
                self._drop(n)
            self.dir_wd = -1
            try:
                self._watch_dir()
            except OSError:
                pass
        self.changed.add(LIST)
        self.sync()

    # -- processes: namespaces only processes hold (containers), runtime daemons

    def scan_procs(self) -> None:
        if self.procs.scan():
            self.changed.add(PROCS)

    # -- the loop

    def start(self) -> None:
        try:
            self._add("", *self._sockets())
            self.areas["netlink"] = ""
        except OSError as e:
            self.areas["netlink"] = "netlink: %s" % (e.strerror or e)
        if self.nft:
            self.areas["nftables"] = self.nft_error
        fd = self.libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            self.areas["inotify"] = "inotify: %s" % os.strerror(ctypes.get_errno())
        else:
            self.ino = fd
            self.poll.register(fd, select.POLLIN)
            try:
                self._watch_dir()
                self.areas["inotify"] = ""
            except OSError as e:
                self.areas["inotify"] = "inotify on %s: %s" % (self.netns_dir, e.strerror or e)
            self._watch_files()
        if self.proc_scan > 0:
            self.scan_procs()
            self.areas["procs"] = "" if self.procs.procs else "cannot list /proc"
            self.next_scan = time.monotonic() + self.proc_scan
        if self.totals > 0:
            self.areas["totals"] = ""
            self.next_totals = time.monotonic()
        emit("R", VERSION, self.areas)
        self.sync()

    def run(self) -> None:
        beat = time.monotonic() + self.heartbeat
        while True:
            now = time.monotonic()
            wait = beat - now
            if self.retry:
                wait = min(wait, self.retry_at - now)
            if self.proc_scan > 0:
                wait = min(wait, self.next_scan - now)
            if self.totals > 0:
                wait = min(wait, self.next_totals - now)
            for fd, _ev in self.poll.poll(max(0, int(wait * 1000) + 1)):
                if fd == self.ino:
                    self._inotify()
                elif fd in self.socks:
                    self._drain(fd)
            if self.proc_scan > 0 and time.monotonic() >= self.next_scan:
                self.scan_procs()
                self.next_scan = time.monotonic() + self.proc_scan
            if self.totals > 0 and time.monotonic() >= self.next_totals:
                # on a fixed beat (not drifting with the time a read takes)
                self.next_totals = max(self.next_totals + self.totals, time.monotonic())
                try:
                    emit("T", host_totals())
                except (OSError, ValueError, IndexError) as e:
                    self.areas["totals"] = "totals: %s" % e
                    self.totals = 0.0  # said once in an X-less way: the console asks instead
                    emit("R", VERSION, self.areas)
            if self.retry and time.monotonic() >= self.retry_at:
                before = set(self.by_name)
                self.sync()
                if set(self.by_name) != before:
                    self.changed.add(LIST)
            if self.changed:
                time.sleep(self.settle)  # a burst (a namespace built) becomes one frame
                for fd, _ev in self.poll.poll(0):
                    if fd == self.ino:
                        self._inotify()
                    elif fd in self.socks:
                        self._drain(fd)
                emit("C", sorted(self.changed))
                self.changed.clear()
                beat = time.monotonic() + self.heartbeat
            elif time.monotonic() >= beat:
                self._watch_files()
                emit("H")
                beat = time.monotonic() + self.heartbeat


def main() -> None:
    try:
        h = Helper(json.loads(sys.argv[1]))
        h.start()
        h.run()
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    except Exception as e:  # say why, then end: the console falls back to polls
        try:
            emit("X", "%s: %s" % (type(e).__name__, e))
        except Exception:
            pass


if __name__ == "__main__":
    main()
