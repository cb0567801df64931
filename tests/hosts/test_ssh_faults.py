"""Faults are contained: a killed sshd makes its host unreachable (data kept, marked stale)
while another host keeps updating; a restarted sshd is reconnected without user action; a host
whose probes hang never starves the others."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from probes.engine import Engine, Probe
from probes.facts.model import HostFacts
from probes.hosts.base import HostTransport
from probes.hosts.connection import ConnectionProbe, stale_age, status_line
from probes.hosts.local import LocalHost
from probes.model import ConnState, HostState
from tests.fixtures.sshd import ssh_host, sshd_factory  # noqa: F401


class UptimeProbe(Probe[str]):
    """Reads /proc/uptime through the transport; counts its successful merges per host."""

    name = "uptime"
    interval = 0.1
    timeout = 3.0

    def __init__(self, merges: dict[str, int]) -> None:
        self.merges = merges

    async def collect(self, host: HostTransport) -> str:
        return (await host.read_text("/proc/uptime")).split()[0]

    def merge(self, state: HostState, result: str) -> HostState:
        self.merges[state.host.name] = self.merges.get(state.host.name, 0) + 1
        return replace(state, facts=HostFacts(kernel=result))


async def _until(cond, within: float = 60.0, what: str = "") -> None:
    """Wait for the event `cond`; the bound only stops a hung test (it is not the verdict)."""
    for _ in range(int(within / 0.05)):
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached within {within} s: {what}")


async def test_killed_host_goes_unreachable_others_keep_updating_then_it_reconnects(sshd_factory):
    a, b = sshd_factory(), sshd_factory()
    fast = dict(backoff_base=0.05, backoff_max=0.4, keepalive_interval=1.0)
    ha, hb = ssh_host(a, **fast), ssh_host(b, **fast)
    merges: dict[str, int] = {}
    engine = Engine([ha, hb], lambda h: [ConnectionProbe(h, interval=0.1), UptimeProbe(merges)])

    def hs(h) -> HostState:
        return next(s for s in engine.state.hosts if s.host.name == h.name)

    def conn(h) -> ConnState | None:
        c = hs(h).connection("ssh")
        return c.state if c else None

    engine.start()
    try:
        await _until(
            lambda: (
                conn(ha) == conn(hb) == ConnState.UP
                and merges.get(ha.name, 0) > 0
                and merges.get(hb.name, 0) > 0
            ),
            what="both hosts up",
        )
        a.kill()
        await _until(lambda: conn(ha) == ConnState.UNREACHABLE, what="a unreachable")
        assert (
            "connection lost" in hs(ha).connection("ssh").detail
            or "refused" in hs(ha).connection("ssh").detail
        )
        down_since = hs(ha).connection("ssh").since
        n_b = merges[hb.name]
        await _until(lambda: merges[hb.name] >= n_b + 5, what="b keeps updating while a is down")
        assert conn(hb) == ConnState.UP
        # a was retried meanwhile (back-off 0.05..0.4 s); it is still down since the same moment
        assert ha._failures >= 1 and hs(ha).connection("ssh").since == down_since
        # what was shown for a stays, marked stale
        assert hs(ha).facts is not None and stale_age(hs(ha)) is not None
        assert "unreachable since" in status_line(hs(ha)) and "data stale" in status_line(hs(ha))
        n_a = merges[ha.name]
        a.start()  # the same port, the same keys
        await _until(
            lambda: conn(ha) == ConnState.UP and merges[ha.name] > n_a,
            what="a reconnected without user action",
        )
        assert stale_age(hs(ha)) is None
    finally:
        await engine.stop()


class HangProbe(Probe[None]):
    """A probe of a hung host: never answers within the test (its deadline is an hour)."""

    interval = 0.1
    timeout = 3600.0

    def __init__(self, name: str, hanging: set[str]) -> None:
        self.name = name
        self.hanging = hanging

    async def collect(self, host: HostTransport) -> None:
        self.hanging.add(self.name)
        try:
            await asyncio.sleep(3600)
        finally:
            self.hanging.discard(self.name)

    def merge(self, state: HostState, result: None) -> HostState:
        return state


async def test_a_hung_host_never_starves_the_others():
    merges: dict[str, int] = {}
    hanging: set[str] = set()
    slow, ok = LocalHost("tse-slow"), LocalHost("tse-ok")
    engine = Engine(
        [slow, ok],
        lambda h: [HangProbe(f"hang{i}", hanging) for i in range(4)] if h is slow else [UptimeProbe(merges)],
        max_concurrency=2,
    )
    engine.start()
    try:
        # the hung probes hold every slot of their host (they never return here); the other
        # host goes on: it refreshes again and again while they are still hanging
        await _until(lambda: len(hanging) >= 2, what="the slow host's probes started")
        await _until(
            lambda: merges.get("tse-ok", 0) >= 3, what="the healthy host refreshed while the other hung"
        )
        assert len(hanging) >= 2, "the slow host's probes are still in flight"
    finally:
        await engine.stop()
