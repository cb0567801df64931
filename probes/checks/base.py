"""The check registry and its runner: every check is a small pure function of State,
registered with its id and the State fields it reads.

A check yields the Findings it found (any status). The runner adds what the check did not
say: no findings at all becomes one PASS result, `Skip(reason)` becomes SKIPPED, and any other
exception becomes ERROR with its message; one check never stops the others.

`reads=` is what makes reuse safe: a CheckRunner (one per session) hands each check a view
of the State in which reading an undeclared field raises UndeclaredRead, and re-runs a check
only when one of its declared fields changed since its last run. Most polls change only the
resource samples, so most checks are not run again.

`figures=` says what a check reads of the live figures (HostState.samples), which move at
every refresh: a function of one host's ResourceSnapshot whose value decides the check's
result there (the live limits, the spikes, whether any tenant can be busy enough). The runner
compares that value instead of the snapshot, so a refresh whose counters moved below every
threshold runs none of them again.

`scope="host"` says a check judges each host on its own: its findings over a fleet are the
findings over each single host, in host order. The runner then runs it per host, on a State
holding only that host, and re-runs it only on the hosts whose declared fields changed: one
host's change costs one host's checks, whatever the size of the fleet. Checks that compare
hosts (tenants across hosts, fleet-wide totals) keep the default, scope="fleet".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from functools import cached_property
from typing import Any, TypeVar, cast

from probes.model import ConnState, Evidence, Finding, HostKind, HostState, Severity, State, Status

log = logging.getLogger(__name__)
T = TypeVar("T")


class Skip(Exception):
    """Raised by a check that cannot run on this state (the reason is shown to the user)."""


@dataclass(frozen=True)
class CheckSpec:
    id: str
    area: str
    title: str
    why: str
    severity: Severity
    fix: str = ""  # generic fix; findings may carry a more specific one


CheckFn = Callable[[State, CheckSpec], Iterable[Finding]]
# what a check reads of one host's live figures (a ResourceSnapshot): its result is reused while
# this value is equal (it must hold everything of the snapshot the check's findings depend on)
FiguresKey = Callable[[Any], object]


# What a check may declare in reads=: every field of HostState but `host` (always readable:
# it names the host), and of State the tenants and the source (live, demo, replay). Not
# readable: State.findings (the output of the checks), the clocks (taken_at, refreshed_at: a
# check that read them would never be reused, and would not be a function of what was seen).
HOST_FIELDS = frozenset(f.name for f in fields(HostState)) - {"host", "refreshed_at"}
STATE_FIELDS = frozenset({"tenants", "source"})
READABLE = HOST_FIELDS | STATE_FIELDS
_GUARDED_HOST = frozenset(f.name for f in fields(HostState)) - {"host"}
_GUARDED_STATE = frozenset(f.name for f in fields(State)) - {"hosts"}


class UndeclaredRead(RuntimeError):
    """A check read a State field it did not declare in reads= (a bug in the check: its
    result could be reused after that field changed). Not an AttributeError on purpose:
    getattr(x, name, default) and hasattr would swallow it."""


SCOPES = ("fleet", "host")


@dataclass(frozen=True)
class Check:
    spec: CheckSpec
    fn: CheckFn
    reads: frozenset[str] = READABLE
    # "host": fn over a fleet == fn over each single host, concatenated in host order (a host
    # where it raises Skip adds nothing); the runner runs it per host. "fleet": it compares hosts.
    scope: str = "fleet"
    figures: FiguresKey | None = None  # with "samples" in reads: what of them it depends on

    @cached_property
    def inputs(self) -> tuple[str | FiguresKey, ...]:
        """What its reuse compares: the host, its declared fields in order, `figures` (when
        given) in place of the whole samples."""
        return (
            "hosts",
            *(self.figures if n == "samples" and self.figures else n for n in sorted(self.reads)),
        )


REGISTRY: dict[str, Check] = {}


def check(
    id: str,
    area: str,
    title: str,
    why: str,
    severity: Severity = Severity.MEDIUM,
    fix: str = "",
    *,
    reads: Sequence[str],
    scope: str = "fleet",
    figures: FiguresKey | None = None,
) -> Callable[[CheckFn], CheckFn]:
    """Register a check. `reads`: the HostState fields (workloads, facts, samples, topology,
    logs, reach, connections, probe_errors) and State fields (tenants, source) it reads,
    directly or through helpers (per_host reads workloads/connections/probe_errors for
    libvirt=True, facts/probe_errors/source for facts=True). `scope="host"`: it judges each
    host on its own (see the module's docstring); tests/checks prove it for every such check.
    `figures`: what it reads of the samples (see the module's docstring)."""
    unknown = sorted(set(reads) - READABLE)
    if unknown:
        raise ValueError(
            f"check {id}: reads={unknown} are not State fields a check may read ({sorted(READABLE)})"
        )
    if scope not in SCOPES:
        raise ValueError(f"check {id}: scope={scope!r} is not one of {SCOPES}")
    if figures is not None and "samples" not in reads:
        raise ValueError(f"check {id}: figures= is what it reads of 'samples', which reads= does not name")

    def register(fn: CheckFn) -> CheckFn:
        if id in REGISTRY:
            raise ValueError(f"duplicate check id {id}")
        REGISTRY[id] = Check(
            CheckSpec(id, area, title, why, severity, fix), fn, frozenset(reads), scope, figures
        )
        return fn

    return register


def finding(
    spec: CheckSpec,
    status: Status,
    summary: str,
    *,
    host: str = "",
    tenants: Sequence[str] = (),
    workloads: Sequence[str] = (),
    evidence: Sequence[Evidence] = (),
    fix: str | None = None,
    severity: Severity | None = None,
    related: Sequence[str] = (),
) -> Finding:
    """A Finding for `spec`, filling title, why, area and defaults from the spec."""
    return Finding(
        check_id=spec.id,
        area=spec.area,
        title=spec.title,
        status=status,
        severity=severity or (spec.severity if status in (Status.FAIL, Status.WARN) else Severity.INFO),
        host=host,
        summary=summary,
        why=spec.why,
        tenants=tuple(sorted(set(tenants))),
        workloads=tuple(workloads),
        evidence=tuple(evidence),
        fix=spec.fix if fix is None else fix,
        related=tuple(related),
    )


def load_catalog() -> dict[str, Check]:
    """Import every check module so that its checks register."""
    import importlib
    import pkgutil

    import probes.checks as pkg

    for m in pkgutil.iter_modules(pkg.__path__):
        if m.name not in ("base", "report"):
            importlib.import_module(f"probes.checks.{m.name}")
    return REGISTRY


# ---------------------------------------------------------------- the views a check gets


class _HostView(HostState):
    """A HostState in which reading a field outside `_reads` raises UndeclaredRead."""

    def __getattribute__(self, name: str) -> Any:
        if name in _GUARDED_HOST and name not in object.__getattribute__(self, "_reads"):
            raise UndeclaredRead(f"read HostState.{name} without declaring it (add {name!r} to its reads=)")
        return object.__getattribute__(self, name)


class _StateView(State):
    """A State whose hosts are _HostViews and whose own fields are guarded the same way.
    One view per reads= set and run: checks that declare the same fields share it (and
    what helpers memoize on it, see memo())."""

    def __getattribute__(self, name: str) -> Any:
        if name in _GUARDED_STATE and name not in object.__getattribute__(self, "_reads"):
            raise UndeclaredRead(f"read State.{name} without declaring it (add {name!r} to its reads=)")
        return object.__getattribute__(self, name)


def _host_view(hs: HostState, reads: frozenset[str]) -> HostState:
    hv = object.__new__(_HostView)
    hv.__dict__.update(hs.__dict__)
    object.__setattr__(hv, "_reads", reads)
    object.__setattr__(hv, "_memo", {})
    return hv


def _view(state: State, reads: frozenset[str], hosts: Sequence[HostState] | None = None) -> State:
    """A guarded view of `state` (of its `hosts`, already views, when given: one host's)."""
    sv = object.__new__(_StateView)
    sv.__dict__.update(state.__dict__)
    views = tuple(hosts) if hosts is not None else tuple(_host_view(hs, reads) for hs in state.hosts)
    object.__setattr__(sv, "hosts", views)
    object.__setattr__(sv, "_reads", reads)
    object.__setattr__(sv, "_memo", {})
    return sv


def memo(view: State | HostState, key: str, make: Callable[[], T]) -> T:
    """What a run computes more than once from one view of a State or HostState (the logs'
    attribution, an index of samples by workload): made once per run and reads= set, kept on
    the view, gone with it. On a plain State or HostState (outside a runner) it is just made."""
    d: dict[str, object] | None = view.__dict__.get("_memo")
    if d is None:
        return make()
    if key not in d:
        d[key] = make()
    return cast(T, d[key])


# ---------------------------------------------------------------- the runner


@dataclass(frozen=True)
class _Last:
    fn: CheckFn
    inputs: tuple[object, ...]  # the interned columns (or one host's values) of its reads
    found: tuple[Finding, ...]


@dataclass(frozen=True)
class _HostLast:
    fn: CheckFn
    inputs: tuple[object, ...]  # the host's interned values of the check's reads
    found: tuple[Finding, ...]  # what it yielded on this host alone (no PASS added)
    raised: str = ""  # "skip": it raised Skip on this host (adds nothing); "error": anything else


class CheckRunner:
    """Runs the catalog over successive States and reuses a check's last result when none
    of its declared fields changed. Owned by whoever derives findings (one per session, so
    two sessions in one process share nothing); a runner holds the last results only.

    Change detection is per field, and per host: each run compares every host's value of a
    field once with that host's previous value (an equal value is replaced by the previous
    object), so a check compares its inputs by identity. A fleet-scope check is reused while
    the whole column (every host's value) is the same; a host-scope check is run again only on
    the hosts whose values changed, and its fleet result is the hosts' results in host order.
    `by_host=False` runs every check fleet-wide (the reference the per-host results are
    proved equal to)."""

    def __init__(self, catalog: dict[str, Check] | None = None, *, by_host: bool = True) -> None:
        self._catalog = catalog if catalog is not None else load_catalog()
        self._by_host = by_host
        self._cells: dict[tuple[str, object], object] = {}  # (host, field or figures key) -> its last value
        self._columns: dict[object, tuple[object, ...]] = {}
        self._last: dict[str, _Last] = {}
        self._host_last: dict[tuple[str, str], _HostLast] = {}  # (check id, host)
        # (host, reads=) -> that host's interned values of those fields: one tuple object while
        # they stay the same, so a host-scope check's reuse is one identity test
        self._inputs: dict[tuple[str, frozenset[str], object], tuple[object, ...]] = {}
        self._hosts: frozenset[str] = frozenset()  # the host names of the last run
        self.ran: tuple[str, ...] = ()  # ids run (not reused, on at least one host) by the last run()
        # per `ids`: everything its checks read (fields, figures keys), and the last run's
        # interned values of all of them with what the checks concluded (before _not_vouched)
        self._reads_of: dict[tuple[str, ...] | None, tuple[list[str | FiguresKey], list[str]]] = {}
        self._last_run: dict[tuple[str, ...] | None, tuple[tuple[object, ...], list[Finding]]] = {}
        self._state_cells: dict[str, object] = {}

    def _cell(self, hs: HostState, name: str | FiguresKey) -> object:
        """The host's value of `name` (a field, or a check's figures key of its samples), the
        previous object when it is equal to it."""
        key = (hs.host.name, name)
        if isinstance(name, str):
            new = hs.host if name == "hosts" else getattr(hs, name)
        else:
            new = None if hs.samples is None else name(hs.samples)
        old = self._cells.get(key, _MISSING)
        if old is new or (old is not _MISSING and old == new):
            return old
        self._cells[key] = new
        return new

    def _everything_read(self, ids: tuple[str, ...] | None) -> tuple[list[str | FiguresKey], list[str]]:
        """What the checks of `ids` read, per host (fields and figures keys) and of the State."""
        got = self._reads_of.get(ids)
        if got is None:
            per_host: list[str | FiguresKey] = []
            of_state: list[str] = []
            for cid in sorted(self._catalog) if not ids else ids:
                for n in self._catalog[cid].inputs:
                    if isinstance(n, str) and n in STATE_FIELDS:
                        if n not in of_state:
                            of_state.append(n)
                    elif not any(n is m for m in per_host):
                        per_host.append(n)
            got = self._reads_of[ids] = (per_host, of_state)
        return got

    def _signature(
        self, state: State, ids: tuple[str, ...] | None, cells: dict[tuple[int, object], object]
    ) -> tuple[object, ...]:
        """The interned values of everything the checks read: the same objects as the last
        run's exactly when nothing any check reads has changed. The hosts' values go into
        `cells` too (the run's, by (host index, name)): a run that follows reads them there."""
        per_host, of_state = self._everything_read(ids)
        out: list[object] = []
        for i, hs in enumerate(state.hosts):
            for n in per_host:
                v = cells[(i, n)] = self._cell(hs, n)
                out.append(v)
        for n in of_state:
            new = getattr(state, n)
            old = self._state_cells.get(n, _MISSING)
            if old is new or (old is not _MISSING and old == new):
                new = old
            else:
                self._state_cells[n] = new
            out.append(new)
        return tuple(out)

    def run(self, state: State, ids: Sequence[str] | None = None) -> tuple[Finding, ...]:
        ids_key = tuple(ids) if ids else None
        cells: dict[tuple[int, object], object] = {}
        cols: dict[object, tuple[object, ...]] = {}
        views: dict[tuple[int, frozenset[str]], HostState] = {}
        fleet_views: dict[frozenset[str], State] = {}
        one_views: dict[tuple[int, frozenset[str]], State] = {}  # one host's State, per reads=
        here = frozenset(hs.host.name for hs in state.hosts)
        by_host = self._by_host and len(here) == len(state.hosts)  # (names are unique in a session)
        if here != self._hosts:  # hosts came or went: forget what was kept of the others
            self._cells = {k: v for k, v in self._cells.items() if k[0] in here}
            self._host_last = {k: v for k, v in self._host_last.items() if k[1] in here}
            self._inputs = {k: v for k, v in self._inputs.items() if k[0] in here}
            self._hosts = here
        # nothing any check reads has changed (an idle host's figures derive: the counters moved
        # below every threshold): every check would be reused, so the last conclusions are
        sig = self._signature(state, ids_key, cells)
        last_run = self._last_run.get(ids_key)
        if (
            last_run is not None
            and len(last_run[0]) == len(sig)
            and all(a is b for a, b in zip(last_run[0], sig))
        ):
            self.ran = ()
            return self._vouched(state, last_run[1])
        out: list[Finding] = []
        ran: list[str] = []

        def cell(i: int, name: str | FiguresKey) -> object:
            v = cells.get((i, name), _MISSING)
            if v is _MISSING:
                v = cells[(i, name)] = self._cell(state.hosts[i], name)
            return v

        def column(name: str | FiguresKey) -> tuple[object, ...]:
            col = cols.get(name)
            if col is None:
                if name in STATE_FIELDS:
                    new: tuple[object, ...] = (getattr(state, name),)
                else:
                    new = tuple(cell(i, name) for i in range(len(state.hosts)))
                old = self._columns.get(name)
                if old is not None and (old is new or old == new):
                    new = old
                col = cols[name] = self._columns[name] = new
            return col

        inputs_of: dict[tuple[int, frozenset[str], object], tuple[object, ...]] = {}

        def host_inputs(i: int, c: Check) -> tuple[object, ...]:
            got = inputs_of.get((i, c.reads, c.figures))
            if got is None:
                names = c.inputs[1:]
                new = (
                    cell(i, "hosts"),
                    *(cell(i, n) for n in names if n not in STATE_FIELDS),
                    *(column(n) for n in names if n in STATE_FIELDS),
                )
                key = (state.hosts[i].host.name, c.reads, c.figures)
                old = self._inputs.get(key)
                if old is not None and len(old) == len(new) and all(a is b for a, b in zip(old, new)):
                    new = old
                else:
                    self._inputs[key] = new
                got = inputs_of[(i, c.reads, c.figures)] = new
            return got

        def host_view(i: int, reads: frozenset[str]) -> HostState:
            hv = views.get((i, reads))
            if hv is None:
                hv = views[(i, reads)] = _host_view(state.hosts[i], reads)
            return hv

        def fleet(c: Check) -> tuple[tuple[Finding, ...], bool]:
            inputs = tuple(column(n) for n in c.inputs)
            last = self._last.get(c.spec.id)
            if last is not None and last.fn is c.fn and all(a is b for a, b in zip(last.inputs, inputs)):
                return last.found, False
            view = fleet_views.get(c.reads)
            if view is None:
                view = fleet_views[c.reads] = _view(
                    state, c.reads, [host_view(i, c.reads) for i in range(len(state.hosts))]
                )
            found = tuple(_run_one(c, view))
            self._last[c.spec.id] = _Last(c.fn, inputs, found)
            return found, True

        def per_host(c: Check) -> tuple[tuple[Finding, ...], bool]:
            did = False
            results: list[_HostLast] = []
            errors = skips = 0
            for i, hs in enumerate(state.hosts):
                inputs = host_inputs(i, c)
                key = (c.spec.id, hs.host.name)
                last = self._host_last.get(key)
                if last is None or last.fn is not c.fn or last.inputs is not inputs:
                    view = one_views.get((i, c.reads))
                    if view is None:
                        view = one_views[(i, c.reads)] = _view(state, c.reads, [host_view(i, c.reads)])
                    found, raised = _run_host(c, view)
                    last = self._host_last[key] = _HostLast(c.fn, inputs, found, raised)
                    did = True
                if last.raised:
                    errors += last.raised == "error"
                    skips += last.raised == "skip"
                results.append(last)
            if errors or skips == len(results):
                # a check that failed on a host fails fleet-wide too (one ERROR result), and
                # one skipped on every host is skipped fleet-wide (one result, its fleet-wide
                # reason): the fleet-wide run says both exactly as it would
                found, fleet_ran = fleet(c)
                return found, did or fleet_ran
            found = tuple(f for r in results for f in r.found)
            return found or (finding(c.spec, Status.PASS, "nothing found"),), did

        for cid in sorted(self._catalog) if not ids else ids:
            c = self._catalog[cid]
            if by_host and c.scope == "host" and state.hosts:
                found, did = per_host(c)
            else:
                found, did = fleet(c)
            if did:
                ran.append(cid)
            out.extend(found)
        self.ran = tuple(ran)
        self._last_run[ids_key] = (sig, out)
        return self._vouched(state, out)

    @staticmethod
    def _vouched(state: State, out: list[Finding]) -> tuple[Finding, ...]:
        blind = {hs.host.name: why for hs in state.hosts if (why := nothing_observed(hs))}
        if blind:
            return _not_vouched(out, blind, every_host=len(blind) == len(state.hosts))
        return tuple(out)


_MISSING = object()


def nothing_observed(hs: HostState) -> str:
    """Why nothing was observed on this host ('' when something was): it has probe errors and
    no facts, topology, figures or workloads (a host never reached: SSH refused, a wrong host
    key). Its logs are left out: the logs service reports sources that could not be read.
    A host seen only through libvirt whose libvirt never answered is such a host too: libvirt
    is its only source (its empty topology is libvirt's networks not read)."""
    if not hs.probe_errors or hs.workloads:
        return ""
    if hs.host.kind == HostKind.LIBVIRT:
        c = hs.connection("libvirt")
        if c is not None and c.state not in (ConnState.UP, ConnState.CONNECTING):
            return hs.probe_errors[0].message
    if hs.facts or hs.topology or hs.samples:
        return ""
    return hs.probe_errors[0].message


def _not_vouched(found: Iterable[Finding], blind: dict[str, str], *, every_host: bool) -> tuple[Finding, ...]:
    """A check never vouches for what was not seen: on a host where nothing was observed, a
    pass (empty logs read as 'no OOM kill'), a fail or a warning (no log source) is one ERROR
    saying why; so is a fleet-wide pass when no host was observed."""
    out: list[Finding] = []
    said: set[tuple[str, str]] = set()
    for f in found:
        host = f.host if f.host in blind else next(iter(blind)) if every_host and not f.host else None
        if host is None or f.status in (Status.ERROR, Status.SKIPPED):
            out.append(f)
            continue
        if (f.check_id, host) not in said:
            said.add((f.check_id, host))
            out.append(
                replace(
                    f,
                    status=Status.ERROR,
                    severity=Severity.INFO,
                    host=host if f.host else "",
                    summary=f"nothing observed on {host}: {blind[host]}",
                    tenants=(),
                    workloads=(),
                    evidence=(),
                    fix="",
                    related=(),
                )
            )
    return tuple(out)


def _run_host(c: Check, view: State) -> tuple[tuple[Finding, ...], str]:
    """A host-scope check on one host's view: what it yielded, and whether it raised."""
    try:
        return tuple(c.fn(view, c.spec)), ""
    except Skip:
        return (), "skip"
    except Exception:
        return (), "error"


def _run_one(c: Check, view: State) -> list[Finding]:
    try:
        return list(c.fn(view, c.spec)) or [finding(c.spec, Status.PASS, "nothing found")]
    except Skip as s:
        return [finding(c.spec, Status.SKIPPED, str(s))]
    except UndeclaredRead as e:
        log.error("check %s %s", c.spec.id, e)
        return [finding(c.spec, Status.ERROR, f"check bug: {c.spec.id} {e}")]
    except Exception as e:
        log.debug("check %s raised", c.spec.id, exc_info=True)
        return [finding(c.spec, Status.ERROR, f"check failed: {e}")]


def run_checks(state: State, ids: Sequence[str] | None = None) -> tuple[Finding, ...]:
    """One run with nothing reused (headless commands, tests); a session derives with its
    own CheckRunner."""
    return CheckRunner().run(state, ids)


def with_findings(state: State, ids: Sequence[str] | None = None) -> State:
    return replace(state, findings=run_checks(state, ids))
