"""Decide what the filters of one namespace do to one concrete packet.

The packet is the first of a new connection (or an ICMP echo request) from one tenant address
to another; it passes every base chain on its hook in priority order (nftables tables,
iptables-nft and iptables-legacy alike), following jumps, gotos, returns, verdict maps and
sets, and stops at the deciding rule. A match the evaluator cannot decide for this packet (a
mark, a source port, a bitmask, an extension) stops the walk as "undecided" naming the rule,
never a guess, unless another match of that rule is false for the packet (then the rule cannot
apply whatever the first one says). `ct state` is decided: the packet opens a connection, so its state is `new`.
Pure functions of the filter model (probes/network/filtermodel.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, replace

from probes.network.filtermodel import Atom, Chain, NsFilters, Part, Rule, Ruleset, Verdict

MAX_DEPTH = 16
PROTO_NUMBERS = {"icmp": "1", "tcp": "6", "udp": "17", "icmpv6": "58"}
ICMP_TYPES = {"echo-request": "8", "echo-reply": "0"}


@dataclass(frozen=True)
class Packet:
    src: str
    dst: str
    proto: str = "icmp"  # icmp (an echo request), tcp, udp; arp (a bridged hop's address lookup)
    dport: int | None = None
    iif: str = ""  # as the hook sees them: the legs of a router, the bridge with br_netfilter
    oif: str = ""
    state: str = "new"  # conntrack's view: new (the first packet), established (a reply)
    sport: int | None = None  # known for replies (the service's port); else the sender's choice

    @property
    def method(self) -> str:
        return f"{self.proto}:{self.dport}" if self.dport is not None else self.proto


@dataclass(frozen=True)
class ChainStep:
    """What one base chain did: the deciding rule (or its policy) and the chains walked."""

    where: str  # "nft inet filter forward", "iptables filter FORWARD"
    verdict: str  # accept, drop, undecided
    rule: str = ""  # the deciding rule as "WHERE, handle N: TEXT"; "" when the policy decided
    path: tuple[str, ...] = ()  # chain names from the base chain to the deciding rule's chain

    @property
    def by_policy(self) -> bool:
        return not self.rule

    @property
    def text(self) -> str:
        via = f" (via {' > '.join(self.path)})" if len(self.path) > 1 else ""
        if self.by_policy:
            return f"{self.where}: policy {self.verdict}{via}"
        return f"{self.rule}{via}"


@dataclass(frozen=True)
class FilterDecision:
    netns: str  # "" = the host
    hook: str  # forward, bridge forward, forward (br_netfilter)
    packet: Packet
    verdict: str  # accept, drop, undecided; "none" when no base chain is on the hook
    steps: tuple[ChainStep, ...] = ()
    errors: tuple[str, ...] = ()  # a reader that failed: its rules were not evaluated
    not_read: tuple[str, ...] = ()  # back ends not read there ("tool missing"): not evaluated

    @property
    def deciding(self) -> ChainStep | None:
        if not self.steps:
            return None
        if self.verdict == "accept":
            return next((s for s in self.steps if not s.by_policy), self.steps[0])
        return self.steps[-1]

    @property
    def by_policy(self) -> bool:
        """Accepted, and only because every chain's default policy is accept."""
        return self.verdict == "accept" and all(s.by_policy for s in self.steps)

    @property
    def where(self) -> str:
        return f"{self.netns or 'host'} {self.hook}"

    @property
    def text(self) -> str:
        if self.verdict == "none":
            return f"{self.where}: no filter on this hook"
        d = self.deciding
        word = "undecided" if self.verdict == "undecided" else self.verdict
        return f"{self.where} {self.packet.method}: {word} by {d.text if d else '?'}"


class _Undecided(Exception):
    def __init__(self, why: str) -> None:
        self.why = why


def _label(rs: Ruleset, c: Chain) -> str:
    if rs.source == "nft":
        return f"nft {c.family} {c.table} {c.name}"
    return f"{rs.source.removesuffix('-nft')} {c.table} {c.name}"


def _rule_label(rs: Ruleset, c: Chain, r: Rule) -> str:
    if rs.source == "nft":
        return f"{_label(rs, c)}, handle {r.handle}: {r.display}"
    return f"{_label(rs, c)}: {r.display}"


def _pkt_value(key: str, p: Packet) -> str | None:
    """The packet's value for a match key; None: this packet has no such field (the match
    fails, as nft's implied protocol dependency would); raises _Undecided when unknown."""
    if p.proto == "arp" and key not in ("meta iifname", "meta oifname"):
        return _arp_value(key)
    if key in ("meta iifname", "meta oifname"):
        v = p.iif if key == "meta iifname" else p.oif
        if not v:
            raise _Undecided(f"{key}: interface not known")
        return v
    if key in ("meta l4proto", "ip protocol"):
        return p.proto
    if key == "meta nfproto":
        return "ipv4"
    if key in ("meta protocol", "ether type"):
        return "ip"
    if key in ("ip saddr", "ip daddr"):
        return p.src if key == "ip saddr" else p.dst
    if key.startswith("ip6 ") or key.startswith("icmpv6 "):
        return None
    if key in ("tcp dport", "udp dport", "th dport", "sctp dport"):
        proto = key.split()[0]
        if (proto == "th" and p.proto in ("tcp", "udp")) or proto == p.proto:
            if p.dport is None:
                raise _Undecided(f"{key}: a reply goes to the client's ephemeral port")
            return str(p.dport)
        return None
    if key in ("tcp sport", "udp sport", "th sport"):
        proto = key.split()[0]
        if (proto == "th" and p.proto in ("tcp", "udp")) or proto == p.proto:
            if p.sport is None:
                raise _Undecided(f"{key}: the source port is the sender's choice")
            return str(p.sport)
        return None
    if key in ("icmp type",):
        if p.proto != "icmp":
            return None
        return "echo-reply" if p.state == "established" else "echo-request"
    if key == "ct state":
        return p.state
    raise _Undecided(f"{key} is beyond the evaluator")


def _arp_value(key: str) -> str | None:
    """An ARP frame (bridge family only): its ether type; no conntrack entry, which nft's `ct
    state` sees as invalid; no IP or L4 header (those matches fail); ARP's own fields unknown."""
    if key in ("meta protocol", "ether type"):
        return "arp"
    if key == "ct state":
        return "invalid"
    if key.startswith(("arp ", "ether ", "vlan ")):
        raise _Undecided(f"{key} of an ARP frame")
    return None


ETHER_NAMES = {"ip": ("ip", "ipv4", "0x0800", "2048"), "arp": ("arp", "0x0806", "2054")}

Memo = dict[tuple[str, str, str], tuple[int, int]]


def _span(memo: Memo, kind: str, a: str, b: str) -> tuple[int, int]:
    """The addresses an atom (or a packet's address, kind value) covers, as integers; `memo` is
    owned by the caller (one per prediction), so a large ruleset's addresses are parsed once."""
    k = (kind, a, b)
    got = memo.get(k)
    if got is not None:
        return got
    if kind == "value":
        got = (int(ipaddress.ip_address(a)),) * 2
    elif kind == "prefix":
        n = ipaddress.ip_network(f"{a}/{b}", strict=False)
        got = int(n.network_address), int(n.broadcast_address)
    elif kind == "range":
        got = int(ipaddress.ip_address(a)), int(ipaddress.ip_address(b))
    else:
        raise ValueError(kind)
    memo[k] = got
    return got


def _atom_has(atom: Atom, key: str, v: str, memo: Memo) -> bool:
    if key in ("meta iifname", "meta oifname"):
        if atom.kind != "value":
            raise _Undecided(f"{key} {atom.text}")
        return v.startswith(atom.a[:-1]) if atom.a.endswith("*") else v == atom.a
    if key in ("ip saddr", "ip daddr"):
        try:
            lo, hi = _span(memo, atom.kind, atom.a, atom.b)
            ip = _span(memo, "value", v, "")[0]
        except (ValueError, TypeError):
            raise _Undecided(f"{key} {atom.text}: not an address") from None
        return lo <= ip <= hi
    if key.endswith("port"):
        if not all(x.isdigit() for x in (atom.a, atom.b or "0")):
            raise _Undecided(f"{key} {atom.text}: a service name")
        if atom.kind == "value":
            return int(v) == int(atom.a)
        if atom.kind == "range":
            return int(atom.a) <= int(v) <= int(atom.b)
    if key in ("meta l4proto", "ip protocol"):
        return atom.kind == "value" and PROTO_NUMBERS.get(v, v) == PROTO_NUMBERS.get(atom.a.lower(), atom.a)
    if key == "icmp type":
        return atom.kind == "value" and ICMP_TYPES.get(atom.a, atom.a) == ICMP_TYPES[v]
    if key == "ether type":
        return atom.kind == "value" and atom.a.lower() in ETHER_NAMES.get(v, (v,))
    if atom.kind == "value":
        return atom.a.lower() == v
    raise _Undecided(f"{key} {atom.text}")


def _expand(rs: Ruleset, c: Chain, atoms: Sequence[Atom]) -> list[Atom]:
    out: list[Atom] = []
    for a in atoms:
        if a.kind == "set":
            s = rs.named_set(c.family, c.table, a.a)
            if s is None or s.undecidable:
                raise _Undecided(f"set @{a.a}: " + (s.undecidable if s else "not found"))
            out.extend(s.elements)
        else:
            out.append(a)
    return out


def _any_has(atoms: Sequence[Atom], key: str, v: str, memo: Memo) -> bool:
    """any(_atom_has(a, ...) for a in atoms), in the same order and raising at the same atom,
    with the interface, address and port comparisons inline (they are most of a large ruleset)."""
    if key == "meta iifname" or key == "meta oifname":
        for atom in atoms:
            a = atom.a
            if atom.kind != "value":
                raise _Undecided(f"{key} {atom.text}")
            if v.startswith(a[:-1]) if a.endswith("*") else v == a:
                return True
        return False
    if key.endswith("port"):
        port = int(v)
        for atom in atoms:
            a = atom.a
            if atom.kind == "value" and a.isdigit():
                if port == int(a):
                    return True
            elif atom.kind == "range" and a.isdigit() and atom.b.isdigit():
                if int(a) <= port <= int(atom.b):
                    return True
            elif _atom_has(atom, key, v, memo):  # a service name, another kind: as it says
                return True
        return False
    if key == "ip saddr" or key == "ip daddr":
        ip = -1
        for atom in atoms:
            try:
                lo, hi = _span(memo, atom.kind, atom.a, atom.b)
                if ip < 0:
                    ip = _span(memo, "value", v, "")[0]
            except (ValueError, TypeError):
                raise _Undecided(f"{key} {atom.text}: not an address") from None
            if lo <= ip <= hi:
                return True
        return False
    return any(_atom_has(a, key, v, memo) for a in atoms)


def _matches(rs: Ruleset, c: Chain, m: Part, p: Packet, memo: Memo) -> bool:
    v = _pkt_value(m.key, p)
    if v is None:
        return False  # the packet is not of the protocol the match implies
    hit = _any_has(_expand(rs, c, m.values) if m.names_set else m.values, m.key, v, memo)
    return hit if m.op == "==" else not hit


def _vmap(rs: Ruleset, c: Chain, vm: Part, p: Packet, memo: Memo) -> Verdict | None:
    v = _pkt_value(vm.key, p)
    if v is None:
        return None
    exact = vm.exact
    if exact is not None:
        return exact.get(v)
    entries = vm.entries
    if vm.ref:
        s = rs.named_set(c.family, c.table, vm.ref)
        if s is None or s.undecidable:
            raise _Undecided(f"map @{vm.ref}: " + (s.undecidable if s else "not found"))
        entries = s.verdicts
    for a, verdict in entries:
        if _atom_has(a, vm.key, v, memo):
            return verdict
    return None


def _run(
    rs: Ruleset, c: Chain, p: Packet, path: tuple[str, ...], depth: int, memo: Memo
) -> tuple[str, str, tuple[str, ...]]:
    """(outcome, deciding rule label, path): outcome accept, drop, undecided or return."""
    path = path + (c.name,)
    if depth > MAX_DEPTH:
        return "undecided", f"{_label(rs, c)}: more than {MAX_DEPTH} nested jumps", path
    for r in c.rules_for(p.oif):
        if (
            (r.iif and p.iif and r.iif != p.iif)
            or (r.oif and p.oif and r.oif != p.oif)
            or (r.saddr and r.saddr != p.src)
            or (r.daddr and r.daddr != p.dst)
        ):
            continue  # a leading literal interface or address match fails: the rule cannot apply
        verdict = r.verdict
        # the literal matches just compared are true: only the other parts are left to walk
        parts = r.unchecked if (p.iif or not r.iif) and (p.oif or not r.oif) else r.parts
        # A match this packet cannot decide leaves the rule open, not decided: a later match
        # that is false still means the rule cannot apply (its matches are all required and
        # have no effects), as the literal fields compared above already say.
        pending: _Undecided | None = None
        try:
            hit = True
            for part in parts:
                if part.kind == "unknown":
                    raise pending or _Undecided(part.text)
                if part.kind == "match":
                    try:
                        if not _matches(rs, c, part, p, memo):
                            hit = False
                            break
                    except _Undecided as u:
                        pending = pending or u
                elif part.kind == "vmap":
                    verdict = _vmap(rs, c, part, p, memo)
                    if verdict is None:
                        hit = False
                        break
            if hit and pending:
                raise pending
        except _Undecided as u:
            return "undecided", f"{_rule_label(rs, c, r)} [{u.why}]", path
        if not hit or verdict is None or verdict.kind == "continue":
            continue
        if verdict.kind in ("accept", "drop"):
            return verdict.kind, _rule_label(rs, c, r), path
        if verdict.kind == "reject":
            return "drop", _rule_label(rs, c, r), path
        if verdict.kind == "return":
            return "return", _rule_label(rs, c, r), path
        target = rs.chain(c.family, c.table, verdict.target)
        if target is None:
            return "undecided", f"{_rule_label(rs, c, r)} [no chain {verdict.target}]", path
        out, rule, sub = _run(rs, target, p, path, depth + 1, memo)
        if verdict.kind == "goto" or out != "return":
            return out, rule, sub
    if not c.hook and c.policy in ("accept", "drop"):  # an ebtables user chain's own policy
        return c.policy, f"{_label(rs, c)}: policy {c.policy}", path
    return "return", "", path


def _base_chains(f: NsFilters, hook: str, families: tuple[str, ...]) -> tuple[tuple[Ruleset, Chain], ...]:
    got = f.hooked.get((hook, families))
    if got is None:
        got = f.hooked[(hook, families)] = _find_base_chains(f, hook, families)
    return got


def _find_base_chains(
    f: NsFilters, hook: str, families: tuple[str, ...]
) -> tuple[tuple[Ruleset, Chain], ...]:
    out = [
        (rs, c)
        for rs in f.rulesets
        if not rs.source.startswith("ip6")
        for c in rs.chains
        if c.hook == hook and c.family in families and (c.rules or c.policy == "drop")
    ]  # an empty chain whose policy is accept decides nothing (iptables-save prints its built-ins)
    out.sort(key=lambda x: x[1].priority)
    return tuple(out)


def decide(f: NsFilters, p: Packet, *, bridge: str = "", memo: Memo | None = None) -> FilterDecision:
    """What the forward hook of `f`'s namespace does to `p`: the routed forward hook, or for a
    packet bridged by `bridge` (p's interfaces are then its ports) the bridge family's
    forward hook and, with br_netfilter, the IP forward hook (which sees the bridge as both
    interfaces)."""
    if bridge:
        chains = [(rs, c, p) for rs, c in _base_chains(f, "forward", ("bridge",))]
        hook = f"bridge {bridge} forward"
        if f.bridge_nf_iptables and p.proto != "arp":  # ARP does not go through iptables
            ip_pkt = replace(p, iif=bridge, oif=bridge)
            chains += [(rs, c, ip_pkt) for rs, c in _base_chains(f, "forward", ("ip", "inet"))]
            hook += " (br_netfilter)"
        chains.sort(key=lambda x: x[1].priority)
    else:
        chains = [(rs, c, p) for rs, c in _base_chains(f, "forward", ("ip", "inet"))]
        hook = "forward"
    steps: list[ChainStep] = []
    memo = {} if memo is None else memo
    for rs, c, pkt in chains:
        out, rule, path = _run(rs, c, pkt, (), 0, memo)
        if out == "return":
            out = "drop" if c.policy == "drop" else "accept"
            rule = ""
        steps.append(ChainStep(_label(rs, c), out, rule, path))
        if out != "accept":
            return FilterDecision(f.netns, hook, p, out, tuple(steps), f.errors, f.not_read)
    return FilterDecision(f.netns, hook, p, "accept" if steps else "none", tuple(steps), f.errors, f.not_read)
