"""libvirt nwfilter on a VM's NIC: the binding (port device, MAC, filter and parameters) read
through a read-only libvirt connection, the filter tree expanded as libvirt instantiates it,
and a concrete packet from or to the VM decided on it.

Expansion follows libvirt's ebiptables driver: every rule lands in its filter's chain (`root`,
`mac`, `ipv4`, `ipv4-ip`, `arp-mac`, ...); the root chain holds the root filters' rules and a
jump into each other chain (taken for frames of the chain's protocol: `mac` for all, `ipv4` for
IPv4, ...) at the chain's priority; rules are ordered by priority. Variables (`$IP`, `$MAC`, the
binding's parameters) are substituted, a list variable giving one rule per value. `accept` and
`drop` end the walk, `return` goes back to the root chain; the root chain ends in accept.
A variable with no value (libvirt learns `$IP` when not given: not visible read-only) or an
attribute the evaluator does not know leaves the packet undecided, naming the rule.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any

from probes.network.filtereval import ChainStep, FilterDecision, Packet
from probes.network.filtermodel import NicFilter, NwRule

CHAIN_PRIORITY = {
    "stp": -810,
    "mac": -800,
    "vlan": -750,
    "ipv4": -700,
    "ipv6": -600,
    "arp": -500,
    "rarp": -400,
}
CHAIN_PROTO = {
    "mac": "",
    "ipv4": "ipv4",
    "ipv6": "ipv6",
    "arp": "arp",
    "rarp": "rarp",
    "vlan": "vlan",
    "stp": "stp",
}
L3 = ("tcp", "udp", "icmp", "igmp", "sctp", "esp", "ah", "udplite", "all")
VAR = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)(\[[^\]]*\])?$")
MAX_DEPTH = 20


class NwFilterError(ValueError):
    pass


def _xml(text: str) -> Any:
    from defusedxml.ElementTree import fromstring

    try:
        return fromstring(text)
    except Exception as e:  # ParseError, DefusedXmlException
        raise NwFilterError(f"unreadable XML: {e}") from None


def parse_filter(text: str) -> tuple[str, str, int | None, list[tuple[str, Any]]]:
    """(name, chain, priority or None, entries): entries are ("rule", element) or
    ("ref", (filter name, {param: [values]}))."""
    root = _xml(text)
    if root.tag != "filter":
        raise NwFilterError(f"not a <filter> but <{root.tag}>")
    chain = root.get("chain") or "root"
    prio = root.get("priority")
    entries: list[tuple[str, Any]] = []
    for el in root:
        if el.tag == "rule":
            entries.append(("rule", el))
        elif el.tag == "filterref":
            entries.append(("ref", (el.get("filter") or "", _params(el))))
    return root.get("name") or "", chain, int(prio) if prio and _int(prio) else None, entries


def _int(s: str) -> bool:
    return s.lstrip("-").isdigit()


def _params(el: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in el.findall("parameter"):
        name = p.get("name") or ""
        if name:
            out.setdefault(name, []).append(p.get("value") or "")
    return out


def parse_binding(text: str) -> tuple[str, str, str, str, dict[str, list[str]]]:
    """(domain, portdev, mac, filter, parameters) of an nwfilter-binding XML."""
    root = _xml(text)
    if root.tag != "filterbinding":
        raise NwFilterError(f"not a <filterbinding> but <{root.tag}>")
    owner = root.find("owner")
    dev, mac, ref = root.find("portdev"), root.find("mac"), root.find("filterref")
    if ref is None or dev is None:
        raise NwFilterError("binding without portdev or filterref")
    return (
        (owner.findtext("name") or "") if owner is not None else "",
        dev.get("name") or "",
        (mac.get("address") or "") if mac is not None else "",
        ref.get("filter") or "",
        _params(ref),
    )


def expand(
    filters: dict[str, tuple[str, int | None, list[tuple[str, Any]]]],
    top: str,
    params: dict[str, list[str]],
    mac: str,
) -> tuple[tuple[NwRule, ...], tuple[tuple[str, tuple[NwRule, ...]], ...]]:
    """(root entries, chains) of filter `top` for one NIC, as libvirt instantiates it."""
    rules: list[NwRule] = []
    chain_prio: dict[str, int] = {}
    base = {"MAC": [mac]} if mac else {}

    def visit(name: str, vars_: dict[str, list[str]], depth: int, seen: tuple[str, ...]) -> None:
        if name not in filters:
            raise NwFilterError(f"filter {name!r} referenced but not defined")
        if depth > MAX_DEPTH or name in seen:
            raise NwFilterError(f"filter {name!r}: references loop or nest too deep")
        chain, prio, entries = filters[name]
        if chain != "root" and chain not in chain_prio:
            chain_prio[chain] = prio if prio is not None else CHAIN_PRIORITY.get(chain.split("-")[0], 0)
        for kind, body in entries:
            if kind == "ref":
                child, cparams = body
                visit(child, {**vars_, **cparams}, depth + 1, seen + (name,))
            else:
                rules.extend(_instances(name, chain, body, vars_))

    visit(top, {**base, **params}, 0, ())
    root = [r for r in rules if r.chain == "root"]
    root += [NwRule("", "root", "jump", priority=p, target=c) for c, p in chain_prio.items()]
    root.sort(key=lambda r: r.priority)  # stable: equal priorities keep their order
    chains = tuple(
        (c, tuple(sorted((r for r in rules if r.chain == c), key=lambda r: r.priority)))
        for c in sorted(chain_prio, key=lambda c: chain_prio[c])
    )
    return tuple(root), chains


def _instances(fname: str, chain: str, el: Any, vars_: dict[str, list[str]]) -> list[NwRule]:
    action = el.get("action") or ""
    direction = el.get("direction") or "inout"
    prio = int(el.get("priority")) if _int(el.get("priority") or "") else 500
    proto, attrs, negate = "", [], False
    body = list(el)
    if body:
        p = body[0]
        proto = p.tag
        negate = (p.get("match") or "yes") == "no"
        attrs = [(k, v) for k, v in p.attrib.items() if k not in ("match", "comment")]
    used = sorted({m.group(1) for _, v in attrs if (m := VAR.match(v))})
    combos: list[dict[str, str]] = [{}]
    unknown = ""
    for name in used:
        values = vars_.get(name)
        if not values:
            unknown = f"${name} has no value" + (
                " (libvirt learns it; not visible read-only)" if name == "IP" else ""
            )
            break
        combos = [{**c, name: v} for c in combos for v in values]
    out = []
    for c in combos if not unknown else [{}]:
        subst = tuple((k, _subst(v, c)) for k, v in attrs)
        out.append(NwRule(fname, chain, action, direction, prio, proto, subst, negate, "", unknown))
    return out


def _subst(v: str, values: dict[str, str]) -> str:
    m = VAR.match(v)
    return values.get(m.group(1), v) if m else v


def read_bindings(conn: Any) -> tuple[NicFilter, ...]:
    """Blocking, on a read-only libvirt connection: every nwfilter binding, expanded. A host
    whose libvirt has no nwfilter driver (or binding API) has none."""
    import libvirt

    try:
        bindings = conn.listAllNWFilterBindings(0)
    except (libvirt.libvirtError, AttributeError):
        return ()
    if not bindings:
        return ()
    filters: dict[str, tuple[str, int | None, list[tuple[str, Any]]]] = {}
    for f in conn.listAllNWFilters(0):
        try:
            name, chain, prio, entries = parse_filter(f.XMLDesc(0))
        except (libvirt.libvirtError, NwFilterError):
            continue
        filters[name] = (chain, prio, entries)
    out = []
    for b in bindings:
        try:
            dom, dev, mac, top, params = parse_binding(b.XMLDesc(0))
        except (libvirt.libvirtError, NwFilterError) as e:
            out.append(NicFilter("", getattr(b, "portDev", lambda: "?")(), "", "", error=str(e)))
            continue
        ps = tuple((k, v) for k, vs in sorted(params.items()) for v in vs)
        try:
            root, chains = expand(filters, top, params, mac)
        except NwFilterError as e:
            out.append(NicFilter(dom, dev, mac, top, ps, error=str(e)))
            continue
        out.append(NicFilter(dom, dev, mac, top, ps, root, chains))
    return tuple(sorted(out, key=lambda n: n.portdev))


# ---------------------------------------------------------------- evaluation


class _Undecided(Exception):
    pass


def _addr_in(value: str, mask: str, ip: str) -> bool:
    try:
        if mask:
            plen = int(mask) if mask.isdigit() else ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen
            return ipaddress.ip_address(ip) in ipaddress.ip_network(f"{value}/{plen}", strict=False)
        return ipaddress.ip_address(ip) == ipaddress.ip_address(value)
    except ValueError:
        raise _Undecided(f"not an address: {value}") from None


PROTO_NUM = {"1": "icmp", "6": "tcp", "17": "udp"}


def _rule_matches(r: NwRule, nf: NicFilter, p: Packet, direction: str) -> bool:
    if r.unknown:
        raise _Undecided(r.unknown)
    if r.proto == "":
        return True
    if r.proto in ("arp", "rarp", "ipv6", "vlan", "stp") or r.proto.endswith("-ipv6"):
        return r.negate  # not an IPv4 frame
    a = dict(r.attrs)
    if r.proto in L3 and r.proto != "all" and r.proto != p.proto:
        return r.negate
    hit = True
    for k, v in r.attrs:
        if k in ("srcmacaddr", "dstmacaddr"):
            mine = (k == "srcmacaddr") == (direction == "out")  # the VM's own MAC side
            if not mine:
                raise _Undecided(f"{k}: the other side's MAC is not known")
            ok = v.lower() == nf.mac.lower()
        elif k in ("srcmacmask", "dstmacmask", "srcipmask", "dstipmask", "srcipto", "dstipto", "comment"):
            continue  # read with their address
        elif k == "protocolid":
            ok = v.lower() in ("ipv4", "0x0800", "0x800", "2048")
        elif k in ("srcipaddr", "dstipaddr"):
            ip = p.src if k == "srcipaddr" else p.dst
            to = a.get(k[:3] + "ipto", "")
            if to:
                try:
                    lo, hi = int(ipaddress.IPv4Address(v)), int(ipaddress.IPv4Address(to))
                    ok = lo <= int(ipaddress.IPv4Address(ip)) <= hi
                except ValueError:
                    raise _Undecided(f"{k}={v}-{to}: not an IPv4 range") from None
            else:
                ok = _addr_in(v, a.get(k[:3] + "ipmask", ""), ip)
        elif k == "protocol":
            ok = PROTO_NUM.get(v, v).lower() == p.proto
        elif k in ("srcportstart", "dstportstart"):
            port = p.sport if k.startswith("src") else p.dport
            if port is None:
                raise _Undecided(f"{k}: the port is the sender's choice")
            end = a.get(k[:3] + "portend", v)
            ok = int(v) <= port <= int(end) if _int(v) and _int(end) else False
        elif k in ("srcportend", "dstportend"):
            continue
        elif k == "state":
            ok = p.state.upper() in {s.strip().upper() for s in v.split(",")}
        elif k == "type" and r.proto == "icmp":
            ok = v == ("0" if p.state == "established" else "8")
        else:
            raise _Undecided(f"{k}={v} is beyond the evaluator")
        if not ok:
            hit = False
            break
    return hit != r.negate


def _applies(r: NwRule, direction: str) -> bool:
    return r.direction in ("inout", direction)


def _label(nf: NicFilter, r: NwRule) -> str:
    return f"nwfilter {nf.filter} on {nf.portdev}: {r.text}"


def decide_nic(nf: NicFilter, p: Packet, direction: str) -> FilterDecision:
    """What the NIC's filter does to IPv4 packet `p` going `direction` (out: from the VM,
    in: to the VM)."""
    hook = f"nwfilter on {nf.portdev} ({'from' if direction == 'out' else 'to'} the VM)"
    where = f"nwfilter {nf.filter} on {nf.portdev}"
    if nf.error:
        step = ChainStep(where, "undecided", f"{where}: not expanded [{nf.error}]")
        return FilterDecision(nf.domain, hook, p, "undecided", (step,))
    try:
        for r in nf.root:
            if r.action == "jump":
                if CHAIN_PROTO.get(r.target.split("-")[0], "?") not in ("", "ipv4"):
                    continue  # a chain for other frames (ARP, IPv6, VLAN ...)
                out = _run_chain(nf, nf.chain(r.target), p, direction)
                if out is not None:
                    return _decision(nf, hook, where, p, out[0], out[1], ("root", r.target))
                continue
            if _hits(r, nf, p, direction) and r.action in ("accept", "drop", "reject"):
                return _decision(nf, hook, where, p, r.action, r, ("root",))
    except _Undecided as u:
        rule = u.args[1] if len(u.args) > 1 else None
        text = f"{_label(nf, rule)} [{u.args[0]}]" if isinstance(rule, NwRule) else f"{where} [{u.args[0]}]"
        step = ChainStep(
            where,
            "undecided",
            text,
            ("root",) if rule is None or rule.chain == "root" else ("root", rule.chain),
        )
        return FilterDecision(nf.domain, hook, p, "undecided", (step,))
    step = ChainStep(where, "accept", "", ("root",))  # the root chain's policy
    return FilterDecision(nf.domain, hook, p, "accept", (step,))


def _hits(r: NwRule, nf: NicFilter, p: Packet, direction: str) -> bool:
    """The rule applies in this direction and matches the packet; an undecidable match names
    the rule."""
    if not _applies(r, direction):
        return False
    try:
        return _rule_matches(r, nf, p, direction)
    except _Undecided as u:
        raise _Undecided(u.args[0], r) from None


def _run_chain(
    nf: NicFilter, rules: Iterable[NwRule], p: Packet, direction: str
) -> tuple[str, NwRule] | None:
    for r in rules:
        if not _hits(r, nf, p, direction) or r.action == "continue":
            continue
        if r.action == "return":
            return None
        return r.action, r
    return None


def _decision(
    nf: NicFilter, hook: str, where: str, p: Packet, action: str, rule: NwRule, path: tuple[str, ...]
) -> FilterDecision:
    verdict = "drop" if action in ("drop", "reject") else "accept"
    return FilterDecision(nf.domain, hook, p, verdict, (ChainStep(where, verdict, _label(nf, rule), path),))
