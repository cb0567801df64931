"""The topology's rtnetlink dumps parsed by hand (probes/network/rtnl.py) give exactly what
pyroute2 gave (issue 16: pyroute2 cost ~23 MiB of RSS), on a real namespace holding every kind
of thing the checks read: a bridge (its VLAN filtering flag), an isolated bridge port with learning and
unicast flooding off, veth pairs within and across namespaces, proxy ARP, forwarding, a
gateway route and a permanent neighbour; and on the host's own namespace."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator

import pytest

from probes.network import topology
from probes.network.rtnl import RtnlReader, route_socket
from tests.helpers import needs_root, needs_tool

NS = f"tsi-{os.getpid()}-r"
PEER = f"tsi-{os.getpid()}-a"


def ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, text=True)


@pytest.fixture
def rich_ns() -> Iterator[str]:
    for n in (NS, PEER):
        subprocess.run(["ip", "netns", "del", n], capture_output=True)
        ip("netns", "add", n)
    try:
        x = ("-n", NS)
        ip(*x, "link", "add", "br0", "type", "bridge")  # (this kernel has no VLAN filtering)
        ip(*x, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", PEER)
        ip(*x, "link", "set", "v0", "master", "br0")
        subprocess.run(
            [
                "bridge",
                "-n",
                NS,
                "link",
                "set",
                "dev",
                "v0",
                "isolated",
                "on",
                "learning",
                "off",
                "flood",
                "off",
            ],
            check=True,
            capture_output=True,
        )
        ip(*x, "link", "add", "d0", "type", "veth", "peer", "name", "d1")  # (no dummy module here)
        for dev in ("lo", "br0", "v0", "d0", "d1"):
            ip(*x, "link", "set", dev, "up")
        ip(*x, "addr", "add", "10.99.0.1/24", "dev", "br0")
        ip(*x, "addr", "add", "10.97.0.1/24", "dev", "d0")
        ip("-n", PEER, "addr", "add", "10.99.0.2/24", "dev", "v1")
        ip("-n", PEER, "link", "set", "v1", "up")
        ip(*x, "route", "add", "10.98.0.0/16", "via", "10.99.0.254", "dev", "br0")
        ip(*x, "neigh", "add", "10.99.0.254", "lladdr", "02:00:00:00:00:01", "dev", "br0", "nud", "permanent")
        for key in ("net.ipv4.ip_forward=1", "net.ipv4.conf.br0.proxy_arp=1"):
            subprocess.run(["ip", "netns", "exec", NS, "sysctl", "-qw", key], check=True)
        yield NS
    finally:
        for n in (NS, PEER):
            subprocess.run(["ip", "netns", "del", n], capture_output=True)


def _read(reader: object, ns: str) -> tuple[object, ...]:
    links, forward = topology._links_from_netlink(
        ns,
        reader.get_links(),  # type: ignore[attr-defined]
        reader.get_addr(family=socket.AF_INET),  # type: ignore[attr-defined]
    )
    routes = topology._routes_from_netlink(
        ns,
        reader.get_routes(family=socket.AF_INET, table=254),  # type: ignore[attr-defined]
        links,
    )
    neigh = topology._neighbours_from_netlink(
        ns,
        reader.get_neighbours(family=socket.AF_INET),  # type: ignore[attr-defined]
        links,
    )
    return tuple(links), forward, tuple(routes), tuple(sorted(neigh, key=lambda n: (n.dev, n.address)))


def _both(path: str, ns: str) -> tuple[tuple[object, ...], tuple[object, ...]]:
    from pyroute2 import IPRoute  # the reference: what the topology used before

    ours = RtnlReader(route_socket(path))
    ref = IPRoute(fileno=route_socket(path).detach())
    try:
        return _read(ours, ns), _read(ref, ns)
    finally:
        ours.close()
        ref.close()


@needs_root
@needs_tool("ip", "bridge")
def test_hand_parsed_dumps_equal_pyroute2(rich_ns: str) -> None:
    ours, ref = _both(f"/run/netns/{rich_ns}", rich_ns)
    assert ours == ref
    links = {lk.name: lk for lk in ours[0]}  # type: ignore[attr-defined]
    # every kind of field the checks read was there to compare
    assert links["br0"].vlan_filtering is False and links["br0"].proxy_arp is True
    assert links["v0"].master == "br0" and links["v0"].port_isolated is True
    assert links["v0"].port_learning is False and links["v0"].port_flood is False
    assert links["d0"].addresses == ("10.97.0.1/24",) and links["d1"].link_ifindex == links["d0"].ifindex
    assert links["v0"].kind == "veth" and links["v0"].link_ifindex
    assert ours[1] is True  # forwarding
    assert any(r.gateway == "10.99.0.254" for r in ours[2])  # type: ignore[attr-defined]
    assert [(n.address, n.mac) for n in ours[3]] == [("10.99.0.254", "02:00:00:00:00:01")]  # type: ignore[attr-defined]


@needs_root
def test_host_namespace_equal_pyroute2() -> None:
    """The host's namespace changes under other tests: equal to a pyroute2 read just before or
    just after ours, in one of a few tries."""
    for _ in range(5):
        ours, ref = _both("", "")
        if ours == ref:
            return
    assert ours == ref


def test_vlan_linkinfo() -> None:
    """A VLAN device's id (this test machine's kernel has no 8021q: a crafted IFLA_LINKINFO,
    laid out as the kernel sends it)."""
    import struct

    from probes.network.rtnl import _linkinfo

    def attr(t: int, v: bytes) -> bytes:
        raw = struct.pack("=HH", 4 + len(v), t) + v
        return raw + b"\0" * (-len(raw) % 4)

    info = attr(1, b"vlan\0") + attr(
        2 | 0x8000, attr(1, struct.pack("=H", 42)) + attr(2, struct.pack("=HH", 0, 0))
    )
    assert _linkinfo(info) == {"IFLA_INFO_KIND": "vlan", "IFLA_INFO_DATA": {"IFLA_VLAN_ID": 42}}
