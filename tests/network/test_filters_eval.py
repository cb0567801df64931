"""The filter readers and evaluator on real rule sets: each test loads rules into a test
namespace of its own (tsq-u-*), reads them back as the probe does (`nft -j list ruleset`,
iptables-nft-save, iptables-legacy-save through the host transport) and decides packets."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from probes.hosts.local import LocalHost
from probes.model import Host
from probes.network.filtereval import Packet, decide
from probes.network.filtermodel import NsFilters
from probes.network.filterread import read_filters
from probes.network.model import Namespace, Topology
from tests.helpers import needs_root, needs_tool

pytestmark = [needs_root, needs_tool("ip", "nft", "iptables-nft-save", "iptables-legacy")]


def sh(*argv: str, input: str | None = None) -> str:
    return subprocess.run(list(argv), check=True, capture_output=True, text=True, input=input).stdout


@pytest.fixture
def ns() -> Iterator[str]:
    name = f"tsq-u-{os.getpid()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    sh("ip", "netns", "add", name)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


async def read(ns: str) -> NsFilters:
    """Through the transport, as the topology probe does (the namespace forwards)."""
    topo = Topology(namespaces=(Namespace(ns, ip_forward=True),))
    (f,) = await read_filters(LocalHost(Host("t"), libvirt_uri=None), topo)
    assert f.netns == ns and not f.errors, f.errors
    return f


RULESET = """
table inet tsqf {
  set tenants { type ipv4_addr; flags interval; elements = { 10.1.0.0/16, 10.3.0.1-10.3.0.9 } }
  chain fw { type filter hook forward priority 0; policy accept;
    ct state established,related accept
    iifname "br-a" oifname "br-b" drop
    ip saddr @tenants tcp dport { 22, 80-90 } accept
    meta l4proto icmp ip daddr 10.2.0.0/16 jump sub
    ip daddr vmap { 10.9.0.1 : drop, 10.9.0.2 : accept }
    meta mark 0x1 drop
    ip protocol tcp counter reject
  }
  chain sub {
    tcp dport != 443 return
    icmp type echo-request goto deny
  }
  chain deny {
    drop comment "no ping"
  }
}
"""


def P(src: str, dst: str, proto: str = "icmp", port: int | None = None, i: str = "x", o: str = "y") -> Packet:
    return Packet(src, dst, proto, port, i, o)


async def test_nft_jumps_gotos_sets_vmaps_and_undecided(ns: str) -> None:
    sh("ip", "netns", "exec", ns, "nft", "-f", "-", input=RULESET)
    f = await read(ns)
    d = decide(f, P("10.1.0.5", "10.2.0.1", i="br-a", o="br-b"))
    assert d.verdict == "drop" and d.deciding and "handle" in d.deciding.rule
    assert d.deciding.rule.startswith("nft inet tsqf fw, handle ") and d.deciding.rule.endswith(
        ": iifname br-a oifname br-b drop"
    )
    # jump, a return that does not apply to ICMP (tcp dport implies TCP), goto: the deny chain
    d = decide(f, P("10.1.0.5", "10.2.0.1"))
    assert d.verdict == "drop" and d.deciding.path == ("fw", "sub", "deny") and "no ping" in d.text
    # a named interval set and an anonymous port set with a range
    assert decide(f, P("10.3.0.4", "10.7.0.1", "tcp", 85)).verdict == "accept"
    assert decide(f, P("10.3.0.4", "10.7.0.1", "tcp", 85)).deciding.rule.endswith(
        "tcp dport { 22, 80-90 } accept"
    )
    # outside the set: falls to the vmap (no entry), then the mark rule: undecided, named
    d = decide(f, P("10.4.0.1", "10.9.0.3", "tcp", 85))
    assert d.verdict == "undecided" and "meta mark" in d.text
    # the verdict map decides before the mark rule
    assert decide(f, P("10.4.0.1", "10.9.0.1", "udp", 53)).verdict == "drop"
    d = decide(f, P("10.4.0.1", "10.9.0.2", "udp", 53))
    assert d.verdict == "accept" and "vmap" in d.deciding.rule and not d.by_policy


def test_the_fast_nft_reader_gives_what_the_general_one_gives(ns: str) -> None:
    """parse_nft decodes rules with their expressions left as raw JSON and reads each distinct
    expression once; on a real ruleset (sets, maps, a verdict map, counters, a log, ct, an
    iptables-nft table with its xt matches, repeated expressions) it equals the general reader."""
    import msgspec

    from probes.network import filterparse as fp

    run = ["ip", "netns", "exec", ns]
    sh(*run, "nft", "-f", "-", input=RULESET)
    sh(
        *run,
        "nft",
        "-f",
        "-",
        input="""
table ip tsqg {
  map vm { type ipv4_addr : verdict; elements = { 10.5.0.1 : drop, 10.5.0.2 : jump c2 } }
  chain c1 { type filter hook forward priority 5; policy drop;
    iifname "a" counter log prefix "x " accept
    iifname "a" counter log prefix "x " accept
    ip daddr vmap @vm
    ct mark 0x2 ip saddr 10.0.0.0/8 drop
  }
  chain c2 { iifname "a" accept; }
}
""",
    )
    sh(*run, "iptables-nft", "-A", "FORWARD", "-m", "conntrack", "--ctstate", "NEW", "-j", "ACCEPT")
    text = sh(*run, "nft", "-j", "list", "ruleset")
    line = next(ln for ln in text.splitlines() if ln.startswith("{"))
    for skip in (frozenset(), frozenset({("ip", "filter")})):
        fast = fp._parse_nft_fast(fp._nft_doc.decode(line), skip)
        assert fast == fp._parse_nft_general(msgspec.json.decode(line), skip) == fp.parse_nft(text, skip)
        assert {c.name for c in fast.chains} >= {"fw", "sub", "deny", "c1", "c2"}
        assert ("FORWARD" in {c.name for c in fast.chains}) == (not skip)
    c1 = next(c for c in fast.chains if c.name == "c1")
    assert c1.rules[0].parts[0] is c1.rules[1].parts[0]  # the same expression read once
    # what the fast path does not expect goes to the general reader, which says what is wrong
    assert fp.parse_nft('{"nftables": [{"rule": {"expr": {"not": "a list"}}}]}').chains == ()
    with pytest.raises(fp.FilterParseError, match="no `nftables` list"):
        fp.parse_nft('{"other": 1}')
    with pytest.raises(fp.FilterParseError, match="not JSON"):
        fp.parse_nft('{"nftables": [')


async def test_literal_matches_compared_first_decide_as_the_ordered_walk(ns: str) -> None:
    """The evaluator compares a rule's literal interface/address first and then walks only the
    other parts: a rule naming two input interfaces still needs both, an unknown interface is
    still undecided at the rule, ports and ranges decide as before."""
    sh(
        "ip",
        "netns",
        "exec",
        ns,
        "nft",
        "-f",
        "-",
        input="""
table inet tsqh {
  chain fw { type filter hook forward priority 0; policy accept;
    iifname "a" iifname "b" drop
    iifname "b" tcp dport 80 drop
    iifname "c" ip saddr 10.0.0.1 tcp dport { 22, 80-90 } drop
  }
}
""",
    )
    f = await read(ns)

    def rule(d) -> str:  # type: ignore[no-untyped-def]
        return d.deciding.rule.split(": ", 1)[1] if d.deciding and d.deciding.rule else "policy"

    d = decide(f, P("10.0.0.1", "10.0.1.1", "tcp", 80, "b", "y"))
    assert d.verdict == "drop" and rule(d) == "iifname b tcp dport 80 drop"
    assert decide(f, P("10.0.0.1", "10.0.1.1", "tcp", 81, "b", "y")).verdict == "accept"
    d = decide(f, P("10.0.0.1", "10.0.1.1", "tcp", 85, "c", "y"))
    assert d.verdict == "drop" and rule(d) == "iifname c ip saddr 10.0.0.1 tcp dport { 22, 80-90 } drop"
    assert decide(f, P("10.0.0.1", "10.0.1.1", "tcp", 91, "c", "y")).by_policy
    assert decide(f, P("10.0.0.2", "10.0.1.1", "tcp", 22, "c", "y")).by_policy
    d = decide(f, P("10.0.0.1", "10.0.1.1", "tcp", 22, "", "y"))
    assert d.verdict == "undecided" and "interface not known" in d.deciding.rule
    assert 'iifname "a"' in d.deciding.rule or "iifname a" in d.deciding.rule


async def test_a_false_match_after_an_undecidable_one_means_the_rule_cannot_apply(ns: str) -> None:
    """A rule's matches are all required: `meta mark 0x1 tcp dport 80 drop` cannot drop a packet
    to port 22 whatever its mark, so the walk goes on past it instead of stopping "undecided"
    (as the literal interface compared first already did for `tcp sport 5 iifname "x"`)."""
    rules = """
table inet tsqm {
  chain fw { type filter hook forward priority 0; policy accept;
    meta mark 0x1 tcp dport 80 drop
    tcp sport 5 iifname "x" drop
  }
}
"""
    sh("ip", "netns", "exec", ns, "nft", "-f", "-", input=rules)
    f = await read(ns)
    d = decide(f, P("10.0.0.1", "10.0.1.1", "tcp", 22, "x", "y"))
    assert d.verdict == "undecided" and d.deciding and "tcp sport 5" in d.deciding.rule, d.text
    d = decide(f, P("10.0.0.1", "10.0.1.1", "tcp", 80, "x", "y"))
    assert d.verdict == "undecided" and d.deciding and "meta mark" in d.deciding.rule, d.text
    # another interface: neither rule can apply, whatever the mark or the source port
    assert decide(f, P("10.0.0.1", "10.0.1.1", "tcp", 22, "z", "y")).by_policy


async def test_iptables_nft_and_legacy_back_ends(ns: str) -> None:
    run = ["ip", "netns", "exec", ns]
    sh(*run, "iptables-nft", "-N", "TSQ-ISO")
    sh(
        *run,
        "iptables-nft",
        "-A",
        "FORWARD",
        "-i",
        "tsq-a",
        "-o",
        "tsq-b",
        "-p",
        "tcp",
        "--dport",
        "22",
        "-j",
        "ACCEPT",
    )
    sh(*run, "iptables-nft", "-A", "FORWARD", "-j", "TSQ-ISO")
    sh(
        *run,
        "iptables-nft",
        "-A",
        "TSQ-ISO",
        "-o",
        "tsq-b",
        "-m",
        "comment",
        "--comment",
        "iso",
        "-j",
        "DROP",
    )
    sh(*run, "iptables-nft", "-A", "TSQ-ISO", "-j", "RETURN")
    f = await read(ns)
    assert "iptables-nft" in [rs.source for rs in f.rulesets]
    nft = next(rs for rs in f.rulesets if rs.source == "nft")
    assert not nft.chains, "iptables-nft's tables are read from iptables-save, not twice"
    ok = decide(f, P("10.0.0.1", "10.0.1.1", "tcp", 22, "tsq-a", "tsq-b"))
    assert ok.verdict == "accept" and ok.deciding.rule == (
        "iptables filter FORWARD: -i tsq-a -o tsq-b -p tcp -m tcp --dport 22 -j ACCEPT"
    )
    no = decide(f, P("10.0.0.1", "10.0.1.1", "tcp", 23, "tsq-a", "tsq-b"))
    assert no.verdict == "drop" and no.deciding.path == ("FORWARD", "TSQ-ISO")
    assert no.deciding.rule.startswith("iptables filter TSQ-ISO: -o tsq-b")
    # RETURN falls back to FORWARD's policy (accept): accepted by the default policy only
    other = decide(f, P("10.0.0.1", "10.0.1.1", "tcp", 23, "tsq-a", "tsq-c"))
    assert other.verdict == "accept" and other.by_policy

    # the legacy back end hooks in beside nftables: its DROP policy decides too
    sh(*run, "iptables-legacy", "-P", "FORWARD", "DROP")
    sh(*run, "iptables-legacy", "-A", "FORWARD", "-s", "10.0.0.1", "-j", "ACCEPT")
    f = await read(ns)
    assert "iptables-legacy" in [rs.source for rs in f.rulesets]
    assert decide(f, P("10.0.0.1", "10.0.1.1", "tcp", 22, "tsq-a", "tsq-b")).verdict == "accept"
    d = decide(f, P("10.0.0.2", "10.0.1.1", "tcp", 22, "tsq-a", "tsq-b"))
    assert (
        d.verdict == "drop" and d.deciding.by_policy and d.deciding.where == "iptables-legacy filter FORWARD"
    )


async def test_nothing_read_when_nothing_forwards() -> None:
    topo = Topology(namespaces=(Namespace("tsq-u-none"),))
    host = LocalHost(Host("t"), root="/nonexistent-root", libvirt_uri=None)
    assert await read_filters(host, topo) == ()


class CountingHost(LocalHost):
    """The real local transport, counting the commands it runs."""

    runs = 0

    async def run(self, argv, **kw):  # type: ignore[no-untyped-def, override]
        self.runs += 1
        return await super().run(argv, **kw)


async def test_unchanged_rules_are_not_read_again(ns: str) -> None:
    from probes.network.filterread import LEGACY_MAX_AGE, FilterCache

    sh("ip", "netns", "exec", ns, "nft", "-f", "-", input=RULESET)
    topo = Topology(namespaces=(Namespace(ns, ip_forward=True),))
    host, cache = CountingHost(Host("t"), libvirt_uri=None), FilterCache()
    (first,) = await read_filters(host, topo, cache=cache)
    assert host.runs == 1 and first.rulesets
    (again,) = await read_filters(host, topo, cache=cache)
    assert host.runs == 1 and again is first  # nftables' generation did not move: nothing spawned
    sh("ip", "netns", "exec", ns, "nft", "add", "rule", "inet", "tsqf", "deny", "accept")
    (moved,) = await read_filters(host, topo, cache=cache)
    assert host.runs == 2 and moved != first
    deny = next(c for rs in moved.rulesets for c in rs.chains if c.name == "deny")
    assert [r.display for r in deny.rules] == ['drop comment "no ping"', "accept"]
    # legacy iptables has no generation: a namespace using it is read again when its tables'
    # counts move, or once its last read is older than LEGACY_MAX_AGE; not on every topology read
    now = [1000.0]
    cache.clock = lambda: now[0]
    sh("ip", "netns", "exec", ns, "iptables-legacy", "-A", "FORWARD", "-j", "ACCEPT")
    await read_filters(host, topo, cache=cache)  # the legacy table appeared: read
    assert host.runs == 3
    now[0] += 5.0
    await read_filters(host, topo, cache=cache)  # 5 s later, unchanged: kept
    assert host.runs == 3
    # a legacy rule added: the table's entry count moved (IPT_SO_GET_INFO, no process): read
    sh("ip", "netns", "exec", ns, "iptables-legacy", "-A", "FORWARD", "-s", "10.9.9.9", "-j", "DROP")
    (legacy,) = await read_filters(host, topo, cache=cache)
    assert host.runs == 4
    assert any("10.9.9.9" in r.display for rs in legacy.rulesets for c in rs.chains for r in c.rules)
    now[0] += 5.0
    await read_filters(host, topo, cache=cache)
    assert host.runs == 4
    now[0] += LEGACY_MAX_AGE
    await read_filters(host, topo, cache=cache)  # past the period (a same-size change): read again
    assert host.runs == 5
