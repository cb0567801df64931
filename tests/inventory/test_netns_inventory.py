"""The netns inventory on real named namespaces (ip netns add) and real unshared processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from probes.hosts.local import LocalHost
from probes.inventory.netns import NetnsProbe, discover, parse_ip_addr
from probes.model import Host, HostState, Workload, WorkloadKind
from tests.fixtures.procs import NamedNetns, Procs, named_netns, procs  # noqa: F401
from tests.helpers import needs_root, needs_tool

pytestmark = [needs_root, needs_tool("ip", "unshare", "nsenter")]

HOSTILE = ("tsb-x;touch tsb-pwned", "tsb-$(touch tsb-pwned2)", "tsb-`id`\x1b]0;t\x07", "tsb- -n")


def _run_netns() -> set[str]:
    """Our names in /run/netns (other engineers' tests add theirs concurrently)."""
    names = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    return {n for n in names if n.startswith("tsb-")}


def _by_name(ws: tuple[Workload, ...]) -> dict[str, Workload]:
    return {w.name: w for w in ws}


async def test_named_namespaces_with_interfaces_addresses_and_inode(named_netns: NamedNetns):
    named_netns.add("tsb-acme-1", "10.77.0.1/24")
    named_netns.add("tsb-globex-1")
    ws = _by_name(await discover(LocalHost()))
    a, g = ws["tsb-acme-1"], ws["tsb-globex-1"]
    assert a.kind == WorkloadKind.NETNS and a.netns.named
    assert a.netns.path == "/run/netns/tsb-acme-1"
    assert a.netns.inode == os.stat("/run/netns/tsb-acme-1").st_ino == int(a.uuid)
    assert a.netns.inode != g.netns.inode
    assert "lo" in a.netns.interfaces
    assert a.netns.addresses == ("10.77.0.1/24",)  # 127.0.0.1 (scope host) is left out
    assert g.netns.addresses == ()
    assert a.state == "idle" and a.netns.pids == ()


async def test_hostile_names_are_data(
    named_netns: NamedNetns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    for n in HOSTILE:
        named_netns.add(n, "10.78.0.1/24" if n == HOSTILE[0] else None)
    ws = _by_name(await discover(LocalHost()))
    for n in HOSTILE:
        assert ws[n].netns.path == f"/run/netns/{n}"
    assert ws[HOSTILE[0]].netns.addresses == ("10.78.0.1/24",)  # its own, through argv
    assert list(tmp_path.iterdir()) == []  # nothing ran: no tsb-pwned file


async def test_processes_in_named_and_unnamed_namespaces(named_netns: NamedNetns, procs: Procs):
    n = named_netns.add("tsb-busy")
    inside = procs.start(["ip", "netns", "exec", n, "sleep", "600"])
    loose = procs.start(["unshare", "--net", "sleep", "600"])
    before = _run_netns()
    ws = await discover(LocalHost())
    assert _run_netns() == before  # listing never creates a namespace
    by = _by_name(ws)
    assert inside.leaf in by["tsb-busy"].netns.pids and by["tsb-busy"].state == "active"
    ino = os.stat(f"/proc/{loose.leaf}/ns/net").st_ino
    u = by[f"net:[{ino}]"]
    assert u.netns.named is False and u.netns.pids == (loose.leaf,)
    assert u.netns.path == f"/proc/{loose.leaf}/ns/net"
    assert u.netns.interfaces == ("lo",)
    # the named namespace is not listed a second time as an unnamed one
    assert not any(w.name == f"net:[{by['tsb-busy'].netns.inode}]" for w in ws)
    # the remote path (batched /proc reads) sees the same
    again = _by_name(await discover(LocalHost(), batch=True))
    assert again["tsb-busy"] == by["tsb-busy"] and again[u.name] == u


async def test_container_namespaces_are_left_to_the_container_probe(procs: Procs):
    ctr = procs.start(["unshare", "--net", "--uts", "--pid", "--fork", "--kill-child", "sleep", "600"])
    plain = procs.start(["unshare", "--net", "sleep", "600"])
    ws = await discover(LocalHost())
    ctr_ino = os.stat(f"/proc/{ctr.leaf}/ns/net").st_ino
    plain_ino = os.stat(f"/proc/{plain.leaf}/ns/net").st_ino
    names = {w.name for w in ws}
    assert f"net:[{ctr_ino}]" not in names
    assert f"net:[{plain_ino}]" in names


def test_merge_replaces_only_netns():
    vm = Workload(WorkloadKind.VM, "vm", "h")
    c = Workload(WorkloadKind.CONTAINER, "c", "h")
    old = Workload(WorkloadKind.NETNS, "old", "h")
    new = Workload(WorkloadKind.NETNS, "new", "h")
    st = NetnsProbe().merge(HostState(Host("h"), workloads=(vm, old, c)), (new,))
    assert st.workloads == (vm, c, new)


def test_parse_ip_addr_tolerates_junk():
    assert parse_ip_addr("") == ((), ())
    assert parse_ip_addr("not json") == ((), ())
    assert parse_ip_addr(
        '[{"ifname":"eth0","addr_info":[{"local":"fe80::1","prefixlen":64,'
        '"scope":"link"},{"local":"::1","prefixlen":128,"scope":"host"}]}]'
    ) == (("eth0",), ("fe80::1/64",))
