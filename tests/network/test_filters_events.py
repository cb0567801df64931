"""A rule change alone wakes the topology probe (nftables' netlink notifications, one socket
per namespace), so the filters in the State follow it without waiting for the safety poll.
Real namespace tf2-ev (removed by name), real nft rules, a real Engine whose polls are 60 s
apart. Reading the rules sends no
notification (no loop of reads)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator

import pytest

from probes.engine import Engine
from probes.hosts.local import LocalHost
from probes.model import State
from probes.network.events import LocalNetEvents
from probes.network.topology import TopologyProbe
from tests.fixtures.netlab import sh
from tests.helpers import needs_root, needs_tool

pytestmark = [needs_root, needs_tool("ip", "nft")]
NS = "tf2-ev"
SLOW = 60.0
BUDGET = 10.0  # far below the poll; the latency itself belongs in a bench


@pytest.fixture
def ns() -> Iterator[str]:
    if os.path.exists(f"/run/netns/{NS}"):
        sh("ip", "netns", "del", NS, check=False)
    sh("ip", "netns", "add", NS)
    # a forwarding namespace with a link (its filters are read); the veth made from the host
    sh("ip", "link", "add", "tf2-eva", "type", "veth", "peer", "name", "eth0", "netns", NS)
    sh("ip", "-n", NS, "link", "set", "eth0", "up")
    sh("ip", "-n", NS, "addr", "add", "10.79.0.1/24", "dev", "eth0")
    sh("ip", "netns", "exec", NS, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    try:
        yield NS
    finally:
        sh("ip", "netns", "del", NS, check=False)
        sh("ip", "link", "del", "tf2-eva", check=False)


def nft(*args: str) -> None:
    sh("ip", "netns", "exec", NS, "nft", *args)


async def test_events_fire_on_a_rule_change_and_not_on_a_read(ns: str) -> None:
    ev = LocalNetEvents()
    seen: list[str] = []
    ev.subscribe(seen.append)
    await ev.start()
    try:
        await ev.sync([ns])
        await asyncio.sleep(0.2)
        seen.clear()
        await asyncio.to_thread(nft, "list", "ruleset")
        await asyncio.to_thread(sh, "ip", "netns", "exec", ns, "nft", "-j", "list", "ruleset")
        await asyncio.sleep(0.5)
        assert ns not in seen  # reading is not a change
        await asyncio.to_thread(nft, "add", "table", "inet", "tf2ev")
        async with asyncio.timeout(BUDGET):
            while ns not in seen:
                await asyncio.sleep(0.05)
    finally:
        ev.close()
    # closing let go of the namespace: deleting it frees it (no socket keeps it alive)
    assert not ev._nft and not ev._socks


async def _until(engine: Engine, pred: Callable[[State], bool], timeout: float) -> float:
    t0 = time.monotonic()
    seen = asyncio.Event()
    engine.subscribe(lambda st: seen.set() if pred(st) else None)
    if pred(engine.state):
        return 0.0
    async with asyncio.timeout(timeout):
        await seen.wait()
    return time.monotonic() - t0


def _rules(st: State) -> list[str]:
    topo = st.hosts[0].topology if st.hosts else None
    f = topo.filters_of(NS) if topo else None
    return [r.display for rs in (f.rulesets if f else ()) for c in rs.chains for r in c.rules]


async def test_a_rule_added_shows_in_the_state_without_a_poll(ns: str) -> None:
    """End to end. On a host where other namespaces change, any event's read also notices the
    moved nftables generation here; the test above is the one proving the rule event itself."""
    events = LocalNetEvents()
    probe = TopologyProbe(interval=SLOW, events=events, safety=SLOW)
    engine = Engine([LocalHost(libvirt_uri=None)], lambda h: [probe])
    engine.start()
    try:
        await _until(
            engine,
            lambda st: bool(st.hosts and st.hosts[0].topology and st.hosts[0].topology.filters_of(NS)),
            30.0,
        )
        await asyncio.sleep(0.3)
        assert not any("tf2ev" in r for r in _rules(engine.state))
        await asyncio.to_thread(nft, "add", "table", "inet", "tf2ev")
        await asyncio.to_thread(
            nft, "add", "chain", "inet", "tf2ev", "fw", "{ type filter hook forward priority 0; }"
        )
        await asyncio.to_thread(
            nft, "add", "rule", "inet", "tf2ev", "fw", "iifname", "tf2x", "drop", "comment", "tf2ev"
        )
        took = await _until(engine, lambda st: any("tf2ev" in r for r in _rules(st)), BUDGET)
        assert took < BUDGET
        assert events.nft and "nftables rule changes" in probe.feed().detail
    finally:
        await engine.stop()
        events.close()
