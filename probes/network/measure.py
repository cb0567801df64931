"""What one source namespace measures: the packets, sockets and timers of an active probe run.

The local prober (probes/network/prober.py) and the remote helper (probes/network/
remote_prober.py, which runs THIS module's source with python3 on an SSH host) share it, so a
remote host is probed exactly as the local one: one raw ICMP socket per source namespace
entered with setns, TCP connects from sockets opened there, TTL-limited echoes for the hops,
and the neighbour table of the namespace for the silent ones. `SourceProbe` is the request
and `SourceMeasurement` the answer, the same typed dataclasses on both sides; turning the
answer into ReachResults (routes, owners of addresses, tenants) stays with the prober.

Constraints of being shipped as source: imports from the standard library and from icmp.py,
neigh.py and nsenter.py only (their `from probes...` lines are dropped, their names are in the
same program), and nothing newer than Python 3.8 at run time.
"""

from __future__ import annotations

import asyncio
import errno
import random
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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
from probes.network.neigh import WAIT_TIMEOUT, neighbours
from probes.network.nsenter import run_in_netns

SOL_RAW, ICMP_FILTER, SO_RCVBUFFORCE = 255, 1, 33
WANTED_ICMP = (1 << ICMP_ECHO_REPLY) | (1 << ICMP_UNREACH) | (1 << ICMP_TIME_EXCEEDED)


@dataclass(frozen=True)
class SourceProbe:
    """What to probe from one source namespace (opened by path; `inode`, when set, is the
    namespace the path must still be)."""

    path: str
    inode: int
    addresses: tuple[str, ...]  # the ICMP targets; TCP goes to each with each port
    ports: tuple[int, ...] = ()
    timeout: float = 0.5
    trace: bool = True
    first_hops: tuple[str, ...] = ()  # per address: its gateway in the source's routes ("" direct)
    tcp_budget: int = 64  # TCP sockets held at once


@dataclass(frozen=True)
class EchoOutcome:
    address: str
    outcome: str  # reply, no-arp, no-route, timeout, error; "" when nothing came back
    detail: str = ""
    rtt_ms: float | None = None
    reply_ttl: int | None = None
    hops: tuple[tuple[int, str], ...] = ()  # (ttl, router address) of a traced path
    hop_done: int | None = None  # ttl at which the destination itself answered


@dataclass(frozen=True)
class TcpOutcome:
    address: str
    port: int
    outcome: str  # reply, refused, timeout, no-arp, no-route, error
    rtt_ms: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class SourceMeasurement:
    echoes: tuple[EchoOutcome, ...] = ()
    tcp: tuple[TcpOutcome, ...] = ()
    neighbours: tuple[tuple[str, int], ...] = ()  # NUD state of the next hops of silent probes
    error: str = ""  # the namespace could not be entered: nothing was sent


async def measure_source(req: SourceProbe) -> SourceMeasurement:
    """Send every probe of `req` from inside its namespace and collect what came back."""
    targets = [_Target(None, a, i) for i, a in enumerate(req.addresses)]
    if not targets:
        return SourceMeasurement()
    n_tcp = min(len(targets) * len(req.ports), req.tcp_budget)

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
        socks = await run_in_netns(req.path, make, req.inode)
    except (OSError, RuntimeError) as e:
        why = "namespace gone" if isinstance(e, FileNotFoundError) else f"cannot enter namespace: {e}"
        return SourceMeasurement(error=f"{req.path}: {why}")
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

    hop_of = dict(zip(req.addresses, req.first_hops))
    tracer = Tracer(icmp, m, hop_of, req.timeout)
    if req.trace:
        m.on_reply = tracer.reply
    loop.add_reader(icmp.fileno(), readable)
    neigh: dict[str, int] = {}
    try:
        for t in targets:
            t.sent_at = time.monotonic()
            try:
                icmp.sendto(echo_request(ident, t.seq), (t.address, 0))
            except OSError as e:
                t.outcome, t.detail = send_error(e)
                m.pending.discard(t.seq)
        tcp_task = asyncio.ensure_future(_tcp_all(tcp, targets, req.ports, req.timeout, req.path, req.inode))
        await _wait(m, lambda: not m.pending, req.timeout)
        tcp_results = await tcp_task
        silent = {t.address for t in targets if not t.outcome} | {
            x.address for x in tcp_results if x.outcome == "timeout"
        }
        if silent:
            wanted = {hop_of.get(a) or a for a in silent}
            neigh = {a: s for a, s in (await neighbours(nl)).items() if a in wanted}
        if req.trace:
            await tracer.finish()
    finally:
        loop.remove_reader(icmp.fileno())
        for s in socks:
            s.close()
    echoes = tuple(
        EchoOutcome(
            t.address,
            t.outcome,
            "; ".join([t.detail] + t.ignored[:2]).strip("; "),
            t.rtt_ms,
            t.reply_ttl,
            tuple(sorted(t.hops.items())),
            t.hop_done,
        )
        for t in targets
    )
    return SourceMeasurement(echoes, tuple(tcp_results), tuple(sorted(neigh.items())))


def send_error(e: OSError) -> tuple[str, str]:
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
        except WAIT_TIMEOUT:
            return


async def _tcp_all(
    socks: Sequence[socket.socket],
    targets: Sequence[_Target],
    ports: Sequence[int],
    timeout: float,
    path: str,
    inode: int = 0,
) -> list[TcpOutcome]:
    """TCP connects, at most len(socks) at a time (file descriptors are bounded): the first
    round uses the sockets opened with the ICMP one, later rounds open more in the namespace."""
    loop = asyncio.get_running_loop()
    jobs = [(t, p) for t in targets for p in ports]

    async def one(s: socket.socket, t: _Target, port: int) -> TcpOutcome:
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(loop.sock_connect(s, (t.address, port)), timeout)
            return TcpOutcome(
                t.address, port, "reply", (time.monotonic() - t0) * 1000, "connected (port open)"
            )
        except ConnectionRefusedError:
            return TcpOutcome(
                t.address, port, "refused", (time.monotonic() - t0) * 1000, "RST: reachable, port closed"
            )
        except WAIT_TIMEOUT:
            return TcpOutcome(t.address, port, "timeout")
        except OSError as e:
            o, d = send_error(e)
            return TcpOutcome(t.address, port, o, None, d)
        finally:
            s.close()

    out: list[TcpOutcome] = []
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
                out += [TcpOutcome(t.address, p, "error", None, f"{path}: {e}") for t, p in now + jobs]
                break
        out += await asyncio.gather(*(one(s, t, p) for s, (t, p) in zip(batch, now)))
        batch = []
    return out


class Tracer:
    """TTL-limited echoes for pairs whose reply TTL says routers are in between.

    Started as soon as such a reply arrives, so it overlaps the main wait. Bounded: one
    destination is traced per (first hop, distance) group of a source, and the others of its
    group get its hops with a note; routers rate-limit "time exceeded", so tracing every pair
    would mostly wait for silence."""

    def __init__(self, icmp: socket.socket, m: Matcher, first_hop: dict[str, str], timeout: float) -> None:
        self.icmp, self.m, self.first_hop, self.timeout = icmp, m, first_hop, timeout
        self.groups: dict[tuple[str, int], list[_Target]] = {}
        self.last_sent = 0.0

    def reply(self, t: _Target) -> None:
        ttl_seen = t.reply_ttl or 0
        if not ttl_seen or ttl_seen in INITIAL_TTLS:
            return
        members = self.groups.setdefault((self.first_hop.get(t.address, ""), ttl_seen), [])
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
