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
from dataclasses import replace

from probes.hosts.base import HostTransport
from probes.model import HostState
from probes.network.icmp import (
    ICMP_ECHO_REPLY,
    ICMP_TIME_EXCEEDED,
    ICMP_UNREACH,
    INITIAL_TTLS,
    MAX_TRACE_TTL,
    TRACE_SEQ,
    Matcher,
    _Target,
    echo_request,
    parse_icmp,
)
from probes.network.model import Hop, ReachMatrix, ReachResult, Route, Topology
from probes.network.neigh import NO_NEIGH, NUD_FAILED, NUD_INCOMPLETE, neigh_table_note, neighbours
from probes.network.nsenter import run_in_netns
from probes.network.plan import Source, plan
from probes.network.segments import Endpoint

SOL_RAW, ICMP_FILTER, SO_RCVBUFFORCE = 255, 1, 33
WANTED_ICMP = (1 << ICMP_ECHO_REPLY) | (1 << ICMP_UNREACH) | (1 << ICMP_TIME_EXCEEDED)


Progress = Callable[[int, int], object]  # (pairs done, pairs total)


async def probe_matrix(
    hs: HostState,
    *,
    timeout: float = 0.5,
    ports: Sequence[int] = (),
    concurrency: int = 256,
    trace: bool = True,
    progress: Progress | None = None,
) -> ReachMatrix:
    """Probe every destination address from every source namespace of `hs`. Cancellable."""
    started = time.time()
    sources, dests, results = plan(hs)
    topo = hs.topology or Topology()
    total = sum(
        len([1 for d in dests if d.workload != s.endpoint.workload for _ in d.addresses]) for s in sources
    ) * (1 + len(ports))
    done = 0
    sem = asyncio.Semaphore(max(1, concurrency))
    owners = {a.split("/")[0]: lk.where for lk in topo.links for a in lk.addresses}
    budget = _fd_budget(min(len(sources), concurrency))
    errors: list[str] = []

    async def one(src: Source) -> list[ReachResult]:
        nonlocal done
        async with sem:
            out = await _probe_source(
                src, dests, topo, timeout=timeout, ports=ports, trace=trace, owners=owners, tcp_budget=budget
            )
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
        errors.append(neigh_table_note(no_entry))
    return ReachMatrix(
        results=tuple(results),
        started_at=started,
        finished_at=time.time(),
        timeout_s=timeout,
        ports=tuple(ports),
        errors=tuple(errors),
    )


def merged(hs: HostState, matrix: ReachMatrix) -> HostState:
    """Pure: the host's state with this probe run as its observed reachability."""
    return replace(hs, reach=matrix)


async def _probe_source(
    src: Source,
    dests: Sequence[Endpoint],
    topo: Topology,
    *,
    timeout: float,
    ports: Sequence[int],
    trace: bool,
    owners: dict[str, str],
    tcp_budget: int = 64,
) -> list[ReachResult]:
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
        socks = await run_in_netns(src.path, make, src.inode)
    except (OSError, RuntimeError) as e:
        why = "namespace gone" if isinstance(e, FileNotFoundError) else f"cannot enter namespace: {e}"
        return [_result(me, t, "icmp", "error", f"{src.path}: {why}") for t in targets] + [
            _result(me, t, f"tcp:{p}", "error", f"{src.path}: {why}") for t in targets for p in ports
        ]
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
        tcp_task = asyncio.ensure_future(_tcp_all(tcp, targets, ports, timeout, src.path, src.inode))
        await _wait(m, lambda: not m.pending, timeout)
        tcp_results = await tcp_task
        unresolved = [t for t in targets if not t.outcome] + [x[0] for x in tcp_results if x[2] == "timeout"]
        neigh = await neighbours(nl) if unresolved else {}
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
        out.append(
            _result(me, t, "icmp", t.outcome, detail, rtt=t.rtt_ms, hops=_hops(owners, t), ttl=t.reply_ttl)
        )
    for t, port, outcome, rtt, detail in tcp_results:
        if outcome == "timeout":
            outcome, detail = _classify_silence(routes, t.address, neigh)
        out.append(_result(me, t, f"tcp:{port}", outcome, detail, rtt=rtt))
    return out


def _result(
    me: Endpoint,
    t: _Target,
    method: str,
    outcome: str,
    detail: str = "",
    *,
    rtt: float | None = None,
    hops: tuple[Hop, ...] = (),
    ttl: int | None = None,
) -> ReachResult:
    return ReachResult(
        me.tenant,
        t.dst.tenant,
        me.workload,
        t.dst.workload,
        t.address,
        method,
        outcome,
        rtt_ms=None if rtt is None else round(rtt, 3),
        detail=detail,
        hops=hops,
        reply_ttl=ttl,
    )


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
        except TimeoutError:
            return


async def _tcp_all(
    socks: Sequence[socket.socket],
    targets: Sequence[_Target],
    ports: Sequence[int],
    timeout: float,
    path: str,
    inode: int = 0,
) -> list[tuple[_Target, int, str, float | None, str]]:
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
        except TimeoutError:
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
                batch = await run_in_netns(path, make, inode)
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
            self._cache[address] = next(
                (r for net, r in self.table if ip is not None and net.version == ip.version and ip in net),
                None,
            )
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
                    t.detail = (
                        t.detail + "; " if t.detail else ""
                    ) + f"hops as traced to {rep.address} (same first hop and distance)"


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


async def probe_host(
    t: HostTransport,
    hs: HostState,
    *,
    ports: Sequence[int] = (),
    timeout: float | None = None,
    progress: Progress | None = None,
) -> ReachMatrix:
    """One host's probe run: locally from inside its namespaces (root), remotely through its
    transport; a local run without root is a matrix that says why nothing was sent."""
    if t.is_local and os.geteuid() == 0:
        return await probe_matrix(hs, ports=ports, timeout=timeout or 0.5, progress=progress)
    if not t.is_local:
        from probes.network.remote import probe_remote

        return await probe_remote(t, hs, timeout=max(1.0, timeout or 1.0), progress=progress)
    return ReachMatrix(
        started_at=time.time(),
        finished_at=time.time(),
        errors=("active probes need root (raw sockets and entering namespaces)",),
    )
