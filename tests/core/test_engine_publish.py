"""Issue 19 (idle cost per SSH host): every host's live figures are read on one shared grid of
their interval, so a fleet's figures make one publish (one redraw) per interval instead of one
per PUBLISH_GAP at each host's own phase; a run that observed nothing new is not news of its
own (its refresh time goes out with the next publish, at the latest QUIET_GAP s later), while
any other change still goes out at once.

The hosts are real LocalHosts and the engine is the real one; the probes are small test probes
(a figures probe whose readings are the run's time, a probe that observes the same thing
every time) so that the test controls phases and what changes."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import replace

from probes import engine as engine_mod
from probes.engine import Engine, Probe
from probes.hosts.base import HostTransport
from probes.hosts.local import LocalHost
from probes.model import HostState, ProbeError, State
from probes.resources.model import ResourceSnapshot


class Figures(Probe[float]):
    """Live figures (the resources probe's role): each run's reading is its start time; the
    first run on a host may start late (`first_delay`), as a host whose connection came later."""

    name = "tsep-figures"
    figures = True
    timeout = 5.0

    def __init__(self, interval: float, first_delay: float = 0.0) -> None:
        self.interval = interval
        self.first_delay = first_delay
        self.starts: list[float] = []

    async def collect(self, host: HostTransport) -> float:
        if not self.starts and self.first_delay:
            await asyncio.sleep(self.first_delay)
        now = asyncio.get_running_loop().time()
        self.starts.append(now)
        return now

    def merge(self, state: HostState, result: float) -> HostState:
        return replace(state, samples=ResourceSnapshot(at=result))


class Same(Probe[int]):
    """A safety poll that observes the same thing every run (most polls of an idle fleet)."""

    name = "tsep-same"
    timeout = 5.0

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.runs = 0

    async def collect(self, host: HostTransport) -> int:
        self.runs += 1
        return 1

    def merge(self, state: HostState, result: int) -> HostState:
        return state


async def test_every_hosts_figures_run_on_one_grid_and_make_one_publish_per_interval() -> None:
    every = 0.25
    probes = {"tsep-a": Figures(every), "tsep-b": Figures(every, first_delay=0.09)}
    engine = Engine([LocalHost(n, libvirt_uri=None) for n in probes], lambda h: [probes[h.name]])
    published: list[float] = []
    engine.subscribe(lambda st: published.append(time.monotonic()))
    engine.start()
    try:
        await asyncio.sleep(2.5)
    finally:
        await engine.stop()
    a, b = probes["tsep-a"].starts, probes["tsep-b"].starts
    assert len(a) >= 6 and len(b) >= 6, (a, b)
    # b began 0.09 s after a; from its second run on, both run at the same grid instants
    pairs = [(x, min(b, key=lambda y: abs(y - x))) for x in a[2:]]
    assert all(abs(x - y) < 0.03 for x, y in pairs), pairs
    assert all(0.8 * every <= y - x <= 1.6 * every for x, y in itertools.pairwise(a[1:])), a
    # both hosts' figures of a tick make one publish: at most one per PUBLISH_GAP
    late = [t for t in published if t >= published[0] + 1.0]
    assert all(y - x >= engine_mod.PUBLISH_GAP * 0.9 for x, y in itertools.pairwise(late)), late


async def test_runs_that_observe_nothing_new_publish_rarely_other_changes_at_once(monkeypatch) -> None:
    monkeypatch.setattr(engine_mod, "QUIET_GAP", 1.5, raising=False)
    same = Same(0.05)  # 20 runs a second, each finding what the last one found
    host = LocalHost("tsep-quiet", libvirt_uri=None)
    engine = Engine([host], lambda h: [same])
    engine.seed(HostState(host=host.host, samples=ResourceSnapshot(at=1.0)))  # figures shown already
    got: list[tuple[float, State]] = []
    engine.subscribe(lambda st: got.append((time.monotonic(), st)))
    engine.start()
    try:
        await asyncio.sleep(0.6)
        got.clear()
        runs = same.runs
        await asyncio.sleep(3.2)
        assert same.runs - runs >= 20  # it kept polling
        times = [t for t, _ in got]
        # its refresh times went out, but not at every PUBLISH_GAP: every QUIET_GAP at most
        assert 1 <= len(times) <= 3, times
        assert all(y - x >= 1.5 * 0.9 for x, y in itertools.pairwise(times)), times
        assert time.time() - engine.state.hosts[0].refreshed_at < 0.5  # the State has them
        # a probe error is news: out within the coalescing window
        now = time.time()
        t0 = time.monotonic()
        engine.update_host(
            "tsep-quiet",
            lambda hs: replace(hs, probe_errors=(ProbeError("tsep-x", "tsep-quiet", "x", now, now),)),
        )
        while not any(h.probe_errors for _, st in got for h in st.hosts):
            assert time.monotonic() - t0 < 3.0
            await asyncio.sleep(0.01)
        assert time.monotonic() - t0 < 0.6
    finally:
        await engine.stop()


async def test_hosts_read_slowly_off_screen_keep_their_own_phases(monkeypatch) -> None:
    """bench.fleet at N=200 (the fleet view: no host's figures on screen, each read every
    interval x N / FIGURES_BUDGET s): on the shared grid every host's run came at the same tick,
    200 threads' libvirt statistics at once, and the idle CPU went from 4% to 9% of a core. Off
    screen, a host keeps the phase it started with; on screen it joins the grid (above)."""
    monkeypatch.setattr(engine_mod, "FIGURES_BUDGET", 1)
    every = 0.2  # off screen, 2 hosts, a budget of 1: each read every 0.4 s
    probes = {"tsep-c": Figures(every), "tsep-d": Figures(every, first_delay=0.09)}
    engine = Engine([LocalHost(n, libvirt_uri=None) for n in probes], lambda h: [probes[h.name]])
    engine.show_hosts(())
    assert engine.every("tsep-c", probes["tsep-c"]) == 2 * every
    engine.start()
    try:
        await asyncio.sleep(2.2)
    finally:
        await engine.stop()
    c, d = probes["tsep-c"].starts, probes["tsep-d"].starts
    assert len(c) >= 4 and len(d) >= 4, (c, d)
    # d keeps its 0.09 s lag behind c (on the grid both would run at the same instants)
    gaps = [min(abs(y - x) for y in d) for x in c[1:]]
    assert all(gap > 0.04 for gap in gaps), (c, d)
