"""The composition root: from the user's options to hosts, probes and the derive step.

The TUI and the headless commands (check, snapshot) both build their Engine here, so what
they observe and conclude is one code path.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from probes.config import Config
from probes.engine import Engine, Probe, Subscriber
from probes.heap import HeapKeeper
from probes.hosts.base import HostTransport
from probes.hosts.libvirt_uri import DEFAULT_URI
from probes.hosts.local import LocalHost
from probes.logs.model import LogSlice
from probes.model import Finding, HostKind, HostState, RequestState, RequestStatus, State
from probes.requests import (
    CHANGING,
    ActiveProbe,
    Audit,
    FactsRefresh,
    PollSchedule,
    Request,
    RequestHandle,
    UpdatesLookup,
    answered,
    kind_of,
)

if TYPE_CHECKING:
    from probes.hosts.remote_events import RemoteNetEvents
    from probes.inventory.libvirt_link import LibvirtLink
    from probes.logs.service import LogService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    libvirt_uri: str | None = None  # None: qemu:///system on local hosts
    demo: bool = False
    config_path: str | None = None
    config: Config | None = None  # the parsed config file (tui/cli.py loads it once)
    hosts: tuple[str, ...] = ()  # ssh targets; empty: the local host
    known_hosts: str | None = None
    accept_new_host_keys: bool = False
    hosts_file: str | None = None  # one ssh target a line
    inventory: str | None = None  # Ansible inventory, INI or YAML
    limit: str | None = None  # inventory groups or host names, comma-separated
    identity: tuple[str, ...] = ()  # ssh key files; default: agent, ~/.ssh/config, ~/.ssh/id_*
    ssh_config: str | None = None  # default ~/.ssh/config
    interval: float = 2.0
    root: str = ""  # prefix for host files (tests)
    checks: tuple[str, ...] = ()
    # a derived State to compare every observation with (--baseline: probes/baseline.py loads
    # it); its label names the file or recording instant in the Changes view and reports
    baseline: State | None = None
    baseline_label: str = ""
    updates: bool = False  # the facts probe also asks the package manager (check --updates)
    journal_files: tuple[str, ...] = ()  # --journal-file: saved journals instead of the host's
    journal_dir: str | None = None  # --journal-dir


def demo_uri() -> str:
    from importlib.resources import files

    return "test://" + str(files("probes.demo") / "fleet.xml")


def make_hosts(opts: Options) -> list[HostTransport]:
    if opts.demo:
        return [LocalHost("demo-hv1", libvirt_uri=demo_uri(), root=opts.root)]
    from probes.hosts.libvirt_uri import seen_only_through_libvirt

    uri = opts.libvirt_uri
    if opts.hosts or opts.hosts_file or opts.inventory:
        from probes.hosts.ssh import hosts_from_targets  # type: ignore[import-not-found]

        if not seen_only_through_libvirt(uri):
            return list(hosts_from_targets(opts))
        hosts = list(hosts_from_targets(replace(opts, libvirt_uri=None)))
        if len(hosts) == 1 and _names(uri or "", hosts[0]):  # the one target's libvirt, as given
            return list(hosts_from_targets(opts))
        return _pair_with_targets(hosts, uri or "")
    if seen_only_through_libvirt(uri):  # another host's (or a simulated) hypervisor: its own host
        from probes.hosts.libvirt_view import LibvirtViewHost

        return [LibvirtViewHost(uri or "")]
    return [LocalHost(libvirt_uri=uri or DEFAULT_URI, root=opts.root, libvirt_uri_given=uri is not None)]


def _pair_with_targets(hosts: list[HostTransport], uri: str) -> list[HostTransport]:
    """`--host hv2 --libvirt qemu+tcp://hv2/system`: that target's libvirt is the URI (both
    views merge); a URI naming no target is a host of its own, seen only through libvirt."""
    from probes.hosts.libvirt_view import LibvirtViewHost

    for h in hosts:
        if _names(uri, h):
            use = getattr(h, "use_libvirt_uri", None)
            if use is not None:
                use(uri)
            else:
                h.host = replace(h.host, libvirt_uri=uri, libvirt_uri_given=True)
            return hosts
    return [*hosts, LibvirtViewHost(uri)]


def _names(uri: str, h: HostTransport) -> bool:
    """Whether `uri` names the machine `h` reaches (by its name or its SSH address)."""
    from probes.hosts.libvirt_uri import same_host

    addr = getattr(getattr(h, "target", None), "address", None)
    return same_host(uri, h.host.name) or bool(addr and same_host(uri, addr))


def make_probes(opts: Options, logs: LogService | None = None) -> Any:
    """The probes of each host. `logs`: the session's logs service (else one for these probes)."""
    if logs is None:
        logs = make_log_service(opts)

    def for_host(host: HostTransport) -> Sequence[Probe[Any]]:
        from probes.inventory.libvirt_link import LibvirtLink

        # the host's one libvirt connection and thread, shared by its inventory, domain
        # statistics and networks (was one each: three connections per host)
        link = LibvirtLink(host.name) if host.host.libvirt_uri else None
        if host.host.kind == HostKind.LIBVIRT:
            return _libvirt_view_probes(opts, link)
        probes: list[Probe[Any]] = []
        if host.host.kind == "ssh":  # first: the others share its connection
            from probes.hosts.connection import ConnectionProbe

            probes.append(ConnectionProbe(host, interval=opts.interval))
        # each area registers its probes here
        try:
            from probes.inventory.libvirt import LibvirtProbe

            if host.host.libvirt_uri:
                probes.append(LibvirtProbe(interval=opts.interval, link=link))
        except ImportError:
            pass
        # local hosts: netlink + inotify notifications drive the netns and topology probes
        # (probes/network/events.py); their polls become a slow safety net
        from probes.network.events import NetEvents

        events: NetEvents | None = None
        pushed: RemoteNetEvents | None = None
        if host.is_local and not host.root and not opts.demo:
            from probes.hosts.remote_events import PROC_SCAN
            from probes.network.events import LocalNetEvents

            # the /proc scan (new PIDs only) wakes the container probe and the namespaces
            # only processes hold, as the remote helper's does on an SSH host
            events = LocalNetEvents(proc_scan=PROC_SCAN)
        elif host.host.kind == "ssh" and not opts.demo:  # the same events, from a remote helper
            from probes.hosts.remote_events import RemoteNetEvents

            # (it also pushes the host's totals every interval: the resources probe's figures)
            events = pushed = RemoteNetEvents(host, totals=opts.interval)
        if not opts.demo:  # the demo shows only the bundled libvirt fleet
            from probes.inventory.containers import ContainerProbe
            from probes.inventory.netns import NetnsProbe

            every = max(opts.interval, 5.0)
            procs = events  # the /proc scan: the remote helper's, or the local events' own
            probes += [
                NetnsProbe(interval=every, events=events),
                ContainerProbe(interval=every, proc_events=procs),
            ]
        from probes.resources.probe import ResourcesProbe

        probes.append(
            ResourcesProbe(interval=opts.interval, host_totals=not opts.demo, link=link, pushed=pushed)
        )
        if not opts.demo:  # host files of this machine say nothing about the simulated demo host
            from probes.facts.probe import FactsProbe

            probes.append(FactsProbe(interval=max(opts.interval, 60.0), updates=opts.updates))
            from probes.xen.probe import XenProbe  # a Xen dom0's toolstack; nothing elsewhere

            probes.append(XenProbe(interval=max(opts.interval, 60.0)))
        # network topology (probes/network; the demo: libvirt's view only); active probes only on request
        from probes.network.policy import from_config
        from probes.network.topology import TopologyProbe
        from probes.tenancy import config_for

        probes.append(
            TopologyProbe(
                interval=opts.interval if opts.demo else max(opts.interval, 5.0),
                policy=from_config(config_for(opts)),
                libvirt_only=opts.demo,
                ovs_db=_ovs_db(opts),
                events=events,
                libvirt_link=link,
            )
        )
        if logs is not None:  # logs: journal, files, libvirt events (probes/logs/service.py)
            from probes.logs.service import log_probes

            probes += log_probes(host, logs)
        return probes

    return for_host


def _libvirt_view_probes(opts: Options, link: LibvirtLink | None = None) -> list[Probe[Any]]:
    """A host seen only through libvirt: its domains, their live figures, and the topology of
    libvirt's view (domain interfaces, libvirt networks and bridges, OVS virtualport, nwfilter).
    This machine's namespaces, containers, facts and logs are not that host's: not read."""
    from probes.inventory.libvirt import LibvirtProbe
    from probes.network.policy import from_config
    from probes.network.topology import TopologyProbe
    from probes.resources.probe import ResourcesProbe
    from probes.tenancy import config_for

    return [
        LibvirtProbe(interval=opts.interval, link=link),
        ResourcesProbe(interval=opts.interval, host_totals=False, link=link),
        # its NICs follow the domains at every derive (libvirtnet.current_views): this poll
        # only catches a libvirt network defined, changed or removed, so not every 2 s per host
        TopologyProbe(
            interval=max(opts.interval, NETWORKS_EVERY),
            policy=from_config(config_for(opts)),
            libvirt_only=True,
            libvirt_link=link,
        ),
    ]


NETWORKS_EVERY = 10.0  # seconds: a libvirt view's networks are read at most this often


def _ovs_db(opts: Options) -> str | None:
    """`[network] ovsdb`: a private OVS database to read (the training lab runs its own)."""
    return opts.config.network.ovsdb or None if opts.config is not None else None


def make_log_service(opts: Options) -> LogService:
    from probes.logs.service import LogService, config_of

    if opts.demo:  # the demo host's simulated lines: nothing of this machine is read
        from probes.demo.logs import demo_sources

        return LogService(own_sources=demo_sources())
    return LogService(config_of(opts))


def make_deriver(opts: Options):
    from probes.checks.base import CheckRunner
    from probes.checks.silence import silences_from
    from probes.tenancy import Placer, assign, config_for

    silences = silences_from(opts.config)  # validated by cmd_check / the app before this
    checks = CheckRunner()  # this session's: reuses a check's result while its inputs stay the same
    placer = Placer(config_for(opts))  # this session's: the rules compiled, placements remembered
    views: dict[str, Any] = {}  # this session's libvirt views, per host (libvirtnet.current_views)
    last: list[tuple[Finding, ...]] = [()]  # the findings last derived

    def derive(state: State) -> State:
        from probes.netns_fold import fold_container_namespaces  # one service, one workload

        state = fold_container_namespaces(state)
        state = assign(state, opts, placer)
        from probes.network.libvirtnet import current_views  # libvirt's view follows its domains

        state = current_views(state, views)
        from probes.checks import silence  # the config's [checks] silence: accepted warnings

        findings = silence.apply(
            checks.run(state, opts.checks or None),
            silences,
            opts.config.path if opts.config and opts.config.path else "config",
        )
        # the same findings as last time are handed on as the same object: the console's
        # panes and the logs service compare by identity first (at idle most derives are
        # figures moving every few seconds and conclude the same; ~0.5 ms a State on the loop)
        if findings == last[0]:
            findings = last[0]
        last[0] = findings
        state = replace(state, findings=findings)
        if opts.baseline is not None:  # what changed since then (probes/drift)
            from probes.drift import diff

            state = replace(state, drift=diff(opts.baseline, state, opts.baseline_label))
        return state

    return derive


def make_engine(opts: Options, logs: LogService | None = None) -> Engine:
    """The engine of one session; `logs`: the session's logs service (made here if None and
    the session follows logs). Nothing in it is shared with another engine."""
    if logs is None:
        logs = make_log_service(opts)
    derive = make_deriver(opts)
    if logs is not None:
        derive = _priming(derive, logs)
    # lead: the inventory shows first; the other probes start once it was published
    engine = Engine(
        make_hosts(opts),
        make_probes(opts, logs),
        derive,
        source="demo" if opts.demo else "live",
        lead=("libvirt",),
    )
    if logs is not None:
        engine.subscribe(logs.observe)  # the logs service is handed every State (own events, index)
    return engine


def _priming(derive: Callable[[State], State], logs: LogService) -> Callable[[State], State]:
    """`derive`, then the logs service's attribution index of what it made, in the same
    (derive) thread: the service takes it when the State is published instead of building it
    on the loop ahead of the console's drawing."""

    def derive_and_prime(state: State) -> State:
        out = derive(state)
        logs.prime(out)
        return out

    return derive_and_prime


# ---------------------------------------------------------------- the request path


class Session:
    """One console's (or command's) observation: its engine, and the one way to ask it for
    more than a poll (probes/requests.py). It is a StateSource (tui/source.py)."""

    def __init__(self, opts: Options, *, read_only: bool = False, engine: Engine | None = None) -> None:
        self.opts = opts
        self.read_only = read_only
        # what this session owns and no other shares: the logs service (its rings); the
        # deriver's check runner and tenancy placer live in make_deriver's closure
        self.logs: LogService | None = None
        if engine is None:
            self.logs = make_log_service(opts)
            engine = make_engine(opts, self.logs)
        self.engine = engine
        self._ids = itertools.count(1)
        self._tasks: dict[int, asyncio.Task[RequestStatus]] = {}
        self._stop_flags: dict[int, threading.Event] = {}  # requests that stop between steps

    @classmethod
    def over_state(cls, state: State, opts: Options | None = None, *, read_only: bool = False) -> Session:
        """A session whose hosts are this machine, starting from a State observed elsewhere
        (tests of the request path against a lab): no polls; requests run for real."""
        given = state

        def keep(s: State) -> State:
            return replace(s, tenants=given.tenants, findings=given.findings)

        engine = Engine([LocalHost(h.host.name, libvirt_uri=None) for h in state.hosts], lambda h: [], keep)
        for hs in state.hosts:
            engine.seed(hs)
        return cls(opts or Options(), read_only=read_only, engine=engine)

    # -- StateSource

    @property
    def state(self) -> State:
        return self.engine.state

    @property
    def heap(self) -> HeapKeeper:
        """The engine's keeper of gc's freezing: the console's app asks it too."""
        return self.engine.heap

    def subscribe(self, fn: Subscriber) -> None:
        self.engine.subscribe(fn)

    def show_hosts(self, names: Sequence[str] | None) -> None:
        """The hosts whose figures the UI draws (None: all); see Engine.show_hosts."""
        self.engine.show_hosts(names)

    def warm_up(self) -> None:
        """Begin what the probes can before start (see Engine.warm_up)."""
        self.engine.warm_up()

    def start(self) -> None:
        self.engine.start()
        self._sweep_probe_ports()

    def _sweep_probe_ports(self) -> None:
        """Remove the probe ports a killed tenantscope left (probes/network/probeport.py; each
        run recorded them before creating them). Only our own leftovers, only when this session
        may change the host; the next segment run sweeps too."""
        import os

        if self.read_only or os.geteuid() != 0 or not any(t.is_local for t in self.engine.hosts):
            return
        from probes.network.probeport import sweep

        def run() -> None:
            try:
                removed, left = sweep()
            except OSError as e:
                log.warning("probe-port sweep failed: %s", e)
                return
            if removed:
                log.warning("removed probe ports a killed run left: %s", ", ".join(removed))
            for x in left:
                log.warning("%s", x)

        threading.Thread(target=run, name="tsf-sweep", daemon=True).start()

    async def stop(self) -> None:
        for t in list(self._tasks.values()):
            t.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        await self.engine.stop()

    async def refresh_once(self) -> State:
        return await self.engine.refresh_once()

    def log_entries(self, host: str, after: int | None) -> LogSlice | None:
        """A host's log ring after the reader's cursor (None: counters only); None when this
        session follows no logs there."""
        return self.logs.entries(host, after) if self.logs is not None else None

    # -- requests

    def request(self, req: Request) -> RequestHandle:
        """Start `req`; its progress and outcome show in State.requests, and the handle's
        `result()` gives its final status."""
        rid = next(self._ids)
        now = time.time()
        kind = kind_of(req)
        if self.read_only and isinstance(req, CHANGING):
            return self._answer(req, rid, RequestState.REFUSED, "read-only session")
        if self.opts.demo and isinstance(req, UpdatesLookup):
            return self._answer(
                req, rid, RequestState.UNAVAILABLE, "no live hosts (the demo fleet is simulated)"
            )
        if isinstance(req, PollSchedule):  # instant: done before the key's next render
            err = self._interval(req)
            return self._answer(req, rid, RequestState.FAILED if err else RequestState.DONE, err or "")
        status = RequestStatus(rid, kind, RequestState.RUNNING, started_at=now)
        self.engine.set_request(status)
        if isinstance(req, Audit):
            self._stop_flags[rid] = threading.Event()
        task = asyncio.get_running_loop().create_task(self._run(req, status), name=f"request {kind} #{rid}")
        self._tasks[rid] = task
        task.add_done_callback(lambda _: (self._tasks.pop(rid, None), self._stop_flags.pop(rid, None)))
        return RequestHandle(status, task)

    def cancel(self, rid: int) -> bool:
        """Stop a running request (an audit after the check it is in); False if none runs."""
        flag = self._stop_flags.get(rid)
        if flag is not None:
            flag.set()
            return True
        task = self._tasks.get(rid)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    def _answer(self, req: Request, rid: int, state: RequestState, message: str) -> RequestHandle:
        h = answered(req, rid, state, message, time.time())
        self.engine.set_request(h.first)
        return h

    def _set(self, status: RequestStatus, **kw: Any) -> RequestStatus:
        status = replace(status, **kw)
        self.engine.set_request(status)
        return status

    async def _run(self, req: Request, status: RequestStatus) -> RequestStatus:
        cur = [status]

        def update(**kw: Any) -> None:
            cur[0] = self._set(cur[0], **kw)

        try:
            match req:
                case ActiveProbe():
                    failed = await self._active_probe(req, update)
                case UpdatesLookup():
                    failed = await self._updates(req, update)
                case FactsRefresh():
                    failed = await self._facts(req, update)
                case Audit():
                    failed = await self._audit(req, update, self._stop_flags[status.id])
                case PollSchedule():
                    failed = self._interval(req)  # (answered at once by request())
        except asyncio.CancelledError:
            return self._set(cur[0], state=RequestState.CANCELLED, finished_at=time.time())
        except Exception as e:  # a bug in a request must not reach the UI as a traceback
            log.exception("request %s failed", status.kind)
            return self._set(cur[0], state=RequestState.FAILED, message=str(e)[:300], finished_at=time.time())
        await self.engine.settled()  # what it observed is derived before it says it is done
        flag = self._stop_flags.get(status.id)
        if flag is not None and flag.is_set():
            final = RequestState.CANCELLED
        elif failed is not None:
            final = RequestState.FAILED
        else:
            final = RequestState.DONE
        return self._set(cur[0], state=final, message=failed or cur[0].message, finished_at=time.time())

    def _hosts(self, names: tuple[str, ...]) -> list[HostTransport]:
        return [t for t in self.engine.hosts if not names or t.name in names]

    def _host_state(self, name: str) -> HostState | None:
        return next((h for h in self.engine.state.hosts if h.host.name == name), None)

    async def _active_probe(self, req: ActiveProbe, update: Callable[..., None]) -> str | None:
        from probes.network import prober
        from probes.network.policy import network_options
        from probes.tenancy import config_for

        try:
            cfg_ports, cfg_timeout = network_options(config_for(self.opts))
            ports = prober.valid_ports(req.ports if req.ports is not None else cfg_ports)
        except ValueError as e:
            return str(e)
        timeout = req.timeout or cfg_timeout
        ovs_db = _ovs_db(self.opts)
        targets = [
            (t, hs) for t in self._hosts(req.hosts) if (hs := self._host_state(t.name)) and hs.topology
        ]
        if not targets:
            return "no topology observed yet: nothing to probe"
        errors: list[str] = []
        base = 0  # pairs of the hosts already done
        for t, hs in targets:
            last = [0]

            def progress(done: int, total: int, base: int = base, last: list[int] = last) -> None:
                last[0] = total
                update(done=base + done, total=max(base + total, 1))

            async def work(
                t: HostTransport, hs: HostState = hs, progress: Callable[[int, int], None] = progress
            ) -> Callable[[HostState], HostState]:
                rm = await prober.probe_host(
                    t, hs, ports=ports, timeout=timeout, progress=progress, sources=req.sources, ovs_db=ovs_db
                )
                return lambda st: prober.merged(st, rm)

            err = await self.engine.run_on_host(t.name, "active-probe", work, ACTIVE_PROBE_DEADLINE)
            if err is not None:
                errors.append(f"{t.name}: {err}")
            base += last[0]
        if errors:
            update(message="; ".join(errors)[:300])
        return "; ".join(errors)[:300] if len(errors) == len(targets) else None

    async def _updates(self, req: UpdatesLookup, update: Callable[..., None]) -> str | None:
        from probes.facts.probe import FactsProbe

        hosts = self._hosts(req.hosts)
        update(total=len(hosts))
        failed: list[str] = []
        for i, t in enumerate(hosts):
            p = FactsProbe(updates=True)

            async def work(t: HostTransport, p: FactsProbe = p) -> Callable[[HostState], HostState]:
                result = await p.collect(t)
                return lambda st: p.merge(st, result)

            err = await self.engine.run_on_host(t.name, "updates", work, p.timeout)
            if err is not None:
                failed.append(f"{t.name}: {err}")
            update(done=i + 1)
        if failed:
            update(message="; ".join(failed)[:300])
        return "; ".join(failed)[:120] if failed and len(failed) == len(hosts) else None

    async def _facts(self, req: FactsRefresh, update: Callable[..., None]) -> str | None:
        todo = []
        for t in self._hosts(req.hosts):
            hs = self._host_state(t.name)
            for p in self.engine.probes_of(t.name):
                if p.name != "facts" or hs is None:
                    continue
                rerun = getattr(p, "wants_rerun", None)
                if req.stale_only and not (rerun is not None and rerun(hs)):
                    continue
                todo.append((t.name, p))
        update(total=len(todo))
        for i, (host, p) in enumerate(todo):
            await self.engine.run_probe_now(host, p)
            update(done=i + 1)
        return None

    async def _audit(self, req: Audit, update: Callable[..., None], stop: threading.Event) -> str | None:
        found = await run_audit(self.engine.state, req.checks, update, stop)
        return None if found is not None else "nothing observed yet"

    def _interval(self, req: PollSchedule) -> str | None:
        hit = False
        for t in self.engine.hosts:
            for p in self.engine.probes_of(t.name):
                if p.name != req.probe:
                    continue
                setter = getattr(p, "set_interval", None)
                if req.seconds is not None and setter is not None:
                    setter(req.seconds)
                    hit = True
                if req.paused is not None and hasattr(p, "paused"):
                    p.paused = req.paused
                    hit = True
        if not hit:
            return f"no {req.probe} probe here takes a schedule"
        self.engine.poke(req.probe)
        return None


ACTIVE_PROBE_DEADLINE = 600.0  # seconds for one host's whole probe run (each probe has its own timeout)


async def run_audit(
    state: State | None, ids: Sequence[str], update: Callable[..., None], stop: threading.Event
) -> tuple[Finding, ...] | None:
    """The catalog (or `ids`) check by check in a worker thread, with progress; stops between
    checks when `stop` is set, keeping what was found. None when there is no State yet."""
    from probes.checks import base  # looked up at each call: tests count the checks run

    if state is None or not state.hosts:
        return None
    todo = list(ids) or sorted(base.load_catalog())
    update(done=0, total=len(todo), findings=())
    found: list[Finding] = []
    for i, cid in enumerate(todo):
        if stop.is_set():
            break
        found += await asyncio.to_thread(base.run_checks, state, [cid])
        update(done=i + 1, findings=tuple(found))
    return tuple(found)


class FixedRequests:
    """Requests against a State that does not change by itself (a saved State, tests, replay):
    the audit runs (checks need only the State); whatever needs a live host is answered at
    once as UNAVAILABLE, saying so."""

    def __init__(self, get: Callable[[], State], put: Callable[[State], None], what: str) -> None:
        self._get = get
        self._put = put
        self.what = what  # "replay", "a saved State"
        self._ids = itertools.count(1)
        self._statuses: dict[int, RequestStatus] = {}
        self._tasks: dict[int, asyncio.Task[RequestStatus]] = {}
        self._stops: dict[int, threading.Event] = {}

    def with_requests(self, state: State) -> State:
        requests = tuple(self._statuses.values())
        return state if state.requests == requests else replace(state, requests=requests)

    def _set(self, status: RequestStatus) -> RequestStatus:
        self._statuses[status.id] = status
        self._put(self.with_requests(self._get()))
        return status

    def request(self, req: Request) -> RequestHandle:
        rid = next(self._ids)
        if not isinstance(req, Audit):
            h = answered(
                req,
                rid,
                RequestState.UNAVAILABLE,
                f"not available in {self.what}: no live hosts to ask",
                time.time(),
            )
            self._set(h.first)
            return h
        stop = self._stops[rid] = threading.Event()
        cur = [self._set(RequestStatus(rid, kind_of(req), RequestState.RUNNING, started_at=time.time()))]

        def update(**kw: Any) -> None:
            cur[0] = self._set(replace(cur[0], **kw))

        async def run() -> RequestStatus:
            try:
                found = await run_audit(self._get(), req.checks, update, stop)
            except asyncio.CancelledError:
                return self._set(replace(cur[0], state=RequestState.CANCELLED, finished_at=time.time()))
            if found is None:
                end, msg = RequestState.FAILED, "nothing observed yet"
            else:
                end, msg = (RequestState.CANCELLED if stop.is_set() else RequestState.DONE), ""
            return self._set(replace(cur[0], state=end, message=msg, finished_at=time.time()))

        task = asyncio.get_running_loop().create_task(run(), name=f"request audit #{rid}")
        self._tasks[rid] = task
        return RequestHandle(cur[0], task)

    def cancel(self, rid: int) -> bool:
        stop = self._stops.get(rid)
        task = self._tasks.get(rid)
        if stop is None or task is None or task.done():
            return False
        stop.set()
        return True

    async def stop(self) -> None:
        for t in self._tasks.values():
            t.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
