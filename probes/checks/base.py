"""The check registry and its runner: every check is a small pure function of State,
registered with its id and the State fields it reads.

A check yields the Findings it found (any status). The runner adds what the check did not
say: no findings at all becomes one PASS result, `Skip(reason)` becomes SKIPPED, and any other
exception becomes ERROR with its message; one check never stops the others.

`reads=` is what makes reuse safe: a CheckRunner (one per session) hands each check a view
of the State in which reading an undeclared field raises UndeclaredRead, and re-runs a check
only when one of its declared fields changed since its last run. Most polls change only the
resource samples, so most checks are not run again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar, cast

from probes.model import Evidence, Finding, HostState, Severity, State, Status

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


@dataclass(frozen=True)
class Check:
    spec: CheckSpec
    fn: CheckFn
    reads: frozenset[str] = READABLE


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
) -> Callable[[CheckFn], CheckFn]:
    """Register a check. `reads`: the HostState fields (workloads, facts, samples, topology,
    logs, reach, connections, probe_errors) and State fields (tenants, source) it reads,
    directly or through helpers (per_host reads workloads/connections/probe_errors for
    libvirt=True, facts/probe_errors/source for facts=True)."""
    unknown = sorted(set(reads) - READABLE)
    if unknown:
        raise ValueError(
            f"check {id}: reads={unknown} are not State fields a check may read ({sorted(READABLE)})"
        )

    def register(fn: CheckFn) -> CheckFn:
        if id in REGISTRY:
            raise ValueError(f"duplicate check id {id}")
        REGISTRY[id] = Check(CheckSpec(id, area, title, why, severity, fix), fn, frozenset(reads))
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


def _view(state: State, reads: frozenset[str]) -> State:
    hosts = []
    for hs in state.hosts:
        hv = object.__new__(_HostView)
        hv.__dict__.update(hs.__dict__)
        object.__setattr__(hv, "_reads", reads)
        object.__setattr__(hv, "_memo", {})
        hosts.append(hv)
    sv = object.__new__(_StateView)
    sv.__dict__.update(state.__dict__)
    object.__setattr__(sv, "hosts", tuple(hosts))
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
    inputs: tuple[object, ...]  # the interned columns of its reads when it ran
    found: tuple[Finding, ...]


class CheckRunner:
    """Runs the catalog over successive States and reuses a check's last result when none
    of its declared fields changed. Owned by whoever derives findings (one per session, so
    two sessions in one process share nothing); a runner holds the last results only.

    Change detection is per field: each run builds one column per field (the values of all
    hosts) and compares it once with the previous run's; an equal column is replaced by the
    previous object, so each check compares its inputs by identity."""

    def __init__(self, catalog: dict[str, Check] | None = None) -> None:
        self._catalog = catalog if catalog is not None else load_catalog()
        self._columns: dict[str, tuple[object, ...]] = {}
        self._last: dict[str, _Last] = {}
        self.ran: tuple[str, ...] = ()  # ids run (not reused) by the last run()

    def _column(self, state: State, name: str) -> tuple[object, ...]:
        if name == "hosts":
            col: tuple[object, ...] = tuple(hs.host for hs in state.hosts)
        elif name in STATE_FIELDS:
            col = (getattr(state, name),)
        else:
            col = tuple(getattr(hs, name) for hs in state.hosts)
        old = self._columns.get(name)
        if old is not None and (old is col or old == col):
            return old
        self._columns[name] = col
        return col

    def run(self, state: State, ids: Sequence[str] | None = None) -> tuple[Finding, ...]:
        cols: dict[str, tuple[object, ...]] = {}
        views: dict[frozenset[str], State] = {}
        out: list[Finding] = []
        ran: list[str] = []
        for cid in sorted(self._catalog) if not ids else ids:
            c = self._catalog[cid]
            names = ("hosts", *sorted(c.reads))
            for n in names:
                if n not in cols:
                    cols[n] = self._column(state, n)
            inputs = tuple(cols[n] for n in names)
            last = self._last.get(cid)
            if last is not None and last.fn is c.fn and all(a is b for a, b in zip(last.inputs, inputs)):
                out.extend(last.found)
                continue
            view = views.get(c.reads)
            if view is None:
                view = views[c.reads] = _view(state, c.reads)
            found = tuple(_run_one(c, view))
            self._last[cid] = _Last(c.fn, inputs, found)
            ran.append(cid)
            out.extend(found)
        self.ran = tuple(ran)
        return tuple(out)


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
