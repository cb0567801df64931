"""The check registry: every check is a small pure function of State, registered with its id.

A check yields the Findings it found (any status). The runner adds what the check did not
say: no findings at all becomes one PASS result, `Skip(reason)` becomes SKIPPED, and any other
exception becomes ERROR with its message; one check never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from probes.model import Evidence, Finding, Severity, State, Status

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Check:
    spec: CheckSpec
    fn: CheckFn


REGISTRY: dict[str, Check] = {}


def check(
    id: str, area: str, title: str, why: str, severity: Severity = Severity.MEDIUM, fix: str = ""
) -> Callable[[CheckFn], CheckFn]:
    def register(fn: CheckFn) -> CheckFn:
        if id in REGISTRY:
            raise ValueError(f"duplicate check id {id}")
        REGISTRY[id] = Check(CheckSpec(id, area, title, why, severity, fix), fn)
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


# The modules whose checks read HostState.samples. The resources probe changes samples on
# every poll while nothing else changed; then only these checks run again and the others'
# last results are reused (a check must be a pure function of State; one that reads
# samples outside these modules must be listed here).
READS_SAMPLES = frozenset({"probes.checks.resources", "probes.checks.vm", "probes.checks.container"})
_LAST: list[tuple[object, dict[str, tuple[CheckFn, list[Finding]]]]] = []  # (inputs but samples, per check)


def _key_without_samples(state: State, ids: Sequence[str] | None) -> object:
    return (
        tuple(replace(h, samples=None, refreshed_at=0.0) for h in state.hosts),
        state.tenants,
        state.source,
        tuple(ids) if ids else None,
    )


def run_checks(state: State, ids: Sequence[str] | None = None) -> tuple[Finding, ...]:
    catalog = load_catalog()
    key = _key_without_samples(state, ids)
    reuse = _LAST[0][1] if _LAST and _LAST[0][0] == key else {}
    per: dict[str, tuple[CheckFn, list[Finding]]] = {}
    out: list[Finding] = []
    for cid in sorted(catalog) if not ids else ids:
        c = catalog[cid]
        if cid in reuse and reuse[cid][0] is c.fn and c.fn.__module__ not in READS_SAMPLES:
            found = reuse[cid][1]
        else:
            try:
                found = list(c.fn(state, c.spec)) or [finding(c.spec, Status.PASS, "nothing found")]
            except Skip as s:
                found = [finding(c.spec, Status.SKIPPED, str(s))]
            except Exception as e:
                log.debug("check %s raised", cid, exc_info=True)
                found = [finding(c.spec, Status.ERROR, f"check failed: {e}")]
        per[cid] = (c.fn, found)
        out.extend(found)
    _LAST[:] = [(key, per)]
    return tuple(out)


def with_findings(state: State, ids: Sequence[str] | None = None) -> State:
    return replace(state, findings=run_checks(state, ids))
