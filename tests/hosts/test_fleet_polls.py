"""Issue 18/19 (idle CPU of a fleet console): the figures of hosts not on screen are read less
often, and say so; a host that comes on screen, or whose inventory changed, is read at once;
routine publishes (only figures moved) are bounded per second while any other change goes
out at once.

Real parts: libvirt's test driver (tests/data/fleets/*.xml) behind the real Engine, probes and
deriver; the slow interval is shortened (module constants) so the test takes seconds."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import replace

import pytest

from probes import engine as engine_mod
from probes.engine import Engine
from probes.hosts.libvirt_view import LibvirtViewHost
from probes.model import ProbeError, State
from probes.session import Options, Session, make_deriver, make_probes
from tests.helpers import DATA

URI = f"test://{DATA / 'fleets' / 'two-tenants-one-bridge.xml'}"

pytest.importorskip("libvirt")


def _fleet(n: int, interval: float) -> tuple[Session, Engine]:
    opts = Options(interval=interval)
    hosts = [LibvirtViewHost(URI, name=f"tsfp-poll{i}") for i in range(n)]
    engine = Engine(hosts, make_probes(opts), make_deriver(opts), lead=("libvirt",))
    return Session(opts, engine=engine), engine


async def _until(cond, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.02)


def _at(session: Session, host: str) -> float | None:
    hs = next(h for h in session.engine._states.values() if h.host.name == host)
    return hs.samples.at if hs.samples is not None else None


def _feed(session: Session, host: str):
    hs = next(h for h in session.engine._states.values() if h.host.name == host)
    return next((f for f in hs.feeds if f.probe == "resources"), None)


async def test_off_screen_figures_slower_said_and_read_at_once_when_shown(monkeypatch):
    monkeypatch.setattr(engine_mod, "FIGURES_BUDGET", 1)  # 3 hosts: off screen = 3 intervals
    monkeypatch.setattr(engine_mod, "FIGURES_MAX_EVERY", 5.0)
    session, engine = _fleet(3, 0.2)
    on, off = "tsfp-poll0", "tsfp-poll1"
    assert engine.every(off, engine.probes_of(off)[1]) == 0.2  # nothing said yet: all on screen
    session.show_hosts([on])
    res = next(p for p in engine.probes_of(off) if p.name == "resources")
    assert engine.every(on, res) == 0.2 and engine.every(off, res) == pytest.approx(0.6)
    monkeypatch.setattr(engine_mod, "FIGURES_BUDGET", 0.01)  # now: the cap, 5 s
    session.start()
    try:
        await _until(lambda: _at(session, on) is not None and _at(session, off) is not None)
        await asyncio.sleep(1.0)  # first reads of every probe done, its 5 s wait began
        seen = {on: set(), off: set()}
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            for h in seen:
                seen[h].add(_at(session, h))
            await asyncio.sleep(0.02)
        assert len(seen[on]) >= 3, seen  # every 0.2 s (+ the run)
        assert len(seen[off]) == 1, seen  # not in 1.5 s
        feed = _feed(session, off)
        assert feed is not None and feed.mode == "polled" and feed.every == 5.0
        assert (
            "not on screen in a fleet of 3 hosts: read every 5 s (hosts on screen every 0.2 s)" in feed.detail
        )
        on_feed = _feed(session, on)
        assert on_feed is not None and "not on screen" not in on_feed.detail
        # the fleet view (nothing on screen), then the main view again (every host)
        before = _at(session, off)
        session.show_hosts(None)
        t0 = time.monotonic()
        await _until(lambda: _at(session, off) != before, timeout=4.0)
        assert time.monotonic() - t0 < 2.0  # at once, not at the end of its 5 s wait
        await _until(lambda: "not on screen" not in (_feed(session, off) or feed).detail, timeout=2.0)
    finally:
        await session.stop()


async def test_a_change_on_an_off_screen_host_reads_its_figures_at_once(monkeypatch):
    """A domain suspended on a host read slowly: libvirt's event re-reads its inventory, and
    its figures (and limits) follow at once, not at the slow interval."""
    monkeypatch.setattr(engine_mod, "FIGURES_BUDGET", 0.01)
    monkeypatch.setattr(engine_mod, "FIGURES_MAX_EVERY", 20.0)
    session, engine = _fleet(2, 0.2)
    off = "tsfp-poll1"
    session.show_hosts(["tsfp-poll0"])
    session.start()
    try:
        await _until(lambda: _at(session, off) is not None)
        await asyncio.sleep(0.5)
        before = _at(session, off)
        inv = next(p for p in engine.probes_of(off) if p.name == "libvirt")
        conn = inv._conn  # the test driver's connection (read-write for test:// only)

        def suspend() -> None:
            conn.lookupByName("acme-web-1").suspend()

        await asyncio.get_running_loop().run_in_executor(inv._thread, suspend)
        t0, suspended_at = time.monotonic(), time.time()
        # a reading taken after the suspend (one already under way when it came, under load,
        # changed `_at` too, and showed the domain still running)
        await _until(lambda: (_at(session, off) or 0.0) >= suspended_at, timeout=8.0)
        assert _at(session, off) != before
        assert time.monotonic() - t0 < 5.0  # woken by the change, not the 20 s interval
        vm = next(w for w in session.engine._states[off].workloads if w.name == "acme-web-1")
        assert vm.state == "paused"
    finally:
        await session.stop()


async def test_routine_publishes_bounded_urgent_changes_at_once():
    session, engine = _fleet(3, 0.1)  # 30 figures a second, every host on screen
    got: list[tuple[float, State]] = []
    session.subscribe(lambda st: got.append((time.monotonic(), st)))
    session.start()
    try:
        await _until(lambda: all(h.samples is not None for h in session.state.hosts))
        await asyncio.sleep(1.5)  # first rounds, first derive of the figures
        got.clear()
        await asyncio.sleep(3.0)
        times = [t for t, _ in got]
        # every host's figures moved ~30 times; subscribers heard of them at most ~1/s
        assert 1 <= len(times) <= 5, times
        assert all(b - a >= engine_mod.PUBLISH_GAP * 0.9 for a, b in itertools.pairwise(times)), times
        # a probe error is news: out within the coalescing window, not a second later
        now = time.time()
        t0 = time.monotonic()
        engine.update_host(
            "tsfp-poll2",
            lambda hs: replace(
                hs, probe_errors=hs.probe_errors + (ProbeError("tsfp-test", "tsfp-poll2", "x", now, now),)
            ),
        )

        def has_error() -> bool:
            return any(e.probe == "tsfp-test" for _, st in got for h in st.hosts for e in h.probe_errors)

        await _until(has_error, timeout=3.0)
        assert time.monotonic() - t0 < 0.6
    finally:
        await session.stop()


async def test_the_console_tells_the_engine_which_hosts_it_draws():
    """The fleet view draws no host's figures, a host filter one host's, the main view all."""
    from tui.app import TenantScopeApp
    from tui.screens.fleet import FleetScreen

    session, engine = _fleet(2, 2.0)
    app = TenantScopeApp(session.opts, source=session)
    async with app.run_test(size=(160, 50)) as pilot:
        await _until(lambda: all(h.workloads for h in session.state.hosts))
        await pilot.pause()
        assert engine._on_screen is None
        await pilot.press("H")
        await _until(lambda: isinstance(app.screen, FleetScreen))
        assert engine._on_screen == frozenset()
        await pilot.press("escape")
        await pilot.pause()
        assert engine._on_screen is None
        await pilot.press("h")  # the next host: tsfp-poll0
        await pilot.pause()
        assert engine._on_screen == frozenset({"tsfp-poll0"})
    await session.stop()


async def test_a_libvirt_views_topology_is_remade_only_when_its_inputs_change(monkeypatch):
    """Every 10 s per host a fleet re-reads its libvirt networks: the same networks and the
    same workloads keep the topology object (not built again); a VM gone is a new topology
    without its port."""
    from probes.model import WorkloadKind
    from probes.network import libvirtnet

    built = []
    real = libvirtnet.from_libvirt
    monkeypatch.setattr(libvirtnet, "from_libvirt", lambda *a: built.append(1) or real(*a))

    session, engine = _fleet(1, 2.0)
    name = "tsfp-poll0"
    host = engine.hosts[0]
    topo = next(p for p in engine.probes_of(name) if p.name == "topology")
    try:
        st = await engine.refresh_once()
        hs = st.hosts[0]
        assert hs.topology is not None and hs.workloads
        hs = engine._states[name]
        n = len(built)
        again = topo.merge(hs, await topo.collect(host))
        assert again is hs and len(built) == n  # same inputs: nothing made again, nothing re-derived
        vm = next(w for w in hs.workloads if w.kind == WorkloadKind.VM and w.vm and w.vm.nics)
        fewer = replace(hs, workloads=tuple(w for w in hs.workloads if w is not vm))
        merged = topo.merge(fewer, await topo.collect(host))
        assert len(built) == n + 1
        assert merged.topology is not None and merged.topology != hs.topology
        taps = {lk.name for lk in merged.topology.links} | {
            p.name for b in merged.topology.ovs for p in b.ports
        }
        assert not any(n.target_dev and n.target_dev in taps for n in vm.vm.nics)
    finally:
        await session.stop()
