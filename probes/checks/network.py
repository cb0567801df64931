"""Network isolation checks: pure functions of the observed topology, the workloads, the
policy, the last active probe run, and (NET-08) the host's SR-IOV virtual functions."""

from __future__ import annotations

import shlex
from collections import defaultdict
from collections.abc import Iterator, Sequence

from probes.checks.base import CheckSpec, Skip, check, finding, memo
from probes.checks.common import dom, keys, libvirt_gap, passed, per_host, tenants_of, vms, who
from probes.facts.model import HostFacts
from probes.model import Evidence, Finding, HostState, Severity, State, Status, Workload, WorkloadKind
from probes.network.filtereval import FilterDecision
from probes.network.filtermodel import NsFilters
from probes.network.model import Link, ReachResult
from probes.network.predict import Cell, contradictions, matrix
from probes.network.segments import (
    HOST_TENANT,
    UNPLACED,
    Attachment,
    endpoints,
    runtime_networks,
    segment_label,
    segment_name,
)

ANTI_SPOOF = {
    "clean-traffic",
    "clean-traffic-gateway",
    "no-ip-spoofing",
    "no-mac-spoofing",
    "no-arp-spoofing",
    "no-arp-mac-spoofing",
    "no-arp-ip-spoofing",
}


def _with_topology(state: State) -> list[HostState]:
    hosts = [h for h in state.hosts if h.topology is not None]
    if not hosts:
        raise Skip("no network topology observed yet")
    return hosts


def _vms_unseen(spec: CheckSpec, hs: HostState) -> Iterator[Finding]:
    """An ERROR beside what the check finds while the host's libvirt does not answer: its VMs
    are missing from the segments, so "nothing found" would vouch for what was not seen."""
    why = libvirt_gap(hs)
    if why and why[0] == Status.ERROR:
        yield finding(
            spec,
            Status.ERROR,
            f"VMs not seen ({why[1]}): this covers namespaces and containers only",
            host=hs.host.name,
        )


def _q(s: str) -> str:
    return shlex.quote(s)


@check(
    "NET-01",
    "network",
    "VM NIC without an anti-spoofing nwfilter",
    "Without a filter like clean-traffic a guest can send with any MAC or IP address and "
    "take over another tenant's address on a shared segment.",
    Severity.HIGH,
    "virsh edit DOMAIN: add <filterref filter='clean-traffic'/> to each <interface>",
    reads=("workloads",),
    scope="host",
)
def net01_no_antispoof_filter(state: State, spec: CheckSpec) -> Iterator[Finding]:
    vms = [w for w in state.workloads() if w.kind == WorkloadKind.VM and w.vm]
    if not vms:
        raise Skip("no VMs")
    for w in vms:
        assert w.vm is not None
        for nic in w.vm.nics:
            if nic.type not in ("network", "bridge", "direct", "ethernet"):
                continue
            where = f"{w.name} interface {nic.mac or nic.target_dev}"
            if not nic.filterref:
                yield finding(
                    spec,
                    Status.FAIL,
                    f"{where} has no nwfilter",
                    host=w.host,
                    tenants=[w.tenant] if w.tenant else [],
                    workloads=[w.key],
                    evidence=[Evidence(f"domain XML of {w.name}", "<interface> without <filterref>")],
                    fix=(
                        # libvirt's libxl driver has no nwfilter: Xen's vif scripts filter by ip=
                        f"xl.cfg of {w.name}: vif = ['mac={nic.mac},ip=GUEST-IP,...'] (vif-bridge then drops "
                        f"frames from other addresses); in libvirt: <ip address='GUEST-IP'/> in the <interface>"
                        if w.vm and w.vm.domain_type == "xen"
                        else f"virsh edit {_q(w.name)}  # in <interface> with mac {nic.mac}: <filterref filter='clean-traffic'/>"
                    ),
                )
            elif nic.filterref not in ANTI_SPOOF:
                yield finding(
                    spec,
                    Status.WARN,
                    f"{where} uses nwfilter {nic.filterref}, not a known anti-spoofing filter",
                    host=w.host,
                    workloads=[w.key],
                    tenants=[w.tenant] if w.tenant else [],
                    evidence=[Evidence(f"domain XML of {w.name}", f"filterref {nic.filterref}")],
                    fix=f"virsh nwfilter-dumpxml {_q(nic.filterref)}  # check it references clean-traffic",
                )


def _segment_tenants(hs: HostState) -> dict[str, dict[str, list[tuple[str, str]]]]:
    """segment -> tenant -> [(workload key, port)]"""
    out: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for e in endpoints(hs):
        if e.workload == "host":
            continue
        for a in e.attachments:
            if a.segment.endswith("#none"):
                continue
            out.setdefault(a.segment, {}).setdefault(e.tenant, []).append((e.workload, a.port))
    return out


@check(
    "NET-02",
    "network",
    "A segment shared by tenants",
    "Workloads of different tenants on one L2 segment can see each other's broadcasts, "
    "ARP-spoof each other and talk directly: nothing between them filters.",
    Severity.HIGH,
    "move each tenant to its own bridge or VLAN",
    reads=(
        "workloads",
        "topology",
        "runtimes",
        "reach",
        "connections",
        "probe_errors",
    ),  # VM addresses: agents answer in probe runs
    scope="host",
)
def net02_shared_segment(state: State, spec: CheckSpec) -> Iterator[Finding]:
    for hs in _with_topology(state):
        yield from _vms_unseen(spec, hs)
        nets = runtime_networks(hs)
        for seg, tenants in sorted(_segment_tenants(hs).items()):
            if len(tenants) < 2:
                continue
            members = [(t, w, p) for t, ws in sorted(tenants.items()) for w, p in ws]
            evidence = [Evidence(f"port {p}", f"{w} (tenant {t})") for t, w, p in members]
            status = Status.FAIL
            summary = f"{segment_name(seg, nets)} is shared by tenants {', '.join(sorted(tenants))}"
            fix = (
                f"re-plug the ports of all but one tenant off {segment_label(seg)}, e.g. "
                f"ip link set PORT master OTHER-BRIDGE, or give each tenant its own VLAN tag"
            )
            if seg in nets:  # a container runtime's network: say it in the runtime's words
                runtime, net = nets[seg]
                icc = net.icc
                evidence.insert(
                    0,
                    Evidence(
                        f"{runtime} network inspect {net.name}",
                        f"driver {net.driver}"
                        + (f", bridge {net.bridge}" if net.bridge else "")
                        + (f", parent {net.parent}" if net.parent else "")
                        + (
                            ""
                            if icc is None
                            else f", com.docker.network.bridge.enable_icc={str(icc).lower()}"
                        ),
                    ),
                )
                fix = (
                    f"{runtime} network create TENANT-net  # one network per tenant, then per container of "
                    f"the other tenants:\n{runtime} network connect TENANT-net CONTAINER && "
                    f"{runtime} network disconnect {_q(net.name)} CONTAINER"
                )
                if icc is False:  # IPv4 between containers is dropped; L2 (ARP, IPv6) is still shared
                    status = Status.WARN
                    summary += " (inter-container communication off: IPv4 between them is dropped, L2 is still shared)"
            yield finding(
                spec,
                status,
                summary,
                host=hs.host.name,
                tenants=list(tenants),
                workloads=[w for _, w, _ in members],
                evidence=evidence,
                fix=fix,
                severity=Severity.MEDIUM if status == Status.WARN else None,
            )


@check(
    "NET-03",
    "network",
    "An OVS port trunking all VLANs",
    "A port with no tag and no trunk list carries every VLAN of the bridge: whoever is "
    "behind it can tag frames into any tenant's VLAN.",
    Severity.HIGH,
    "ovs-vsctl set port PORT tag=TENANT-VLAN  (or trunks=ONLY-THE-NEEDED-VLANS)",
    reads=("workloads", "topology", "reach"),
    scope="host",
)
def net03_ovs_trunk_all(state: State, spec: CheckSpec) -> Iterator[Finding]:
    hosts = [h for h in _with_topology(state) if h.topology and h.topology.ovs]
    if not hosts:
        raise Skip("no Open vSwitch bridges observed")
    for hs in hosts:
        owner = {a.port: e for e in endpoints(hs) for a in e.attachments}
        assert hs.topology is not None
        for br in hs.topology.ovs:
            tags = sorted({p.tag for p in br.ports if p.tag is not None})
            for p in br.ports:
                if (
                    not p.trunks_all
                    or p.name == br.name
                    or any(i.type in ("patch", "internal") and p.name == br.name for i in p.interfaces)
                ):
                    continue
                if any(i.type == "patch" for i in p.interfaces):
                    continue
                e = owner.get(f"ovs:{br.name}/{p.name}")
                who = f" ({e.name}, tenant {e.tenant})" if e else ""
                status = Status.FAIL if tags else Status.WARN
                yield finding(
                    spec,
                    status,
                    f"OVS port {p.name} on {br.name} has no tag and no trunks: it carries every VLAN"
                    + (f" ({', '.join(map(str, tags))})" if tags else "")
                    + who,
                    host=hs.host.name,
                    tenants=[e.tenant] if e else [],
                    workloads=[e.workload] if e else [],
                    evidence=[
                        Evidence(
                            f"ovs-vsctl list Port {p.name}",
                            f"tag=[] trunks=[] vlan_mode={p.vlan_mode or 'default'}"
                            + ("" if p.attached else "; no ofport: not really attached"),
                        )
                    ],
                    fix=f"ovs-vsctl set port {_q(p.name)} tag=VLAN  # the VLAN of its tenant",
                )


@check(
    "NET-04",
    "network",
    "Tenants on one Linux bridge without VLAN separation or port isolation",
    "A Linux bridge forwards between all its ports unless VLAN filtering or port isolation "
    "separates them; tenants on one bridge are separated only by their IP addressing.",
    Severity.MEDIUM,
    "bridge link set dev PORT isolated on  (for each tenant port), or one bridge per tenant",
    reads=("workloads", "topology", "reach", "connections", "probe_errors"),
    scope="host",
)
def net04_bridge_without_separation(state: State, spec: CheckSpec) -> Iterator[Finding]:
    for hs in _with_topology(state):
        yield from _vms_unseen(spec, hs)
        topo = hs.topology
        assert topo is not None
        for seg, tenants in sorted(_segment_tenants(hs).items()):
            if not seg.startswith("br:") or len(tenants) < 2:
                continue
            ns, _, name = seg[3:].rpartition("/")
            br = topo.link(ns, name)
            if br is not None and br.vlan_filtering:
                continue
            ports = [p for ws in tenants.values() for _, p in ws]
            open_ports = []
            for p in ports:
                pns, _, pname = p.rpartition("/")
                lk = topo.link("" if pns == "host" else pns, pname)
                if not (lk and lk.port_isolated):
                    open_ports.append(p)
            if len(open_ports) < 2:
                continue
            yield finding(
                spec,
                Status.FAIL,
                f"bridge {name} joins tenants {', '.join(sorted(tenants))} with no VLAN filtering and "
                f"{len(open_ports)} non-isolated ports",
                host=hs.host.name,
                tenants=list(tenants),
                workloads=[w for ws in tenants.values() for w, _ in ws],
                evidence=[Evidence(f"bridge {name}", "vlan_filtering 0")]
                + [Evidence(f"port {p}", "isolated off") for p in open_ports],
                fix="\n".join(
                    f"bridge link set dev {_q(p.rpartition('/')[2])} isolated on" for p in open_ports
                ),
            )


def _from(r: ReachResult) -> str:
    """`from segment ` / `from guest ` for probes sent for a VM (namespaces need no label)."""
    return f"from {r.via} " if r.via in ("segment", "guest") else ""


def _by_source(rs: Sequence[ReachResult]) -> list[ReachResult]:
    """One result of each source kind first, so the evidence shows every kind that saw it."""
    firsts: dict[str, ReachResult] = {}
    for r in rs:
        firsts.setdefault(r.via, r)
    head = list(firsts.values())
    return head + [r for r in rs if r not in head]


def _cells(hs: HostState) -> tuple[Cell, ...]:
    return memo(hs, "matrix", lambda: matrix(hs)).cells  # NET-05 and NET-06 of one run share it


@check(
    "NET-05",
    "network",
    "Observed reach where policy denies",
    "One tenant's workload answered another tenant's probe although policy says they are "
    "isolated: the headline isolation failure.",
    Severity.CRITICAL,
    "find the shared segment or forwarding gateway on the path shown, and separate it",
    reads=("workloads", "topology", "runtimes", "reach", "connections", "probe_errors"),
    scope="host",
)
def net05_reach_policy_denies(state: State, spec: CheckSpec) -> Iterator[Finding]:
    for hs in _with_topology(state):
        yield from _vms_unseen(spec, hs)
        topo = hs.topology
        assert topo is not None
        for p in topo.problems:
            yield finding(
                spec,
                Status.WARN,
                p,
                host=hs.host.name,
                severity=Severity.MEDIUM,
                evidence=[Evidence("config / netns list", p)],
                fix="correct the namespace name in the config",
            )
        for c in _cells(hs):
            if c.dst == HOST_TENANT or c.expected or (c.src == c.dst and not c.src.startswith("(")):
                continue
            if c.violations:
                reached = _by_source(c.violations)
                ev = [
                    Evidence(
                        f"{r.method} {_from(r)}{r.src} -> {r.dst} {r.address}",
                        f"{r.outcome}"
                        + (f", {r.rtt_ms:.2f} ms" if r.rtt_ms is not None else "")
                        + (
                            f", via {' > '.join(h.where or h.address for h in r.hops)}"
                            if r.hops
                            else ", direct (same segment)"
                        ),
                    )
                    for r in reached[:6]
                ]
                ev += [Evidence("topology path", p.path) for p in c.pairs if p.reachable][:3]
                ev += [Evidence("the prediction said otherwise", x.text) for x in contradictions(c)[:3]]
                unplaced = UNPLACED in (c.src, c.dst)
                yield finding(
                    spec,
                    Status.WARN if unplaced else Status.FAIL,
                    f"{c.src} reaches {c.dst} ({len(reached)} probe(s) answered"
                    + (
                        f"; policy allows only TCP {', '.join(map(str, c.allowed_ports))})"
                        if c.allowed_ports
                        else ")"
                    )
                    + (
                        ": place these workloads in a tenant to know whether that is allowed"
                        if unplaced
                        else ""
                    ),
                    severity=Severity.HIGH if unplaced else None,
                    host=hs.host.name,
                    tenants=[c.src, c.dst],
                    workloads=sorted({r.src for r in reached} | {r.dst for r in reached}),
                    evidence=ev,
                )
            elif c.observed is None and c.predicted and c.status == "wrong":
                paths = [p for p in c.pairs if p.reachable]
                yield finding(
                    spec,
                    Status.WARN,
                    f"{c.src} is predicted to reach {c.dst} (not probed yet)",
                    host=hs.host.name,
                    tenants=[c.src, c.dst],
                    severity=Severity.HIGH,
                    workloads=sorted({p.src for p in paths} | {p.dst for p in paths}),
                    evidence=[Evidence("topology path", p.path) for p in paths[:4]],
                    fix="run the active probes (Reachability pane, key p; or `tenantscope check --probe`)",
                )


@check(
    "NET-06",
    "network",
    "A tenant reaches a host address",
    "A tenant that can reach the hypervisor's own addresses can attack its services "
    "(libvirt, sshd, metadata) from inside.",
    Severity.HIGH,
    "drop tenant traffic to the host in the INPUT chain, or remove host addresses from tenant bridges",
    reads=("workloads", "topology", "runtimes", "reach", "connections", "probe_errors"),
    scope="host",
)
def net06_tenant_reaches_host(state: State, spec: CheckSpec) -> Iterator[Finding]:
    for hs in _with_topology(state):
        yield from _vms_unseen(spec, hs)
        for c in _cells(hs):
            if c.dst != HOST_TENANT or (c.src.startswith("(") and c.src != "(unplaced)"):
                continue
            if c.observed:
                rr = [r for r in c.results if r.reached]
                yield finding(
                    spec,
                    Status.FAIL,
                    f"{c.src} reaches the host at {', '.join(sorted({r.address for r in rr}))}",
                    host=hs.host.name,
                    tenants=[c.src],
                    workloads=sorted({r.src for r in rr}),
                    evidence=[
                        Evidence(f"{r.method} {_from(r)}{r.src} -> {r.address}", r.outcome)
                        for r in _by_source(rr)[:6]
                    ],
                )
            elif c.observed is None and c.predicted:
                pp = [p for p in c.pairs if p.reachable]
                yield finding(
                    spec,
                    Status.WARN,
                    f"{c.src} is predicted to reach the host (not probed yet)",
                    host=hs.host.name,
                    tenants=[c.src],
                    workloads=sorted({p.src for p in pp}),
                    evidence=[Evidence("topology path", p.path) for p in pp[:4]],
                )


@check(
    "NET-07",
    "network",
    "Forwarding between tenant segments without a filter",
    "A namespace (or the host) with IP forwarding on and legs on segments of different "
    "tenants routes between them unless a filter stops it.",
    Severity.HIGH,
    "sysctl -w net.ipv4.ip_forward=0 in that namespace, or add a FORWARD filter between the legs",
    reads=("workloads", "topology", "reach", "connections", "probe_errors"),
    scope="host",
)
def net07_forwarding_between_tenants(state: State, spec: CheckSpec) -> Iterator[Finding]:
    from probes.network.segments import attach

    for hs in _with_topology(state):
        yield from _vms_unseen(spec, hs)
        topo = hs.topology
        assert topo is not None
        seg_tenants = {s: set(t) for s, t in _segment_tenants(hs).items()}
        seg_addrs = _segment_addresses(hs)
        for ns in topo.namespaces:
            legs: list[tuple[Link, Attachment]] = []
            for lk in topo.links_in(ns.name):
                if lk.forwarding and lk.addresses and lk.name != "lo":
                    a = attach(topo, lk)
                    if a is not None and seg_tenants.get(a.segment):
                        legs.append((lk, a))
            tenants: set[str] = set().union(*(seg_tenants[a.segment] for _, a in legs)) if legs else set()
            segs = {a.segment for _, a in legs}
            if len(segs) < 2 or len(tenants) < 2:
                continue
            where = ns.name or "the host"
            between = f"{where} forwards between {', '.join(segment_label(s) for s in sorted(segs))}"
            leg_ev = [
                Evidence(
                    f"{lk.where} {', '.join(lk.addresses)}", f"forwarding on, on {segment_label(a.segment)}"
                )
                for lk, a in legs
            ]
            f = topo.filters_of(ns.name)
            if f is None or f.errors:
                why = "its filters were not read" if f is None else "its filters could not all be read"
                yield finding(
                    spec,
                    Status.FAIL,
                    f"{between} (tenants {', '.join(sorted(tenants))}); {why}",
                    host=hs.host.name,
                    tenants=sorted(tenants),
                    evidence=leg_ev + [Evidence("filter reader", e) for e in (f.errors if f else ())],
                    fix=(
                        f"ip netns exec {_q(ns.name)} sysctl -w net.ipv4.ip_forward=0"
                        if ns.name
                        else "sysctl -w net.ipv4.ip_forward=0  # or nft: drop forwarding between these bridges"
                    ),
                )
                continue
            decisions = _leg_decisions(f, legs, seg_tenants, seg_addrs, hs.reach.ports if hs.reach else ())
            accepted = [d for d in decisions if d.verdict in ("accept", "none")]
            undecided = [d for d in decisions if d.verdict == "undecided"]
            ev = (
                leg_ev
                + [
                    Evidence(f"{d.packet.src} -> {d.packet.dst} {d.packet.method}", d.text)
                    for d in (accepted or undecided or decisions)[:6]
                ]
                + [Evidence("filter reader", n) for n in f.not_read]
            )  # "tool missing": not evaluated
            if accepted:
                rules = sorted({d.deciding.text if d.deciding else d.text for d in accepted})
                yield finding(
                    spec,
                    Status.FAIL,
                    f"{between} (tenants {', '.join(sorted(tenants))}); "
                    + (
                        "no filter on its forward hook"
                        if all(d.verdict == "none" for d in accepted)
                        else f"its filter accepts it: {rules[0]}"
                    ),
                    host=hs.host.name,
                    tenants=sorted(tenants),
                    evidence=ev,
                    fix=f"ip netns exec {_q(ns.name)} nft add rule ... drop  # before: {rules[0]}"
                    if ns.name
                    else f"nft: drop forwarding between these legs before {rules[0]}",
                )
            elif undecided:
                yield finding(
                    spec,
                    Status.WARN,
                    f"{between}; its filter could not be decided: {undecided[0].text}",
                    host=hs.host.name,
                    tenants=sorted(tenants),
                    severity=Severity.MEDIUM,
                    evidence=ev,
                    fix="run the active probes (Reachability pane, key p) to settle it",
                )
            else:
                rules = sorted({d.deciding.text for d in decisions if d.deciding})
                yield finding(
                    spec,
                    Status.PASS,
                    f"{between}, and its filter drops tenant traffic between the legs: {'; '.join(rules[:2])}",
                    host=hs.host.name,
                    tenants=sorted(tenants),
                    evidence=ev,
                )


def _segment_addresses(hs: HostState) -> dict[str, list[str]]:
    """segment -> the workloads' addresses on it (the host's are left out)."""
    out: dict[str, list[str]] = defaultdict(list)
    for e in endpoints(hs):
        if e.workload == "host":
            continue
        for a in e.attachments:
            out[a.segment].extend(e.addresses)
    return out


def _leg_decisions(
    f: NsFilters,
    legs: Sequence[tuple[Link, Attachment]],
    seg_tenants: dict[str, set[str]],
    seg_addrs: dict[str, list[str]],
    ports: Sequence[int],
) -> list[FilterDecision]:
    """What the filter does to tenant packets from each leg to each other leg of other tenants."""
    import ipaddress

    from probes.network.filtereval import Packet, decide

    def addrs(lk: Link, seg: str) -> list[str]:
        nets = [ipaddress.ip_interface(a).network for a in lk.addresses if ":" not in a]
        mine = [x for x in seg_addrs.get(seg, ()) if any(ipaddress.ip_address(x) in n for n in nets)]
        if mine:
            return mine[:4]
        own = {a.split("/")[0] for a in lk.addresses}
        return [str(h) for n in nets[:1] for h in list(n.hosts())[:3] if str(h) not in own][:1]

    out: list[FilterDecision] = []
    memo: dict[tuple[str, str, str], tuple[int, int]] = {}
    for lk_a, a in legs:
        for lk_b, b in legs:
            if a.segment == b.segment or seg_tenants[a.segment] == seg_tenants[b.segment]:
                continue
            for src in addrs(lk_a, a.segment):
                for dst in addrs(lk_b, b.segment):
                    for method in ("icmp",) + tuple(f"tcp:{p}" for p in ports):
                        proto, _, port = method.partition(":")
                        out.append(
                            decide(
                                f,
                                Packet(src, dst, proto, int(port) if port else None, lk_a.name, lk_b.name),
                                memo=memo,
                            )
                        )
    return out


@check(
    "NET-09",
    "network",
    "Tenant traffic accepted only by a default-accept policy",
    "A filter is on the path between two tenants, but no rule decides their traffic: it gets "
    "through because the chain's policy is accept. One rule added above it, or a flushed "
    "table, silently changes isolation; a default-drop policy with explicit accepts does not.",
    Severity.MEDIUM,
    "set the forward chain's policy to drop (nft: `policy drop;`; iptables -P FORWARD DROP) and "
    "accept the allowed tenant traffic explicitly",
    reads=("workloads", "topology", "runtimes", "reach"),
    scope="host",
)
def net09_default_accept(state: State, spec: CheckSpec) -> Iterator[Finding]:
    for hs in _with_topology(state):
        topo = hs.topology
        if not topo or not (topo.filters or topo.nic_filters or any(o.custom for o in topo.ovs_flows)):
            yield passed(spec, hs, "no filter read on this host (nothing forwards)")
            continue
        bad = 0
        for c in _cells(hs):
            if c.src == c.dst or c.dst == HOST_TENANT or c.expected:
                continue
            pp = [
                p
                for p in c.pairs
                if p.reachable and p.filters and all(d.by_policy for d in p.filters if d.verdict != "none")
            ]
            pp = [p for p in pp if any(d.by_policy for d in p.filters)]
            if not pp:
                continue
            bad += 1
            yield finding(
                spec,
                Status.FAIL,
                f"{c.src} reaches {c.dst} through {', '.join(sorted({d.where for p in pp for d in p.filters}))} "
                "only by the default accept policy",
                host=hs.host.name,
                tenants=[c.src, c.dst],
                workloads=sorted({p.src for p in pp} | {p.dst for p in pp}),
                evidence=[
                    Evidence(
                        f"{p.src} -> {p.dst} {p.address} {p.method}", "; ".join(d.text for d in p.filters)
                    )
                    for p in pp[:4]
                ],
            )
        if not bad:
            yield passed(
                spec,
                hs,
                f"no tenant pair is accepted only by a default policy ({len(topo.filters)} filter set(s) read)",
            )


# ---------------------------------------------------------------- NET-08


@check(
    "NET-08",
    "network",
    "SR-IOV VFs given to tenants keep spoof checking on and trust off",
    "A VF with spoofchk off can send frames with any MAC (and VLAN) onto the wire; trust on lets "
    "it turn on promiscuous mode and change its MAC: both cross tenant boundaries on the NIC.",
    Severity.HIGH,
    fix="ip link set dev PF vf N spoofchk on trust off (and in the libvirt network or hostdev "
    "interface: no trust='yes').",
    reads=("workloads", "probe_errors", "facts", "source"),
    scope="host",
)
def net08_sriov(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState, facts: HostFacts) -> Iterator[Finding]:
        if not facts.sriov_vfs:
            yield passed(spec, hs, "no SR-IOV virtual functions on this host")
            return
        by_mac: dict[str, list[Workload]] = defaultdict(list)
        for w in vms(hs):
            assert w.vm
            for n in w.vm.nics:
                if n.mac:
                    by_mac[n.mac.lower()].append(w)
        bad = 0
        for vf in facts.sriov_vfs:
            problems = []
            if vf.spoofchk is False:
                problems.append("spoofchk off")
            if vf.trust is True:
                problems.append("trust on")
            if not problems:
                continue
            ws = by_mac.get(vf.mac, [])
            bad += 1
            ev = [
                Evidence(
                    f"ip -j link show {vf.pf}: vfinfo_list[vf={vf.vf}]",
                    f"mac {vf.mac} vlan {vf.vlan} " + ", ".join(problems),
                )
            ]
            ev += [Evidence(f"{dom(w)}: /domain/devices/interface[mac='{vf.mac}']", "this VF") for w in ws]
            fix = f"ip link set dev {vf.pf} vf {vf.vf} spoofchk on trust off"
            if ws:
                yield finding(
                    spec,
                    Status.FAIL,
                    f"VF {vf.pf}/{vf.vf} of " + ", ".join(who(w) for w in ws) + ": " + ", ".join(problems),
                    host=hs.host.name,
                    tenants=tenants_of(ws),
                    workloads=keys(ws),
                    evidence=ev,
                    fix=fix,
                )
            else:
                yield finding(
                    spec,
                    Status.WARN,
                    f"VF {vf.pf}/{vf.vf} (no known domain): " + ", ".join(problems),
                    host=hs.host.name,
                    evidence=ev,
                    fix=fix,
                    severity=Severity.LOW,
                )
        if not bad:
            yield passed(spec, hs, f"{len(facts.sriov_vfs)} VF(s): spoof checking on, trust off")

    yield from per_host(state, spec, body, facts=True)
