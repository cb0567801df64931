"""The other back ends of the filter readers on real rules in a tf2-* namespace (root):
ip6tables (nft and legacy), legacy iptables detected from the kernel's table list, a
reader whose tool is missing named as "not read: tool missing" (the real reader program run
with a PATH that lacks that tool), and ebtables-legacy's listing layout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from probes.network.filtereval import Packet, decide
from probes.network.filterparse import parse_iptables_save
from probes.network.filterread import INNER, SCRIPT, build, ebtables_list_to_save, split_sections
from tests.helpers import needs_root, needs_tool

NS = "tf2-bk"


def sh(*argv: str, check: bool = True) -> str:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True).stdout


@pytest.fixture
def ns() -> Iterator[str]:
    if os.path.exists(f"/run/netns/{NS}"):
        sh("ip", "netns", "del", NS, check=False)
    sh("ip", "netns", "add", NS)
    try:
        yield NS
    finally:
        sh("ip", "netns", "del", NS, check=False)


def run_readers(ns: str, path: str | None = None, skip: str = "") -> dict[str, tuple[int, str]]:
    """The real reader program, as filterread runs it, for one namespace."""
    env = {"PATH": path or os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LC_ALL": "C"}
    out = subprocess.run(
        ["sh", "-c", SCRIPT, "sh", "N0NCE", INNER, ns, skip],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    return split_sections(out, "N0NCE")[ns]


TOOLS = (
    "sh", "ip", "cat", "grep", "nft", "iptables-nft-save", "ip6tables-nft-save", "ebtables-nft-save",
    "ip6tables-legacy-save",
)  # fmt: skip


@needs_root
@needs_tool("ip", "nft", "iptables-legacy", "ip6tables-nft", "ip6tables-legacy")
def test_ip6tables_read_and_a_missing_legacy_tool_is_named(ns: str, tmp_path: Path) -> None:
    sh("ip", "netns", "exec", ns, "ip6tables-nft", "-A", "FORWARD", "-s", "fd00:81::1", "-j", "DROP")
    sh("ip", "netns", "exec", ns, "ip6tables-legacy", "-A", "FORWARD", "-d", "fd00:82::/64", "-j", "REJECT")
    sh("ip", "netns", "exec", ns, "iptables-legacy", "-A", "FORWARD", "-s", "10.91.0.1", "-j", "DROP")
    # everything: the legacy IPv4 table is read (the kernel lists it), both IPv6 back ends too
    f = build(ns, "forwarding", run_readers(ns))
    by = {rs.source: rs for rs in f.rulesets}
    assert not f.errors and not f.not_read, (f.errors, f.not_read)
    assert {"ip6tables-nft", "ip6tables-legacy", "iptables-legacy"} <= set(by)
    fwd6 = by["ip6tables-nft"].chain("ip6", "filter", "FORWARD")
    assert fwd6 is not None and fwd6.rules[0].display == "-s fd00:81::1/128 -j DROP"
    assert by["ip6tables-legacy"].chain("ip6", "filter", "FORWARD").rules[0].verdict.kind == "reject"  # type: ignore[union-attr]
    # ip6tables is not evaluated for IPv4 packets; the legacy IPv4 rule is
    d = decide(f, Packet("10.91.0.1", "10.92.0.1", iif="a", oif="b"))
    assert d.verdict == "drop" and "iptables-legacy filter FORWARD" in d.text
    # a PATH without iptables-legacy-save: the legacy table exists, so it is named, not skipped
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for t in TOOLS:
        real = shutil.which(t)
        assert real is not None, t
        (bin_ / t).symlink_to(real)
    f2 = build(ns, "forwarding", run_readers(ns, str(bin_)))
    assert "iptables-legacy-save: not read: tool missing" in f2.not_read
    assert not any(rs.source == "iptables-legacy" for rs in f2.rulesets)
    d2 = decide(f2, Packet("10.91.0.1", "10.92.0.1", iif="a", oif="b"))
    assert d2.verdict == "none" and d2.not_read == f2.not_read  # the cell detail names it


@needs_root
@needs_tool("ip", "nft")
def test_no_legacy_tables_means_no_legacy_reader_and_nothing_created(ns: str) -> None:
    sec = run_readers(ns)
    assert sec["iptables-legacy-save"][1].strip() == "#absent"
    assert sec["ip6tables-legacy-save"][1].strip() == "#absent"
    f = build(ns, "forwarding", sec)
    assert not f.errors and not f.not_read
    # reading did not create a legacy table in the namespace
    assert sh("ip", "netns", "exec", ns, "cat", "/proc/net/ip_tables_names").strip() == ""


# `ebtables-legacy -t filter -L` as ebtables 2.0.11 prints it. Recorded, not live: this kernel
# has no legacy ebtables ("The kernel doesn't support the ebtables 'filter' table.").
EB_LEGACY_L = """Bridge table: filter

Bridge chain: INPUT, entries: 0, policy: ACCEPT

Bridge chain: FORWARD, entries: 2, policy: ACCEPT
-p IPv4 -i tf2-pa -o tf2-pb --ip-dst 10.93.0.2 -j DROP
-j TENANTS

Bridge chain: OUTPUT, entries: 0, policy: ACCEPT

Bridge chain: TENANTS, entries: 1, policy: RETURN
-p IPv4 --ip-src 10.93.0.3 -j DROP
"""


def test_ebtables_legacy_listing_is_read_as_its_save_layout() -> None:
    """Recorded listing (see EB_LEGACY_L): the kernel here cannot hold legacy ebtables."""
    rs = parse_iptables_save(ebtables_list_to_save(EB_LEGACY_L), "ebtables-legacy", "bridge")
    fwd = rs.chain("bridge", "filter", "FORWARD")
    assert fwd is not None and fwd.hook == "forward" and len(fwd.rules) == 2
    f = build("", "bridge", {"ebtables-legacy": (0, EB_LEGACY_L)})
    p = Packet("10.93.0.1", "10.93.0.2", iif="tf2-pa", oif="tf2-pb")
    d = decide(f, p, bridge="tf2-br")
    assert d.verdict == "drop" and "ebtables-legacy filter FORWARD: -p IPv4 -i tf2-pa" in d.text
    d3 = decide(f, Packet("10.93.0.3", "10.93.0.9", iif="tf2-pc", oif="tf2-pb"), bridge="tf2-br")
    assert d3.verdict == "drop" and "TENANTS" in d3.text
    ok = decide(f, Packet("10.93.0.4", "10.93.0.9", iif="tf2-pc", oif="tf2-pb"), bridge="tf2-br")
    assert ok.verdict == "accept"


@needs_root
@needs_tool("ip", "nft", "ip6tables-nft")
async def test_nft_save_readers_skipped_where_their_family_has_no_table(ns: str) -> None:
    """Locally the families with nftables tables are asked of the kernel (one netlink dump, no
    process): iptables-/ip6tables-/ebtables-nft-save run only where their family has a table
    (each lists the whole ruleset again to show nothing), and what is read is the same."""
    from probes.hosts.local import LocalHost
    from probes.model import Host
    from probes.network.filterread import nft_skips, read_filters
    from probes.network.model import Namespace, Topology

    everything = "iptables-nft-save ip6tables-nft-save ebtables-nft-save"
    assert await nft_skips([(ns, "forwarding")]) == {ns: everything}  # no table at all
    sh("ip", "netns", "exec", ns, "nft", "add", "table", "inet", "tf4-t")
    assert await nft_skips([(ns, "forwarding")]) == {ns: everything}  # inet is nft's own
    sh("ip", "netns", "exec", ns, "ip6tables-nft", "-A", "FORWARD", "-s", "fd00:84::1", "-j", "DROP")
    assert await nft_skips([(ns, "forwarding")]) == {ns: "iptables-nft-save ebtables-nft-save"}
    assert await nft_skips([("tf4-no-such-ns", "forwarding")]) == {"tf4-no-such-ns": ""}
    skipped = run_readers(ns, skip="iptables-nft-save ebtables-nft-save")
    assert skipped["iptables-nft-save"] == (0, "#absent\n") and skipped["ebtables-nft-save"][1] == "#absent\n"
    assert "fd00:84::1" in skipped["ip6tables-nft-save"][1]
    topo = Topology(namespaces=(Namespace(ns, ip_forward=True),))
    (f,) = await read_filters(LocalHost(Host("t"), libvirt_uri=None), topo)
    assert f == build(ns, "forwarding", run_readers(ns)) and not f.not_read
    assert {rs.source for rs in f.rulesets} == {"nft", "ip6tables-nft"}
