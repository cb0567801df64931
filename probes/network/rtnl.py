"""A few rtnetlink dumps parsed by hand: interface names and addresses of a namespace.

The netns inventory needs only names and addresses; pyroute2 decodes every attribute of every
link (about 1 ms a link here), which at tens of namespaces is most of an idle refresh. A dump
is one request and a few recv calls on a socket that was opened inside the namespace (see
`route_socket`: setns in the calling thread, never a forked helper), so reading a namespace
spawns no process and costs tens of microseconds.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from probes.network.nsenter import in_netns

RTM_GETLINK, RTM_NEWLINK = 18, 16
RTM_GETADDR, RTM_NEWADDR = 22, 20
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
IFLA_IFNAME = 3
IFA_ADDRESS, IFA_LOCAL = 1, 2
RT_SCOPE_HOST = 254

# multicast groups (RTMGRP_*): what changes the topology
RTMGRP_LINK = 0x1
RTMGRP_NEIGH = 0x4
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
TOPOLOGY_GROUPS = (
    RTMGRP_LINK
    | RTMGRP_IPV4_IFADDR
    | RTMGRP_IPV6_IFADDR
    | RTMGRP_IPV4_ROUTE
    | RTMGRP_IPV6_ROUTE
    | RTMGRP_NEIGH  # the topology keeps IPv4 neighbours (VM addresses learned by ARP)
)


def route_socket(path: str = "", inode: int = 0, groups: int = 0) -> socket.socket:
    """Blocking: a NETLINK_ROUTE socket in the namespace at `path` ('' = this thread's own),
    bound to the multicast `groups` (0: none, for dumps only). Never creates a namespace."""

    def make() -> socket.socket:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        try:
            s.bind((0, groups))
        except OSError:
            s.close()
            raise
        return s

    return in_netns(path, make, inode) if path else make()


def _attrs(data: bytes, off: int, end: int) -> Iterator[tuple[int, bytes]]:
    while off + 4 <= end:
        length, typ = struct.unpack_from("=HH", data, off)
        if length < 4:
            return
        yield typ & 0x3FFF, data[off + 4 : off + length]
        off += (length + 3) & ~3


def _dump(sock: socket.socket, msgtype: int, body: bytes, seq: int) -> Iterator[tuple[int, bytes, int]]:
    """(message type, buffer, offset of the payload) of every message of one dump."""
    sock.send(struct.pack("=IHHII", 16 + len(body), msgtype, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body)
    while True:
        data = sock.recv(1 << 16)
        off = 0
        while off + 16 <= len(data):
            length, typ, _flags, mseq, _pid = struct.unpack_from("=IHHII", data, off)
            if length < 16:
                return
            if mseq == seq:
                if typ == NLMSG_DONE:
                    return
                if typ == NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", data, off + 16)
                    if err:
                        raise OSError(-err, os.strerror(-err))
                    return
                yield typ, data[off : off + length], 16
            off += (length + 3) & ~3
        if not data:
            return


@dataclass(frozen=True)
class NsAddresses:
    interfaces: tuple[str, ...]
    addresses: tuple[str, ...]  # CIDR; host-scope addresses (127.0.0.1, ::1) left out


def read_addresses(sock: socket.socket) -> NsAddresses:
    """Interface names (dump order) and addresses as `ip -j addr` lists them (per link, in
    the kernel's order; IFA_LOCAL before IFA_ADDRESS, as `ip` shows it)."""
    names: list[str] = []
    order: list[int] = []
    for typ, buf, off in _dump(sock, RTM_GETLINK, struct.pack("=BxHiII", socket.AF_UNSPEC, 0, 0, 0, 0), 1):
        if typ != RTM_NEWLINK:
            continue
        (index,) = struct.unpack_from("=i", buf, off + 4)
        for t, v in _attrs(buf, off + 16, len(buf)):
            if t == IFLA_IFNAME:
                names.append(v.split(b"\0", 1)[0].decode("utf-8", "replace"))
                order.append(index)
                break
    by_link: dict[int, list[str]] = {}
    for typ, buf, off in _dump(sock, RTM_GETADDR, struct.pack("=BBBBi", socket.AF_UNSPEC, 0, 0, 0, 0), 2):
        if typ != RTM_NEWADDR:
            continue
        family, prefixlen, _flags, scope, index = struct.unpack_from("=BBBBi", buf, off)
        if scope == RT_SCOPE_HOST:
            continue
        local = address = b""
        for t, v in _attrs(buf, off + 8, len(buf)):
            if t == IFA_LOCAL:
                local = v
            elif t == IFA_ADDRESS:
                address = v
        raw = local or address
        if not raw:
            continue
        try:
            text = socket.inet_ntop(family, raw)
        except (ValueError, OSError):
            continue
        by_link.setdefault(index, []).append(f"{text}/{prefixlen}")
    addrs = tuple(a for i in order for a in by_link.get(i, ()))
    return NsAddresses(tuple(names), addrs)


def namespace_addresses(path: str = "", inode: int = 0) -> NsAddresses:
    """Blocking: interfaces and addresses of the namespace at `path` ('' = the caller's)."""
    with route_socket(path, inode) as s:
        return read_addresses(s)


# ---------------------------------------------------------------- the topology's dumps
# Links (with their kind, bridge/VLAN/bridge-port data and IPv4 devconf), IPv4 addresses,
# main-table IPv4 routes and IPv4 neighbours, as dicts with the names and shapes pyroute2
# gives (the topology's converters read those). pyroute2 costs ~23 MiB of RSS and 311
# modules for these four dumps, and decodes every attribute of every message.

RTM_NEWROUTE, RTM_GETROUTE = 24, 26
RTM_NEWNEIGH, RTM_GETNEIGH = 28, 30
IFLA_ADDRESS, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 4, 5, 10
IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_AF_SPEC = 16, 18, 26
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_KIND, IFLA_INFO_SLAVE_DATA = 1, 2, 4, 5
IFLA_BR_VLAN_FILTERING = 7
IFLA_VLAN_ID = 1
IFLA_BRPORT_LEARNING, IFLA_BRPORT_UNICAST_FLOOD, IFLA_BRPORT_ISOLATED = 8, 9, 33
IFLA_INET_CONF = 1
IPV4_DEVCONF = {"forwarding": 0, "proxy_arp": 2}  # IPV4_DEVCONF_FORWARDING=1, _PROXY_ARP=3 (1-based)
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
NDA_DST, NDA_LLADDR = 1, 2
OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")


def _u(v: bytes) -> int:
    """An unsigned integer attribute (u8, u16 or u32, host order)."""
    return int.from_bytes(v[:4], sys.byteorder) if v else 0


def _str(v: bytes) -> str:
    return v.split(b"\0", 1)[0].decode("utf-8", "replace")


def _l2(v: bytes) -> str:
    return ":".join(f"{b:02x}" for b in v)


def _ip(family: int, v: bytes) -> str:
    try:
        return socket.inet_ntop(family, v)
    except (ValueError, OSError):
        return ""


def _nested(v: bytes) -> dict[int, bytes]:
    return dict(_attrs(v, 0, len(v)))


def _linkinfo(v: bytes) -> dict[str, object]:
    info = _nested(v)
    out: dict[str, object] = {}
    kind = _str(info[IFLA_INFO_KIND]) if IFLA_INFO_KIND in info else ""
    slave = _str(info[IFLA_INFO_SLAVE_KIND]) if IFLA_INFO_SLAVE_KIND in info else ""
    if kind:
        out["IFLA_INFO_KIND"] = kind
    if slave:
        out["IFLA_INFO_SLAVE_KIND"] = slave
    data = _nested(info[IFLA_INFO_DATA]) if IFLA_INFO_DATA in info else {}
    if kind == "bridge" and IFLA_BR_VLAN_FILTERING in data:
        out["IFLA_INFO_DATA"] = {"IFLA_BR_VLAN_FILTERING": _u(data[IFLA_BR_VLAN_FILTERING])}
    elif kind == "vlan" and IFLA_VLAN_ID in data:
        out["IFLA_INFO_DATA"] = {"IFLA_VLAN_ID": _u(data[IFLA_VLAN_ID])}
    sd = _nested(info[IFLA_INFO_SLAVE_DATA]) if IFLA_INFO_SLAVE_DATA in info else {}
    if slave == "bridge" and sd:
        port = {}
        for name, t in (
            ("IFLA_BRPORT_ISOLATED", IFLA_BRPORT_ISOLATED),
            ("IFLA_BRPORT_LEARNING", IFLA_BRPORT_LEARNING),
            ("IFLA_BRPORT_UNICAST_FLOOD", IFLA_BRPORT_UNICAST_FLOOD),
        ):
            if t in sd:
                port[name] = _u(sd[t])
        out["IFLA_INFO_SLAVE_DATA"] = port
    return out


def _af_spec(v: bytes) -> dict[str, object]:
    by_family = _nested(v)
    inet = by_family.get(socket.AF_INET)
    if inet is None:
        return {}
    conf = _nested(inet).get(IFLA_INET_CONF, b"")
    values = struct.unpack_from(f"={len(conf) // 4}I", conf) if conf else ()
    return {"AF_INET": {k: values[i] for k, i in IPV4_DEVCONF.items() if i < len(values)}}


class RtnlReader:
    """The four dumps the topology reads, on one NETLINK_ROUTE socket (opened in the
    namespace to read: `route_socket`); the methods mirror pyroute2's IPRoute for them."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def _messages(self, msgtype: int, body: bytes, want: int) -> Iterator[tuple[bytes, int]]:
        self._seq += 1
        for typ, buf, off in _dump(self._sock, msgtype, body, self._seq):
            if typ == want:
                yield buf, off

    def get_links(self) -> list[dict[str, object]]:
        out = []
        body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, 0, 0, 0)
        for buf, off in self._messages(RTM_GETLINK, body, RTM_NEWLINK):
            (index,) = struct.unpack_from("=i", buf, off + 4)
            lk: dict[str, object] = {"index": index}
            for t, v in _attrs(buf, off + 16, len(buf)):
                if t == IFLA_IFNAME:
                    lk["IFLA_IFNAME"] = _str(v)
                elif t == IFLA_ADDRESS:
                    lk["IFLA_ADDRESS"] = _l2(v)
                elif t == IFLA_MTU:
                    lk["IFLA_MTU"] = _u(v)
                elif t == IFLA_LINK:
                    lk["IFLA_LINK"] = _u(v)
                elif t == IFLA_MASTER:
                    lk["IFLA_MASTER"] = _u(v)
                elif t == IFLA_OPERSTATE:
                    n = _u(v)
                    lk["IFLA_OPERSTATE"] = OPERSTATES[n] if n < len(OPERSTATES) else str(n)
                elif t == IFLA_LINKINFO:
                    lk["IFLA_LINKINFO"] = _linkinfo(v)
                elif t == IFLA_AF_SPEC:
                    lk["IFLA_AF_SPEC"] = _af_spec(v)
            out.append(lk)
        return out

    def get_addr(self, family: int = socket.AF_INET) -> list[dict[str, object]]:
        out = []
        body = struct.pack("=BBBBi", family, 0, 0, 0, 0)
        for buf, off in self._messages(RTM_GETADDR, body, RTM_NEWADDR):
            fam, prefixlen, _flags, _scope, index = struct.unpack_from("=BBBBi", buf, off)
            a: dict[str, object] = {"index": index, "prefixlen": prefixlen}
            for t, v in _attrs(buf, off + 8, len(buf)):
                if t == IFA_ADDRESS:
                    a["IFA_ADDRESS"] = _ip(fam, v)
                elif t == IFA_LOCAL:
                    a["IFA_LOCAL"] = _ip(fam, v)
            if fam == family:
                out.append(a)
        return out

    def get_routes(self, family: int = socket.AF_INET, table: int = 254) -> list[dict[str, object]]:
        out = []
        body = struct.pack("=BBBBBBBBI", family, 0, 0, 0, 0, 0, 0, 0, 0)
        for buf, off in self._messages(RTM_GETROUTE, body, RTM_NEWROUTE):
            fam, dst_len, _src, _tos, tbl, _proto, _scope, rtype, _fl = struct.unpack_from(
                "=BBBBBBBBI", buf, off
            )
            r: dict[str, object] = {"type": rtype, "dst_len": dst_len}
            rt_table = tbl
            for t, v in _attrs(buf, off + 12, len(buf)):
                if t == RTA_DST:
                    r["RTA_DST"] = _ip(fam, v)
                elif t == RTA_GATEWAY:
                    r["RTA_GATEWAY"] = _ip(fam, v)
                elif t == RTA_OIF:
                    r["RTA_OIF"] = _u(v)
                elif t == RTA_TABLE:
                    rt_table = _u(v)
            r["RTA_TABLE"] = rt_table
            if fam == family and rt_table == table:
                out.append(r)
        return out

    def get_neighbours(self, family: int = socket.AF_INET) -> list[dict[str, object]]:
        out = []
        body = struct.pack("=BxxxiHBB", family, 0, 0, 0, 0)
        for buf, off in self._messages(RTM_GETNEIGH, body, RTM_NEWNEIGH):
            fam, ifindex, state, _flags, _type = struct.unpack_from("=BxxxiHBB", buf, off)
            n: dict[str, object] = {"ifindex": ifindex, "state": state}
            for t, v in _attrs(buf, off + 12, len(buf)):
                if t == NDA_DST:
                    n["NDA_DST"] = _ip(fam, v)
                elif t == NDA_LLADDR:
                    n["NDA_LLADDR"] = _l2(v)
            if fam == family:
                out.append(n)
        return out
