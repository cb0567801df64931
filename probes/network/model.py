"""Network topology and reachability. Owned by the network area.

Must not import probes.model (it imports this module).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Link:
    name: str
    ifindex: int
    kind: str = ""  # bridge, veth, tun, vlan, openvswitch, "" for physical/loopback
    netns: str = ""  # "" for the root namespace
    master: str = ""  # bridge name this link is a port of
    mac: str = ""
    state: str = ""  # UP, DOWN, UNKNOWN
    peer: str = ""  # veth peer as "netns/name"
    addresses: tuple[str, ...] = ()  # CIDR


@dataclass(frozen=True)
class Topology:
    links: tuple[Link, ...] = ()
    ip_forward: bool = False


@dataclass(frozen=True)
class ReachResult:
    src_tenant: str
    dst_tenant: str
    src: str  # workload key
    dst: str  # workload key
    address: str
    method: str  # icmp, tcp:PORT, predicted
    outcome: str  # reply, refused, timeout, no-arp, error, not-testable
    rtt_ms: float | None = None


@dataclass(frozen=True)
class ReachMatrix:
    results: tuple[ReachResult, ...] = ()
    started_at: float = 0.0
    finished_at: float = 0.0
