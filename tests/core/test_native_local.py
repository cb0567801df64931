"""The local host reads files, directories, links and /proc natively: nothing is spawned, and
the answers equal those of the command path that remote hosts use (compared on this machine)."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

import pytest

from probes.hosts.base import CommandResult
from probes.hosts.local import LocalHost
from probes.inventory import procfs
from probes.inventory.containers import discover as discover_containers
from probes.inventory.netns import discover as discover_netns
from tests.fixtures.procs import NamedNetns, Procs, named_netns, procs  # noqa: F401
from tests.helpers import needs_root, needs_tool


class NoSpawnHost(LocalHost):
    """The real local host, except that running or streaming a command fails the test."""

    def __init__(self, *a, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*a, **kw)
        self.spawned: list[tuple[str, ...]] = []

    async def run(
        self, argv: Sequence[str], *, timeout: float = 10.0, input: str | None = None
    ) -> CommandResult:
        self.spawned.append(tuple(argv))
        raise AssertionError(f"spawned {list(argv)}")

    async def stream(self, argv: Sequence[str]) -> AsyncIterator[str]:
        self.spawned.append(tuple(argv))
        raise AssertionError(f"spawned {list(argv)}")
        yield ""  # pragma: no cover


@needs_root
@needs_tool("ip", "unshare")
async def test_inventories_topology_and_setup_spawn_nothing_locally(named_netns: NamedNetns, procs: Procs):
    from probes.facts.probe import FactsProbe
    from probes.logs.service import collect_setup
    from probes.network.topology import TopologyProbe

    named_netns.add("tsb-nat-1", "10.79.0.1/24")
    procs.start(["unshare", "--net", "sleep", "600"])
    procs.start(["unshare", "--uts", "--ipc", "sleep", "600"])
    host = NoSpawnHost(libvirt_uri=None)
    ws = await discover_netns(host)
    assert any(w.name == "tsb-nat-1" and w.netns.addresses == ("10.79.0.1/24",) for w in ws)
    assert await discover_containers(host)
    # Packet filters are the exception: `nft -j list ruleset` and the iptables-save family are
    # the only way to read them, so the first read of a host that forwards (or filters bridged
    # traffic) runs them; later reads only when the nftables generation moved (or, with legacy
    # iptables tables, which have no generation, after the safety period: filterread.py)
    topology = TopologyProbe()
    await topology.collect(LocalHost(libvirt_uri=None))
    topo = await topology.collect(host)
    assert any(n.name == "tsb-nat-1" for n in topo.namespaces)
    facts = FactsProbe()
    first = await facts.collect(LocalHost())  # the first run asks the executables' versions
    facts_again = await facts.collect(host)  # then they are known: nothing spawned
    assert facts_again.versions == first.versions and facts_again.kernel == first.kernel
    await collect_setup(host)
    assert host.spawned == []


async def test_ns_table_native_equals_find():
    host = LocalHost()
    a = await procfs.ns_table(host, native=True)
    b = await procfs.ns_table(host, native=False)
    c = await procfs.ns_table(host, native=True)
    # processes start, end or unshare between the reads (other tests run meanwhile): compare
    # those the two native reads agree on
    stable = {p for p in set(a) & set(b) & set(c) if a[p] == c[p]}
    assert len(stable) > 5
    assert {p: a[p] for p in stable} == {p: b[p] for p in stable}


@needs_root
@needs_tool("ip")
async def test_native_addresses_equal_ip_json(named_netns: NamedNetns):
    n = named_netns.add("tsb-nat-2", "10.79.1.1/24")
    subprocess.run(
        ["ip", "-n", n, "link", "add", "tsb-v0", "type", "veth", "peer", "name", "tsb-v1"], check=True
    )
    for dev, a in (("tsb-v0", "10.79.2.1/24"), ("tsb-v0", "fd00:79::1/64"), ("tsb-v1", "10.79.2.2/24")):
        subprocess.run(["ip", "-n", n, "addr", "add", a, "dev", dev], check=True)
    subprocess.run(["ip", "-n", n, "link", "set", "tsb-v0", "up"], check=True)
    native = {w.name: w for w in await discover_netns(LocalHost())}
    commands = {w.name: w for w in await discover_netns(LocalHost(), batch=True)}
    assert native[n] == commands[n]
    assert "10.79.2.1/24" in native[n].netns.addresses and "fd00:79::1/64" in native[n].netns.addresses


@pytest.mark.parametrize("tree", ["weak", "hardened"])
def test_facts_native_equal_scripts_on_a_tree(tmp_path, tree):
    """The facts trees of tests/data read through os calls and through the scripts."""
    from probes.facts.probe import FactsProbe
    from tests.fixtures.checks import make_tree

    root = make_tree(tree, tmp_path)

    async def both():  # type: ignore[no-untyped-def]
        scripted = FactsProbe()
        scripted.native = False
        h = LocalHost("t", root=str(root))
        return await FactsProbe().collect(h), await scripted.collect(h)

    native, scripts = asyncio.run(both())
    assert native.runtime_sockets or native.libvirt_sockets  # the trees have some
    assert replace(native, collected_at=0.0) == replace(scripts, collected_at=0.0)


def test_facts_native_equal_scripts_on_this_machine():
    from probes.facts.probe import FactsProbe

    async def both():  # type: ignore[no-untyped-def]
        scripted = FactsProbe()
        scripted.native = False
        return await FactsProbe().collect(LocalHost()), await scripted.collect(LocalHost())

    native, scripts = asyncio.run(both())
    # processes and listening sockets change between two reads (the scripts' own processes,
    # other tests running meanwhile): compare the rest
    keep = dict(collected_at=0.0, hypervisor_processes=(), tcp_listen_ports=())
    assert replace(native, **keep) == replace(scripts, **keep)


def test_facts_trees_are_made_under_a_long_path(tmp_path):
    """The fixture's socket files exist under a path longer than a unix socket address can be
    (bind() refused it: pytest's tmp_path under xdist once reached 108 bytes)."""
    from tests.fixtures.checks import make_tree

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    root = make_tree("hardened", deep)
    sock = root / "run/libvirt/libvirt-sock-ro"
    assert len(str(sock).encode()) > 108
    mode = os.stat(sock).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o777
