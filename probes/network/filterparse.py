"""Translate `nft -j list ruleset` and `iptables-save` output into probes/network/filtermodel.py.

Both readers keep what they do not understand as an `Unknown` part naming it (the evaluator
then says "undecided" at that rule). Counters and log statements never change a verdict and
are dropped. Only the `filter` table of iptables is read (FORWARD is where tenants' traffic is
filtered); a table iptables-nft shows is read from its iptables-save text (its rules appear in
nft's JSON as opaque `xt` expressions), so `nft` skips it.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable
from typing import Any

import msgspec

from probes.network.filtermodel import (
    Atom,
    Chain,
    Match,
    NamedSet,
    Part,
    Rule,
    Ruleset,
    Unknown,
    Verdict,
    VerdictMap,
    make_rule,
)

VERDICTS = ("accept", "drop", "reject", "jump", "goto", "return", "continue")
IGNORED_STATEMENTS = ("counter", "log", "mangle", "limit-none")


class FilterParseError(ValueError):
    pass


# ---------------------------------------------------------------- nftables JSON


def _compact(x: object) -> str:
    return json.dumps(x, separators=(",", ":"), sort_keys=True)


def _key(left: Any) -> str | None:
    if isinstance(left, dict):
        if "meta" in left and isinstance(left["meta"], dict):
            return f"meta {left['meta'].get('key')}"
        if "payload" in left and isinstance(left["payload"], dict):
            p = left["payload"]
            if "protocol" in p and "field" in p:
                return f"{p['protocol']} {p['field']}"
        if "ct" in left and isinstance(left["ct"], dict) and set(left["ct"]) == {"key"}:
            return f"ct {left['ct']['key']}"
    return None


def _atom(x: Any) -> Atom | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, (str, int)):
        s = str(x)
        return Atom("set", s[1:]) if s.startswith("@") else Atom("value", s)
    if isinstance(x, dict):
        if "prefix" in x and isinstance(x["prefix"], dict):
            return Atom("prefix", str(x["prefix"].get("addr")), str(x["prefix"].get("len")))
        if "range" in x and isinstance(x["range"], list) and len(x["range"]) == 2:
            lo, hi = x["range"]
            if isinstance(lo, (str, int)) and isinstance(hi, (str, int)):
                return Atom("range", str(lo), str(hi))
    return None


def _atoms(right: Any) -> tuple[Atom, ...] | None:
    items = right["set"] if isinstance(right, dict) and "set" in right else right
    if not isinstance(items, list):
        items = [items]
    out = []
    for i in items:
        a = _atom(i)
        if a is None:
            return None
        out.append(a)
    return tuple(out)


def _verdict(e: dict[str, Any]) -> Verdict | None:
    for k in VERDICTS:
        if k in e:
            v = e[k]
            target = v.get("target", "") if isinstance(v, dict) else ""
            return Verdict(k, str(target))
    return None


def nft_part(e: Any) -> Part | Verdict | None:
    """One expression of a rule: a match, a verdict map, a verdict, None (ignored) or Unknown."""
    if not isinstance(e, dict) or len(e) != 1:
        return Unknown(_compact(e))
    v = _verdict(e)
    if v is not None:
        return v
    ((name, body),) = e.items()
    if name in IGNORED_STATEMENTS:
        return None
    if name == "match" and isinstance(body, dict):
        key, op = _key(body.get("left")), body.get("op")
        vals = _atoms(body.get("right"))
        if key and op in ("==", "!=", "in") and vals:
            return Match(key, "!=" if op == "!=" else "==", vals)
    if name == "vmap" and isinstance(body, dict):
        key, data = _key(body.get("key")), body.get("data")
        if key and isinstance(data, str) and data.startswith("@"):
            return VerdictMap(key, ref=data[1:])
        if key and isinstance(data, dict) and isinstance(data.get("set"), list):
            entries = []
            for pair in data["set"]:
                if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], dict)):
                    return Unknown(_compact(e))
                a, vv = _atom(pair[0]), _verdict(pair[1])
                if a is None or vv is None:
                    return Unknown(_compact(e))
                entries.append((a, vv))
            return VerdictMap(key, tuple(entries))
    if name == "xt" and isinstance(body, dict):
        return Unknown(f"xt {body.get('type', '')} {body.get('name', '')}".strip())
    return Unknown(_compact(e))


def _nft_make_rule(read: Iterable[Part | Verdict | None], handle: int, comment: str) -> Rule:
    """A rule of its read expressions: the matches in order, the last verdict."""
    parts: list[Part] = []
    verdict: Verdict | None = None
    for p in read:
        if p is None:
            continue
        if isinstance(p, Verdict):
            verdict = p
        else:
            parts.append(p)
    return make_rule(tuple(parts), verdict, handle, "", comment)


def nft_rule(r: dict[str, Any]) -> Rule:
    read = map(nft_part, r.get("expr") or ())
    return _nft_make_rule(read, int(r.get("handle") or 0), str(r.get("comment") or ""))


class _NftRule(msgspec.Struct):
    """A rule as the fast path decodes it: its expressions stay undecoded JSON, so the many
    that repeat in a large ruleset (an interface, a port set, `accept`) are read once."""

    family: Any = ""
    table: Any = ""
    chain: Any = ""
    handle: Any = 0
    comment: Any = None
    expr: list[msgspec.Raw] | None = None


class _NftItem(msgspec.Struct):
    rule: _NftRule | None = None
    chain: dict[str, Any] | None = None
    set: dict[str, Any] | None = None
    map: dict[str, Any] | None = None


class _NftDoc(msgspec.Struct):
    nftables: list[_NftItem]


_nft_doc = msgspec.json.Decoder(_NftDoc)


def _nft_rule_fast(r: _NftRule, seen: dict[bytes, Part | Verdict | None]) -> Rule:
    """nft_rule for a fast-path rule: each distinct expression is decoded and read once."""

    def read(raw: msgspec.Raw) -> Part | Verdict | None:
        k = bytes(raw)
        if k not in seen:
            seen[k] = nft_part(msgspec.json.decode(k))
        return seen[k]

    return _nft_make_rule(map(read, r.expr or ()), int(r.handle or 0), str(r.comment or ""))


def parse_nft(text: str, skip_tables: frozenset[tuple[str, str]] = frozenset()) -> Ruleset:
    """`nft -j list ruleset` output; `skip_tables` are (family, table) read elsewhere."""
    line = next((ln for ln in text.splitlines() if ln.lstrip().startswith("{")), "")
    if not line:
        return Ruleset("nft")
    try:
        return _parse_nft_fast(_nft_doc.decode(line), skip_tables)
    except msgspec.ValidationError:
        pass  # not the usual shape: the general reader below says what it makes of it
    except msgspec.DecodeError as e:
        raise FilterParseError(f"nft -j output is not JSON: {e}") from None
    return _parse_nft_general(msgspec.json.decode(line), skip_tables)


def _parse_nft_general(doc: Any, skip_tables: frozenset[tuple[str, str]]) -> Ruleset:
    """Any decoded JSON: what is not a table's chain, rule, set or map is skipped."""
    items = doc.get("nftables") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise FilterParseError("nft -j output has no `nftables` list")
    chains: dict[tuple[str, str, str], dict[str, Any]] = {}
    rules: dict[tuple[str, str, str], list[Rule]] = {}
    sets: list[NamedSet] = []
    for it in items:
        if not isinstance(it, dict) or len(it) != 1:
            continue
        ((kind, body),) = it.items()
        if not isinstance(body, dict):
            continue
        fam, table = str(body.get("family", "")), str(body.get("table", ""))
        if (fam, table) in skip_tables:
            continue
        if kind == "chain":
            chains[(fam, table, str(body.get("name", "")))] = body
        elif kind == "rule":
            rules.setdefault((fam, table, str(body.get("chain", ""))), []).append(nft_rule(body))
        elif kind in ("set", "map"):
            sets.append(_named_set(kind, body))
    return _nft_ruleset(chains, rules, sets)


def _parse_nft_fast(doc: _NftDoc, skip_tables: frozenset[tuple[str, str]]) -> Ruleset:
    chains: dict[tuple[str, str, str], dict[str, Any]] = {}
    rules: dict[tuple[str, str, str], list[Rule]] = {}
    sets: list[NamedSet] = []
    seen: dict[bytes, Part | Verdict | None] = {}
    for it in doc.nftables:
        r = it.rule
        if r is not None:
            fam, table = str(r.family), str(r.table)
            if (fam, table) not in skip_tables:
                rules.setdefault((fam, table, str(r.chain)), []).append(_nft_rule_fast(r, seen))
            continue
        for kind, body in (("chain", it.chain), ("set", it.set), ("map", it.map)):
            if body is None:
                continue
            fam, table = str(body.get("family", "")), str(body.get("table", ""))
            if (fam, table) in skip_tables:
                continue
            if kind == "chain":
                chains[(fam, table, str(body.get("name", "")))] = body
            else:
                sets.append(_named_set(kind, body))
    return _nft_ruleset(chains, rules, sets)


def _nft_ruleset(
    chains: dict[tuple[str, str, str], dict[str, Any]],
    rules: dict[tuple[str, str, str], list[Rule]],
    sets: list[NamedSet],
) -> Ruleset:
    out = []
    for (fam, table, name), c in chains.items():
        out.append(
            Chain(
                fam,
                table,
                name,
                tuple(rules.get((fam, table, name), ())),
                hook=str(c.get("hook") or ""),
                priority=int(c.get("prio") or 0) if isinstance(c.get("prio"), int) else 0,
                policy=str(c.get("policy") or ("accept" if c.get("hook") else "")),
            )
        )
    return Ruleset("nft", tuple(out), tuple(sets))


def _named_set(kind: str, body: dict[str, Any]) -> NamedSet:
    fam, table, name = str(body.get("family", "")), str(body.get("table", "")), str(body.get("name", ""))
    elems = body.get("elem") or []
    if not isinstance(elems, list):
        return NamedSet(fam, table, name, undecidable="elements not a list")
    if kind == "map":
        if body.get("map") != "verdict":
            return NamedSet(fam, table, name, undecidable=f"a map to {body.get('map')}")
        pairs = []
        for el in elems:
            if not (isinstance(el, list) and len(el) == 2 and isinstance(el[1], dict)):
                return NamedSet(fam, table, name, undecidable="an element it cannot read")
            a, v = _atom(_unwrap(el[0])), _verdict(el[1])
            if a is None or v is None:
                return NamedSet(fam, table, name, undecidable="an element it cannot read")
            pairs.append((a, v))
        return NamedSet(fam, table, name, verdicts=tuple(pairs))
    atoms = []
    for el in elems:
        a = _atom(_unwrap(el))
        if a is None:
            return NamedSet(fam, table, name, undecidable=f"an element it cannot read: {_compact(el)[:60]}")
        atoms.append(a)
    return NamedSet(fam, table, name, elements=tuple(atoms))


def _unwrap(el: Any) -> Any:
    """Set elements with a timeout or comment come as {"elem": {"val": ...}}."""
    if isinstance(el, dict) and isinstance(el.get("elem"), dict):
        return el["elem"].get("val")
    return el


def nft_claimed_tables(save_text: str, family: str) -> frozenset[tuple[str, str]]:
    """(family, table) of the tables an iptables-nft-save output shows (not the ones it
    calls incompatible: those are nft's own)."""
    out = set()
    bad = set()
    for ln in save_text.splitlines():
        if ln.startswith("*"):
            out.add((family, ln[1:].strip()))
        elif ln.startswith("# Table `") and "incompatible" in ln:
            bad.add((family, ln.split("`")[1].split("'")[0]))
    return frozenset(out - bad)


# ---------------------------------------------------------------- iptables-save

BUILTIN_HOOKS = {"INPUT": "input", "FORWARD": "forward", "OUTPUT": "output"}
TERMINAL = {
    "ACCEPT": "accept",
    "DROP": "drop",
    "REJECT": "reject",
    "RETURN": "return",
    "CONTINUE": "continue",
}
NON_TERMINAL = {"LOG", "NFLOG", "MARK", "CONNMARK", "TRACE", "AUDIT", "CLASSIFY", "TCPMSS"}
ONE_ARG = {
    "--dport", "--sport", "--dports", "--sports", "--destination-port", "--source-port",
    "--destination-ports", "--source-ports", "--ctstate", "--state", "--comment", "--icmp-type",
    "--reject-with", "--log-prefix", "--log-level", "--set-mark", "--set-xmark", "--nflog-group",
}  # fmt: skip


def _ipt_iface(name: str) -> Atom:
    return Atom("value", name[:-1] + "*" if name.endswith("+") else name)


def _ipt_addrs(text: str) -> tuple[Atom, ...]:
    out = []
    for a in text.split(","):
        addr, _, plen = a.partition("/")
        out.append(Atom("prefix", addr, plen) if plen and plen not in ("32", "128") else Atom("value", addr))
    return tuple(out)


def _ipt_ports(text: str) -> tuple[Atom, ...]:
    out = []
    for p in text.split(","):
        lo, sep, hi = p.partition(":")
        out.append(Atom("range", lo or "0", hi or "65535") if sep else Atom("value", lo))
    return tuple(out)


def _q(a: str) -> str:
    return f'"{a}"' if not a or any(c.isspace() or c in "'\"" for c in a) else a


EB_TYPES = {"ipv4": "ip", "arp": "arp", "ipv6": "ip6", "0x0800": "ip", "0x0806": "arp", "0x86dd": "ip6"}
EB_OPTS = {
    "--ip-src": "ip saddr", "--ip-source": "ip saddr", "--ip-dst": "ip daddr", "--ip-destination": "ip daddr",
    "--ip-proto": "meta l4proto", "--ip-protocol": "meta l4proto",
    "--ip-dport": "dport", "--ip-destination-port": "dport", "--ip-sport": "sport", "--ip-source-port": "sport",
}  # fmt: skip


def iptables_rule(
    args: list[str], handle: int, user_chains: set[str], eb: bool = False, plain: bool = False
) -> Rule:
    """The arguments of one `-A CHAIN ...` line (after CHAIN); `eb`: an ebtables line (-p is
    the ethertype, --ip-* match the IPv4 header, `--opt ! value` negates); `plain`: split from
    a line without quotes or backslashes (no argument needs quoting in the rule's text)."""
    parts: list[Part] = []
    verdict: Verdict | None = None
    comment = ""
    proto = ""
    module = ""
    neg = False
    i = 0
    while i < len(args):
        t = args[i]
        nxt = args[i + 1] if i + 1 < len(args) else ""
        op = "!=" if neg else "=="
        neg = False
        if t == "!":
            neg = True
            i += 1
            continue
        if eb and nxt == "!" and t.startswith("-"):  # ebtables' `--ip-src ! ADDR`
            args = args[: i + 1] + args[i + 2 :]
            nxt = args[i + 1] if i + 1 < len(args) else ""
            op = "!="
        if eb and t in ("-p", "--protocol"):
            parts.append(Match("ether type", op, (Atom("value", EB_TYPES.get(nxt.lower(), nxt.lower())),)))
        elif eb and t in EB_OPTS:
            key = EB_OPTS[t]
            if key == "meta l4proto":
                proto = nxt.lower()
            if key in ("dport", "sport"):
                parts.append(Match(f"{proto or 'th'} {key}", op, _ipt_ports(nxt)))
            else:
                parts.append(
                    Match(
                        key, op, _ipt_addrs(nxt) if key.startswith("ip ") else (Atom("value", nxt.lower()),)
                    )
                )
        elif t in ("-i", "--in-interface", "-o", "--out-interface"):
            parts.append(
                Match(
                    "meta iifname" if t in ("-i", "--in-interface") else "meta oifname",
                    op,
                    (_ipt_iface(nxt),),
                )
            )
        elif t in ("-s", "--source", "-d", "--destination"):
            parts.append(Match("ip saddr" if t in ("-s", "--source") else "ip daddr", op, _ipt_addrs(nxt)))
        elif t in ("-p", "--protocol"):
            proto = nxt.lower()
            parts.append(Match("meta l4proto", op, (Atom("value", proto),)))
        elif t == "-m":
            module = nxt
            if module not in ("tcp", "udp", "multiport", "conntrack", "state", "comment", "icmp"):
                opts = [nxt]
                while (
                    i + 2 < len(args)
                    and args[i + 2] not in ("-j", "-g", "-m", "!")
                    and not (args[i + 2].startswith("-") and not args[i + 2].startswith("--"))
                ):
                    opts.append(args[i + 2])
                    i += 1
                parts.append(Unknown("-m " + " ".join(opts)))
        elif t in (
            "--dport",
            "--destination-port",
            "--dports",
            "--destination-ports",
            "--sport",
            "--source-port",
            "--sports",
            "--source-ports",
        ):
            field = "dport" if "d" in t.replace("--source", "").split("port")[0] else "sport"
            parts.append(Match(f"{proto or 'th'} {field}", op, _ipt_ports(nxt)))
        elif t in ("--ctstate", "--state"):
            parts.append(Match("ct state", op, tuple(Atom("value", s.lower()) for s in nxt.split(","))))
        elif t == "--comment":
            comment = nxt
        elif t == "--icmp-type":
            parts.append(Match("icmp type", op, (Atom("value", nxt),)))
        elif t in ("-j", "--jump", "-g", "--goto"):
            if t in ("-g", "--goto"):
                verdict = Verdict("goto", nxt)
            elif nxt in TERMINAL:
                verdict = Verdict(TERMINAL[nxt])
            elif nxt in user_chains:
                verdict = Verdict("jump", nxt)
            elif nxt not in NON_TERMINAL:
                parts.append(Unknown(f"-j {nxt}"))
            # the target's own options follow: skip them
            while i + 2 < len(args) and args[i + 2].startswith("--"):
                i += 1 + (args[i + 2] in ONE_ARG)
            i += 2
            continue
        elif t.startswith("-"):
            arg = nxt if t in ONE_ARG or (nxt and not nxt.startswith("-") and nxt != "!") else ""
            parts.append(Unknown(f"{'! ' if op == '!=' else ''}{t} {arg}".strip()))
            i += 2 if arg else 1
            continue
        i += 2
    text = " ".join(args) if plain else " ".join(_q(a) for a in args)
    return make_rule(tuple(parts), verdict, handle, text, comment)


def parse_iptables_save(text: str, source: str, family: str = "ip") -> Ruleset:
    """The `filter` table of an iptables-save, ip6tables-save or (family bridge)
    ebtables-save output. ebtables' user chains have a policy too (RETURN, ACCEPT, DROP)."""
    eb = family == "bridge"
    chains: dict[str, list[Rule]] = {}
    policies: dict[str, str] = {}
    table = ""
    lines: list[tuple[str, list[str], bool]] = []
    user_policy: dict[str, str] = {}
    for ln in text.splitlines():
        if ln.startswith("*"):
            table = ln[1:].strip()
        elif table != "filter":
            continue
        elif ln.startswith(":"):
            name, _, rest = ln[1:].partition(" ")
            chains.setdefault(name, [])
            pol = rest.split()[0] if rest.split() else "-"
            if eb and name not in BUILTIN_HOOKS:
                user_policy[name] = "" if pol == "RETURN" else pol.lower()
            elif pol != "-":
                policies[name] = pol.lower()
        elif ln.startswith("-A "):
            # iptables-save quotes only what has spaces or quotes: most lines split plainly
            plain = '"' not in ln and "'" not in ln and "\\" not in ln
            try:
                toks = ln.split() if plain else shlex.split(ln)
            except ValueError as e:
                raise FilterParseError(f"{source}: cannot read {ln[:80]!r}: {e}") from None
            if len(toks) >= 2:
                lines.append((toks[1], toks[2:], plain))
    users = {c for c in chains if c not in policies}
    for chain, args, plain in lines:
        rs = chains.setdefault(chain, [])
        rs.append(iptables_rule(args, len(rs) + 1, users, eb, plain))
    out = tuple(
        Chain(
            family,
            "filter",
            name,
            tuple(rs),
            hook=BUILTIN_HOOKS.get(name, "") if name in policies else "",
            priority=-200 if eb else 0,  # ebtables-nft's chains hook in at -200
            policy=policies.get(name, user_policy.get(name, "")),
        )
        for name, rs in chains.items()
    )
    return Ruleset(source, out)
