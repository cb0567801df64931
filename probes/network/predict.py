"""Predicted reachability from the topology, and the tenant x tenant matrix.

For a pair of workloads, the source namespace's routes are followed: the next hop must be
on the segment the outgoing interface attaches to; when it is a gateway, the gateway's
namespace must forward (per-interface IPv4 forwarding) and the walk continues from there (at
most MAX_HOPS). The reply must find its way back the same way. Bridge port isolation
(both ports isolated) blocks a segment, and so does a container runtime's network with
inter-container communication off between two of its containers (not between a container
and the host). Filters are evaluated for a concrete packet (probes/network/filtereval.py):
the forward hook of every routing namespace on the path, and the bridge's forward hook (with
br_netfilter, the IP one too) of every bridge crossed in a namespace whose filters were read.
The packet is an ICMP echo request, and where a filter was on the path, also a TCP SYN to
each port the policy allows for the pair or the last probe run used; a pair is reachable when
one of them gets through. A filter the evaluator cannot decide leaves the path possible and
says "filter: undecided" with the rule.

The matrix puts three things in each tenant x tenant cell: expected (policy), predicted
(topology) and observed (the last active probe run); `actual` is observed when there is an
observation, else predicted. A cell is wrong when a probe was answered that the policy does
not allow (a violation), when an allowed pair did not answer, or (not probed) when the
prediction differs from the policy. A pair allowed only on some TCP ports is expected
blocked for everything else: ICMP or another port answering there is a violation.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import TypeVar

from probes.model import HostState, RuntimeNetwork
from probes.network.filtereval import ChainStep, FilterDecision, Memo, Packet, decide
from probes.network.filtermodel import Atom, NicFilter, NsFilters, OvsFlows, OvsFrame, OvsTrace
from probes.network.model import Link, Policy, ReachResult, Route, Topology
from probes.network.policy import allowed_ports, allows
from probes.network.segments import (
    HOST_TENANT,
    Attachment,
    Endpoint,
    attach,
    endpoints,
    no_icc_segments,
    runtime_networks,
    segment_name,
)

MAX_HOPS = 4
ARP = Packet("", "", "arp")  # a bridged hop's address lookup (no IP header: IP matches fail)


@dataclass(frozen=True)
class PairPrediction:
    src: str  # workload key
    dst: str
    src_tenant: str
    dst_tenant: str
    reachable: bool
    address: str = ""  # the destination address the walk was for ("" for VMs: L2 only)
    path: str = ""  # why reachable, or why not
    hops: tuple[str, ...] = ()  # routers on the way, as netns/iface address
    segments: tuple[str, ...] = ()  # segment ids crossed
    exposed: bool = False  # reachable by tagging frames into a VLAN the port trunks
    filters: tuple[FilterDecision, ...] = ()  # the filters met on the path, for `method`
    method: str = "icmp"  # the packet the path and filters were decided for
    methods: tuple[tuple[str, bool], ...] = ()  # where filters were met: each packet tried, reached

    @property
    def filter_state(self) -> str:
        """blocked-by-filter, reach-through-filter, filter-undecided, or "" (no filter decided)."""
        if any(d.verdict == "undecided" for d in self.filters):
            return "filter-undecided"
        if not self.reachable and any(d.verdict == "drop" for d in self.filters):
            return "blocked-by-filter"
        if self.reachable and any(d.verdict == "accept" for d in self.filters):
            return "reach-through-filter"
        return ""

    @property
    def deciding_rule(self) -> str:
        """The rule the prediction relied on (the dropping one, or the accepting ones)."""
        ds = [d for d in self.filters if d.verdict in ("drop", "undecided")] or [
            d for d in self.filters if d.verdict == "accept"
        ]
        return "; ".join(d.text for d in ds)


@dataclass(frozen=True)
class Cell:
    src: str  # tenant
    dst: str
    expected: bool
    predicted: bool | None  # None: nothing to predict from (no addresses, no attachments)
    observed: bool | None  # None: not probed
    exposed: bool = False
    pairs: tuple[PairPrediction, ...] = ()
    results: tuple[ReachResult, ...] = ()
    allowed_ports: tuple[int, ...] = ()  # a port-limited allow rule: only these TCP ports
    violations: tuple[ReachResult, ...] = ()  # answered probes the policy does not allow

    @property
    def actual(self) -> bool | None:
        return self.observed if self.observed is not None else self.predicted

    @property
    def filter_state(self) -> str:
        """blocked-by-filter (predicted blocked, a filter dropped a pair that the topology lets
        through), reach-through-filter (a reachable pair passes a filter that accepts it),
        filter-undecided, or "" (no filter on the predicted paths)."""
        states = {p.filter_state for p in self.pairs}
        if self.predicted and "reach-through-filter" in states:
            return "reach-through-filter"
        if "filter-undecided" in states:
            return "filter-undecided"
        if self.predicted is False and "blocked-by-filter" in states:
            return "blocked-by-filter"
        return ""

    @property
    def status(self) -> str:
        """correct, wrong or ignored (nothing predicted or observed)."""
        if self.actual is None:
            return "ignored"
        if self.observed is not None:
            return "wrong" if self.violations or (self.expected and not self.observed) else "correct"
        if self.predicted and self.allowed_ports:
            return "correct"  # the topology cannot tell ports apart
        return "correct" if self.predicted == self.expected else "wrong"


@dataclass(frozen=True)
class Matrix:
    sources: tuple[str, ...]
    destinations: tuple[str, ...]
    cells: tuple[Cell, ...]

    def cell(self, src: str, dst: str) -> Cell | None:
        index = self.__dict__.get("_index")
        if index is None:  # built once per matrix: the pane asks for every cell
            index = {(c.src, c.dst): c for c in self.cells}
            object.__setattr__(self, "_index", index)
        return index.get((src, dst))

    def counts(self) -> tuple[int, int, int]:
        wrong = sum(c.status == "wrong" for c in self.cells)
        ignored = sum(c.status == "ignored" for c in self.cells)
        return wrong, ignored, len(self.cells) - wrong - ignored

    def summary(self) -> str:
        w, i, c = self.counts()
        return f"{w} wrong, {i} ignored, {c} correct"


class _Index:
    """Addresses to the links that own them, with each link's attachment."""

    def __init__(
        self,
        topo: Topology,
        no_icc: frozenset[str] = frozenset(),
        names: dict[str, tuple[str, RuntimeNetwork]] | None = None,
    ) -> None:
        self.topo = topo
        self.filters: dict[str, NsFilters] = {f.netns: f for f in topo.filters}
        self.memo: Memo = {}  # the filters' addresses, parsed once per prediction
        # OVS bridges with flows beyond NORMAL: each frame crossing them is judged by its trace
        self.ovs: dict[str, OvsFlows] = {o.bridge: o for o in topo.ovs_flows if o.custom}
        self.ovs_unread: dict[str, str] = {o.bridge: o.error for o in topo.ovs_flows if o.error}
        self.traces: dict[OvsFrame, OvsTrace] = {t.frame: t for o in self.ovs.values() for t in o.traces}
        self.collect: list[OvsFrame] | None = None  # ovs_frames(): the frames the walks need
        self.nics: dict[str, NicFilter] = {n.portdev: n for n in topo.nic_filters}  # nwfilter per tap
        self.fields: dict[str, dict[str, _FieldTests]] = {}  # per namespace: what its rules compare
        self.ip_ints: dict[str, int | None] = {}
        self.vm_memo: dict[tuple[object, ...], FilterDecision | None] = {}  # VM pairs' filter classes
        self.ep_classes: dict[tuple[str, str, str], tuple[object, object, object, object]] = {}
        self.vm_notes: dict[tuple[object, ...], tuple[bool, str, tuple[FilterDecision, ...]]] = {}
        self.nic_spans: dict[tuple[str, str], tuple[tuple[int, int], ...] | None] = {}  # (tap, direction)
        self.no_icc = no_icc  # runtime bridges whose iptables drop container-to-container traffic
        self.names = names or {}  # segment -> (runtime, network): "(docker network X)" in paths
        self._routers: dict[str, list[tuple[Link, str]]] = {}  # segment -> forwarding links' CIDRs
        self.vm_routes = 0  # VMs given a route (add_vm_route)
        self._route_memo: dict[tuple[str, str], Route | None] = {}

        self.owners: dict[str, list[tuple[Link, Attachment | None]]] = {}
        self.att: dict[tuple[str, str], Attachment | None] = {}
        for lk in topo.links:
            a = attach(topo, lk)
            self.att[(lk.netns, lk.name)] = a
            for cidr in lk.addresses:
                self.owners.setdefault(cidr.split("/")[0], []).append((lk, a))

        self.routes: dict[str, list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, Route]]] = {}
        for r in topo.routes:
            try:
                self.routes.setdefault(r.netns, []).append((ipaddress.ip_network(r.dst, strict=False), r))
            except ValueError:
                continue
        for rs in self.routes.values():
            rs.sort(key=lambda x: -x[0].prefixlen)

    def add_vm(self, e: Endpoint) -> None:
        """A VM's addresses as owned by its NICs on their segments (a VM is no namespace we can
        read: its addresses come from probes/network/vmaddr.py)."""
        for a in e.attachments:
            tap = a.iface.rpartition("/")[2]
            for ip in e.addresses:
                lk = Link(name=tap, ifindex=0, netns=f"vm:{e.name}", addresses=(f"{ip}/32",))
                self.owners.setdefault(ip, []).append((lk, a))

    def add_vm_route(self, e: Endpoint) -> None:
        """The routes a VM's guest most likely has (its own are not visible read-only): its
        subnet on the NIC, and a default route via the forwarding router on that segment whose
        subnet holds the VM's address (a libvirt network's bridge, a tenant router). Then a VM
        is walked like a namespace ("vm:NAME") to what it shares no segment with."""
        ns = f"vm:{e.name}"
        if not e.addresses or ns in self.routes:
            return
        self._route_memo.clear()
        try:
            me = ipaddress.ip_address(e.addresses[0])
        except ValueError:
            return
        for a in e.attachments:
            for cidrs in self._router_addresses(a.segment):
                lk, cidr = cidrs
                net = ipaddress.ip_network(cidr, strict=False)
                if net.version != me.version or me not in net or net.prefixlen == net.max_prefixlen:
                    continue
                tap = a.iface.rpartition("/")[2]
                self.att[(ns, tap)] = a
                gw = cidr.split("/")[0]
                self.routes[ns] = [
                    (net, Route(ns, str(net), dev=tap)),
                    (ipaddress.ip_network("0.0.0.0/0"), Route(ns, "0.0.0.0/0", gateway=gw, dev=tap)),
                ]
                self.vm_routes += 1
                return

    def _router_addresses(self, segment: str) -> list[tuple[Link, str]]:
        """(link, CIDR) of the forwarding links (not VMs) with an address on `segment`."""
        got = self._routers.get(segment)
        if got is None:
            got = self._routers[segment] = [
                (lk, cidr)
                for lk in self.topo.links
                if lk.forwarding
                and (x := self.att.get((lk.netns, lk.name))) is not None
                and x.segment == segment
                for cidr in lk.addresses
            ]
        return got

    def label(self, seg: str) -> str:
        return segment_name(seg, self.names)

    def route(self, ns: str, ip: str) -> Route | None:
        """Longest-prefix match in the main table of `ns` (kept per prediction: the routes do
        not change once the walks begin)."""
        k = (ns, ip)
        if k in self._route_memo:
            return self._route_memo[k]
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        got = None
        for net, r in self.routes.get(ns, ()):
            if net.version == addr.version and addr in net:
                got = r
                break
        self._route_memo[k] = got
        return got

    def ns_owns(self, ns: str, ip: str) -> bool:
        return any(lk.netns == ns for lk, _ in self.owners.get(ip, ()))


def _filter_verdict(
    idx: _Index, f: NsFilters | None, pkt: Packet, decisions: list[FilterDecision] | None, bridge: str = ""
) -> FilterDecision | None:
    if f is None:
        return None
    d = decide(f, pkt, bridge=bridge, memo=idx.memo)
    if d.verdict == "none":
        return None
    if decisions is not None:
        decisions.append(d)
    return d


def _bridged(
    idx: _Index, seg: str, a: Attachment, b: Attachment, pkt: Packet, decisions: list[FilterDecision] | None
) -> FilterDecision | None:
    """The bridge's filters for a frame from port `a` to port `b` of bridge segment `seg`."""
    if not seg.startswith("br:"):
        return None
    ns, _, br = seg[3:].rpartition("/")
    f = idx.filters.get(ns)
    bridge_port = f"{ns or 'host'}/{br}"
    if f is None or bridge_port in (a.port, b.port):  # to or from the bridge itself: not bridged
        return None
    ports = replace(pkt, iif=a.port.rpartition("/")[2], oif=b.port.rpartition("/")[2])
    return _filter_verdict(idx, f, ports, decisions, bridge=br)


def _ovs_hop(
    idx: _Index,
    out: Attachment,
    sender_at: tuple[str, str],
    nexthop: Link,
    pkt: Packet,
    decisions: list[FilterDecision] | None,
) -> FilterDecision | None:
    """The OpenFlow tables of an OVS bridge with flows beyond NORMAL, for the frame from the
    interface `sender_at` to `nexthop` (its trace, read by the topology probe); None where NORMAL alone
    switches (the VLAN model decides) or when collecting the frames (`ovs_frames`)."""
    if not out.port.startswith("ovs:"):
        return None
    bridge, _, port = out.port[4:].partition("/")
    unread = idx.ovs_unread.get(bridge)
    if unread and decisions is not None:  # its flows are unknown: said in the detail, not guessed
        decisions.append(FilterDecision("", "OpenFlow", pkt, "none", not_read=(f"OVS {bridge}: {unread}",)))
    flows = idx.ovs.get(bridge)
    if flows is None:
        return None
    reply = pkt.state == "established"
    sender = idx.topo.link(*sender_at)  # (namespace, interface): looked up only here
    frame = OvsFrame(
        bridge,
        port,
        sender.mac if sender else "",
        nexthop.mac,
        pkt.src,
        pkt.dst,
        pkt.proto,
        pkt.dport,
        pkt.sport,
        reply,
    )
    if idx.collect is not None:
        idx.collect.append(frame)
        return None
    t = idx.traces.get(frame)
    where = f"OVS {bridge}"
    if t is None:
        why = flows.untraced or "not among the frames traced (ICMP and the policy's ports)"
        step = ChainStep(where, "undecided", f"{where}: this packet was not traced [{why}]")
    else:
        step = ChainStep(where, t.verdict, t.rule or f"{where}: {t.actions}", t.path)
    d = FilterDecision("", "OpenFlow", pkt, step.verdict, (step,))
    if decisions is not None:
        decisions.append(d)
    return d


def _nic_verdict(
    idx: _Index, tap: str, pkt: Packet, direction: str, decisions: list[FilterDecision] | None
) -> FilterDecision | None:
    """The libvirt nwfilter of the VM NIC `tap` for `pkt` (direction in: to the VM, out: from it)."""
    nf = idx.nics.get(tap) if tap else None
    if nf is None:
        return None
    from probes.network.nwfilter import decide_nic

    d = decide_nic(nf, pkt, direction)
    if decisions is not None:
        decisions.append(d)
    return d


def _vm_reply(
    idx: _Index, a: Endpoint, b: Endpoint, ip: str, method: str, decisions: list[FilterDecision]
) -> FilterDecision | None:
    """A VM destination's answer leaving its NIC (its nwfilter's `out` direction: where
    anti-spoofing drops a reply from an address the filter does not give the VM)."""
    if b.netns is not None or not a.addresses or not idx.nics:
        return None
    proto, _, port = method.partition(":")
    num = int(port) if port.isdigit() else None
    reply = Packet(ip, a.addresses[0], proto, None, state="established", sport=num)
    for att in b.attachments:
        d = _nic_verdict(idx, att.iface.rpartition("/")[2], reply, "out", decisions)
        if d is not None:
            return d
    return None


def ovs_frames(topo: Topology, bridges: frozenset[str]) -> list[OvsFrame]:
    """The frames the prediction will ask of these OVS bridges' flows: every named
    namespace to every address it does not own, ICMP and TCP to each port the policy names,
    and the replies (the topology probe traces them; a frame the walks need that is not
    here is "not traced", undecided)."""
    idx = _Index(topo)
    idx.ovs = {b: OvsFlows(b, custom=True) for b in bridges}
    idx.traces = {}
    idx.collect = []
    _add_ovs_vms(idx, topo, bridges)
    ports = sorted({p for r in (topo.policy.allow if topo.policy else ()) for p in r.ports})
    methods = ["icmp"] + [f"tcp:{p}" for p in ports]
    targets = sorted(idx.owners)
    for ns in sorted({n.name for n in topo.namespaces if n.name and not n.error}):
        for ip in targets:
            if idx.ns_owns(ns, ip):
                continue
            for m in methods:
                walk(idx, ns, ip, method=m)
                walk(idx, ns, ip, method=m, state="established")
    return list(dict.fromkeys(idx.collect))


def _add_ovs_vms(idx: _Index, topo: Topology, bridges: frozenset[str]) -> None:
    """VMs on these bridges as destinations, as the prediction will own them (idx.add_vm: a link
    named after the tap, no MAC): the interface's `attached-mac` (libvirt sets it) with the
    addresses the host has seen for that MAC (neighbour tables, libvirt's DHCP leases). The
    guest agent's and the config's addresses are not known here: those frames stay untraced."""
    by_mac: dict[str, set[str]] = {}
    for nb in topo.neighbours:
        by_mac.setdefault(nb.mac.lower(), set()).add(nb.address)
    for net in topo.libvirt_networks:
        for lease in net.leases:
            by_mac.setdefault(lease.mac.lower(), set()).add(lease.address)
    for b in topo.ovs:
        if b.name not in bridges:
            continue
        for port in b.ports:
            for iface in port.interfaces:
                mac = dict(iface.external_ids).get("attached-mac", "").lower()
                tap = topo.link("", iface.name) if mac in by_mac else None
                a = attach(topo, tap) if tap is not None else None
                if a is None:
                    continue
                for ip in sorted(by_mac[mac]):
                    if ip not in idx.owners:  # a namespace's own address stays its own
                        lk = Link(name=iface.name, ifindex=0, netns="vm:", addresses=(f"{ip}/32",))
                        idx.owners[ip] = [(lk, a)]


def walk(
    idx: _Index,
    ns: str,
    dst_ip: str,
    depth: int = 0,
    *,
    src_ip: str = "",
    method: str = "icmp",
    decisions: list[FilterDecision] | None = None,
    state: str = "new",
) -> tuple[bool, str, tuple[str, ...], tuple[str, ...]]:
    """(reached, why, hops, segments) for a packet from namespace `ns` to `dst_ip` (`method`:
    icmp or tcp:PORT; the filters met are appended to `decisions`)."""
    if idx.ns_owns(ns, dst_ip):
        return True, "local address", (), ()
    if depth > MAX_HOPS:
        return False, f"more than {MAX_HOPS} routed hops", (), ()
    r = idx.route(ns, dst_ip)
    if r is None:
        return False, f"{ns or 'host'} has no route to {dst_ip}", (), ()
    out = idx.att.get((ns, r.dev))
    if out is None:
        return False, f"{ns or 'host'}/{r.dev} is on no bridge or switch", (), ()
    if out.segment.endswith("#none"):
        return False, f"{out.port} drops untagged frames", (), ()
    if not src_ip:
        lk_out = idx.topo.link(ns, r.dev)
        src_ip = lk_out.addresses[0].split("/")[0] if lk_out and lk_out.addresses else ""
    proto, _, port = method.partition(":")
    num = int(port) if port.isdigit() else None
    if state == "established" and num is not None:  # a reply: from the service's port
        pkt = Packet(src_ip, dst_ip, proto, None, state=state, sport=num)
    else:
        pkt = Packet(src_ip, dst_ip, proto, num, state=state)
    nh = r.gateway or dst_ip
    owners = [(lk, a) for lk, a in idx.owners.get(nh, ()) if a and a.segment == out.segment]
    if not owners:
        return False, f"no one on {idx.label(out.segment)} has {nh}", (), (out.segment,)
    lk, a = owners[0]
    if out.isolated and a.isolated:
        return (
            False,
            f"{out.port} and {a.port} are isolated ports of {idx.label(out.segment)}",
            (),
            (out.segment,),
        )
    if out.segment in idx.no_icc:
        ns_, _, br = out.segment[3:].rpartition("/")
        bridge_port = f"{ns_ or 'host'}/{br}"
        if out.port != bridge_port and a.port != bridge_port:
            return (
                False,
                f"{idx.label(out.segment)}: inter-container communication is off (the runtime's iptables drop it)",
                (),
                (out.segment,),
            )
    if state == "new":  # the address lookup of this hop, both ways (bridge family only)
        for x, y, word in ((out, a, "its ARP request"), (a, out, "the ARP reply")):
            ad = _bridged(idx, out.segment, x, y, ARP, None)
            if ad is not None and ad.verdict != "accept":
                if decisions is not None:
                    decisions.append(ad)
                if ad.verdict == "drop":
                    return (
                        False,
                        f"{idx.label(out.segment)}: {word} blocked by filter {ad.text}",
                        (),
                        (out.segment,),
                    )
    bd = _bridged(idx, out.segment, out, a, pkt, decisions)
    if bd is not None and bd.verdict == "drop":
        return False, f"{idx.label(out.segment)}: blocked by filter {bd.text}", (), (out.segment,)
    od = _ovs_hop(idx, out, (ns, r.dev), lk, pkt, decisions) if idx.ovs or idx.ovs_unread else None
    if od is not None and od.verdict == "drop":
        return False, f"{idx.label(out.segment)}: blocked by flow {od.text}", (), (out.segment,)
    bnote = f" ({bd.text})" if bd is not None else ""
    bnote += f" ({od.text})" if od is not None else ""
    if idx.ns_owns(lk.netns, dst_ip):
        nd = _nic_verdict(idx, lk.name if lk.netns.startswith("vm:") else "", pkt, "in", decisions)
        if nd is not None and nd.verdict == "drop":
            return False, f"{lk.where}: blocked by {nd.text}", (), (out.segment,)
        bnote += f" ({nd.text})" if nd is not None else ""
        return (
            True,
            f"{out.iface} and {lk.where} share {idx.label(out.segment)}{bnote}",
            (),
            (out.segment,),
        )
    if not lk.forwarding:
        return False, f"gateway {lk.where} ({nh}) does not forward", (), (out.segment,)
    hop = f"{lk.where} {nh}"
    r2 = idx.route(lk.netns, dst_ip)
    fd = None
    if r2 is not None:
        fd = _filter_verdict(idx, idx.filters.get(lk.netns), replace(pkt, iif=lk.name, oif=r2.dev), decisions)
    if fd is not None and fd.verdict == "drop":
        return False, f"via {hop}: blocked by filter {fd.text}", (hop,), (out.segment,)
    ok, why, hops, segs = walk(
        idx, lk.netns, dst_ip, depth + 1, src_ip=src_ip, method=method, decisions=decisions, state=state
    )
    if fd is None:
        seen = "forwarding on, " + (
            "filters not read" if lk.netns not in idx.filters else "no filter on its forward hook"
        )
    elif fd.verdict == "undecided":
        seen = f"forwarding on, filter: undecided at {fd.text}"
    else:
        seen = f"forwarding on, filter accepts: {fd.text}"
    return ok, f"via {hop} ({seen}){bnote}; " + why, (hop,) + hops, (out.segment,) + segs


T = TypeVar("T")


def _methods_in_turn(
    ports: tuple[int, ...], attempt: Callable[[str], tuple[T, bool, bool]]
) -> tuple[T, tuple[tuple[str, bool], ...]]:
    """ICMP, then each TCP port where a filter was met on ICMP's path: `attempt(method)` gives
    (result, reached, a filter met). The answer is ICMP's result unless a port reaches where
    ICMP did not (the first that does), with every method tried and whether it reached."""
    tried: list[tuple[str, bool]] = []
    first: tuple[T, bool] | None = None
    for method in ("icmp",) + tuple(f"tcp:{p}" for p in ports):
        res, ok, met = attempt(method)
        tried.append((method, ok))
        if first is None:
            first = (res, ok)
            if not met:  # no filter on the path: the port cannot change the answer
                break
        elif ok and not first[1]:
            first = (res, ok)
    assert first is not None
    return first[0], tuple(tried)


def _walk_methods(
    idx: _Index, a: Endpoint, b: Endpoint, ip: str, ports: tuple[int, ...]
) -> tuple[
    bool, str, tuple[str, ...], tuple[str, ...], tuple[FilterDecision, ...], str, tuple[tuple[str, bool], ...]
]:
    """The walk there (and back) for ICMP and, where a filter was met, for each TCP port."""
    assert a.netns is not None
    src = a.netns

    def attempt(
        method: str,
    ) -> tuple[
        tuple[bool, str, tuple[str, ...], tuple[str, ...], tuple[FilterDecision, ...], str], bool, bool
    ]:
        decisions: list[FilterDecision] = []
        ok, why, hops, segs = walk(idx, src, ip, method=method, decisions=decisions)
        vd = _vm_reply(idx, a, b, ip, method, decisions) if ok else None
        if vd is not None and vd.verdict == "drop":
            ok, why = False, f"{why}; but no way back: {vd.text}"
        if ok and b.netns is not None and a.addresses:
            # the replies: conntrack sees them as established
            backs = [walk(idx, b.netns, x, method=method, state="established") for x in a.addresses]
            if not any(x[0] for x in backs):
                ok, why = False, f"{why}; but no way back: {backs[0][1]}"
        return (ok, why, hops, segs, tuple(decisions), method), ok, bool(decisions)

    first, tried = _methods_in_turn(ports, attempt)
    return (*first, tried if len(tried) > 1 else ())


def predict_pair(idx: _Index, a: Endpoint, b: Endpoint, ports: tuple[int, ...] = ()) -> PairPrediction:
    base = dict(src=a.workload, dst=b.workload, src_tenant=a.tenant, dst_tenant=b.tenant)
    exposed = any(bs.segment in x.exposed for x in a.attachments for bs in b.attachments)
    if a.netns is not None and b.addresses:
        best: PairPrediction | None = None
        for ip in b.addresses:
            ok, why, hops, segs, decisions, method, methods = _walk_methods(idx, a, b, ip, ports)
            p = PairPrediction(
                **base,
                reachable=ok,
                address=ip,
                path=why if method == "icmp" else f"{method}: {why}",
                hops=hops,
                segments=segs,
                exposed=exposed,
                filters=decisions,
                method=method,
                methods=methods,
            )
            if ok:
                return p
            best = best or p
        assert best is not None
        return best
    shared = sorted({x.segment for x in a.attachments} & {y.segment for y in b.attachments})
    if shared:
        return PairPrediction(
            **base,
            reachable=True,
            path=f"share {idx.label(shared[0])} (addresses unknown)",
            segments=tuple(shared),
            exposed=exposed,
        )
    return PairPrediction(
        **base,
        reachable=False,
        path=NO_SEGMENT if a.attachments and b.attachments else "not attached anywhere known",
        exposed=exposed,
    )


MAX_BLOCKED_SAMPLES = 20  # blocked pairs kept per cell (all reachable pairs are kept)
NO_SEGMENT = "no shared segment"
MAX_ROUTED_VM_PAIRS = 2000  # walks of VM pairs through a router per prediction (a pair: one per packet)
NOT_WALKED = f"routed path not walked: more than {MAX_ROUTED_VM_PAIRS} walks of VM pairs in this prediction"


def _vm_routed(
    idx: _Index, a: Endpoint, b: Endpoint, p: PairPrediction, ports: tuple[int, ...] = ()
) -> tuple[PairPrediction, int]:
    """A VM source that shares no segment with `b`, walked through the router on its segment
    from its first address (add_vm_route), with the answer walked back (from `b`'s namespace,
    or from `b`'s own router when it is a VM): an ICMP echo and, where a filter was met, each
    TCP port as namespace sources are. (the prediction, the walks it took)"""
    src = a.addresses[0]
    best: PairPrediction | None = None
    walks = 0
    for ip in b.addresses:

        def attempt(method: str, ip: str = ip) -> tuple[PairPrediction, bool, bool]:
            nonlocal walks
            decisions: list[FilterDecision] = []
            walks += 1
            ok, why, hops, segs = walk(
                idx, f"vm:{a.name}", ip, src_ip=src, method=method, decisions=decisions
            )
            if ok:
                back = b.netns if b.netns is not None else f"vm:{b.name}"
                if b.netns is None and back not in idx.routes:
                    ok, why = False, f"{why}; but no way back: {b.name} has no router known on its segment"
                else:
                    rok, rwhy, _h, _s = walk(
                        idx, back, src, src_ip=ip, method=method, state="established", decisions=decisions
                    )
                    if not rok:
                        ok, why = False, f"{why}; but no way back: {rwhy}"
            q = replace(
                p,
                reachable=ok,
                address=ip,
                path=why if method == "icmp" else f"{method}: {why}",
                hops=hops,
                segments=segs,
                filters=tuple(decisions),
                method=method,
            )
            return q, ok, bool(decisions)

        first, tried = _methods_in_turn(ports, attempt)
        if len(tried) > 1:
            first = replace(first, methods=tried)
        if first.reachable:
            return first, walks
        best = best or first
    return best or p, walks


def _l2_signature(e: Endpoint) -> tuple[object, ...]:
    return tuple(sorted((x.segment, x.exposed) for x in e.attachments))


_REST = tuple(f.name for f in fields(PairPrediction))[2:]  # every field after src and dst
assert [f.name for f in fields(PairPrediction)][:2] == ["src", "dst"]


def _between(p: PairPrediction, src: str, dst: str) -> PairPrediction:
    """`replace(p, src=src, dst=dst)` without replace's per-call machinery: a class's verdict
    is copied for each of its pairs (~70,000 times per derive at 1,000 domains)."""
    return PairPrediction(src, dst, *[getattr(p, n) for n in _REST])


def predict_cells(hs: HostState) -> dict[tuple[str, str], list[PairPrediction]]:
    """Pair predictions grouped by (source tenant, destination tenant).

    Pairs that can only be judged at L2 (a VM source, or a destination without addresses)
    depend only on the two endpoints' attachments, so they are computed once per class of
    endpoints with the same tenant and attachments: at 1,000 VMs that is about a hundred
    classes instead of a million pairs. Every reachable pair is kept (checks name the
    workloads); blocked pairs are kept as samples, MAX_BLOCKED_SAMPLES per cell.
    """
    out: dict[tuple[str, str], list[PairPrediction]] = {}
    blocked: dict[tuple[str, str], int] = {}
    if hs.topology is None:
        return out

    def add(p: PairPrediction) -> None:
        k = (p.src_tenant, p.dst_tenant)
        if not p.reachable:
            if blocked.get(k, 0) >= MAX_BLOCKED_SAMPLES:
                return
            blocked[k] = blocked.get(k, 0) + 1
        out.setdefault(k, []).append(p)

    idx = _Index(hs.topology, no_icc_segments(hs), runtime_networks(hs))
    policy = hs.topology.policy
    probe_ports = hs.reach.ports if hs.reach else ()
    port_cache: dict[tuple[str, str], tuple[int, ...]] = {}

    def ports(src: str, dst: str) -> tuple[int, ...]:
        k = (src, dst)
        if k not in port_cache:
            port_cache[k] = tuple(sorted(set(allowed_ports(policy, src, dst)) | set(probe_ports)))
        return port_cache[k]

    eps = endpoints(hs)
    for e in eps:
        if e.netns is None and e.addresses:
            idx.add_vm(e)
    for e in eps:
        if e.netns is None and e.addresses:
            idx.add_vm_route(e)
    routed_left = MAX_ROUTED_VM_PAIRS
    classes: dict[tuple[object, ...], list[Endpoint]] = {}
    for e in eps:
        classes.setdefault((e.tenant, _l2_signature(e)), []).append(e)
    walkers = [e for e in eps if e.netns is not None and e.workload != "host"]
    with_addr = [e for e in eps if e.addresses]
    # pairs that need a route walk: namespace sources to destinations with addresses
    for a in walkers:
        for b in with_addr:
            if b.workload != a.workload:
                add(
                    predict_pair(
                        idx, a, b, ports(a.tenant, b.tenant) if idx.filters or idx.ovs or idx.nics else ()
                    )
                )
    # the rest is L2 only: one verdict per pair of classes (a VM source's own nwfilter apart)
    vm_out: dict[tuple[str, object], FilterDecision] = {}
    out_why: dict[int, str] = {}
    for ka, aa in classes.items():
        for kb, bb in classes.items():
            verdict: PairPrediction | None = None
            for a in aa:
                if a.workload == "host":
                    continue
                for b in bb:
                    if b.workload == a.workload or (a.netns is not None and b.addresses):
                        continue
                    if verdict is None:
                        verdict = predict_pair(idx, a, b)
                    # no shared segment: a VM with a router on its segment is walked through it
                    routable = (
                        idx.vm_routes > 0
                        and not verdict.reachable
                        and verdict.path == NO_SEGMENT
                        and a.netns is None
                        and bool(b.addresses)
                        and f"vm:{a.name}" in idx.routes
                    )
                    if routable and routed_left <= 0:  # the rest stay at L2, and say so
                        verdict = replace(verdict, path=f"{NO_SEGMENT} ({NOT_WALKED})")
                        routable = False
                    if (
                        not routable
                        and not verdict.reachable
                        and blocked.get((a.tenant, b.tenant), 0) >= MAX_BLOCKED_SAMPLES
                    ):
                        break
                    p = _between(verdict, a.workload, b.workload)
                    if routable:
                        p, took = _vm_routed(idx, a, b, p, ports(a.tenant, b.tenant) if idx.filters else ())
                        routed_left -= took
                    nd = _vm_out(idx, a, b, vm_out) if p.reachable and idx.nics else None
                    if nd is not None:
                        lost = nd.verdict == "drop"
                        why = out_why.get(id(nd), "")  # the decisions live in vm_out: ids stay theirs
                        if not why:
                            why = out_why[id(nd)] = (
                                f"; but {'its own' if lost else 'through its'} nwfilter: {nd.text}"
                            )
                        p = replace(p, reachable=not lost, path=p.path + why, filters=p.filters + (nd,))
                    if p.reachable and a.netns is None and not p.hops and (idx.filters or idx.nics):
                        p = _vm_pair_filters(idx, a, b, p, ports(a.tenant, b.tenant))
                    add(p)
    return out


_FIELD_KEYS = {"meta iifname": "iif", "meta oifname": "oif", "ip saddr": "src", "ip daddr": "dst"}
_RAW = ("raw",)  # a field compared with something not classified here (a named set): its value


def _ip_int(idx: _Index, ip: str) -> int | None:
    got = idx.ip_ints.get(ip, -1)
    if got == -1:
        try:
            got = int(ipaddress.IPv4Address(ip))
        except ValueError:
            got = None
        idx.ip_ints[ip] = got
    return got


def _span_of(a: Atom) -> tuple[int, int] | None:
    try:
        if a.kind == "prefix":
            n = ipaddress.IPv4Network(f"{a.a}/{a.b}", strict=False)
            return int(n.network_address), int(n.broadcast_address)
        if a.kind == "range":
            return int(ipaddress.IPv4Address(a.a)), int(ipaddress.IPv4Address(a.b))
        if a.kind == "value":
            v = int(ipaddress.IPv4Address(a.a))
            return v, v
    except ValueError:
        return None
    return None


@dataclass(frozen=True)
class _FieldTests:
    """What the rules of a namespace compare one packet field with: packets whose field
    answers every comparison alike are decided alike (their filter class)."""

    raw: bool = False  # compared with a named set or an unknown atom: classed by value
    names: frozenset[str] = frozenset()  # interface names (exact)
    prefixes: tuple[str, ...] = ()  # interface wildcards (`eth*`)
    spans: tuple[tuple[int, int], ...] = ()  # address intervals


def _field_tests(idx: _Index, f: NsFilters) -> dict[str, _FieldTests]:
    """Per packet field (iif, oif, src, dst) a rule of `f` reads, what it is compared with
    (once per prediction)."""
    got = idx.fields.get(f.netns)
    if got is not None:
        return got
    acc: dict[str, tuple[bool, set[str], set[str], set[tuple[int, int]]]] = {}
    for rs in f.rulesets:
        for c in rs.chains:
            for r in c.rules:
                for pt in r.parts:
                    fld = _FIELD_KEYS.get(pt.key) if pt.kind in ("match", "vmap") else None
                    if fld is None:
                        continue
                    raw, names, prefixes, spans = acc.setdefault(fld, (False, set(), set(), set()))
                    atoms = pt.values if pt.kind == "match" else tuple(a for a, _ in pt.entries)
                    if pt.ref:
                        raw = True
                    for a in atoms:
                        if fld in ("iif", "oif"):
                            if a.kind != "value":
                                raw = True
                            elif a.a.endswith("*"):
                                prefixes.add(a.a[:-1])
                            else:
                                names.add(a.a)
                        else:
                            sp = _span_of(a)
                            if sp is None:
                                raw = True
                            else:
                                spans.add(sp)
                    acc[fld] = (raw, names, prefixes, spans)
    got = idx.fields[f.netns] = {
        k: _FieldTests(raw, frozenset(n), tuple(sorted(p)), tuple(sorted(sp)))
        for k, (raw, n, p, sp) in acc.items()
    }
    return got


def _field_class(idx: _Index, t: _FieldTests | None, value: str, addr: bool) -> object:
    """The class of `value` under the comparisons `t` (None: nothing compares it)."""
    if t is None:
        return ""
    if t.raw:
        return value
    if addr:
        v = _ip_int(idx, value)
        return value if v is None else tuple(lo <= v <= hi for lo, hi in t.spans)
    return (value if value in t.names else "", tuple(value.startswith(p) for p in t.prefixes))


def _nic_spans(nf: NicFilter, direction: str) -> tuple[tuple[int, int], ...] | None:
    """The address intervals the NIC's rules for `direction` compare with (None: one of
    them is not an address, e.g. a variable with no value: classed by value)."""
    out: set[tuple[int, int]] = set()
    for r in (*nf.root, *(r for _, rs in nf.chains for r in rs)):
        if r.direction not in (direction, "inout"):
            continue
        a = dict(r.attrs)
        for k in ("srcipaddr", "dstipaddr"):
            if k not in a:
                continue
            to, mask = a.get(k[:3] + "ipto", ""), a.get(k[:3] + "ipmask", "")
            if to:
                sp = _span_of(Atom("range", a[k], to))
            elif mask:
                plen = mask if mask.isdigit() else ""
                if not plen:
                    try:
                        plen = str(ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen)
                    except ValueError:
                        return None
                sp = _span_of(Atom("prefix", a[k], plen))
            else:
                sp = _span_of(Atom("value", a[k]))
            if sp is None:
                return None
            out.add(sp)
    return tuple(sorted(out))


def _vm_pair_filters(
    idx: _Index, a: Endpoint, b: Endpoint, p: PairPrediction, ports: tuple[int, ...] = ()
) -> PairPrediction:
    """A VM source's ICMP echo to `b` (both addresses known) on the segment they share,
    through the bridge's filters (bridge family; the IP hooks with br_netfilter), `b`'s
    nwfilter (in) and `b`'s answer leaving its nwfilter (out); when a filter drops it, each TCP
    port of `ports` (the policy's, the probe's) is tried as for namespace sources. Decided once
    per class of what the rules read: a bridge's rules per (ports, addresses) only where they
    read them, an nwfilter per NIC (per peer address only where a rule reads it), so 1,000 VMs
    stay cheap."""
    if not a.addresses or not b.addresses:
        return p
    if len(a.attachments) == 1 and len(b.attachments) == 1:  # the usual VM: one NIC
        if a.attachments[0].segment != b.attachments[0].segment:
            return p
        xa, xb = a.attachments[0], b.attachments[0]
    else:
        shared = sorted(
            ((x, y) for x in a.attachments for y in b.attachments if x.segment == y.segment),
            key=lambda xy: xy[0].segment,
        )
        if not shared:
            return p
        xa, xb = shared[0]
    got = _vm_pair_method(idx, a, b, xa, xb, "icmp")
    if got is None:
        return p
    ok, why, decisions = got
    method, tried = "icmp", [("icmp", ok)]
    if not ok:
        for port in ports:
            m = f"tcp:{port}"
            other = _vm_pair_method(idx, a, b, xa, xb, m)
            tried.append((m, other is None or other[0]))
            if other is None or other[0]:  # no filter met for this packet, or all accept it
                ok, why, decisions = other or (True, "", ())
                method = m
                break
    path = p.path + why if method == "icmp" else f"{method}: {p.path}{why}"
    return replace(
        p,
        reachable=ok,
        path=path,
        filters=p.filters + decisions,
        method=method,
        methods=tuple(tried) if len(tried) > 1 else (),
    )


def _vm_pair_method(
    idx: _Index, a: Endpoint, b: Endpoint, xa: Attachment, xb: Attachment, method: str
) -> tuple[bool, str, tuple[FilterDecision, ...]] | None:
    """_vm_pair_filters for one packet (icmp, tcp:PORT): (reaches, why, decisions), None when
    no filter was met."""
    src, dst = a.addresses[0], b.addresses[0]
    proto, _, port = method.partition(":")
    num = int(port) if port.isdigit() else None
    echo = Packet(src, dst, proto, num)
    reply = Packet(dst, src, proto, None, state="established", sport=num)
    memo = idx.vm_memo
    found: list[tuple[str, FilterDecision]] = []
    keys: list[tuple[object, ...]] = []
    seg = xa.segment
    f = idx.filters.get(seg[3:].rpartition("/")[0]) if seg.startswith("br:") else None
    if f is not None:
        ca, cb = _ep_class(idx, f, xa, src), _ep_class(idx, f, xb, dst)
        # the address lookup (ARP: bridge family only, no IP header), the echo, then its reply
        # (conntrack: established) from the other port
        for where, x, y, pkt, cx, cy in (
            ("arp", xa, xb, ARP, ca, cb),
            ("arp-back", xb, xa, ARP, cb, ca),
            ("bridge", xa, xb, echo, ca, cb),
            ("bridge-back", xb, xa, reply, cb, ca),
        ):
            m = "arp" if where.startswith("arp") else method
            key: tuple[object, ...] = (where, seg, cx[0], cy[1], cx[2], cy[3], m)
            if key not in memo:
                memo[key] = _bridged(idx, seg, x, y, pkt, None)
            d = memo[key]
            keys.append(key)
            if d is not None and (m != "arp" or d.verdict != "accept"):  # an ARP that passes: not shown
                found.append((where, d))
                if d.verdict == "drop":
                    break
    tap = xb.iface.rpartition("/")[2] if b.netns is None else ""
    nf = idx.nics.get(tap) if tap else None
    if nf is not None and not (found and found[-1][1].verdict == "drop"):
        from probes.network.nwfilter import decide_nic

        for direction, pkt in (("in", echo), ("out", reply)):
            key = ("nic", tap, direction, _nic_peer(idx, nf, direction, src), method)
            if key not in memo:
                memo[key] = decide_nic(nf, pkt, direction)
            d = memo[key]
            keys.append(key)
            if d is not None:
                found.append((direction, d))
                if d.verdict == "drop":
                    break
    if not found:
        return None
    # what the pair's prediction gets: built once per combination of classes
    ck = tuple(keys)
    got = idx.vm_notes.get(ck)
    if got is None:
        decisions = tuple(d for _, d in found)
        last_where, last = found[-1]
        if last.verdict == "drop":
            why = {
                "arp": f"; but {idx.label(seg)}: its ARP request blocked by filter {last.text}",
                "arp-back": f"; but {idx.label(seg)}: the ARP reply blocked by filter {last.text}",
                "bridge": f"; but {idx.label(seg)}: blocked by filter {last.text}",
                "bridge-back": f"; but no way back: {idx.label(seg)}: blocked by filter {last.text}",
                "in": f"; but blocked by {last.text}",
                "out": f"; but no way back: {last.text}",
            }[last_where]
        else:
            why = "".join(f" ({d.text})" for d in decisions)
        got = idx.vm_notes[ck] = (last.verdict != "drop", why, decisions)
    return got


def _ep_class(idx: _Index, f: NsFilters, x: Attachment, ip: str) -> tuple[object, object, object, object]:
    """An endpoint's port and address classes under `f`'s rules, as sender (iif, src) and as
    receiver (oif, dst); once per endpoint and namespace."""
    k = (f.netns, x.port, ip)
    got = idx.ep_classes.get(k)
    if got is None:
        ft = _field_tests(idx, f)
        port = x.port.rpartition("/")[2]
        got = idx.ep_classes[k] = (
            _field_class(idx, ft.get("iif"), port, False),
            _field_class(idx, ft.get("oif"), port, False),
            _field_class(idx, ft.get("src"), ip, True),
            _field_class(idx, ft.get("dst"), ip, True),
        )
    return got


def _nic_peer(idx: _Index, nf: NicFilter, direction: str, peer: str) -> object:
    """The class of the peer's address under the NIC's rules for `direction` (the VM's own
    addresses are fixed per NIC): which of the address intervals the rules compare with hold it."""
    k = (nf.portdev, direction)
    spans = idx.nic_spans[k] if k in idx.nic_spans else idx.nic_spans.setdefault(k, _nic_spans(nf, direction))
    v = _ip_int(idx, peer)
    return peer if spans is None or v is None else tuple(lo <= v <= hi for lo, hi in spans)


def _vm_out(
    idx: _Index, a: Endpoint, b: Endpoint, memo: dict[tuple[str, object], FilterDecision]
) -> FilterDecision | None:
    """A VM source's own nwfilter (direction out) for its ICMP packet to `b`: once per NIC,
    or per destination where a rule looks at the destination (the class-shared L2 verdicts
    stay shared: a filter like clean-traffic is decided once per VM)."""
    if a.netns is not None or not a.addresses:
        return None
    for att in a.attachments:
        tap = att.iface.rpartition("/")[2]
        nf = idx.nics.get(tap)
        if nf is None:
            continue
        # the destination's address matters only as far as the rules' address intervals do
        dst = b.addresses[0] if b.addresses else ""
        if not dst:  # unknown: decidable only when no rule compares an address with it
            if _nic_peer(idx, nf, "out", "0.0.0.0") != ():
                return None
            dst = "0.0.0.0"
        key = (tap, _nic_peer(idx, nf, "out", dst))
        if key not in memo:
            from probes.network.nwfilter import decide_nic

            memo[key] = decide_nic(nf, Packet(a.addresses[0], dst), "out")
        return memo[key]
    return None


def predict(hs: HostState) -> list[PairPrediction]:
    return [p for ps in predict_cells(hs).values() for p in ps]


def matrix(hs: HostState, policy: Policy | None = None) -> Matrix:
    """The tenant x tenant matrix of one host. Not cached here (no module-level state): the
    checks memoize it per run (checks/base.py memo), the Reachability pane per change."""
    policy = policy or (hs.topology.policy if hs.topology else None)
    return _matrix(hs, policy)


def _matrix(hs: HostState, policy: Policy | None) -> Matrix:
    preds = predict_cells(hs)
    by_cell: dict[tuple[str, str], list[ReachResult]] = {}
    for r in hs.reach.results if hs.reach else ():
        by_cell.setdefault((r.src_tenant, r.dst_tenant), []).append(r)
    tenants = sorted({w.tenant or "(unplaced)" for w in hs.workloads})
    dsts = tenants + ([HOST_TENANT] if hs.topology else [])
    cells = []
    for s in tenants:
        for d in dsts:
            pp = tuple(preds.get((s, d), ()))
            rr = tuple(by_cell.get((s, d), ()))
            tested = [r for r in rr if r.outcome not in ("not-testable", "error")]
            cells.append(
                Cell(
                    src=s,
                    dst=d,
                    expected=allows(policy, s, d),
                    predicted=any(p.reachable for p in pp) if pp else None,
                    observed=any(r.reached for r in tested) if tested else None,
                    exposed=any(p.exposed for p in pp),
                    pairs=pp,
                    results=rr,
                    allowed_ports=allowed_ports(policy, s, d),
                    violations=tuple(
                        r for r in tested if r.reached and not allows(policy, s, d, _port(r.method))
                    ),
                )
            )
    return Matrix(tuple(tenants), tuple(dsts), tuple(cells))


@dataclass(frozen=True)
class Contradiction:
    """A probe result that says otherwise than the prediction for its pair and packet."""

    result: ReachResult
    pair: PairPrediction
    predicted: bool  # for the result's method

    @property
    def text(self) -> str:
        r, p = self.result, self.pair
        said = "reach" if self.predicted else "blocked"
        if p.filter_state == "filter-undecided":
            said = "possible (a filter it could not decide)"
        saw = f"{r.outcome} ({'reached' if r.reached else 'not reached'})"
        rule = p.deciding_rule or p.path
        return f"{r.method} {r.src.rsplit('/', 1)[-1]} → {r.address}: predicted {said}, observed {saw}; the prediction relied on: {rule}"


def contradictions(c: Cell) -> list[Contradiction]:
    """Probe results of the cell that contradict the prediction for the same pair, address and
    packet (the prediction for a port is known where filters were met; else one answer for all)."""
    by_pair = {(p.src, p.dst, p.address): p for p in c.pairs if p.address}
    out = []
    for r in c.results:
        if r.outcome in ("not-testable", "error"):
            continue
        p = by_pair.get((r.src, r.dst, r.address))
        if p is None:
            continue
        if p.methods:
            pred = dict(p.methods).get(r.method)
            if pred is None:
                continue
        else:
            pred = p.reachable
        if pred != r.reached:
            out.append(Contradiction(r, p, pred))
    return out


def _port(method: str) -> int | None:
    return int(method[4:]) if method.startswith("tcp:") and method[4:].isdigit() else None


def reached_pairs(results: Sequence[ReachResult]) -> list[ReachResult]:
    return [r for r in results if r.reached]
