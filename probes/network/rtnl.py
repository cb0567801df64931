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
