"""L2 segments and where workloads attach to them.

A segment is a Linux bridge (with its VLAN when the bridge filters VLANs), an Open vSwitch
bridge with one VLAN tag (0 = untagged), a host interface with macvlan/ipvlan children (their
parent: Docker's macvlan/ipvlan networks), or a bare veth pair between two namespaces.
Container runtimes' networks (docker0, user bridges, macvlan parents) are these same
segments; `runtime_networks` names them as the runtime does. A container on the host's
network (`--network host`) is an endpoint in the root namespace: it shares the host's
segments and addresses. A
workload attaches through the switch-side port of each of its interfaces: the interface itself
when it is a bridge/OVS port, else its veth peer, else (VMs) its tap. A trunk port is *exposed*
to the VLANs it carries: the tenant can tag frames into them even when untagged traffic does
not get there.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from probes.model import HostState, RuntimeNetwork, Workload, WorkloadKind
from probes.network.model import Link, OvsPort, Topology

HOST_TENANT = "(host)"
UNPLACED = "(unplaced)"


@dataclass(frozen=True)
class Attachment:
    """How one interface reaches a segment."""

    segment: str  # id: "br:NS/NAME", "ovs:BR#TAG", "veth:A|B"
    port: str  # switch-side port as netns/name (or "ovs:BR/PORT")
    iface: str  # the workload-side interface as netns/name
    isolated: bool = False  # bridge port isolation
    exposed: tuple[str, ...] = ()  # segments reachable by tagging (trunk ports)
    ofport_missing: bool = False


@dataclass(frozen=True)
class Endpoint:
    workload: str  # Workload.key, or "host" for the root namespace
    tenant: str
    name: str
    netns: str | None  # None: not a namespace we can enter (VM)
    addresses: tuple[str, ...]  # plain IPs
    attachments: tuple[Attachment, ...]


def segment_label(seg: str) -> str:
    kind, _, rest = seg.partition(":")
    if kind == "br":
        ns, _, name = rest.rpartition("/")
        return f"bridge {name}" + (f" (netns {ns})" if ns else "")
    if kind == "ovs":
        br, _, tag = rest.partition("#")
        return f"OVS {br} " + ("untagged" if tag == "0" else f"VLAN {tag}")
    if kind == "mv":
        ns, _, name = rest.rpartition("/")
        return f"macvlan/ipvlan parent {name}" + (f" (netns {ns})" if ns else "")
    return f"veth pair {rest}"


def runtime_networks(hs: HostState) -> dict[str, tuple[str, RuntimeNetwork]]:
    """segment id -> (runtime, network) for the container runtimes' networks on the host:
    bridge networks by their Linux bridge, macvlan/ipvlan networks by their parent."""
    out: dict[str, tuple[str, RuntimeNetwork]] = {}
    for d in hs.runtimes:
        for n in d.networks:
            if n.bridge:
                out.setdefault(f"br:/{n.bridge}", (d.runtime, n))
            elif n.driver in ("macvlan", "ipvlan") and n.parent:
                out.setdefault(f"mv:/{n.parent}", (d.runtime, n))
    return out


def segment_name(seg: str, nets: dict[str, tuple[str, RuntimeNetwork]] | None = None) -> str:
    """segment_label, with the runtime's network name where the segment is one (docker0 is
    Docker's network `bridge`)."""
    label = segment_label(seg)
    if nets and seg in nets:
        runtime, n = nets[seg]
        return f"{label} ({runtime} network {n.name})"
    return label


def no_icc_segments(hs: HostState) -> frozenset[str]:
    """Bridge segments of runtime networks with inter-container communication off: the
    runtime's iptables rules drop traffic between two of its containers there."""
    return frozenset(
        seg for seg, (_, n) in runtime_networks(hs).items() if n.icc is False and seg.startswith("br:")
    )


def _ovs_ports(topo: Topology) -> dict[str, OvsPort]:
    return topo.ovs_ports_by_interface  # built once per Topology


def _ovs_tags(topo: Topology, bridge: str) -> set[int]:
    tags = {0}
    for b in topo.ovs:
        if b.name == bridge:
            for p in b.ports:
                if p.tag is not None:
                    tags.add(p.tag)
                tags.update(p.trunks)
    return tags


def attach(topo: Topology, link: Link, ovs_ports: dict[str, OvsPort] | None = None) -> Attachment | None:
    """The segment `link` (an interface of a workload or of the host) sends untagged frames to."""
    ovs_ports = _ovs_ports(topo) if ovs_ports is None else ovs_ports
    for cand in (link, _peer(topo, link)):
        if cand is None:
            continue
        if cand.master:
            master = topo.link(cand.netns, cand.master)
            if master is not None and master.kind == "bridge":
                return Attachment(
                    f"br:{cand.netns}/{cand.master}",
                    cand.where,
                    link.where,
                    isolated=bool(cand.port_isolated),
                )
        if cand.kind == "bridge":
            return Attachment(f"br:{cand.netns}/{cand.name}", cand.where, link.where)
        port = ovs_ports.get(cand.name) if (cand.netns == "" or cand is link) else None
        if port is not None:
            missing = not port.attached
            if port.tag is not None:
                return Attachment(
                    f"ovs:{port.bridge}#{port.tag}",
                    f"ovs:{port.bridge}/{port.name}",
                    link.where,
                    ofport_missing=missing,
                )
            tags = _ovs_tags(topo, port.bridge)
            carried = sorted(tags) if port.trunks_all else sorted(port.trunks)
            exposed = tuple(f"ovs:{port.bridge}#{t}" for t in carried if t != 0)
            native = 0 in carried or port.trunks_all or port.vlan_mode in ("native-untagged", "native-tagged")
            seg = f"ovs:{port.bridge}#0" if native else f"ovs:{port.bridge}#none"
            return Attachment(
                seg, f"ovs:{port.bridge}/{port.name}", link.where, exposed=exposed, ofport_missing=missing
            )
    if link.kind in ("macvlan", "ipvlan", "macvtap", "ipvtap") and link.link_ifindex:
        parent = _parent(topo, link)
        if parent is not None:
            return Attachment(f"mv:{parent.netns}/{parent.name}", parent.where, link.where)
    peer = _peer(topo, link)
    if link.kind == "veth" and peer is not None:
        a, b = sorted((link.where, peer.where))
        return Attachment(f"veth:{a}|{b}", peer.where, link.where)
    return None


def _parent(topo: Topology, link: Link) -> Link | None:
    """The lower device of a macvlan/ipvlan link: in its own namespace when it was created
    there, else (moved into a container) in the root namespace."""
    same = [lk for lk in topo.links_in(link.netns) if lk.ifindex == link.link_ifindex and lk is not link]
    if same and link.netns == "":
        return same[0]
    root = [lk for lk in topo.links_in("") if lk.ifindex == link.link_ifindex]
    return root[0] if root else (same[0] if same else None)


def _peer(topo: Topology, link: Link) -> Link | None:
    if not link.peer:
        return None
    ns, _, name = link.peer.rpartition("/")
    return topo.link(ns, name)


def netns_of(w: Workload, topo: Topology | None = None) -> str | None:
    """The topology's name for the workload's network namespace: NAME for /run/netns/NAME,
    net:[INODE] for one only processes hold (a container's: found by its init pid)."""
    if w.kind == WorkloadKind.CONTAINER and w.container and topo is not None:
        if "net" in w.container.shared_namespaces or not w.container.init_pid:
            return None
        if w.netns is not None and w.netns.path.startswith("/run/netns/"):  # folded: its named namespace
            return os.path.basename(w.netns.path)
        return next((n.name for n in topo.namespaces if w.container.init_pid in n.pids), None)
    if w.kind != WorkloadKind.NETNS:
        return None
    if w.netns and w.netns.path.startswith("/run/netns/"):
        return os.path.basename(w.netns.path)
    if w.netns and w.netns.inode and w.netns.path.startswith("/proc/"):
        return f"net:[{w.netns.inode}]"
    if w.netns and w.netns.path:
        return None
    return w.name


def _ips(addrs: Iterable[str]) -> tuple[str, ...]:
    return tuple(a.split("/")[0] for a in addrs if ":" not in a and not a.startswith("127."))


def endpoints(hs: HostState) -> list[Endpoint]:
    """Every workload of the host with its interfaces' attachments, and the host itself."""
    topo = hs.topology
    if topo is None:
        return []
    ovs_ports = _ovs_ports(topo)
    from probes.network.vmaddr import addresses_of, vm_addresses

    vm_addrs = vm_addresses(hs)
    out: list[Endpoint] = []
    host_links = [lk for lk in topo.links_in("") if lk.addresses and lk.name != "lo"]
    host_atts = tuple(a for a in (attach(topo, lk, ovs_ports) for lk in host_links) if a)
    host_ips = _ips(a for lk in host_links for a in lk.addresses)
    for w in hs.workloads:
        tenant = w.tenant or UNPLACED
        ns = netns_of(w, topo)
        if w.kind == WorkloadKind.CONTAINER and w.container and "net" in w.container.shared_namespaces:
            # --network host: the host's interfaces, addresses and segments are the container's
            out.append(Endpoint(w.key, tenant, w.name, "", host_ips, host_atts))
        elif ns is not None:
            links = [lk for lk in topo.links_in(ns) if lk.name != "lo"]
            atts = tuple(a for a in (attach(topo, lk, ovs_ports) for lk in links) if a)
            addrs = _ips(a for lk in links for a in lk.addresses)
            out.append(Endpoint(w.key, tenant, w.name, ns, addrs, atts))
        elif w.kind == WorkloadKind.VM and w.vm:
            atts = []
            for nic in w.vm.nics:
                lk = _tap(topo, nic.target_dev, nic.mac)
                a = attach(topo, lk, ovs_ports) if lk else None
                if a:
                    atts.append(a)
            addrs = addresses_of(vm_addrs.get(w.key, ()))
            out.append(Endpoint(w.key, tenant, w.name, None, addrs, tuple(atts)))
    out.append(Endpoint("host", HOST_TENANT, "host", "", host_ips, host_atts))
    return out


def _tap(topo: Topology, target_dev: str, mac: str) -> Link | None:
    """A VM NIC's tap: by target dev name, else by MAC (libvirt sets the tap to fe:+guest MAC)."""
    if target_dev:
        lk = topo.link("", target_dev)
        if lk:
            return lk
    if mac and len(mac) == 17:
        want = ("fe" + mac[2:]).lower()
        return next((lk for lk in topo.links_in("") if lk.mac.lower() == want), None)
    return None
