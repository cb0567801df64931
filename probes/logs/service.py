"""The logs service: runs the sources of every host; its entries reach the State through the
host's logs probe, like any observation.

One service per session (probes/session.py make_engine owns it; two sessions share nothing).
Each host has one `LogsProbe`: its first `collect` starts that host's sources (journal,
files, libvirt events) as tasks and waits, at most a few seconds, for the initial backlog (so
`tenantscope check` sees the last N lines too); every SETUP_EVERY seconds it re-reads the
logging set-up for LOG-04 and picks up new files (a new /var/log/libvirt/qemu/NAME.log).
`close()` (engine.stop) cancels the host's sources.

Sources push entries, raw blocks of lines (files, the journal: probes/logs/lazy.py) or
parsed entries (events), into a per-host pending list (HostLogs, the Sink). A flusher task
wakes every FLUSH seconds and, per host with news, takes at most BATCH items, ingests the
blocks (only their candidate lines parsed) and attributes the entries with the current
index, appends them to the host's ring and wakes that
host's logs probe (an event-driven probe, Probe.wake): its `collect` returns the view (the
newest entries, signals, source states) and the engine merges and publishes it.
Backpressure: a host whose pending list passes MAX_PENDING entries (or MAX_PENDING_BYTES of
raw blocks) drops its oldest pending ones (counted in the ring's dropped count) rather than
grow without bound.

The session hands the service every State it publishes (`observe`): it rebuilds the
attribution index when workloads or tenants changed (and re-attributes recent unattributed
entries), and turns findings raised or cleared and probe errors into tenantscope's own log
entries. The Logs pane reads a host's ring through the session (`entries`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from probes.engine import Probe
from probes.hosts.base import HostError, HostTransport
from probes.logs import classify, parsers, remote_follow, sources
from probes.logs.attribute import Attributor, Index
from probes.logs.filewatch import FileWatch
from probes.logs.lazy import Chunk, SourceContext, ingest
from probes.logs.model import LogEvent, LoggingSetup, LogSlice, LogSource, LogView, SourceState
from probes.logs.ring import Ring
from probes.model import Feed, HostState, Severity, State, Status

log = logging.getLogger(__name__)

FLUSH = 0.25
BATCH = 20_000
MAX_PENDING = 200_000
MAX_PENDING_BYTES = 64 << 20  # raw blocks waiting for ingest (a fast writer outruns it)
MAX_SIGNALS = 1000
REATTRIBUTE = 10_000  # newest entries re-attributed when the inventory changes
SETTLE = 0.3  # the initial backlog is read when no entry came for this long
SETTLE_MAX = 5.0
MAX_OWN = 10  # more findings raised or cleared at once than this: one summary line
SETUP_EVERY = 30.0  # seconds between re-reads of the logging set-up (and new files)
PRUNE_EVERY = 60.0  # seconds between prunes of the learned-PID history (lazy lines)

_SEV_OF_FINDING = {
    Severity.CRITICAL: "crit",
    Severity.HIGH: "err",
    Severity.MEDIUM: "warning",
    Severity.LOW: "notice",
    Severity.INFO: "info",
}


def _nothing() -> None:
    pass


class HostLogs(sources.Sink):
    """One host's sources, pending entries, ring and signals."""

    def __init__(self, transport: HostTransport, cfg: sources.LogsConfig) -> None:
        self.transport = transport
        self.cfg = cfg
        self.ring = Ring(cfg.ring)
        self.pending: list[LogEvent] = []
        self.pending_bytes = 0  # of raw blocks in `pending`
        self.signals: deque[LogEvent] = deque(maxlen=MAX_SIGNALS)
        self.sources: dict[str, LogSource] = {}
        self.counts: dict[str, int] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.dirty = False
        self.last_put = 0.0
        self.setup: LoggingSetup | None = None
        # local files are read when inotify says they changed (probes/logs/filewatch.py)
        self.watch = FileWatch() if transport.is_local else None
        self.wake: Any = None  # the host's logs probe's wake (set by its collect)
        # the service's flusher sleeps until told something is pending (set by LogService)
        self.nudge: Callable[[], None] = _nothing

    @property
    def name(self) -> str:
        return self.transport.name

    def put(self, events: Sequence[LogEvent]) -> None:
        if not events:
            return
        self.pending.extend(events)
        self.last_put = time.monotonic()
        self.nudge()
        over = len(self.pending) - MAX_PENDING
        if over > 0:  # backpressure: the oldest pending go, counted as dropped
            del self.pending[:over]
            self.ring.total += over

    def put_block(self, ctx: SourceContext, block: bytes) -> None:
        """A local file's raw lines: kept lazily (probes/logs/lazy.py), candidates parsed and
        attributed in the flush worker."""
        self.put([_Block(ctx, block)])  # type: ignore[list-item]
        self.pending_bytes += len(block)
        self._bound()

    def _bound(self) -> None:
        while self.pending_bytes > MAX_PENDING_BYTES:  # backpressure: the oldest block goes
            i = next(i for i, x in enumerate(self.pending) if type(x) is _Block)
            old: Any = self.pending.pop(i)
            self.pending_bytes -= old.size()
            self.ring.total += old.data.count(b"\n")  # counted as dropped

    def put_journal(self, ctx: SourceContext, line: str) -> None:
        """A journal line: gathered with the lines that follow it into one lazy block."""
        last = self.pending[-1] if self.pending else None
        if type(last) is _Block and last.ctx is ctx and last.lines is not None and len(last.lines) < 4096:
            last.lines.append(line)
        else:
            self.put([_Block(ctx, b"", [line])])  # type: ignore[list-item]
        self.pending_bytes += len(line) + 1
        self.last_put = time.monotonic()
        self.nudge()
        if self.pending_bytes > MAX_PENDING_BYTES:
            self._bound()

    def put_lines(self, parse, lines) -> None:
        """Raw lines are parsed in the flush worker, with attribution (off the event loop)."""
        self.put([(parse, line) for line in lines])  # type: ignore[misc]

    def state(self, name: str, kind: str, state: SourceState, detail: str = "") -> None:
        old = self.sources.get(name)
        if old is not None and old.state == state and old.detail == detail:
            return
        self.sources[name] = LogSource(name, kind, state, detail, self.counts.get(name, 0), time.time())
        self.dirty = True
        self.nudge()
        if state in (SourceState.UNREADABLE, SourceState.FAILED) and (old is None or old.state != state):
            self.put(
                [
                    parsers.tenantscope_event(
                        time.time(),
                        self.name,
                        "warning",
                        f"log source {name}: {state.value}: {detail}",
                        (("source", name),),
                    )
                ]
            )

    def forget(self, name: str) -> None:
        if self.sources.pop(name, None) is not None:
            self.dirty = True
            self.nudge()

    def own(self, severity: str, msg: str, fields: tuple[tuple[str, str], ...] = ()) -> None:
        self.put([parsers.tenantscope_event(time.time(), self.name, severity, msg, fields)])

    def take(self, attributor: Attributor) -> list[LogEvent]:
        """Attribute and keep the next batch, all on the calling thread (headless path)."""
        return self.keep(self.attribute(self.pop(), attributor))

    def pop(self) -> list[LogEvent]:
        batch = self.pending[:BATCH]
        del self.pending[:BATCH]
        if self.pending_bytes:
            self.pending_bytes -= sum(x.size() for x in batch if type(x) is _Block)  # type: ignore[attr-defined]
        return batch

    @staticmethod
    def attribute(batch: list[Any], attributor: Attributor) -> list[Any]:
        """Parse the raw lines of the batch and attribute every entry, in arrival order; a
        block of a local file becomes a chunk with only its candidates parsed (lazy.ingest)."""
        attribute = attributor.attribute
        out: list[Any] = []
        for x in batch:
            if type(x) is _Block:
                out.append(ingest(x.data, x.ctx, attributor))
                continue
            if type(x) is tuple:
                try:
                    x = x[0](x[1])
                except Exception as e:  # a parser bug must not lose the line
                    log.debug("parser failed", exc_info=True)
                    x = parsers.parse_plain(x[1], "", "?", kind=f"unparsed: {e}"[:40])
            out.append(attribute(x))
        return out

    def keep(self, batch: list[Any]) -> list[LogEvent]:
        """Number the batch into the ring (on the event loop: the pane reads the ring)."""
        if not batch:
            return []
        out: list[LogEvent] = []
        run: list[LogEvent] = []
        for x in batch:
            if type(x) is tuple:  # (chunk, its parsed candidates)
                if run:
                    out += self.ring.append_many(run)
                    run = []
                chunk: Chunk = x[0]
                self.counts[chunk.source] = self.counts.get(chunk.source, 0) + chunk.n
                for e in self.ring.append_chunk(chunk, x[1]):
                    if e.tags and classify.is_signal(e.tags):
                        self.signals.append(e)
            else:
                run.append(x)
        if run:
            out += self.ring.append_many(run)
        for e in out:
            self.counts[e.source] = self.counts.get(e.source, 0) + 1
            if e.tags and classify.is_signal(e.tags):
                self.signals.append(e)
        return out

    def view(self, prev: LogView | None) -> LogView:
        srcs = tuple(
            replace(s, entries=self.counts.get(s.name, 0))
            for s in sorted(self.sources.values(), key=lambda s: s.name)
        )
        return LogView(
            events=self.ring.newest(self.cfg.view),
            dropped=self.ring.dropped,
            total=self.ring.total,
            signals=tuple(self.signals),
            sources=srcs,
            setup=self.setup if self.setup is not None else (prev.setup if prev else None),
        )


class _Block:
    """A pending block of a file's complete lines (or journal lines, gathered as they come)."""

    __slots__ = ("_data", "ctx", "lines")

    def __init__(self, ctx: SourceContext, data: bytes, lines: list[str] | None = None) -> None:
        self.ctx = ctx
        self._data = data
        self.lines = lines

    @property
    def data(self) -> bytes:
        if self.lines is not None:  # closed now (popped, or dropped)
            self._data = ("\n".join(self.lines) + "\n").encode("utf-8", "surrogatepass")
            self.lines = None
        return self._data

    def size(self) -> int:
        return len(self._data) if self.lines is None else sum(len(x) + 1 for x in self.lines)


class LogService:
    """All hosts' logs of one session (see the module docstring)."""

    def __init__(
        self,
        cfg: sources.LogsConfig | None = None,
        *,
        own_sources: Callable[[HostLogs], list[tuple[str, Any]]] | None = None,
    ) -> None:
        self.cfg = cfg or sources.LogsConfig()
        # instead of the config's sources, these (the demo's simulated lines, probes/demo/logs.py):
        # such a service reads nothing of the host, not even its logging set-up
        self.own_sources = own_sources
        self.hosts: dict[str, HostLogs] = {}
        self.attributor = Attributor()
        self._index_key: object = None
        self._primed: tuple[object, Index] | None = None  # (key, index) built off the loop: prime()
        # what the last State's index and findings were made from (a State that only moved
        # refresh times or figures has the same objects: nothing to look at again)
        self._index_from: tuple[tuple[object, object], ...] = ()
        self._findings_from: object = None
        self._flusher: asyncio.Task[None] | None = None
        # set when a host has something pending: the flusher sleeps on it (no poll at idle)
        self._work = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._findings: dict[str, Any] | None = None
        self._errors: set[tuple[str, str]] = set()
        self._spikes: set[tuple[str, str, str, float]] = set()
        self._lock = asyncio.Lock()

    # -- wiring

    def probe(self) -> LogsProbe:
        return LogsProbe(self)

    def entries(self, host: str, after: int | None) -> LogSlice | None:
        """A host's ring after the reader's cursor (None: counters only); None when this
        service does not follow that host."""
        hl = self.hosts.get(host)
        return hl.ring.slice(after) if hl is not None else None

    async def ensure(self, transport: HostTransport) -> HostLogs:
        async with self._lock:
            hl = self.hosts.get(transport.name)
            if hl is None:
                hl = self.hosts[transport.name] = HostLogs(transport, self.cfg)
                hl.nudge = self._nudge
                for name, coro in await self._coroutines(hl):
                    self._start(hl, name, coro)
                if self._flusher is None or self._flusher.done():
                    self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
                    self._work = asyncio.Event()  # (an Event belongs to the loop that waits on it)
                    self._flusher = asyncio.create_task(self._flush_loop(), name="logs flusher")
                hl.own("info", f"tenantscope started following logs on {transport.name}")
            else:
                await self.rescan(hl)
        return hl

    async def _coroutines(self, hl: HostLogs) -> list[tuple[str, Any]]:
        if self.own_sources is not None:
            return self.own_sources(hl)
        cfg, t = self.cfg, hl.transport
        out: list[tuple[str, Any]] = []
        if cfg.journal or cfg.journal_files or cfg.journal_directory:
            spec = sources.JournalSpec(
                cfg.journal_files, cfg.journal_directory, cfg.since, lines=cfg.start_lines
            )
            out.append((spec.name, sources.follow_journal(spec, t, hl)))
        if not t.is_local and cfg.files:  # one remote process follows them all (one session)
            out.append(("files", remote_follow.follow_files(cfg.files, t, hl, start_lines=cfg.start_lines)))
        for pat in cfg.files if t.is_local else ():
            paths = await sources.expand(pat, t)
            if not paths:
                hl.state("file:" + pat, "file", SourceState.WAITING, "no file matches (yet)")
            for p in paths:
                out.append(("file:" + p, sources.file_coroutine(p, cfg, t, hl, watch=hl.watch)))
        if cfg.libvirt_events:
            out.append(("libvirt-events", sources.follow_libvirt_events(t, hl)))
        return out

    async def rescan(self, hl: HostLogs) -> None:
        """Start followers for files that appeared since (new qemu logs): from their start.
        (The remote follower re-expands the globs itself.)"""
        if not hl.transport.is_local or self.own_sources is not None:
            return
        for pat in self.cfg.files:
            if not any(c in pat for c in "*?["):
                continue
            for p in await sources.expand(pat, hl.transport):
                name = "file:" + p
                if name not in hl.tasks:
                    self._start(
                        hl,
                        name,
                        sources.file_coroutine(
                            p, self.cfg, hl.transport, hl, start_lines=1 << 30, watch=hl.watch
                        ),
                    )
                    hl.sources.pop("file:" + pat, None)

    def _start(self, hl: HostLogs, name: str, coro: Any) -> None:
        if name in hl.tasks:
            coro.close()
            return
        task = asyncio.create_task(self._guard(hl, name, coro), name=f"logs {name}@{hl.name}")
        hl.tasks[name] = task

    async def _guard(self, hl: HostLogs, name: str, coro: Any) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a source's bug must not stop the others
            log.exception("log source %s on %s", name, hl.name)
            hl.state(name, name.split(":", 1)[0], SourceState.FAILED, f"internal error: {e}"[:200])

    async def settle(self, hl: HostLogs) -> None:
        """Wait until the initial backlog has arrived (quiet for SETTLE s, at most SETTLE_MAX)."""
        start = time.monotonic()
        await asyncio.sleep(0.05)
        while time.monotonic() - start < SETTLE_MAX:
            starting = any(s.state == SourceState.STARTING for s in hl.sources.values())
            quiet = time.monotonic() - max(hl.last_put, start) >= SETTLE
            if quiet and not starting and len(hl.sources) >= 1:
                break
            await asyncio.sleep(0.05)
        self.flush(hl)

    async def stop_host(self, name: str) -> None:
        hl = self.hosts.pop(name, None)
        if hl is None:
            return
        for t in hl.tasks.values():
            t.cancel()
        await asyncio.gather(*hl.tasks.values(), return_exceptions=True)
        hl.tasks.clear()
        if hl.watch is not None:
            hl.watch.close()
        if not self.hosts and self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None

    # -- batching

    def _nudge(self) -> None:
        """A host has something to flush: wake the flusher (from any thread)."""
        if self._work.is_set():
            return
        if self._loop is None or threading.get_ident() == self._loop_thread:
            self._work.set()
        else:
            self._loop.call_soon_threadsafe(self._work.set)

    async def _flush_loop(self) -> None:
        """Flush what the hosts have pending, once per FLUSH while it keeps coming; asleep
        while nothing is (a source's put wakes it: `_nudge`)."""
        pruned = time.monotonic()
        while True:
            if time.monotonic() - pruned > PRUNE_EVERY:
                pruned = time.monotonic()
                self._prune_pids()
            more = False
            for hl in list(self.hosts.values()):
                try:
                    if hl.pending:
                        # attribution is pure Python work: a worker thread keeps the event
                        # loop (and the keys of the TUI) responsive while a burst comes in
                        batch = await asyncio.to_thread(hl.attribute, hl.pop(), self.attributor)
                        hl.keep(batch)
                        hl.dirty = True
                    if self.flush(hl) and hl.wake is not None:
                        hl.wake()  # its logs probe returns the new view to the engine
                except Exception:
                    log.exception("flushing logs of %s", hl.name)
                more = more or bool(hl.pending)
            if more:
                await asyncio.sleep(0.01)
                continue
            self._work.clear()
            if not any(hl.pending or hl.dirty for hl in self.hosts.values()):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._work.wait(), PRUNE_EVERY)
            # what arrives within FLUSH of the first pending entry is flushed with it: a burst
            # is one flush, as when this loop polled every FLUSH s
            await asyncio.sleep(FLUSH)

    def _prune_pids(self) -> None:
        """Learned-PID history older than every lazy line still kept is not needed."""
        orders = [o for hl in self.hosts.values() if (o := hl.ring.oldest_chunk_order) is not None]
        self.attributor.forget_before(min(orders) if orders else self.attributor.clock + 1)

    def flush(self, hl: HostLogs) -> bool:
        """Take what is pending into the ring; True when the host's view changed."""
        if not hl.pending and not hl.dirty:
            return False
        hl.take(self.attributor)
        hl.dirty = False
        return True

    # -- the State the session hands it

    def prime(self, state: State) -> None:
        """Build the attribution index of a State about to be published, on the caller's
        thread (the session's derive thread): `observe` then takes it instead of building it
        on the loop (1,000 domains: 10-20 ms before the console could draw its first frame)."""
        src = self._index_from
        if len(src) == len(state.hosts) and all(
            hs.workloads is a and hs.topology is b for hs, (a, b) in zip(state.hosts, src)
        ):
            return  # what the index was made from last (most derives: figures moved)
        key = _index_key(state)
        if key != self._index_key:
            self._primed = (key, Index(state))

    def observe(self, state: State) -> None:
        """Called by the session with every State it publishes."""
        try:
            self._index(state)
            self._own_events(state)
        except Exception:
            log.exception("logs service subscriber")

    def _index(self, state: State) -> None:
        src = tuple((hs.workloads, hs.topology) for hs in state.hosts)
        if len(src) == len(self._index_from) and all(
            a is c and b is d for (a, b), (c, d) in zip(src, self._index_from)
        ):
            return
        self._index_from = src
        key = _index_key(state)
        if key == self._index_key:
            return
        self._index_key = key
        primed, self._primed = self._primed, None
        old, new = (
            self.attributor.index,
            primed[1] if primed is not None and primed[0] == key else Index(state),
        )
        self.attributor.set_index(new)
        if new.within(old):
            # only workloads gone (another tool's namespaces come and go all day): nothing the
            # old index could not attribute can be attributed now; skip the re-attribution
            return
        fix = self.attributor.attribute
        # a host's lines are attributed again only when what can name its workloads changed:
        # its own part of the index, or the fleet-wide part (UUIDs)
        again = (
            set(self.hosts)
            if new.global_ != old.global_
            else {
                h
                for h in self.hosts
                if new.by_host.get(h) != old.by_host.get(h)
                or new.short_names.get(h) != old.short_names.get(h)
                or new.pids.get(h) != old.pids.get(h)
            }
        )
        for hl in (hl for h, hl in self.hosts.items() if h in again):
            start = hl.ring.total - REATTRIBUTE
            hl.ring.update(
                lambda e, start=start: fix(e) if not e.workload and e.seq > start else None, REATTRIBUTE
            )
            hl.signals = deque((fix(e) if not e.workload else e for e in hl.signals), maxlen=MAX_SIGNALS)
            hl.dirty = True
            hl.nudge()

    def _own_events(self, state: State) -> None:
        """Findings raised and cleared, probe errors: as tenantscope's own log entries. A
        change of more than MAX_OWN findings at once (start-up, a new inventory) is one line
        per host, so the evidence lines are not buried."""
        if not self.hosts:
            return
        first = next(iter(self.hosts))
        if state.findings is self._findings_from:  # the same findings: none raised or cleared
            self._own_spikes(state)
            self._own_errors(state)
            return
        self._findings_from = state.findings
        raised = {f.key: f for f in state.findings if f.status in (Status.FAIL, Status.WARN)}
        prev = self._findings if self._findings is not None else {}
        new = [f for k, f in raised.items() if k not in prev]
        gone = [f for k, f in prev.items() if k not in raised]
        for what, fs in (("raised", new), ("cleared", gone)):
            per_host: dict[str, list[Any]] = {}
            for f in fs:
                per_host.setdefault(f.host if f.host in self.hosts else first, []).append(f)
            for h, hfs in per_host.items():
                hl = self.hosts[h]
                if len(hfs) > MAX_OWN:
                    fails = sum(1 for f in hfs if f.status == Status.FAIL)
                    ids = ", ".join(sorted({f.check_id for f in hfs})[:12])
                    hl.own(
                        "notice", f"{len(hfs)} findings {what} ({fails} failing): {ids}", (("finding", what),)
                    )
                    continue
                for f in hfs:
                    sev = _SEV_OF_FINDING.get(f.severity, "warning") if what == "raised" else "info"
                    hl.own(
                        sev,
                        f"finding {what}: {f.check_id} {f.title}: {f.summary}",
                        (("check", f.check_id), ("finding", what)),
                    )
        self._findings = raised
        self._own_spikes(state)
        self._own_errors(state)

    def _own_errors(self, state: State) -> None:
        errs = {(e.host, e.probe): e for hs in state.hosts for e in hs.probe_errors}
        for k, e in errs.items():
            if k not in self._errors and e.host in self.hosts:
                self.hosts[e.host].own("err", f"probe {e.probe} failed: {e.message}", (("probe", e.probe),))
        for k in self._errors - set(errs):
            if k[0] in self.hosts:
                self.hosts[k[0]].own("info", f"probe {k[1]} recovered", (("probe", k[1]),))
        self._errors = set(errs)

    def _own_spikes(self, state: State) -> None:
        """Resource spikes (probes/resources) as entries of the workload they are about."""
        seen: set[tuple[str, str, str, float]] = set()
        tenants: dict[str, str] = {}
        for hs in state.hosts:
            if hs.samples is not None and hs.samples.spikes and not tenants:
                tenants = {w.key: w.tenant for w in state.workloads()}
            hl = self.hosts.get(hs.host.name)
            if hl is None or hs.samples is None:
                continue
            for sp in hs.samples.spikes:
                key = (hs.host.name, sp.workload, str(sp.metric), sp.started_at)
                if sp.active:
                    seen.add(key)
                if sp.active and key not in self._spikes:
                    e = parsers.tenantscope_event(
                        time.time(),
                        hl.name,
                        "warning",
                        f"spike: {sp.workload} {sp.metric} {sp.first or sp.peak:.1f} "
                        f"(baseline {sp.baseline:.1f}, threshold {sp.threshold:.1f})",
                        (("spike", str(sp.metric)),),
                    )
                    hl.put(
                        [
                            replace(
                                e,
                                workload=sp.workload,
                                tenant=tenants.get(sp.workload, ""),
                                attributed_by="name",
                            )
                        ]
                    )
                elif not sp.active and key in self._spikes:
                    e = parsers.tenantscope_event(
                        time.time(),
                        hl.name,
                        "info",
                        f"spike ended: {sp.workload} {sp.metric} (peak {sp.peak:.1f})",
                        (("spike", str(sp.metric)),),
                    )
                    hl.put(
                        [
                            replace(
                                e,
                                workload=sp.workload,
                                tenant=tenants.get(sp.workload, ""),
                                attributed_by="name",
                            )
                        ]
                    )
        self._spikes = seen

    async def stop(self) -> None:
        for name in list(self.hosts):
            await self.stop_host(name)


# ---------------------------------------------------------------- the probe


@dataclass(frozen=True)
class LogsResult:
    view: LogView


class LogsProbe(Probe[LogsResult]):
    """Starts the host's log sources; returns the host's view whenever the service has news
    (it wakes this probe) and re-reads the logging set-up (LOG-04) every SETUP_EVERY s."""

    name = "logs"
    interval = SETUP_EVERY  # the safety poll; news wake it
    timeout = 30.0

    def __init__(self, service: LogService) -> None:
        self.service = service
        self._host: str | None = None
        self._setup_at = -SETUP_EVERY

    async def collect(self, host: HostTransport) -> LogsResult:
        self._host = host.name
        hl = self.service.hosts.get(host.name)
        if hl is None:
            hl = await self.service.ensure(host)
            hl.wake = self.wake
            await self.service.settle(hl)
        now = time.monotonic()
        if now - self._setup_at >= SETUP_EVERY and self.service.own_sources is None:
            self._setup_at = now
            if hl.setup is not None:
                await self.service.rescan(hl)
            setup = await collect_setup(host, hl)
            # the same findings as last time: the same object (its check time is not news; a
            # new one made every host's safety poll an urgent publish and a derive)
            if hl.setup is None or replace(setup, checked_at=hl.setup.checked_at) != hl.setup:
                hl.setup = setup
        self.service.flush(hl)
        return LogsResult(hl.view(None))

    def feed(self) -> Feed:
        hl = self.service.hosts.get(self._host or "")
        if hl is not None and hl.watch is not None and hl.watch.live:
            return Feed(
                self.name,
                "events",
                f"inotify on {sum(1 for n in hl.tasks if n.startswith('file:'))} local files "
                "(read at least every 10 s); journal and libvirt events streamed; "
                "new qemu logs found on this probe's poll",
                self.interval,
            )
        if hl is not None and not hl.transport.is_local:  # probes/logs/remote_follow.py
            return Feed(
                self.name,
                "events",
                "one remote follower woken by inotify on the files' directories (read at least "
                "every 2 s); journal and libvirt events streamed",
                self.interval,
            )
        return Feed(self.name, "polled", "files looked at every 0.25 s", self.interval)

    def merge(self, state: HostState, result: LogsResult) -> HostState:
        return replace(state, logs=result.view)

    async def close(self) -> None:
        if self._host is not None:
            await self.service.stop_host(self._host)


async def collect_setup(host: HostTransport, hl: HostLogs | None = None) -> LoggingSetup:
    """Is the host keeping the logs an investigation needs (persistent journal, audit)?"""
    root = host.root
    paths = (
        "/var/log/journal",
        "/run/log/journal",
        "/run/systemd/journal/socket",
        "/var/log/audit/audit.log",
        "/var/log/audit",
    )
    problems: list[str] = []
    kinds: dict[str, str] = {}
    auditd_local: bool | None = None
    if host.is_local:  # os calls: nothing spawned
        kinds, problems, auditd_local = await asyncio.to_thread(_setup_local, root, paths)
    else:
        try:
            r = await host.run(["stat", "-c", "%F|%n", *(root + p for p in paths)], timeout=10)
            for line in r.stdout.splitlines():
                kind, _, name = line.partition("|")
                kinds[name[len(root) :]] = kind
            for line in r.stderr.splitlines():
                if "ermission denied" in line:
                    problems.append(line.strip()[:200])
        except HostError as e:
            problems.append(f"stat: {e}"[:200])
    storage = ""
    for conf in ("/etc/systemd/journald.conf",):
        try:
            text = await host.read_text(conf, timeout=5, limit=256 << 10)
        except FileNotFoundError:
            continue
        except (PermissionError, HostError, OSError) as e:
            problems.append(f"{conf}: {e}"[:200])
            continue
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("Storage="):
                storage = line.split("=", 1)[1].strip()
    journald = any(
        p in kinds for p in ("/var/log/journal", "/run/log/journal", "/run/systemd/journal/socket")
    )
    persistent_dir = kinds.get("/var/log/journal") == "directory"
    if storage in ("volatile", "none"):
        persistent = False
    elif storage == "persistent":
        persistent = True
    else:
        persistent = persistent_dir
    auditd: bool | None = None
    if host.is_local:
        auditd = auditd_local
    else:
        try:
            r = await host.run(["pgrep", "-x", "auditd"], timeout=10)
            auditd = r.returncode == 0 if r.returncode in (0, 1) else None
        except HostError:
            auditd = None
    if hl is not None:
        for s in hl.sources.values():
            if s.state == SourceState.UNREADABLE:
                problems.append(f"{s.name}: {s.detail}")
    return LoggingSetup(
        journald=journald,
        journal_persistent=persistent if journald else False,
        journald_storage=storage,
        audit_log=kinds.get("/var/log/audit/audit.log", "").startswith("regular"),
        auditd=auditd,
        checked_at=time.time(),
        problems=tuple(problems),
    )


def _setup_local(root: str, paths: Sequence[str]) -> tuple[dict[str, str], list[str], bool | None]:
    """Blocking: what `stat -c %F` and `pgrep -x auditd` answer, with os calls."""
    import os

    from probes.hosts.localfs import file_kind

    kinds: dict[str, str] = {}
    problems: list[str] = []
    for p in paths:
        try:
            kinds[p] = file_kind(os.lstat(root + p))
        except PermissionError as e:
            problems.append(f"stat: cannot statx '{root + p}': {e.strerror}"[:200])
        except OSError:
            continue
    auditd: bool | None = False
    try:
        pids = [d for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return kinds, problems, None
    for d in pids:
        try:
            with open(f"/proc/{d}/comm", "rb") as f:
                if f.read().rstrip(b"\n") == b"auditd":
                    auditd = True
                    break
        except OSError:
            continue
    return kinds, problems, auditd


# ---------------------------------------------------------------- session hooks


def config_of(opts: Any) -> sources.LogsConfig:
    """The LogsConfig of the session: the config's `[logs]` table (typed by probes/config.py),
    then the command line's --journal-file / --journal-dir (Options.journal_files, journal_dir)."""
    cfg = getattr(getattr(opts, "config", None), "logs", None)
    if not isinstance(cfg, sources.LogsConfig):
        cfg = sources.LogsConfig()
    files = tuple(getattr(opts, "journal_files", ()) or ())
    directory = getattr(opts, "journal_dir", None)
    if files or directory:
        cfg = replace(
            cfg,
            journal_files=files or cfg.journal_files,
            journal_directory=directory or cfg.journal_directory,
        )
    return cfg


def log_probes(host: HostTransport, service: LogService) -> list[Probe[Any]]:
    """For session.make_probes: the logs probe of `host`, fed by the session's service."""
    return [service.probe()]


def _index_key(state: State) -> tuple[object, ...]:
    """What the attribution index is made from: equal keys, equal indexes."""
    return tuple((w.key, w.tenant, w.uuid) for w in state.workloads()) + tuple(
        (hs.host.name, len(hs.topology.links) if hs.topology else -1) for hs in state.hosts
    )
