"""Packet filters as read from a host: nftables, iptables (nft and legacy back ends) and the
br_netfilter switches, per network namespace. Owned by the network area.

nftables JSON and iptables-save text are translated into one small language (chains of rules,
each rule a list of matches and one verdict) so one evaluator (probes/network/filtereval.py)
decides both. What the translation does not understand is kept as an `Unknown` part that
names itself: the evaluator answers "undecided" there, never a guess.

Must not import probes.model (probes/network/model.py imports this module).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Atom:
    """One value a match compares with: a plain value, a prefix, a range, or a named set."""

    kind: str  # value, prefix, range, set (a named set: `a` is its name)
    a: str
    b: str = ""  # prefix length or range end

    @property
    def text(self) -> str:
        if self.kind == "prefix":
            return f"{self.a}/{self.b}"
        if self.kind == "range":
            return f"{self.a}-{self.b}"
        if self.kind == "set":
            return f"@{self.a}"
        return self.a


SHORT_META = ("meta iifname", "meta oifname", "meta iif", "meta oif")  # nft prints these bare


@dataclass(frozen=True)
class Verdict:
    kind: str  # accept, drop, reject, jump, goto, return, continue
    target: str = ""  # chain of a jump or goto

    @property
    def text(self) -> str:
        return f"{self.kind} {self.target}" if self.target else self.kind


@dataclass(frozen=True)
class Part:
    """One part of a rule (one type, so snapshots decode it):

    - `match`: `key op values`; key is what nft prints (`ip saddr`, `meta iifname`,
      `tcp dport`, `ct state`); with several values one must match (a set);
    - `vmap`: `key vmap { value : verdict, ... }`, or a named map `ref`;
    - `unknown`: what the evaluator does not understand (a mark, a bitmask, an extension),
      its text in `key`.
    """

    kind: str
    key: str
    op: str = "=="  # ==, !=
    values: tuple[Atom, ...] = ()
    entries: tuple[tuple[Atom, Verdict], ...] = ()
    ref: str = ""

    @cached_property
    def exact(self) -> dict[str, Verdict] | None:
        """An interface verdict map of plain names as a dict (one lookup instead of a scan);
        None when an entry is a wildcard or another kind. Kept on the instance, not a field."""
        if self.kind != "vmap" or self.key not in ("meta iifname", "meta oifname") or self.ref:
            return None
        if any(a.kind != "value" or a.a.endswith("*") for a, _ in self.entries):
            return None
        out: dict[str, Verdict] = {}
        for a, v in self.entries:
            out.setdefault(a.a, v)  # the first entry for a name wins, as in a scan
        return out

    @cached_property
    def names_set(self) -> bool:
        """A value is a named set (the evaluator looks its elements up)."""
        return any(a.kind == "set" for a in self.values)

    @property
    def text(self) -> str:
        if self.kind == "unknown":
            return self.key
        key = self.key[5:] if self.key in SHORT_META else self.key
        if self.kind == "vmap":
            if self.ref:
                return f"{key} vmap @{self.ref}"
            return f"{key} vmap {{ " + ", ".join(f"{a.text} : {v.text}" for a, v in self.entries) + " }"
        vals = (
            self.values[0].text
            if len(self.values) == 1
            else "{ " + ", ".join(v.text for v in self.values) + " }"
        )
        return f"{key} {'!= ' if self.op == '!=' else ''}{vals}"


def Match(key: str, op: str, values: tuple[Atom, ...]) -> Part:
    return Part("match", key, op, values)


def VerdictMap(key: str, entries: tuple[tuple[Atom, Verdict], ...] = (), ref: str = "") -> Part:
    return Part("vmap", key, entries=entries, ref=ref)


def Unknown(text: str) -> Part:
    return Part("unknown", text)


@dataclass(frozen=True)
class Rule:
    parts: tuple[Part, ...]
    verdict: Verdict | None = None  # None: the rule only counts or logs
    handle: int = 0  # nft handle; iptables: the rule's line number in its chain
    text: str = ""  # iptables: the iptables-save line; nft: "" (built from the parts: `display`)
    comment: str = ""
    # literal interface names among the leading matches (before anything undecidable): a
    # packet on other interfaces skips the rule with one comparison (see `make_rule`)
    iif: str = ""
    oif: str = ""
    # the same for a leading single literal address (`ip saddr 10.0.0.1`, `-s 10.0.0.1/32`)
    saddr: str = ""
    daddr: str = ""

    @cached_property
    def unchecked(self) -> tuple[Part, ...]:
        """The parts left once the literal fields (iif, oif, saddr, daddr) compared equal with
        the packet's (the evaluator compares them first): those matches are then true."""
        lit = {
            "meta iifname": self.iif,
            "meta oifname": self.oif,
            "ip saddr": self.saddr,
            "ip daddr": self.daddr,
        }
        return tuple(
            p
            for p in self.parts
            if not (
                p.kind == "match"
                and p.op == "=="
                and len(p.values) == 1
                and p.values[0].kind == "value"
                and lit.get(p.key)
                and p.values[0].a == lit[p.key]
            )
        )

    @cached_property
    def display(self) -> str:
        """As the user would write it (nft syntax, or the iptables-save line)."""
        if self.text:
            return self.text
        out = " ".join([p.text for p in self.parts] + ([self.verdict.text] if self.verdict else []))
        return out + (f' comment "{self.comment}"' if self.comment else "")


def make_rule(
    parts: tuple[Part, ...], verdict: Verdict | None, handle: int, text: str, comment: str = ""
) -> Rule:
    lit = {"meta iifname": "", "meta oifname": "", "ip saddr": "", "ip daddr": ""}
    for part in parts:
        if part.kind != "match":
            break
        if part.key in lit and part.op == "==" and len(part.values) == 1:
            a = part.values[0]
            if a.kind == "value" and not a.a.endswith("*"):
                lit[part.key] = a.a
    return Rule(
        parts,
        verdict,
        handle,
        text,
        comment,
        lit["meta iifname"],
        lit["meta oifname"],
        lit["ip saddr"],
        lit["ip daddr"],
    )


@dataclass(frozen=True)
class Chain:
    family: str  # ip, ip6, inet, bridge, arp, netdev
    table: str
    name: str
    rules: tuple[Rule, ...] = ()
    hook: str = ""  # base chains: forward, input, ...
    priority: int = 0
    policy: str = ""  # base chains: accept or drop

    @property
    def base(self) -> bool:
        return bool(self.hook)

    @cached_property
    def by_oif(self) -> dict[str, tuple[Rule, ...]]:
        """For a packet leaving by interface X, the rules that can apply (those without a
        leading literal output interface, and those for X), in order; "" -> the former.
        Kept on the instance (not a field): a large chain is scanned once, not per packet."""
        lists: dict[str, list[Rule]] = {r.oif: [] for r in self.rules if r.oif}
        lists[""] = []
        every = list(lists.values())
        for r in self.rules:  # one pass: a rule for X goes to X's list, one for any to all
            if r.oif:
                lists[r.oif].append(r)
            else:
                for x in every:
                    x.append(r)
        return {n: tuple(x) for n, x in lists.items()}

    def rules_for(self, oif: str) -> tuple[Rule, ...]:
        if not oif or len(self.rules) < 16:
            return self.rules
        by = self.by_oif
        return by.get(oif, by[""])


@dataclass(frozen=True)
class NamedSet:
    family: str
    table: str
    name: str
    elements: tuple[Atom, ...] = ()
    verdicts: tuple[tuple[Atom, Verdict], ...] = ()  # a verdict map
    undecidable: str = ""  # why its elements are not known (e.g. concatenations)


@dataclass(frozen=True)
class Ruleset:
    """One reader's view: `nft` (nftables, minus the tables iptables-nft shows), or an
    iptables back end (`iptables-nft`, `iptables-legacy`, `ip6tables-nft`, `ip6tables-legacy`)."""

    source: str
    chains: tuple[Chain, ...] = ()
    sets: tuple[NamedSet, ...] = ()

    def chain(self, family: str, table: str, name: str) -> Chain | None:
        return self._chains.get((family, table, name))

    def named_set(self, family: str, table: str, name: str) -> NamedSet | None:
        return self._sets.get((family, table, name))

    @cached_property
    def _chains(self) -> dict[tuple[str, str, str], Chain]:
        """Chains by (family, table, name), the first of a name winning as in a scan; kept on
        the instance (not a field): a jump is one lookup, not a scan of every chain."""
        out: dict[tuple[str, str, str], Chain] = {}
        for c in self.chains:
            out.setdefault((c.family, c.table, c.name), c)
        return out

    @cached_property
    def _sets(self) -> dict[tuple[str, str, str], NamedSet]:
        out: dict[tuple[str, str, str], NamedSet] = {}
        for s in self.sets:
            out.setdefault((s.family, s.table, s.name), s)
        return out


@dataclass(frozen=True)
class NsFilters:
    """The filters of one network namespace ("" = the host)."""

    netns: str
    rulesets: tuple[Ruleset, ...] = ()
    bridge_nf_iptables: bool | None = None  # /proc/sys/net/bridge/bridge-nf-call-iptables
    bridge_nf_ip6tables: bool | None = None
    why: str = ""  # why it was read: forwarding, br_netfilter
    errors: tuple[str, ...] = ()  # a reader that failed (its rules are unknown)
    not_read: tuple[str, ...] = ()  # a back end not read, and why ("tool missing")

    @cached_property
    def hooked(self) -> dict[tuple[str, tuple[str, ...]], tuple[tuple[Ruleset, Chain], ...]]:
        """The evaluator's base chains per (hook, families), filled as it asks; kept on the
        instance (not a field), so each packet does not scan every chain again."""
        return {}


@dataclass(frozen=True)
class OvsFrame:
    """One concrete frame entering an Open vSwitch bridge, as the prediction walks it: from
    the port `in_port` (a name) with the sender's and the next hop's MACs."""

    bridge: str
    in_port: str
    dl_src: str
    dl_dst: str
    src: str
    dst: str
    proto: str = "icmp"  # icmp (echo), tcp
    dport: int | None = None
    sport: int | None = None
    reply: bool = False  # a reply (echo reply, SYN+ACK from the service port)

    @property
    def ct_next(self) -> str:
        """The conntrack state a `ct()` action gives it (ofproto/trace's --ct-next)."""
        return "trk,est" if self.reply else "trk,new"

    @property
    def flow(self) -> str:
        """The flow as `ovs-appctl ofproto/trace` takes it."""
        parts = [f"in_port={self.in_port}", self.proto]
        if self.dl_src:
            parts.append(f"dl_src={self.dl_src}")
        if self.dl_dst:
            parts.append(f"dl_dst={self.dl_dst}")
        parts += [f"nw_src={self.src}", f"nw_dst={self.dst}"]
        if self.proto == "icmp":
            parts.append(f"icmp_type={0 if self.reply else 8}")
        else:
            if self.sport is not None:
                parts.append(f"tp_src={self.sport}")
            if self.dport is not None:
                parts.append(f"tp_dst={self.dport}")
            parts.append(f"tcp_flags={'0x012' if self.reply else '0x002'}")
        return ",".join(parts)


@dataclass(frozen=True)
class OvsTrace:
    """What `ofproto/trace` said for one frame: accept (OVS sends it on) or drop, the flow that
    decided ("OVS br-x table 0: ip,nw_src=..., priority 100: drop") and the tables walked."""

    frame: OvsFrame
    verdict: str  # accept, drop, undecided (the trace failed)
    rule: str = ""
    path: tuple[str, ...] = ()
    actions: str = ""  # the datapath actions line


@dataclass(frozen=True)
class OvsFlows:
    """The OpenFlow tables of one bridge: `custom` when they hold more than the default
    NORMAL flow (then the frames the prediction needs are traced; else the VLAN model decides)."""

    bridge: str
    custom: bool = False
    flows: int = 0
    traces: tuple[OvsTrace, ...] = ()
    untraced: str = ""  # why some frames were not traced (a limit)
    error: str = ""


@dataclass(frozen=True)
class NwRule:
    """One rule of a libvirt nwfilter as instantiated for one NIC (variables substituted, one
    rule per value of a list variable), or a jump from the root chain into a protocol chain."""

    filter: str  # the filter it comes from
    chain: str  # root, mac, ipv4, ipv4-ip, arp-mac, ...
    action: str  # accept, drop, reject, return, continue; "jump" (root only)
    direction: str = "inout"  # in (to the VM), out (from the VM), inout
    priority: int = 0
    proto: str = ""  # mac, ip, arp, rarp, ipv6, vlan, stp, tcp, udp, icmp, all, ... ("": any)
    attrs: tuple[tuple[str, str], ...] = ()  # (attribute, value) after substitution
    negate: bool = False  # match='no'
    target: str = ""  # a jump's chain
    unknown: str = ""  # why it cannot be decided (a variable with no value)

    @property
    def text(self) -> str:
        if self.action == "jump":
            return f"jump to chain {self.target} (priority {self.priority})"
        m = " ".join(f"{k}={v}" for k, v in self.attrs)
        what = f"{self.proto}{' match=no' if self.negate else ''}{' ' + m if m else ''}".strip() or "any"
        return f"{self.filter}, chain {self.chain}, priority {self.priority}: {self.direction} {what} {self.action}"


@dataclass(frozen=True)
class NicFilter:
    """The nwfilter binding of one VM NIC (libvirt's nwfilter-binding: port device, MAC, the
    filter and its parameters) with the filter tree expanded into chains of rules."""

    domain: str
    portdev: str  # the tap
    mac: str
    filter: str
    params: tuple[tuple[str, str], ...] = ()
    root: tuple[NwRule, ...] = ()  # rules and jumps, in evaluation order
    chains: tuple[tuple[str, tuple[NwRule, ...]], ...] = ()  # protocol chains, their rules in order
    error: str = ""

    def chain(self, name: str) -> tuple[NwRule, ...]:
        return next((rs for n, rs in self.chains if n == name), ())
