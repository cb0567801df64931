"""The engine derives off the event loop: at most one derive in flight, the newest
observations win, subscribers run on the loop with a consistent State, and the loop keeps
answering while a derive runs (a key press never waits for a fleet's derive).

The host is a real LocalHost with no probes; its observations are changed through
Engine.update_host (what event-driven sources call), so the test controls when they change."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from dataclasses import replace

import pytest

from probes.engine import Engine, Probe
from probes.hosts.base import HostTransport
from probes.hosts.local import LocalHost
from probes.model import HostState, State, Workload, WorkloadKind
from probes.resources.model import ResourceSnapshot


def _wl(n: int) -> tuple[Workload, ...]:
    return tuple(Workload(WorkloadKind.NETNS, f"ns{i}", "h1") for i in range(n))


async def test_the_derive_runs_in_its_thread_one_at_a_time_newest_wins() -> None:
    loop_thread = threading.get_ident()
    release = threading.Event()
    derives: list[tuple[str, int]] = []  # (thread name, workloads seen)

    def derive(st: State) -> State:
        if not st.hosts[0].workloads:  # the engine's first State, made when it is built
            return st
        derives.append((threading.current_thread().name, len(st.hosts[0].workloads)))
        # blocks until the loop releases it: on the loop this would never return
        assert release.wait(10), "the loop never ran while the derive was in flight"
        return replace(st, tenants=())

    seen: list[tuple[int, int]] = []  # (workloads in the State, thread of the subscriber)
    engine = Engine([LocalHost("h1", libvirt_uri=None)], lambda h: [], derive)
    engine.subscribe(lambda st: seen.append((len(st.hosts[0].workloads), threading.get_ident())))
    engine.start()
    try:
        engine.update_host("h1", lambda hs: replace(hs, workloads=_wl(1)))
        for _ in range(200):  # the first derive starts (off the loop) and blocks
            await asyncio.sleep(0.01)
            if derives:
                break
        assert derives and derives[0][0].startswith("tsf-derive")
        # the loop runs while it is blocked; changes meanwhile make ONE more derive, of the newest
        for n in (2, 3, 4, 5):
            engine.update_host("h1", lambda hs, n=n: replace(hs, workloads=_wl(n)))
            await asyncio.sleep(0.06)  # past the publish window: each change is its own publish
        assert len(derives) == 1 and not seen  # nothing published before its derive ended
        assert len(engine.state.hosts[0].workloads) == 0  # the last derived State, as it was
        release.set()
        for _ in range(300):
            await asyncio.sleep(0.01)
            if seen and seen[-1][0] == 5:
                break
    finally:
        release.set()
        await engine.stop()
    assert [n for _, n in derives] == [1, 5]  # the first, then the newest (2-4 never derived)
    assert [n for n, _ in seen] == [1, 5]
    assert all(t == loop_thread for _, t in seen)  # subscribers on the loop
    assert len(engine.state.hosts[0].workloads) == 5


async def test_headless_use_derives_on_the_callers_thread() -> None:
    """Not started (tenantscope check, snapshot): the State is derived when asked for."""
    threads: list[str] = []

    def derive(st: State) -> State:
        threads.append(threading.current_thread().name)
        return st

    engine = Engine([LocalHost("h1", libvirt_uri=None)], lambda h: [], derive)
    try:
        st = await engine.refresh_once()
    finally:
        await engine.stop()
    assert st.hosts[0].host.name == "h1" and threads == [threading.current_thread().name]


async def test_a_running_engine_freezes_its_long_lived_heap_and_unfreezes_on_stop(monkeypatch) -> None:
    """The full collections of the cyclic GC walked the whole heap of States every few seconds
    (0.3-0.8 s with the loop stopped at 200 hosts): a started engine freezes what survives the
    young collections (gc.freeze), unfreezes periodically and when it stops."""
    import gc

    import probes.heap as heap

    monkeypatch.setattr(heap, "HEAP_FREEZE", 0.05)
    gc.unfreeze()
    engine = Engine([LocalHost("h1", libvirt_uri=None)], lambda h: [], lambda s: s)
    engine.start()
    try:
        for _ in range(100):
            await asyncio.sleep(0.02)
            if gc.get_freeze_count():
                break
        assert gc.get_freeze_count() > 0
    finally:
        await engine.stop()
    assert gc.get_freeze_count() == 0


class _Workloads(Probe[tuple[Workload, ...]]):
    """Adds `n` network-namespace workloads named after the probe, at once."""

    interval = 60.0

    def __init__(self, name: str, n: int) -> None:
        self.name = name
        self.n = n
        self.collected_at = 0.0

    async def collect(self, host: HostTransport) -> tuple[Workload, ...]:
        self.collected_at = time.monotonic()
        return tuple(Workload(WorkloadKind.NETNS, f"{self.name}{i}", host.name) for i in range(self.n))

    def merge(self, state: HostState, result: tuple[Workload, ...]) -> HostState:
        others = tuple(w for w in state.workloads if not w.name.startswith(self.name))
        return replace(state, workloads=others + result)


async def test_the_leads_first_result_is_published_at_once_the_others_after_the_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing else runs before the lead's first result is published (the other probes wait
    for it): it goes out at once, not after the publish window (the console's first frame);
    later results still gather in the window."""
    import probes.engine as engine_mod

    monkeypatch.setattr(engine_mod, "COALESCE", 1.0)
    monkeypatch.setattr(engine_mod, "LEAD_SETTLE", 0.0)
    lead, other = _Workloads("lead", 3), _Workloads("other", 2)
    seen: list[tuple[float, int]] = []  # (when, workloads)
    frozen: list[int] = []  # objects frozen at each publish
    engine = Engine([LocalHost("h1", libvirt_uri=None)], lambda h: [lead, other], lambda s: s, lead=("lead",))
    engine.subscribe(lambda st: seen.append((time.monotonic(), len(st.hosts[0].workloads))))
    engine.subscribe(lambda st: frozen.append(gc.get_freeze_count()))
    gc.unfreeze()
    engine.start()
    try:
        for _ in range(300):
            await asyncio.sleep(0.01)
            if seen and seen[-1][1] == 5:
                break
    finally:
        await engine.stop()
    first = next(t for t, n in seen if n == 3)
    assert first - lead.collected_at < 0.5  # at once (the window is 1 s)
    # the first inventory lives on: frozen before its derive (unfrozen when the engine stops)
    assert frozen[[n for _, n in seen].index(3)] > 10_000 and gc.get_freeze_count() == 0
    both = next(t for t, n in seen if n == 5)
    assert other.collected_at >= first and both - other.collected_at >= 0.9  # in the window


async def test_the_other_probes_wait_for_what_the_leads_publish_cost_including_its_derive() -> None:
    """After the leads' first publish the other probes wait SETTLE_FACTOR times what it cost,
    the derive (in its thread) included: they started while the console drew its first frame."""
    import probes.engine as engine_mod

    lead, other = _Workloads("lead", 3), _Workloads("other", 2)

    def derive(st: State) -> State:
        if st.hosts[0].workloads:
            time.sleep(0.06)  # a fleet's checks
        return st

    published: list[float] = []
    engine = Engine([LocalHost("h1", libvirt_uri=None)], lambda h: [lead, other], derive, lead=("lead",))
    engine.subscribe(lambda st: published.append(time.monotonic()) if st.hosts[0].workloads else None)
    engine.start()
    try:
        for _ in range(300):
            await asyncio.sleep(0.01)
            if other.collected_at:
                break
    finally:
        await engine.stop()
    assert published and other.collected_at - published[0] >= engine_mod.SETTLE_FACTOR * 0.06 * 0.9


async def test_an_engine_with_leads_freezes_what_exists_when_its_probes_start() -> None:
    """A console's widgets are made after its compose froze the imports: a full collection set
    off by the first inventory's parse (on the probe's thread, the first frame waiting for it)
    walked them. What exists when an engine with lead probes starts is frozen then (young
    collections first: cyclic garbage is not frozen); the engine unfreezes when it stops."""
    gc.unfreeze()
    keep = [[i] for i in range(20_000)]  # long-lived containers made before start
    engine = Engine(
        [LocalHost("h1", libvirt_uri=None)], lambda h: [_Workloads("lead", 1)], lambda s: s, lead=("lead",)
    )
    engine.start()
    try:
        assert gc.get_freeze_count() >= len(keep)  # at start, before any probe ran
    finally:
        await engine.stop()
    assert gc.get_freeze_count() == 0


class _Figures(Probe[ResourceSnapshot]):
    """New live figures at every run (what a resources probe brings every refresh)."""

    name = "figures"
    interval = 60.0

    async def collect(self, host: HostTransport) -> ResourceSnapshot:
        return ResourceSnapshot(at=time.time())

    def merge(self, state: HostState, result: ResourceSnapshot) -> HostState:
        return replace(state, samples=result)


async def test_an_observation_equal_to_the_last_is_handed_on_as_the_same_objects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A safety poll that finds the same workloads builds a new tuple of new (equal) objects:
    the engine hands on the last one, so the next derive (the figures moved), its placement,
    the check runner and the panes see the same object (they compare by identity first;
    tenancy.assign compared 50 workloads in full at every later figures derive)."""
    import probes.engine as engine_mod

    monkeypatch.setattr(engine_mod, "FIGURES_DERIVE", 0.0)  # new figures derive at once
    probe = _Workloads("ns", 3)
    derived: list[State] = []

    def derive(st: State) -> State:
        derived.append(st)
        return st

    engine = Engine([LocalHost("h1", libvirt_uri=None)], lambda h: [probe, _Figures()], derive)
    try:
        await engine.refresh_once()
        await engine.refresh_once()
    finally:
        await engine.stop()
    first, last = derived[1].hosts[0], derived[-1].hosts[0]
    assert len(first.workloads) == 3 and first.samples is not last.samples
    assert last.workloads is first.workloads
