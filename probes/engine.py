"""Runs probes per host on schedules and keeps the State.

Each (host, probe) pair is one loop: run `collect` with a deadline, merge the result into that
host's HostState, then sleep; the next run is scheduled only when the last one ended, so polls
never overlap. A probe that raises or times out becomes a ProbeError on its host (with the time
its failure streak began) and backs off; it never stops other probes or other hosts. After
every change the State is re-derived (tenants, findings) and published to subscribers.

Once started, the derive runs off the event loop, in one worker thread of the engine: at most
one derive in flight, the newest observations win (changes that arrive meanwhile make one more
derive after it), and subscribers still run on the loop with a consistent State (hosts,
tenants and findings from one derive; only refresh times, figures within FIGURES_DERIVE and
requests are newer). A key press never waits for a fleet's derive.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import fields, replace
from typing import Any, Generic, TypeVar

from probes.heap import HeapKeeper
from probes.hosts.base import HostTransport
from probes.model import Feed, HostState, ProbeError, RequestStatus, State

log = logging.getLogger(__name__)
R = TypeVar("R")

MAX_BACKOFF = 60.0
COALESCE = 0.05  # seconds: probe results arriving within this window make one publish
# A large fleet publishes all the time (every host's figures every interval) and each publish
# re-derives the whole State: the window grows to BUSY_FACTOR times what the last publish
# cost (derive + subscribers), so deriving takes at most about a third of the loop however
# many hosts there are, and the changes of many hosts make one derive.
BUSY_FACTOR = 2.0
MAX_COALESCE = 2.0
FIGURES_DERIVE = 5.0  # seconds: findings follow figures-only changes at most this often
# ... made by the next figures publish once due (a grid tick, below), else by a publish of
# their own this many seconds after they were due (no more figures came)
FIGURES_DERIVE_SLACK = 2.5
# Routine publishes (only live figures or refresh times moved) at most every PUBLISH_GAP s: a
# fleet's figures arrive all the time (200 hosts every 2 s: 100 a second) and the cost-adapted
# window above published more often the quieter the machine. Any other change (an inventory,
# a topology event, a probe error, a request) still goes out within the window.
PUBLISH_GAP = 1.0
# A run that observed nothing new (only its refresh time moved: most safety polls of a
# fleet, 7 probes x N hosts) is not news: its refresh time goes out with the next publish, and
# at most QUIET_GAP s later when nothing else publishes (the header turns stale after 10 s).
QUIET_GAP = 5.0
# A routine publish waits at least this long after the first result of a grid tick (below):
# the hosts whose figures took a round trip (libvirt statistics through a forward, a command)
# join the same publish instead of making another one PUBLISH_GAP s later.
ROUTINE_GATHER = 0.3
# Figures probes (live figures, every interval) run on one shared grid of their interval (the
# loop clock's multiples): every host's figures arrive in the same turn of the loop and make
# one publish, one derive check and one redraw, instead of each host's at its own phase (a
# publish every PUBLISH_GAP s whatever the interval, each a pass over every pane).
# Figures of hosts not on screen (Engine.show_hosts): the console reads at full speed about
# FIGURES_BUDGET hosts' figures per interval, so an off-screen host of a fleet of N is read
# every interval * N / FIGURES_BUDGET s, at most FIGURES_MAX_EVERY (a fleet of 10 or fewer:
# unchanged; 30 hosts at 2 s: 6 s; 200: 30 s). Only probes declared `figures`; the probes
# behind findings of limits, topology and events keep their schedule.
FIGURES_BUDGET = 10
FIGURES_MAX_EVERY = 30.0
LEAD_WAIT = 3.0  # seconds: at most this long the other probes of a host wait for its lead probes
# After the leads' first publish, the others wait SETTLE_FACTOR times what that publish cost
# (derive + subscribers; a subscriber draws at about the same cost), at most LEAD_SETTLE s:
# a large fleet gets time to be drawn, a small one (tests, a laptop) loses nothing.
LEAD_SETTLE = 1.0
SETTLE_FACTOR = 5.0
EVENT_SETTLE = 0.03  # seconds: after a wake-up, events of the same burst join this run
EVENT_MIN_GAP = 0.4  # seconds: event-driven runs of one probe start at least this far apart
KEEP_REQUESTS = 16  # finished requests kept in State.requests (the newest)


class Probe(abc.ABC, Generic[R]):
    """One kind of observation. Subclasses set `name`, `interval` and `timeout`."""

    name: str = "probe"
    interval: float = 5.0
    timeout: float = 10.0
    # live figures: on a host nobody looks at, the engine may run it less often (show_hosts)
    figures: bool = False

    @abc.abstractmethod
    async def collect(self, host: HostTransport) -> R:
        """Observe the host. May raise: the engine records the error."""

    @abc.abstractmethod
    def merge(self, state: HostState, result: R) -> HostState:
        """Pure: the host's state with this probe's fields replaced by `result`."""

    def failed(self, state: HostState, error: str, now: float) -> HostState:
        """Pure: the host's state after a failed run (e.g. mark a connection unreachable)."""
        return state

    def attach(self, wake: Callable[[], None]) -> None:
        """Called once by the engine on start: `wake()` (safe from any thread) runs the probe
        soon. Event-driven probes keep it and call it when their events say something
        changed; their `interval` is then the slow safety poll."""
        self._wake = wake

    def wake(self) -> None:
        fn = getattr(self, "_wake", None)
        if fn is not None:
            fn()

    def feed(self) -> Feed:
        """How this probe learns of changes now (shown in the UI); default: polled."""
        return Feed(self.name, "polled", "no event source for this area", self.interval)

    async def close(self) -> None:
        return None


Deriver = Callable[[State], State]
Subscriber = Callable[[State], Any]
# Requested work on one host: observe, then return the pure change to that host's state.
Work = Callable[[HostTransport], Awaitable[Callable[[HostState], HostState]]]


class Engine:
    def __init__(
        self,
        hosts: Sequence[HostTransport],
        probes: Callable[[HostTransport], Sequence[Probe[Any]]],
        derive: Deriver = lambda s: s,
        *,
        source: str = "live",
        max_concurrency: int = 8,
        clock: Callable[[], float] = time.time,
        lead: Sequence[str] = (),
    ) -> None:
        self.hosts = list(hosts)
        self._probes = {h.name: list(probes(h)) for h in self.hosts}
        self._states = {h.name: HostState(host=h.host) for h in self.hosts}
        self._derive = derive
        self._source = source
        self._clock = clock
        # One bound per host: a host whose probes hang (a dead SSH peer, a stuck NFS read)
        # fills only its own slots and never starves the other hosts. Connection bursts
        # across a fleet are bounded by the SSH transport (probes/hosts/ssh.py).
        self._sems = {h.name: asyncio.Semaphore(max_concurrency) for h in self.hosts}
        self._subscribers: list[Subscriber] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._wake: dict[tuple[str, str], asyncio.Event] = {}
        self._failures: dict[tuple[str, str], int] = {}
        self._derived_from: tuple[HostState, ...] | None = None  # the hosts of the last derive
        self._derived_at = 0.0  # monotonic time of the last derive
        self._figures_behind = 0.0  # > 0: figures newer than the findings, derive in this many s
        self._requests: dict[int, RequestStatus] = {}  # State.requests (probes/requests.py)
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}  # a probe never overlaps itself
        self._state = self._build()
        self._dirty = False
        self._flush_handle: asyncio.TimerHandle | None = None
        # Lead probes (the inventory): on start, a host's other probes begin their first run
        # shortly after the leads' first results were published (at most LEAD_WAIT after
        # start), so the fleet is drawn first instead of competing with every other
        # probe (and their re-derives) for the CPU: 1,000 domains drew in 3.6 s, now ~1.7 s.
        self._lead = frozenset(lead)
        self._led: dict[str, asyncio.Event] = {}
        self._leads_pending: dict[str, set[str]] = {}
        self._leads_done: set[str] = set()  # hosts whose leads ran, awaiting their publish
        self._stopped = False
        self._notify_cost = 0.0  # seconds the last publish took (derive + subscribers)
        self._derive_cost = 0.0  # seconds the last derive took
        self._delivered_at = -PUBLISH_GAP  # loop time of the last delivery
        self._flush_at = 0.0  # loop time the pending flush is due
        self._urgent = False  # a change other than figures and refresh times awaits delivery
        self._on_screen: frozenset[str] | None = None  # None: every host is on screen
        # Started (on a loop): the derive runs in this one thread, at most one at a time;
        # headless one-shot use (refresh_once without start) derives on the caller's thread.
        self._deriver: concurrent.futures.ThreadPoolExecutor | None = None
        self._stopped_deriver: concurrent.futures.ThreadPoolExecutor | None = None  # see join()
        self._deriving = False  # a derive is in flight
        self._again = False  # observations changed while it ran: derive once more after it
        # the heap's freezing (probes/heap.py): a console asks this one, its app too
        self.heap = HeapKeeper()

    @property
    def state(self) -> State:
        """The current derived State (derived on demand when probes changed something). Once
        started, a change that needs a derive shows when the derive thread has made it: until
        then this is the last derived State, as it was (a request's outcome shows with what the
        request observed, never before it)."""
        if self._dirty:
            if self._deriver is None:
                self._state = self._build()
            else:
                fast = self._fast()
                if fast is None:  # the derive thread will make it
                    return self._state
                self._state = fast
            self._dirty = False
        return self._state

    # -- public

    def subscribe(self, fn: Subscriber) -> None:
        self._subscribers.append(fn)

    def probes_of(self, host: str) -> list[Probe[Any]]:
        return self._probes[host]

    async def refresh_once(self) -> State:
        """Run every probe of every host once, concurrently; for headless commands."""
        await asyncio.gather(*(self._run_one(t, p) for t in self.hosts for p in self._probes[t.name]))
        return self.state

    def warm_up(self) -> None:
        """Let probes begin what they can before start (a console composing its screen): each
        probe's `warm_up(host)`, where it has one (the libvirt test driver's open)."""
        for t in self.hosts:
            for p in self._probes[t.name]:
                warm = getattr(p, "warm_up", None)
                if warm is not None:
                    warm(t)

    def start(self) -> None:
        self._deriver = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tsf-derive")
        self.heap.start(asyncio.get_running_loop())
        if self._lead:
            # What exists when the probes start (a console's widgets, mounted after its compose
            # froze the imports) lives on: a full collection set off by the first inventory's
            # parse (1,000 domains: in 2 of 3 first collects, 45-130 ms under load, on the
            # probe's thread while the frame waits for it) need not walk it. The leads' first
            # runs are mostly a connection's open (in C, the GIL released) at that moment.
            self.heap.freeze()
        for t in self.hosts:
            leads = {p.name for p in self._probes[t.name] if p.name in self._lead}
            if leads:
                self._led[t.name] = asyncio.Event()
                self._leads_pending[t.name] = leads
            for p in self._probes[t.name]:
                ev = self._wake[(t.name, p.name)] = asyncio.Event()
                attach = getattr(p, "attach", None)  # duck-typed probes (tests) may lack it
                if attach is not None:
                    attach(_threadsafe_setter(asyncio.get_running_loop(), ev))
                self._tasks.append(asyncio.create_task(self._loop(t, p, ev), name=f"probe {p.name}@{t.name}"))

    def show_hosts(self, names: Collection[str] | None) -> None:
        """The hosts whose figures are on screen (None: every host, the default). The figures
        probes of the other hosts run every `every()` s; a host that comes on screen has its
        figures read at once."""
        new = None if names is None else frozenset(names)
        if new == self._on_screen:
            return
        old, self._on_screen = self._on_screen, new
        for t in self.hosts:
            if self._shown(t.name, new) and not self._shown(t.name, old):
                for p in self._probes[t.name]:
                    if getattr(p, "figures", False):
                        self.poke(p.name, t.name)

    def every(self, host: str, p: Probe[Any]) -> float:
        """Seconds between two runs of `p` on `host` now (before back-off)."""
        if not getattr(p, "figures", False) or self._shown(host, self._on_screen):
            return p.interval
        return max(p.interval, min(FIGURES_MAX_EVERY, p.interval * len(self.hosts) / FIGURES_BUDGET))

    @staticmethod
    def _shown(host: str, on_screen: frozenset[str] | None) -> bool:
        return on_screen is None or host in on_screen

    def poke(self, probe: str | None = None, host: str | None = None) -> None:
        """Run the named probe(s) now instead of waiting for the next interval."""
        for (h, p), ev in self._wake.items():
            if (probe is None or p == probe) and (host is None or h == host):
                ev.set()

    async def stop(self) -> None:
        """Stop every loop and close probes and hosts, once: the app stops its source on exit
        and the owner (a bench, a command) may stop it again; closing twice scheduled work on
        the probes' threads after they were shut down."""
        if self._stopped:
            return
        self._stopped = True
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._deriver is not None:  # a derive in flight ends on its own; its result is dropped
            self._deriver.shutdown(wait=False, cancel_futures=True)
            self._stopped_deriver = self._deriver
        self.heap.stop()
        for t in self.hosts:
            for p in self._probes[t.name]:
                try:
                    await p.close()
                except Exception:  # closing must not hide other closes
                    log.exception("closing probe %s on %s", p.name, t.name)
            try:
                await t.close()
            except Exception:
                log.exception("closing host %s", t.name)

    def join(self) -> None:
        """Block until the derive still running when stop() was called has ended: a process
        that runs one console after another (a bench) would have it compete with the next."""
        if self._stopped_deriver is not None:
            self._stopped_deriver.shutdown(wait=True)

    async def settled(self, timeout: float = 30.0) -> None:
        """Wait until the State holds what was observed so far (a derive in flight or due has
        been made): a request's result is in the State when the request is done."""
        if self._deriver is None:
            return
        end = time.monotonic() + timeout
        while (self._deriving or (self._dirty and self._fast() is None)) and time.monotonic() < end:
            await asyncio.sleep(0.01)

    def update_host(self, host: str, fn: Callable[[HostState], HostState]) -> None:
        """Apply a pure change to one host's state (for event-driven sources) and publish."""
        self._states[host] = fn(self._states[host])
        self._publish()

    def seed(self, hs: HostState) -> None:
        """Start a host from a state observed elsewhere (Session.over_state), before anyone
        subscribed: nothing is published."""
        self._states[hs.host.name] = hs
        self._dirty = True

    # -- requested work (probes/session.py runs the requests through these)

    def set_request(self, status: RequestStatus) -> None:
        """Record a request's progress or outcome in State.requests and publish."""
        self._requests[status.id] = status
        done = [k for k, v in self._requests.items() if v.finished]
        for k in done[: max(0, len(done) - KEEP_REQUESTS)]:
            del self._requests[k]
        self._publish()

    async def run_probe_now(self, host: str, probe: Probe[Any]) -> bool:
        """One run of a registered probe now (not overlapping its own loop); False when it failed
        (recorded as its probe error, as in a poll)."""
        t = next(h for h in self.hosts if h.name == host)
        return await self._run_one(t, probe)

    async def run_on_host(self, host: str, name: str, work: Work, timeout: float) -> str | None:
        """Requested work under the rules of a probe: the host's concurrency bound, a deadline,
        a failure recorded as the host's probe error `name` (cleared by its next success) and
        never raised. Returns None on success, else the message."""
        t = next(h for h in self.hosts if h.name == host)
        try:
            async with self._sems[host], asyncio.timeout(timeout):
                change = await work(t)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            msg = _describe(e, timeout)
            log.debug("%s on %s failed: %s", name, host, msg, exc_info=True)
            now = self._clock()
            st = self._states[host]
            prev = next((x for x in st.probe_errors if x.probe == name), None)
            err = ProbeError(name, host, msg, now, prev.since if prev else now)
            errors = tuple(x for x in st.probe_errors if x.probe != name) + (err,)
            self._states[host] = replace(st, probe_errors=errors)
            self._publish()
            return msg
        st = change(self._states[host])
        self._states[host] = replace(st, probe_errors=tuple(x for x in st.probe_errors if x.probe != name))
        self._publish()
        return None

    # -- internals

    async def _loop(self, t: HostTransport, p: Probe[Any], wake: asyncio.Event) -> None:
        led = self._led.get(t.name)
        if led is not None and p.name not in self._lead:
            try:
                async with asyncio.timeout(LEAD_WAIT):
                    await led.wait()
            except TimeoutError:
                pass
        first = True
        while True:
            wake.clear()  # a wake-up during the run (an event) runs it again at once
            started = asyncio.get_running_loop().time()
            ok = await self._run_one(t, p)
            if first and p.name in self._lead:
                first = False
                self._lead_ran(t.name, p.name)
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # a probe swallowed stop()'s cancel
                raise asyncio.CancelledError
            n = 0 if ok else self._failures.get((t.name, p.name), 0)
            if ok:
                delay = self.every(t.name, p)
                if getattr(p, "figures", False) and delay <= p.interval:
                    # on screen only: hosts read slowly (off screen, a fleet of N) keep their own
                    # phases: 200 hosts' libvirt statistics at one tick were 200 threads at once
                    # (bench.fleet's idle CPU at N=200: 4% -> 9%, most of it in their threads)
                    delay = _on_grid(delay, asyncio.get_running_loop().time())
            else:
                delay = min(MAX_BACKOFF, p.interval * 2 ** min(n, 6)) * random.uniform(0.9, 1.1)
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that arrives as
            # the awaited thing completes, and stop() then waits for this loop forever
            try:
                async with asyncio.timeout(delay):
                    await wake.wait()
                # a burst of events makes one run, and a storm (another tool rebuilding a
                # network) at most one run per EVENT_MIN_GAP
                gap = started + EVENT_MIN_GAP - asyncio.get_running_loop().time()
                await asyncio.sleep(max(EVENT_SETTLE, gap))
            except TimeoutError:
                pass

    async def _run_one(self, t: HostTransport, p: Probe[Any]) -> bool:
        key = (t.name, p.name)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            return await self._run_locked(t, p, key)

    async def _run_locked(self, t: HostTransport, p: Probe[Any], key: tuple[str, str]) -> bool:
        try:
            async with self._sems[t.name], asyncio.timeout(p.timeout):
                result = await p.collect(t)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # isolate every probe failure
            msg = _describe(e, p.timeout)
            log.debug("probe %s on %s failed: %s", p.name, t.name, msg, exc_info=True)
            self._failures[key] = self._failures.get(key, 0) + 1
            now = self._clock()
            st = self._states[t.name]
            prev = next((e for e in st.probe_errors if e.probe == p.name), None)
            err = ProbeError(p.name, t.name, msg, now, prev.since if prev else now)
            errors = tuple(e for e in st.probe_errors if e.probe != p.name) + (err,)
            try:
                st = p.failed(st, msg, now)
            except Exception:
                log.exception("probe %s failed() raised", p.name)
            self._states[t.name] = replace(st, probe_errors=errors, refreshed_at=now)
            self._publish()
            return False
        self._failures.pop(key, None)
        st = before = self._states[t.name]
        try:
            st = p.merge(st, result)
        except Exception as e:
            log.exception("probe %s merge failed", p.name)
            st = replace(
                st,
                probe_errors=st.probe_errors
                + (ProbeError(p.name, t.name, f"internal error: {e}", self._clock()),),
            )
            self._states[t.name] = st
            self._publish()
            return False
        errors = tuple(e for e in st.probe_errors if e.probe != p.name)
        st = _with_feed(st, p, self._slowed_feed(t.name, p))
        if errors != st.probe_errors:
            st = replace(st, probe_errors=errors)
        # what this run observed as it was before is handed on as the same objects (a safety
        # poll's new tuple of the same workloads): the derive, the check runner and the panes
        # compare by identity first, and an equal-but-new tuple was compared in full each time
        st = _interned(st, before)
        self._states[t.name] = st = replace(st, refreshed_at=self._clock())
        # most runs of a fleet: only the figures (or nothing) moved: a routine publish
        routine = before.samples is not None and all(
            getattr(st, n) is getattr(before, n) for n in _OBSERVED_BUT_FIGURES
        )
        quiet = routine and st.samples is before.samples  # nothing observed moved
        at_once = self._last_lead(t.name, p.name)
        if at_once and self.heap.running:
            # the first inventory (1,000 domains: ~100k objects) lives on: frozen before the
            # derive, its checks and the first frame allocate and set off full collections
            self.heap.freeze()
        self._publish(routine=routine, at_once=at_once, quiet=quiet)
        if not routine and not p.figures and not self._shown(t.name, self._on_screen):
            # something else changed on a host read slowly (an event, an inventory): its
            # figures and limits follow at once, not at the slow interval
            for q in self._probes[t.name]:
                if getattr(q, "figures", False):
                    self.poke(q.name, t.name)
        return True

    def _slowed_feed(self, host: str, p: Probe[Any]) -> Feed | None:
        """What the UI says of a figures probe run less often on a host not on screen."""
        every = self.every(host, p)
        if every <= p.interval:
            return None
        return Feed(
            p.name,
            "polled",
            f"not on screen in a fleet of {len(self.hosts)} hosts: read every {every:g} s "
            f"(hosts on screen every {p.interval:g} s)",
            every,
        )

    def _last_lead(self, host: str, probe: str) -> bool:
        """This is the first result of the last lead probe that every host waits for: nothing
        else runs before it is published (the others wait for it), so no window to gather
        more results in (the console's first frame)."""
        pending = self._leads_pending.get(host)
        if pending is None or pending != {probe}:
            return False
        return all(h == host for h, left in self._leads_pending.items() if left)

    def _lead_ran(self, host: str, probe: str) -> None:
        pending = self._leads_pending.get(host)
        if pending is None:
            return
        pending.discard(probe)
        if not pending:  # released at the next publish: the leads' results show first
            del self._leads_pending[host]
            self._leads_done.add(host)

    def _build(self) -> State:
        """The State now, derived on this thread when the observations need it."""
        fast = self._fast()
        if fast is not None:
            return fast
        raw, key = self._raw()
        return self._derived(raw, key, self._run_derive(raw))

    def _raw(self) -> tuple[State, tuple[HostState, ...]]:
        """The observations now (with the requests as they are now) and their derive key."""
        hosts = tuple(self._states[t.name] for t in self.hosts)
        raw = State(
            hosts=hosts, taken_at=self._clock(), source=self._source, requests=tuple(self._requests.values())
        )
        return raw, hosts

    def _fast(self) -> State | None:
        """The State without a derive, when the observations allow it: nothing new but refresh
        times (most polls), or only the live figures within FIGURES_DERIVE of the last derive.
        None: the observations changed, a derive is needed."""
        hosts = tuple(self._states[t.name] for t in self.hosts)
        prev = self._derived_from
        if prev is None or len(prev) != len(hosts):
            return None
        taken_at = self._clock()
        requests = tuple(self._requests.values())
        # Most polls observe nothing new: then tenants and findings stay as they were and only
        # the refresh times move (the checks are the expensive part of a publish).
        figures = False
        for a, b in zip(hosts, prev):
            if a is b or _same(a, b, _OBSERVED):
                continue
            # Only the live figures moved (every host, every interval): the figures reach the
            # State at once, the conclusions drawn from them (findings, drift) at most every
            # FIGURES_DERIVE seconds; with hundreds of hosts re-deriving at each of them was
            # most of the idle CPU. A host's first figures, and any other change, derive at once.
            if a.samples is None or b.samples is None or not _same(a, b, _OBSERVED_BUT_FIGURES):
                return None
            figures = True
        if not figures:
            return self._rederived(hosts, taken_at, requests, samples=False)
        wait = self._derived_at + FIGURES_DERIVE - time.monotonic()
        if wait <= 0:
            return None
        self._figures_behind = wait
        return self._rederived(hosts, taken_at, requests, samples=True)

    def _run_derive(self, raw: State) -> State | None:
        t0 = time.perf_counter()
        try:
            return self._derive(raw)
        except Exception:
            log.exception("deriving state failed")
            return None
        finally:
            self._derive_cost = time.perf_counter() - t0

    def _derived(self, raw: State, key: tuple[HostState, ...], derived: State | None) -> State:
        """The derive's State, with the requests as they were when its observations were taken."""
        if derived is None:
            return raw
        self._derived_from = key
        self._derived_at = time.monotonic()
        return replace(derived, requests=raw.requests)

    def _derive_off_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Derive the current observations in the derive thread; publish when it is done."""
        assert self._deriver is not None
        if self._deriving:
            self._again = True
            return
        raw, key = self._raw()
        self._deriving = True
        self._again = False
        try:
            fut = loop.run_in_executor(self._deriver, self._run_derive, raw)
        except RuntimeError:  # shut down: stopping
            self._deriving = False
            return

        def done(f: asyncio.Future[State | None]) -> None:
            self._deriving = False
            if self._stopped or f.cancelled():
                return
            exc = f.exception()
            if exc is not None:  # (_run_derive catches the derive's own errors)
                log.error("derive thread failed: %s", exc)
                return
            self._state = self._derived(raw, key, f.result())
            # newer observations than this derive's: their turn (coalesced by _publish)
            self._dirty = self._again or any(
                self._states[t.name] is not h for t, h in zip(self.hosts, raw.hosts)
            )
            self._again = False
            urgent = self._urgent and self._dirty
            self._deliver()
            if self._dirty:
                self._publish(routine=not urgent)

        fut.add_done_callback(done)

    def _rederived(
        self,
        hosts: tuple[HostState, ...],
        taken_at: float,
        requests: tuple[RequestStatus, ...],
        *,
        samples: bool,
    ) -> State:
        """The last derived State with these hosts' refresh times (and figures): a host whose
        times (and figures) are those shown already is kept as it is."""
        prev = self._state
        return replace(
            prev,
            taken_at=taken_at,
            hosts=tuple(
                d
                if d.refreshed_at == h.refreshed_at and (not samples or d.samples is h.samples)
                else replace(d, refreshed_at=h.refreshed_at, samples=h.samples)
                if samples
                else replace(d, refreshed_at=h.refreshed_at)
                for d, h in zip(prev.hosts, hosts)
            ),
            requests=requests,
        )

    def _publish(self, *, routine: bool = False, at_once: bool = False, quiet: bool = False) -> None:
        """Note a change; subscribers hear of it once per burst (COALESCE seconds, longer after
        a costly publish), routine changes (only figures or refresh times) at most every
        PUBLISH_GAP s, `quiet` ones (only refresh times) at most every QUIET_GAP s;
        `at_once`: at the next turn of the loop (nothing else is coming)."""
        self._dirty = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._notify()
            return
        now = loop.time()
        delay = 0.0 if at_once else min(MAX_COALESCE, max(COALESCE, BUSY_FACTOR * self._notify_cost))
        if routine and not self._urgent:
            gap = QUIET_GAP if quiet else PUBLISH_GAP
            delay = max(delay, ROUTINE_GATHER, self._delivered_at + gap - now)
        else:
            self._urgent = True
        if self._flush_handle is not None:
            if self._flush_at <= now + delay:
                return
            self._flush_handle.cancel()  # a routine wait, and an urgent change came
        self._flush_at = now + delay
        self._flush_handle = loop.call_later(delay, self._notify)

    def _notify(self) -> None:
        self._flush_handle = None
        if self._deriver is not None and self._dirty:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                fast = self._fast()
                if fast is None:
                    self._derive_off_loop(loop)  # delivers when it is done
                    return
                self._state, self._dirty = fast, False
        self._deliver()

    def _deliver(self) -> None:
        """Hand the State to every subscriber (on the loop)."""
        t0 = time.perf_counter()
        state = self.state
        self._urgent = False
        try:
            self._delivered_at = asyncio.get_running_loop().time()
        except RuntimeError:
            pass
        for fn in list(self._subscribers):
            try:
                fn(state)
            except Exception:
                log.exception("subscriber failed")
        self._notify_cost = time.perf_counter() - t0
        if self._figures_behind > 0:  # figures not derived yet: derive them when it is time
            behind, self._figures_behind = self._figures_behind, 0.0
            derived_at = self._derived_at

            def due() -> None:  # (unless a publish of newer figures has derived them since)
                if self._derived_at == derived_at and not self._stopped:
                    self._publish(routine=True)

            try:
                asyncio.get_running_loop().call_later(behind + FIGURES_DERIVE_SLACK, due)
            except RuntimeError:
                pass
        if self._leads_done:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # published off the loop: release at the next publish on it
                return
            # the derive ran in its thread before this: part of what the publish cost (the
            # subscribers alone were ~20 ms at 1,000 domains: the other probes started while the
            # console still drew the first frame, and competed with it)
            cost = time.perf_counter() - t0 + (self._derive_cost if self._deriver is not None else 0.0)
            settle = min(LEAD_SETTLE, SETTLE_FACTOR * cost)
            for host in self._leads_done:
                loop.call_later(settle, self._led[host].set)
            self._leads_done.clear()


# What a derive depends on: every HostState field but the refresh time (and, for the
# figures-only test, the live figures).
_OBSERVED = tuple(f.name for f in fields(HostState) if f.name != "refreshed_at")
_OBSERVED_BUT_FIGURES = tuple(n for n in _OBSERVED if n != "samples")


def _interned(new: HostState, old: HostState) -> HostState:
    """`new` with every observed field (the live figures aside: they move at every run) that
    equals `old`'s replaced by `old`'s very object."""
    same = {}
    for n in _OBSERVED_BUT_FIGURES:
        x, y = getattr(new, n), getattr(old, n)
        if x is not y and x == y:
            same[n] = y
    return replace(new, **same) if same else new


def _same(a: HostState, b: HostState, names: tuple[str, ...]) -> bool:
    for n in names:
        x, y = getattr(a, n), getattr(b, n)
        if x is not y and x != y:
            return False
    return True


def _on_grid(every: float, now: float) -> float:
    """Seconds from `now` to the next multiple of `every` (at least half of `every` away: a
    run woken off the grid, by an event, is not followed by another at once)."""
    if every <= 0:
        return every
    delay = every - now % every
    return delay + every if delay < every / 2 else delay


def _threadsafe_setter(loop: asyncio.AbstractEventLoop, ev: asyncio.Event) -> Callable[[], None]:
    loop_thread = threading.get_ident()

    def wake() -> None:
        try:
            if threading.get_ident() == loop_thread:
                ev.set()
            else:
                loop.call_soon_threadsafe(ev.set)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    return wake


def _with_feed(st: HostState, p: Probe[Any], feed: Feed | None = None) -> HostState:
    """`st` with the probe's feed (`feed`: the engine's word instead of the probe's)."""
    fn = getattr(p, "feed", None)
    if feed is None and fn is None:
        return st
    try:
        feed = feed or fn()
    except Exception:
        log.exception("probe %s feed()", p.name)
        return st
    old = next((f for f in st.feeds if f.probe == p.name), None)
    if old == feed:
        return st
    return replace(st, feeds=tuple(f for f in st.feeds if f.probe != p.name) + (feed,))


def _describe(e: BaseException, timeout: float) -> str:
    if isinstance(e, asyncio.TimeoutError):
        return f"no answer within {timeout:g} s"
    text = str(e) or type(e).__name__
    return text.splitlines()[0][:500] if text else type(e).__name__
