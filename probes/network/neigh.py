"""The neighbour (ARP) table of a namespace, read over a netlink socket opened inside it.

After a probe timed out, the state of the next hop's entry tells "no ARP answer" (INCOMPLETE
or FAILED: L2 separation) from "answers ARP but the probe got nothing back" (filtered).
The dump is parsed here (a few fields of RTM_NEWNEIGH) so it runs on the event loop.
"""

from __future__ import annotations

import asyncio
import socket
import struct

NUD_INCOMPLETE, NUD_FAILED = 0x01, 0x20
RTM_NEWNEIGH, RTM_GETNEIGH, NLMSG_DONE, NLMSG_ERROR = 28, 30, 3, 2
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NDA_DST = 1
# what asyncio.wait_for raises: not the builtin TimeoutError before Python 3.11 (remote hosts)
WAIT_TIMEOUT = asyncio.TimeoutError


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
                    out[socket.inet_ntoa(data[a + 4 : a + 8])] = state
                a += (alen + 3) & ~3
        off += (length + 3) & ~3
    return False


async def neighbours(nl: socket.socket | None, timeout: float = 1.0) -> dict[str, int]:
    """Neighbour states (address -> NUD_*) of the source namespace, from a netlink socket that
    was opened inside it; {} when it cannot be read (silence is then only "timeout")."""
    if nl is None:
        return {}
    loop = asyncio.get_running_loop()
    out: dict[str, int] = {}

    async def dump() -> None:
        while not parse_neigh(await loop.sock_recv(nl, 1 << 16), out):
            pass

    try:
        nl.send(neigh_request())
        # wait_for, not asyncio.timeout: this also runs in the remote helper (Python >= 3.8)
        await asyncio.wait_for(dump(), timeout)
    except (OSError, WAIT_TIMEOUT):
        pass
    return out


NO_NEIGH = "no neighbour entry"


def neigh_table_note(n: int) -> str:
    """The IPv4 neighbour table is one table for all namespaces (gc_thresh3, default 1024);
    when it is full, probes are dropped before ARP and look like silent timeouts."""
    try:
        with open("/proc/sys/net/ipv4/neigh/default/gc_thresh3") as f:
            limit = f.read().strip()
    except OSError:
        limit = "?"
    return (
        f"{n} probe(s) got no answer and left no neighbour entry: the host's neighbour table "
        f"(net.ipv4.neigh.default.gc_thresh3 = {limit}, shared by all namespaces) may be full; "
        f"those cells are unreliable"
    )
