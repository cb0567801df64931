"""Active reachability probes from inside each tenant's network namespace.

Only run when the user asks (TUI key, `tenantscope check --probe`). Per source namespace one
raw ICMP socket is opened from a thread that entered the namespace (probes/network/nsenter.py);
all sources then run concurrently on the event loop, bounded. Every probe has a timeout. A
raw socket sees every ICMP packet of its namespace, so a reply counts only when its type,
identifier, sequence number and source address all match what was sent.

Outcomes: `reply` (echo reply or TCP connect), `refused` (TCP RST: reachable, port closed),
`no-arp` (the neighbour entry of the next hop is INCOMPLETE/FAILED after the timeout, or the
kernel said host unreachable: L2 separation), `timeout` (the next hop answered ARP but the
probe got nothing back: filtered), `no-route`, `error` (e.g. the namespace disappeared).
For reached pairs whose reply TTL shows routers in between, TTL-limited echoes from the same
socket name each hop (a direct pair has a reply TTL of 64/128/255 and no hops).
Nothing in a tenant's namespace is changed: no sysctls, no addresses, only these packets.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import random
import socket
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any
from dataclasses import dataclass, field, replace

from probes.hosts.base import HostTransport
from probes.model import HostState, WorkloadKind
from probes.network.model import Hop, ReachMatrix, ReachResult, Route, Topology
from probes.network.nsenter import netns_path, run_in_netns
from probes.network.segments import Endpoint, endpoints, netns_of

ICMP_ECHO_REPLY, ICMP_UNREACH, ICMP_ECHO, ICMP_TIME_EXCEEDED = 0, 3, 8, 11
NUD_INCOMPLETE, NUD_FAILED = 0x01, 0x20
SOL_RAW, ICMP_FILTER, SO_RCVBUFFORCE = 255, 1, 33
WANTED_ICMP = (1 << ICMP_ECHO_REPLY) | (1 << ICMP_UNREACH) | (1 << ICMP_TIME_EXCEEDED)
INITIAL_TTLS = (64, 128, 255)
MAX_TRACE_TTL = 8
TRACE_SEQ = 0x8000

Progress = Callable[[int, int], object]  # (pairs done, pairs total)


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def echo_request(ident: int, seq: int, payload: bytes = b"tenantscope") -> bytes:
    hdr = struct.pack("!BBHHH", ICMP_ECHO, 0, 0, ident, seq)
    return struct.pack("!BBHHH", ICMP_ECHO, 0, checksum(hdr + payload), ident, seq) + payload


@dataclass(frozen=True)
class Icmp:
    """One received ICMP packet, as far as matching needs it."""

    src: str
    ttl: int
    type: int
    code: int
    ident: int  # of the echo (for errors: of the embedded original echo)
    seq: int
    inner_dst: str = ""  # for errors: where the original echo was going


def parse_icmp(packet: bytes) -> Icmp | None:
    """An IPv4 packet with ICMP in it (what a raw socket returns), or None if not ours to read."""
    if len(packet) < 28 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    ttl, proto = packet[8], packet[9]
    if proto != socket.IPPROTO_ICMP or len(packet) < ihl + 8:
        return None
    src = socket.inet_ntoa(packet[12:16])
    typ, code = packet[ihl], packet[ihl + 1]
    if typ in (ICMP_ECHO_REPLY, ICMP_ECHO):
        ident, seq = struct.unpack("!HH", packet[ihl + 4:ihl + 8])
        return Icmp(src, ttl, typ, code, ident, seq)
    if typ in (ICMP_UNREACH, ICMP_TIME_EXCEEDED):
        inner = packet[ihl + 8:]
        if len(inner) < 28 or inner[0] >> 4 != 4:
            return None
        iihl = (inner[0] & 0x0F) * 4
        if inner[9] != socket.IPPROTO_ICMP or len(inner) < iihl + 8 or inner[iihl] != ICMP_ECHO:
            return None
        ident, seq = struct.unpack("!HH", inner[iihl + 4:iihl + 8])
        return Icmp(src, ttl, typ, code, ident, seq, socket.inet_ntoa(inner[16:20]))
    return None


@dataclass
class _Target:
    dst: Endpoint
    address: str
    seq: int
    sent_at: float = 0.0
    outcome: str = ""
    rtt_ms: float | None = None
    detail: str = ""
    reply_ttl: int | None = None
    hops: dict[int, str] = field(default_factory=dict)
    hop_done: int | None = None  # ttl at which the destination itself answered
    ignored: list[str] = field(default_factory=list)


class Matcher:
    """Assigns received packets to the probes sent from one socket."""

    def __init__(self, ident: int, targets: Sequence[_Target]) -> None:
        self.ident = ident
        self.by_seq = {t.seq: t for t in targets}
        self.pending = {t.seq for t in targets}
        self.trace_pending: set[int] = set()
        self.changed = asyncio.Event()
        self.on_reply: Callable[[_Target], None] | None = None

    def feed(self, pkt: Icmp, now: float) -> None:
        if pkt.ident != self.ident or pkt.type == ICMP_ECHO:
            return
        if pkt.seq >= TRACE_SEQ:
            self._trace(pkt)
            return
        t = self.by_seq.get(pkt.seq)
        if t is None or t.outcome:
            return
        if pkt.type == ICMP_ECHO_REPLY:
            if pkt.src != t.address:
                t.ignored.append(f"echo reply with our id/seq from unexpected source {pkt.src}")
                return
            t.outcome, t.rtt_ms, t.reply_ttl = "reply", (now - t.sent_at) * 1000, pkt.ttl
            if self.on_reply is not None:
                self.on_reply(t)
        elif pkt.type == ICMP_UNREACH and pkt.inner_dst == t.address:
            if pkt.code in (1, 7):  # host unreachable: ARP failed at the sender or a router
                t.outcome, t.detail = "no-arp", f"host unreachable (from {pkt.src})"
            elif pkt.code in (9, 10, 13):
                t.outcome, t.detail = "timeout", f"administratively prohibited (from {pkt.src}): filtered"
            else:
                t.outcome, t.detail = "no-route", f"destination unreachable code {pkt.code} (from {pkt.src})"
        else:
            return
        self.pending.discard(pkt.seq)
        self.changed.set()

    def _trace(self, pkt: Icmp) -> None:
        idx, ttl = divmod(pkt.seq - TRACE_SEQ, 16)
        t = self.by_seq.get(idx)
        if t is None or pkt.seq not in self.trace_pending:
            return
        if pkt.type == ICMP_TIME_EXCEEDED and pkt.inner_dst == t.address:
            t.hops[ttl] = pkt.src
        elif pkt.type == ICMP_ECHO_REPLY and pkt.src == t.address:
            t.hop_done = ttl if t.hop_done is None else min(t.hop_done, ttl)
        else:
            return
        self.trace_pending.discard(pkt.seq)
        self.changed.set()


@dataclass(frozen=True)
class Source:
    endpoint: Endpoint
    path: str


def plan(hs: HostState) -> tuple[list[Source], list[Endpoint], list[ReachResult]]:
    """Sources we can enter, destinations with addresses, and results for what cannot be tested."""
    eps = endpoints(hs)
    by_key = {w.key: w for w in hs.workloads}
    sources, untestable = [], []
    dests = [e for e in eps if e.addresses]
    for e in eps:
        if e.workload == "host":
            continue
        w = by_key.get(e.workload)
        if e.netns is not None and w is not None:
            path = w.netns.path if (w.netns and w.netns.path) else netns_path(netns_of(w) or w.name)
            sources.append(Source(e, path))
            continue
        why = ("not testable from inside: predicted only (VM: probing through the guest agent is not "
               "enabled)" if w is not None and w.kind == WorkloadKind.VM
               else "not testable from inside: predicted only (no network namespace to enter)")
        for d in dests:
            if d.workload != e.workload:
                untestable.append(ReachResult(e.tenant, d.tenant, e.workload, d.workload, "", "predicted",
                                              "not-testable", detail=why))
    return sources, dests, untestable


async def probe_matrix(hs: HostState, *, timeout: float = 0.5, ports: Sequence[int] = (),
                       concurrency: int = 256, trace: bool = True,
                       progress: Progress | None = None) -> ReachMatrix:
    """Probe every destination address from every source namespace of `hs`. Cancellable."""
    started = time.time()
    sources, dests, results = plan(hs)
    topo = hs.topology or Topology()
    total = sum(len([1 for d in dests if d.workload != s.endpoint.workload for _ in d.addresses])
                for s in sources) * (1 + len(ports))
    done = 0
    sem = asyncio.Semaphore(max(1, concurrency))
    owners = {a.split("/")[0]: lk.where for lk in topo.links for a in lk.addresses}
    budget = _fd_budget(min(len(sources), concurrency))
    errors: list[str] = []

    async def one(src: Source) -> list[ReachResult]:
        nonlocal done
        async with sem:
            out = await _probe_source(src, dests, topo, timeout=timeout, ports=ports, trace=trace, owners=owners,
                                      tcp_budget=budget)
        done += sum(1 for r in out if r.method != "predicted")
        if progress is not None:
            progress(done, total)
        return out

    tasks = [asyncio.ensure_future(one(s)) for s in sources]
    try:
        for part in await asyncio.gather(*tasks):
            results += part
    except asyncio.CancelledError:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    errors += sorted({r.detail for r in results if r.outcome == "error" and r.detail})
    no_entry = sum(1 for r in results if r.outcome == "timeout" and NO_NEIGH in r.detail)
    if no_entry:
        errors.append(_neigh_table_note(no_entry))
    return ReachMatrix(results=tuple(results), started_at=started, finished_at=time.time(),
                       timeout_s=timeout, ports=tuple(ports), errors=tuple(errors))


def merged(hs: HostState, matrix: ReachMatrix) -> HostState:
    """Pure: the host's state with this probe run as its observed reachability."""
    return replace(hs, reach=matrix)


async def _probe_source(src: Source, dests: Sequence[Endpoint], topo: Topology, *, timeout: float,
                        ports: Sequence[int], trace: bool, owners: dict[str, str],
                        tcp_budget: int = 64) -> list[ReachResult]:
    me = src.endpoint
    targets = [_Target(d, a, 0) for d in dests if d.workload != me.workload for a in d.addresses]
    for i, t in enumerate(targets):
        t.seq = i
    if not targets:
        return []
    n_tcp = min(len(targets) * len(ports), tcp_budget)

    def make() -> list[socket.socket]:
        made = []
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            made.append(s)
            # see only what can answer a probe (not the echo requests other sources send here)
            s.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("=I", ~WANTED_ICMP & 0xFFFFFFFF))
            try:  # a socket option, not a sysctl: nothing of the namespace changes
                s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 1 << 20)
            except OSError:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            made.append(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE))
            for _ in range(n_tcp):
                made.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            for s in made:
                s.setblocking(False)
        except BaseException:
            for s in made:
                s.close()
            raise
        return made

    try:
        socks = await run_in_netns(src.path, make)
    except (OSError, RuntimeError) as e:
        why = "namespace gone" if isinstance(e, FileNotFoundError) else f"cannot enter namespace: {e}"
        return [_result(me, t, "icmp", "error", f"{src.path}: {why}") for t in targets] + [
            _result(me, t, f"tcp:{p}", "error", f"{src.path}: {why}") for t in targets for p in ports]
    icmp, nl, tcp = socks[0], socks[1], socks[2:]
    loop = asyncio.get_running_loop()
    ident = random.randrange(1, 0xFFFF)
    m = Matcher(ident, targets)

    def readable() -> None:
        now = time.monotonic()
        for _ in range(256):
            try:
                data = icmp.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            pkt = parse_icmp(data)
            if pkt is not None:
                m.feed(pkt, now)

    routes = Routes(topo, me.netns or "")
    tracer = Tracer(icmp, m, routes, timeout)
    if trace:
        m.on_reply = tracer.reply
    loop.add_reader(icmp.fileno(), readable)
    try:
        for t in targets:
            t.sent_at = time.monotonic()
            try:
                icmp.sendto(echo_request(ident, t.seq), (t.address, 0))
            except OSError as e:
                t.outcome, t.detail = _send_error(e)
                m.pending.discard(t.seq)
        tcp_task = asyncio.ensure_future(_tcp_all(tcp, targets, ports, timeout, src.path))
        await _wait(m, lambda: not m.pending, timeout)
        tcp_results = await tcp_task
        unresolved = [t for t in targets if not t.outcome] + [x[0] for x in tcp_results if x[2] == "timeout"]
        neigh = await _neighbours(nl) if unresolved else {}
        for t in targets:
            if not t.outcome:
                t.outcome, t.detail = _classify_silence(routes, t.address, neigh)
        if trace:
            await tracer.finish()
    finally:
        loop.remove_reader(icmp.fileno())
        for s in socks:
            s.close()
    out = []
    for t in targets:
        detail = "; ".join([t.detail] + t.ignored[:2]).strip("; ")
        out.append(_result(me, t, "icmp", t.outcome, detail, rtt=t.rtt_ms, hops=_hops(owners, t), ttl=t.reply_ttl))
    for t, port, outcome, rtt, detail in tcp_results:
        if outcome == "timeout":
            outcome, detail = _classify_silence(routes, t.address, neigh)
        out.append(_result(me, t, f"tcp:{port}", outcome, detail, rtt=rtt))
    return out


def _result(me: Endpoint, t: _Target, method: str, outcome: str, detail: str = "", *,
            rtt: float | None = None, hops: tuple[Hop, ...] = (), ttl: int | None = None) -> ReachResult:
    return ReachResult(me.tenant, t.dst.tenant, me.workload, t.dst.workload, t.address, method, outcome,
                       rtt_ms=None if rtt is None else round(rtt, 3), detail=detail, hops=hops, reply_ttl=ttl)


def _send_error(e: OSError) -> tuple[str, str]:
    if e.errno == errno.EHOSTUNREACH:
        return "no-arp", "host unreachable (neighbour resolution failed)"
    if e.errno == errno.ENETUNREACH:
        return "no-route", "network unreachable from the source"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "timeout", f"refused locally: {e.strerror} (a filter in the source namespace)"
    return "error", f"send failed: {e.strerror or e}"


async def _wait(m: Matcher, finished: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not finished():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        m.changed.clear()
        try:
            await asyncio.wait_for(m.changed.wait(), left)
        except asyncio.TimeoutError:
            return


async def _tcp_all(socks: Sequence[socket.socket], targets: Sequence[_Target], ports: Sequence[int],
                   timeout: float, path: str) -> list[tuple[_Target, int, str, float | None, str]]:
    """TCP connects, at most len(socks) at a time (file descriptors are bounded): the first
    round uses the sockets opened with the ICMP one, later rounds open more in the namespace."""
    loop = asyncio.get_running_loop()
    jobs = [(t, p) for t in targets for p in ports]

    async def one(s: socket.socket, t: _Target, port: int) -> tuple[_Target, int, str, float | None, str]:
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(loop.sock_connect(s, (t.address, port)), timeout)
            return t, port, "reply", (time.monotonic() - t0) * 1000, "connected (port open)"
        except ConnectionRefusedError:
            return t, port, "refused", (time.monotonic() - t0) * 1000, "RST: reachable, port closed"
        except asyncio.TimeoutError:
            return t, port, "timeout", None, ""
        except OSError as e:
            o, d = _send_error(e)
            return t, port, o, None, d
        finally:
            s.close()

    out: list[tuple[_Target, int, str, float | None, str]] = []
    batch = list(socks)
    width = max(1, len(socks))
    while jobs:
        now, jobs = jobs[:width], jobs[width:]
        if not batch:
            def make(k: int = len(now)) -> list[socket.socket]:
                made = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(k)]
                for x in made:
                    x.setblocking(False)
                return made
            try:
                batch = await run_in_netns(path, make)
            except (OSError, RuntimeError) as e:
                out += [(t, p, "error", None, f"{path}: {e}") for t, p in now + jobs]
                break
        out += await asyncio.gather(*(one(s, t, p) for s, (t, p) in zip(batch, now)))
        batch = []
    return out


def _fd_budget(sources: int) -> int:
    """TCP sockets one source may hold at once, within the process's open-file limit."""
    import resource
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    soft = 65536 if soft == resource.RLIM_INFINITY else soft
    return max(8, (soft - 128 - 3 * sources) // max(1, sources))


RTM_NEWNEIGH, RTM_GETNEIGH, NLMSG_DONE, NLMSG_ERROR = 28, 30, 3, 2
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NDA_DST = 1


def neigh_request(seq: int = 1) -> bytes:
    body = struct.pack("=BBHiHBB", socket.AF_INET, 0, 0, 0, 0, 0, 0)
    return struct.pack("=IHHII", 16 + len(body), RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def parse_neigh(data: bytes, out: dict[str, int]) -> bool:
    """Add (address -> NUD state) from one netlink read; True when the dump is complete."""
    off = 0
    while off + 16 <= len(data):
        length, typ = struct.unpack_from("=IH", data, off)
        if length < 16:
            return True
        if typ in (NLMSG_DONE, NLMSG_ERROR):
            return True
        if typ == RTM_NEWNEIGH and length >= 28:
            family, state = data[off + 16], struct.unpack_from("=H", data, off + 24)[0]
            a = off + 28
            while family == socket.AF_INET and a + 4 <= off + length:
                alen, atype = struct.unpack_from("=HH", data, a)
                if alen < 4:
                    break
                if atype == NDA_DST and alen == 8:
                    out[socket.inet_ntoa(data[a + 4:a + 8])] = state
                a += (alen + 3) & ~3
        off += (length + 3) & ~3
    return False


async def _neighbours(nl: socket.socket | None, timeout: float = 1.0) -> dict[str, int]:
    """Neighbour states (address -> NUD_*) of the source namespace, from a netlink socket that
    was opened inside it; {} when it cannot be read (silence is then only "timeout")."""
    if nl is None:
        return {}
    loop = asyncio.get_running_loop()
    out: dict[str, int] = {}
    try:
        nl.send(neigh_request())
        async with asyncio.timeout(timeout):
            while not parse_neigh(await loop.sock_recv(nl, 1 << 16), out):
                pass
    except (OSError, TimeoutError):
        pass
    return out


NO_NEIGH = "no neighbour entry"


def _neigh_table_note(n: int) -> str:
    """The IPv4 neighbour table is one table for all namespaces (gc_thresh3, default 1024);
    when it is full, probes are dropped before ARP and look like silent timeouts."""
    try:
        with open("/proc/sys/net/ipv4/neigh/default/gc_thresh3") as f:
            limit = f.read().strip()
    except OSError:
        limit = "?"
    return (f"{n} probe(s) got no answer and left no neighbour entry: the host's neighbour table "
            f"(net.ipv4.neigh.default.gc_thresh3 = {limit}, shared by all namespaces) may be full; "
            f"those cells are unreliable")


def _classify_silence(routes: Routes, address: str, neigh: dict[str, int]) -> tuple[str, str]:
    r = routes.lookup(address)
    hop = (r.gateway or address) if r else address
    state = neigh.get(hop)
    if state is not None and state & (NUD_INCOMPLETE | NUD_FAILED):
        return "no-arp", f"no ARP answer from {hop}: L2 separated"
    if state is None and r is None and routes.known:
        return "no-route", "no route in the source namespace"
    if state is None:
        return "timeout", f"no answer within the timeout ({NO_NEIGH} for {hop})"
    return "timeout", f"{hop} answers ARP but the probe got no answer: filtered"


class Routes:
    """The main routing table of one namespace, parsed once (lookups are per probe)."""

    def __init__(self, topo: Topology, ns: str) -> None:
        self.table = []
        for r in topo.routes:
            if r.netns == ns:
                try:
                    self.table.append((ipaddress.ip_network(r.dst, strict=False), r))
                except ValueError:
                    continue
        self.table.sort(key=lambda x: -x[0].prefixlen)
        self.known = bool(topo.routes)
        self._cache: dict[str, Route | None] = {}

    def lookup(self, address: str) -> Route | None:
        if address not in self._cache:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                ip = None
            self._cache[address] = next((r for net, r in self.table if ip is not None
                                         and net.version == ip.version and ip in net), None)
        return self._cache[address]


class Tracer:
    """TTL-limited echoes for pairs whose reply TTL says routers are in between.

    Started as soon as such a reply arrives, so it overlaps the main wait. Bounded: one
    destination is traced per (first hop, distance) group of a source, and the others of its
    group get its hops with a note; routers rate-limit "time exceeded", so tracing every pair
    would mostly wait for silence."""

    def __init__(self, icmp: socket.socket, m: Matcher, routes: Routes, timeout: float) -> None:
        self.icmp, self.m, self.routes, self.timeout = icmp, m, routes, timeout
        self.groups: dict[tuple[str, int], list[_Target]] = {}
        self.last_sent = 0.0

    def reply(self, t: _Target) -> None:
        ttl_seen = t.reply_ttl or 0
        if not ttl_seen or ttl_seen in INITIAL_TTLS:
            return
        r = self.routes.lookup(t.address)
        members = self.groups.setdefault((r.gateway if r else "", ttl_seen), [])
        members.append(t)
        if len(members) > 1:
            return
        initial = min((x for x in INITIAL_TTLS if x >= ttl_seen), default=255)
        try:
            for ttl in range(1, min(MAX_TRACE_TTL, initial - ttl_seen + 1) + 1):
                seq = TRACE_SEQ + t.seq * 16 + ttl
                if seq > 0xFFFF:
                    continue
                self.m.trace_pending.add(seq)
                self.icmp.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
                try:
                    self.icmp.sendto(echo_request(self.m.ident, seq), (t.address, 0))
                except OSError:
                    self.m.trace_pending.discard(seq)
        finally:
            self.icmp.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 64)
        self.last_sent = time.monotonic()

    async def finish(self) -> None:
        left = self.last_sent + self.timeout - time.monotonic()
        if self.m.trace_pending and left > 0:
            await _wait(self.m, lambda: not self.m.trace_pending, left)
        for members in self.groups.values():
            rep = members[0]
            for t in members[1:]:
                t.hops, t.hop_done = dict(rep.hops), rep.hop_done
                if rep.hops:
                    t.detail = (t.detail + "; " if t.detail else "") + \
                        f"hops as traced to {rep.address} (same first hop and distance)"


def _hops(owners: dict[str, str], t: _Target) -> tuple[Hop, ...]:
    if not t.hops:
        return ()
    last = t.hop_done or (max(t.hops) + 1)
    out = []
    for ttl in range(1, last):
        addr = t.hops.get(ttl, "")
        out.append(Hop(ttl, addr or "*", owners.get(addr, "")))
    return tuple(out)


def valid_ports(ports: Sequence[int]) -> tuple[int, ...]:
    bad = [p for p in ports if not 0 < p < 65536]
    if bad:
        raise ValueError(f"not a TCP port: {', '.join(map(str, bad))}")
    return tuple(ports)




# ---------------------------------------------------------------- headless entry (check --probe)


async def probe_remote(host: HostTransport, hs: HostState, *, timeout: float = 1.0,
                       concurrency: int = 8, progress: Progress | None = None) -> ReachMatrix:
    """Over SSH: `ip netns exec NS ping -c1 -W1` for every address, one command per source
    (pings run in parallel inside it), at most `concurrency` sources at a time. Only reply or
    timeout can be told apart this way."""
    started = time.time()
    sources, dests, results = plan(hs)
    sem = asyncio.Semaphore(concurrency)
    wait = str(max(1, round(timeout)))
    total = sum(len(d.addresses) for s in sources for d in dests if d.workload != s.endpoint.workload)
    done = 0

    async def one(src: Source) -> list[ReachResult]:
        nonlocal done
        ns = netns_of_path(src.path)
        targets = [(d, a) for d in dests if d.workload != src.endpoint.workload for a in d.addresses
                   if _is_ip(a)]
        if ns is None or not targets:
            return []
        script = ('for a in "$@"; do (ping -n -c1 -W' + wait +
                  ' "$a" >/dev/null 2>&1 && echo "$a reply" || echo "$a timeout") & done; wait')
        argv = ["ip", "netns", "exec", ns, "sh", "-c", script, "sh", *sorted({a for _, a in targets})]
        async with sem:
            try:
                res = await host.run(argv, timeout=float(wait) + 10)
                seen = dict(line.split(" ", 1) for line in res.stdout.splitlines() if " " in line)
                err = "" if res.ok else res.stderr.strip()[:200]
            except Exception as e:  # noqa: BLE001 - reported per pair
                seen, err = {}, str(e)
        done += len(targets)
        if progress is not None:
            progress(done, total)
        return [ReachResult(src.endpoint.tenant, d.tenant, src.endpoint.workload, d.workload, a, "icmp",
                            seen.get(a, "error"), detail=("ip netns exec ping" if a in seen else err or "no output"))
                for d, a in targets]

    for part in await asyncio.gather(*(one(s) for s in sources)):
        results += part
    return ReachMatrix(results=tuple(results), started_at=started, finished_at=time.time(), timeout_s=timeout)


def netns_of_path(path: str) -> str | None:
    return path.rsplit("/", 1)[1] if path.startswith("/run/netns/") else None


def _is_ip(a: str) -> bool:
    try:
        ipaddress.ip_address(a)
        return True
    except ValueError:
        return False


async def probe_engine(engine: Any, *, ports: Sequence[int] = (), timeout: float | None = None,
                       progress: Progress | None = None) -> None:
    """Probe every host of a running Engine and merge the results into its State (the action
    behind `tenantscope check --probe` and the TUI's probe key)."""
    for t in engine.hosts:
        hs = next((h for h in engine.state.hosts if h.host.name == t.name), None)
        if hs is None or hs.topology is None:
            continue
        if t.is_local and os.geteuid() == 0:
            rm = await probe_matrix(hs, ports=ports, timeout=timeout or 0.5, progress=progress)
        elif not t.is_local:
            rm = await probe_remote(t, hs, timeout=max(1.0, timeout or 1.0), progress=progress)
        else:
            rm = ReachMatrix(started_at=time.time(), finished_at=time.time(),
                             errors=("active probes need root (raw sockets and entering namespaces)",))
        engine.update_host(t.name, lambda st, rm=rm: merged(st, rm))


async def probe_engine_for(engine: Any, opts: Any) -> None:
    """`check --probe`: ports from the command line, else from the config's `[network]` table."""
    import sys

    from probes.network.policy import network_options
    from probes.tenancy import config_for
    cfg_ports, timeout = network_options(config_for(opts))
    given = dict(opts.extra).get("probe", "")
    ports = valid_ports([int(p) for p in given.split(",") if p]) if given else cfg_ports
    t0 = time.monotonic()
    await probe_engine(engine, ports=ports, timeout=timeout)
    n = sum(len(h.reach.results) for h in engine.state.hosts if h.reach)
    print(f"tenantscope: probed {n} pair(s) in {time.monotonic() - t0:.2f} s", file=sys.stderr)
