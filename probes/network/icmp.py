"""ICMP echo packets and the matching of what a raw socket receives to what was sent.

A raw ICMP socket sees every ICMP packet of its namespace (the prober filters it down to
echo replies, unreachables and time-exceeded with ICMP_FILTER). A reply counts only when type,
identifier, sequence number and source address all match a probe; an ICMP error counts when
the original echo embedded in it is ours and went to the probed address.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

ICMP_ECHO_REPLY, ICMP_UNREACH, ICMP_ECHO, ICMP_TIME_EXCEEDED = 0, 3, 8, 11
INITIAL_TTLS = (64, 128, 255)
MAX_TRACE_TTL = 8
TRACE_SEQ = 0x8000


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
        ident, seq = struct.unpack("!HH", packet[ihl + 4 : ihl + 8])
        return Icmp(src, ttl, typ, code, ident, seq)
    if typ in (ICMP_UNREACH, ICMP_TIME_EXCEEDED):
        inner = packet[ihl + 8 :]
        if len(inner) < 28 or inner[0] >> 4 != 4:
            return None
        iihl = (inner[0] & 0x0F) * 4
        if inner[9] != socket.IPPROTO_ICMP or len(inner) < iihl + 8 or inner[iihl] != ICMP_ECHO:
            return None
        ident, seq = struct.unpack("!HH", inner[iihl + 4 : iihl + 8])
        return Icmp(src, ttl, typ, code, ident, seq, socket.inet_ntoa(inner[16:20]))
    return None


@dataclass
class _Target:
    dst: object  # what the caller probes (unused here; measure.py: None); the module stays stdlib-only
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
