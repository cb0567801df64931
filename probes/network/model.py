"""Network topology and reachability. Owned by the network area.

Topology is what the host's kernel (netlink or `ip -j -d`) and Open vSwitch say about links,
bridges, namespaces and routes; ReachMatrix is what active probes observed. The predicted
matrix and the policy are derived from these and the workloads (probes/network/predict.py),
so a snapshot replays to the same conclusions.

Must not import probes.model (it imports this module).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from probes.network.filtermodel import NicFilter, NsFilters, OvsFlows


@dataclass(frozen=True)
class Link:
    name: str
    ifindex: int
    kind: str = ""  # bridge, veth, tun, vlan, openvswitch, "" for physical/loopback
    netns: str = ""  # "" for the root namespace
    master: str = ""  # bridge name this link is a port of
    mac: str = ""
    state: str = ""  # UP, DOWN, UNKNOWN
    peer: str = ""  # veth peer as "netns/name" ("" netns = root, so "/name")
    addresses: tuple[str, ...] = ()  # CIDR
    mtu: int = 0
    link_ifindex: int = 0  # IFLA_LINK: veth peer or vlan parent (ifindex in the peer's netns)
    vlan_id: int | None = None  # for kind vlan
    # bridge port flags (None: not a bridge port or unknown)
    port_isolated: bool | None = None
    port_learning: bool | None = None
    port_flood: bool | None = None
    port_vlans: tuple[int, ...] = ()  # per-port VLANs where the bridge filters VLANs
    # for kind bridge
    vlan_filtering: bool | None = None
    proxy_arp: bool = False
    forwarding: bool | None = None  # per-interface IPv4 forwarding, where known

    @property
    def where(self) -> str:
        """`netns/name`, with the root namespace as `host`."""
        return f"{self.netns or 'host'}/{self.name}"


@dataclass(frozen=True)
class Route:
    netns: str
    dst: str  # CIDR, "0.0.0.0/0" for default
    gateway: str = ""
    dev: str = ""
    table: int = 254


@dataclass(frozen=True)
class Namespace:
    name: str  # "" for the root namespace; net:[INODE] for one only processes hold
    ip_forward: bool = False
    error: str = ""  # why it could not be read
    pids: tuple[int, ...] = ()  # unnamed namespaces: the processes holding it (to match containers)


@dataclass(frozen=True)
class OvsInterface:
    name: str
    type: str = ""  # "" (system), internal, patch, tap, dpdk ...
    ofport: int | None = None  # None: no ofport in the db (the port is not really attached)
    mac: str = ""
    external_ids: tuple[tuple[str, str], ...] = ()  # vm-id, iface-id, attached-mac, ...
    error: str = ""


@dataclass(frozen=True)
class OvsPort:
    name: str
    bridge: str
    tag: int | None = None
    trunks: tuple[int, ...] = ()
    vlan_mode: str = ""  # "" (default), access, trunk, native-tagged, native-untagged
    interfaces: tuple[OvsInterface, ...] = ()

    @property
    def trunks_all(self) -> bool:
        """No tag and no trunks: OVS carries every VLAN on this port."""
        return self.tag is None and not self.trunks and self.vlan_mode in ("", "trunk")

    @property
    def attached(self) -> bool:
        return any(i.ofport is not None and i.ofport > 0 for i in self.interfaces)


@dataclass(frozen=True)
class OvsBridge:
    name: str
    datapath_type: str = ""
    ports: tuple[OvsPort, ...] = ()


@dataclass(frozen=True)
class LibvirtNetwork:
    name: str
    bridge: str = ""
    forward_mode: str = ""  # "" (isolated), nat, route, open, bridge, passthrough, ...
    active: bool = True
    addresses: tuple[str, ...] = ()  # CIDR of the host on the network's bridge
    virtualport: str = ""  # openvswitch when the network plugs into OVS
    leases: tuple[DhcpLease, ...] = ()  # libvirt's DHCP leases on this network


@dataclass(frozen=True)
class DhcpLease:
    mac: str
    address: str  # plain IP
    prefix: int = 0


@dataclass(frozen=True)
class Neighbour:
    """One resolved entry of a namespace's IPv4 neighbour (ARP) table: address -> MAC on dev.
    Only complete entries are kept (their NUD state is left out: it changes every few seconds
    and would make every poll a new topology)."""

    netns: str  # "" for the root namespace
    dev: str
    address: str
    mac: str


@dataclass(frozen=True)
class VmAddress:
    """One address of a VM NIC and where it was learned."""

    address: str  # plain IP
    source: str  # agent, lease, neighbour, config
    detail: str = ""  # e.g. "ip neigh in tsv-a1 on eth0", "lease on network default"
    prefix: int = 0  # where the source knows it (agent, lease)


@dataclass(frozen=True)
class NicAddresses:
    """The addresses of one VM NIC (by MAC), or why none is known."""

    workload: str  # Workload.key
    mac: str
    addresses: tuple[VmAddress, ...] = ()
    unknown_why: str = ""  # when addresses is empty


@dataclass(frozen=True)
class Topology:
    links: tuple[Link, ...] = ()
    ip_forward: bool = False  # the root namespace
    namespaces: tuple[Namespace, ...] = ()  # named namespaces seen (and the root as "")
    routes: tuple[Route, ...] = ()
    ovs: tuple[OvsBridge, ...] = ()
    ovs_state: str = "absent"  # absent (no ovs-vsctl / no db), ok, error: MESSAGE
    libvirt_networks: tuple[LibvirtNetwork, ...] = ()
    neighbours: tuple[Neighbour, ...] = ()  # complete ARP entries of every namespace read
    source: str = ""  # netlink, ip-json
    problems: tuple[str, ...] = ()  # e.g. a namespace named in config that does not exist
    policy: Policy | None = None  # the expected reachability the topology was read with
    filters: tuple[NsFilters, ...] = ()  # of the namespaces that forward (probes/network/filterread.py)
    ovs_flows: tuple[OvsFlows, ...] = ()  # OpenFlow tables with traces (probes/network/ovsflows.py)
    nic_filters: tuple[
        NicFilter, ...
    ] = ()  # libvirt nwfilter bindings, expanded (probes/network/nwfilter.py)
    taken_at: float = 0.0

    def filters_of(self, netns: str) -> NsFilters | None:
        return next((f for f in self.filters if f.netns == netns), None)

    def namespace(self, name: str) -> Namespace | None:
        return next((n for n in self.namespaces if n.name == name), None)

    def links_in(self, netns: str) -> tuple[Link, ...]:
        return tuple(lk for lk in self.links if lk.netns == netns)

    def link(self, netns: str, name: str) -> Link | None:
        return self._by_name.get((netns, name))

    @cached_property
    def ovs_ports_by_interface(self) -> dict[str, OvsPort]:
        """Interface name -> its OVS port (the last bridge's, as read), built once per
        Topology (it was rebuilt at every segment lookup: ~2,000 times per derive at 1,000
        domains). Read it, never change it: it is shared by every reader of this Topology."""
        out: dict[str, OvsPort] = {}
        for b in self.ovs:
            for p in b.ports:
                for i in p.interfaces:
                    out[i.name] = p
        return out

    @cached_property
    def _by_name(self) -> dict[tuple[str, str], Link]:
        """(netns, name) -> the first such link, built once per Topology: `link` was a search
        over every link, called for every interface of every workload by a derive (1,000
        domains on this host: ~20-40k searches, seconds of the derive after the first frame)."""
        out: dict[tuple[str, str], Link] = {}
        for lk in self.links:
            out.setdefault((lk.netns, lk.name), lk)
        return out


@dataclass(frozen=True)
class AllowRule:
    src: str  # tenant name, "*" any tenant
    dst: str
    ports: tuple[int, ...] = ()  # empty: any port / ICMP
    both_ways: bool = True


@dataclass(frozen=True)
class Policy:
    """Expected reachability: tenants reach themselves, and each other only where allowed."""

    allow: tuple[AllowRule, ...] = ()
    self_reach: bool = True
    netns_named: tuple[str, ...] = ()  # namespaces config names (checked for existence)
    # `[network.addresses]`: static VM addresses from the config, (domain name, addresses)
    static_addresses: tuple[tuple[str, tuple[str, ...]], ...] = ()
    source: str = "default"  # default, or the config file path


@dataclass(frozen=True)
class Hop:
    ttl: int
    address: str
    where: str = ""  # "netns/iface" that owns the address, when known


@dataclass(frozen=True)
class ReachResult:
    src_tenant: str
    dst_tenant: str
    src: str  # workload key
    dst: str  # workload key
    address: str
    method: str  # icmp, tcp:PORT, predicted
    outcome: str  # reply, refused, timeout, no-arp, no-route, error, not-testable
    rtt_ms: float | None = None
    detail: str = ""  # error text, reply source when unexpected, ...
    hops: tuple[Hop, ...] = ()  # routers between src and dst (empty: same segment)
    reply_ttl: int | None = None
    via: str = ""  # the probe's source kind: namespace, container, segment, guest ("" predicted)

    @property
    def reached(self) -> bool:
        return self.outcome in ("reply", "refused")


@dataclass(frozen=True)
class ReachMatrix:
    results: tuple[ReachResult, ...] = ()
    started_at: float = 0.0
    finished_at: float = 0.0
    cancelled: bool = False
    timeout_s: float = 0.5
    ports: tuple[int, ...] = ()
    errors: tuple[str, ...] = field(default=())
    sources: tuple[str, ...] = ()  # source kinds this run used: namespace, segment, guest
    agent_addresses: tuple[NicAddresses, ...] = ()  # what guest agents said during the run
    changes: tuple[str, ...] = ()  # what the run added to the host and removed again
