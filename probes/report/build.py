"""The incident report as data, then as Markdown and JSON: pure functions of State, the
session's acknowledgements and a little context (who asked, when).

`build()` gathers what the ticket needs (hosts, time range, tenants involved, findings with
evidence and fixes, the reachability matrix, resource peaks, the log lines behind findings and
the newest isolation signals, acknowledgements with notes); `as_json()` and `as_markdown()`
render it. Both renderings go through `scrub_all()` first (probes/report/scrub.py), so a
secret in any host string never reaches a file. Host strings are also made visible()
(no terminal escapes) in both outputs; Markdown table cells escape `|`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from probes.checks.report import not_observed
from probes.logs.model import LogEvent, parse_ref
from probes.model import SEVERITY_ORDER, STATUS_ORDER, Finding, State, Status
from probes.report.model import Ack
from probes.report.scrub import scrub_all
from probes.untrusted import visible

SCHEMA = 1
MAX_LOG_LINES = 200


@dataclass(frozen=True)
class RFinding:
    check_id: str
    title: str
    status: str
    severity: str
    host: str
    tenants: tuple[str, ...]
    summary: str
    why: str
    evidence: tuple[tuple[str, str], ...]
    fix: str
    acknowledged: bool = False
    ack_note: str = ""


@dataclass(frozen=True)
class RCell:
    src: str
    dst: str
    expected: str
    actual: str
    status: str


@dataclass(frozen=True)
class RMatrix:
    host: str
    sources: tuple[str, ...]
    destinations: tuple[str, ...]
    cells: tuple[RCell, ...]
    summary: str


@dataclass(frozen=True)
class RPeak:
    host: str
    workload: str
    metric: str
    peak: float
    baseline: float
    at: float


@dataclass(frozen=True)
class RLog:
    ref: str
    at: float
    host: str
    tenant: str
    severity: str
    tags: tuple[str, ...]
    message: str


@dataclass(frozen=True)
class RAck:
    check_id: str
    note: str
    at: float


@dataclass(frozen=True)
class RNotObserved:
    """A host where nothing was observed (probes/checks/report.py NotObserved): its findings
    are all errors or skips of that one cause, said once instead of once per check."""

    host: str
    cause: str
    tried: str
    probes: tuple[str, ...]
    other: tuple[tuple[str, tuple[str, ...]], ...]
    checks: str  # '42 in error (HOST-01..12, ...), 26 skipped (...)'


@dataclass(frozen=True)
class Report:
    schema: int
    generated_at: float
    source: str
    hosts: tuple[str, ...]
    time_from: float
    time_to: float
    tenants_involved: tuple[str, ...]
    counts: tuple[tuple[str, int], ...]
    findings: tuple[RFinding, ...]
    matrices: tuple[RMatrix, ...]
    peaks: tuple[RPeak, ...]
    logs: tuple[RLog, ...]
    acknowledgements: tuple[RAck, ...]
    passed: tuple[str, ...] = field(default=())  # check ids that passed (counted, not detailed)
    not_observed: tuple[RNotObserved, ...] = field(default=())  # (their findings are in `findings` too)


def _order(f: Finding) -> tuple[int, int, tuple[str, ...], str]:
    return (STATUS_ORDER.get(f.status, 9), -SEVERITY_ORDER.get(f.severity, 0), f.tenants, f.check_id)


def _sym(v: bool | None) -> str:
    return "?" if v is None else "reach" if v else "blocked"


def _matrices(state: State) -> tuple[RMatrix, ...]:
    out = []
    try:
        from probes.network.predict import matrix
    except ImportError:
        return ()
    for hs in state.hosts:
        if hs.topology is None:
            continue
        try:
            m = matrix(hs)
        except Exception:
            continue
        cells = tuple(
            RCell(
                c.src,
                c.dst,
                _sym(c.expected),
                _sym(c.actual) + ("" if c.observed is not None or c.predicted is None else " (predicted)"),
                c.status,
            )
            for c in m.cells
        )
        out.append(RMatrix(hs.host.name, m.sources, m.destinations, cells, m.summary()))
    return tuple(out)


def _peaks(state: State, limit: int = 20) -> tuple[RPeak, ...]:
    out: list[RPeak] = []
    for hs in state.hosts:
        snap = hs.samples
        if snap is None:
            continue
        for s in snap.spikes:
            out.append(RPeak(hs.host.name, s.workload, str(s.metric), s.peak, s.baseline, s.peak_at))
        if not snap.spikes:  # no spike: the busiest workloads by their CPU history
            for h in snap.history:
                if h.cpu:
                    out.append(RPeak(hs.host.name, h.workload, "cpu", max(h.cpu), 0.0, snap.at))
    out.sort(key=lambda p: -p.peak)
    return tuple(out[:limit])


def _logs(state: State, findings: Iterable[Finding]) -> tuple[RLog, ...]:
    wanted: set[tuple[str, int]] = set()
    for f in findings:
        for e in f.evidence:
            r = parse_ref(e.where)
            if r is not None:
                wanted.add(r)
    picked: dict[tuple[str, int], LogEvent] = {}
    for hs in state.hosts:
        if hs.logs is None:
            continue
        for ev in hs.logs.events:
            if (ev.host, ev.seq) in wanted:
                picked[(ev.host, ev.seq)] = ev
        for ev in hs.logs.signals:  # the newest isolation signals, even without a finding
            picked.setdefault((ev.host, ev.seq), ev)
    evs = sorted(picked.values(), key=lambda e: (e.at, e.host, e.seq))[-MAX_LOG_LINES:]
    return tuple(
        RLog(f"log:{e.host}#{e.seq}", e.at, e.host, e.tenant, e.severity, e.tags, e.message) for e in evs
    )


def build(state: State, acks: Mapping[str, Ack] | Iterable[Ack] = (), *, now: float | None = None) -> Report:
    ack_by = dict(acks) if isinstance(acks, Mapping) else {a.finding_key: a for a in acks}
    shown = sorted((f for f in state.findings if f.status != Status.PASS), key=_order)
    rf = tuple(
        RFinding(
            f.check_id,
            f.title,
            f.status.value,
            f.severity.value,
            f.host,
            f.tenants,
            f.summary,
            f.why,
            tuple((e.where, e.detail) for e in f.evidence),
            f.fix,
            f.key in ack_by,
            ack_by[f.key].note if f.key in ack_by else "",
        )
        for f in shown
    )
    involved = sorted({t for f in shown if f.status in (Status.FAIL, Status.WARN) for t in f.tenants})
    times = [t for t in [state.taken_at, *(h.refreshed_at for h in state.hosts)] if t]
    for hs in state.hosts:
        if hs.logs is not None:
            times += [e.at for e in hs.logs.events if e.at]
    counts: dict[str, int] = {}
    for f in state.findings:
        counts[f.status.value] = counts.get(f.status.value, 0) + 1
    return Report(
        schema=SCHEMA,
        generated_at=now if now is not None else time.time(),
        source=state.source,
        hosts=tuple(h.host.name for h in state.hosts),
        time_from=min(times, default=0.0),
        time_to=max(times, default=0.0),
        tenants_involved=tuple(involved),
        counts=tuple(sorted(counts.items(), key=lambda kv: STATUS_ORDER.get(Status(kv[0]), 9))),
        findings=rf,
        matrices=_matrices(state),
        peaks=_peaks(state),
        logs=_logs(state, shown),
        acknowledgements=tuple(
            RAck(a.check_id, a.note, a.at) for a in sorted(ack_by.values(), key=lambda a: a.at)
        ),
        passed=tuple(sorted({f.check_id for f in state.findings if f.status == Status.PASS})),
        not_observed=tuple(
            RNotObserved(n.host, n.cause, n.tried, n.probes, n.other, n.checks_text())
            for n, _ in not_observed(state)
        ),
    )


def _clean(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data with every string visible() and scrubbed."""

    def vis(v: object) -> object:
        if isinstance(v, str):
            return visible(v)
        if isinstance(v, dict):
            return {k: vis(x) for k, x in v.items()}
        if isinstance(v, list):
            return [vis(x) for x in v]
        return v

    data = scrub_all(vis(msgspec.to_builtins(report)))
    assert isinstance(data, dict)
    return data


def as_json(report: Report) -> bytes:
    return msgspec.json.format(msgspec.json.encode(_clean(report)), indent=1) + b"\n"


def _ts(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t)) if t else "—"


def _cell(s: str) -> str:
    return re.sub(r"\s+", " ", s).replace("|", "\\|") or "—"


def _fence(s: str) -> str:
    """A code block that the content cannot close."""
    ticks = "```"
    while ticks in s:
        ticks += "`"
    return f"{ticks}\n{s}\n{ticks}"


def as_markdown(report: Report) -> str:
    r = _clean(report)
    out: list[str] = []
    add = out.append
    add(f"# Incident report: {', '.join(r['hosts']) or 'no host'}")
    add("")
    add(f"- Generated: {_ts(r['generated_at'])} by tenantscope (source: {_cell(r['source'])})")
    add(f"- Hosts: {', '.join(r['hosts']) or '—'}")
    add(f"- Time range: {_ts(r['time_from'])} to {_ts(r['time_to'])}")
    add(f"- Tenants involved: {', '.join(r['tenants_involved']) or 'none'}")
    add(f"- Results: {', '.join(f'{k} {v}' for k, v in r['counts']) or 'none'}")
    add("")
    unseen = {n["host"] for n in r["not_observed"]}
    if unseen:  # one cause said once, not once per check (the JSON has each finding)
        add("## Not observed")
        add("")
        for n in r["not_observed"]:
            add(f"- **{_cell(n['host'])}**: {_cell(n['cause'])}")
            probes = f", for the probes {', '.join(n['probes'])}" if n["probes"] else ""
            add(f"  - tried: {_cell(n['tried'] + probes)}")
            for message, probes in n["other"]:
                add(f"  - also failed ({_cell(', '.join(probes))}): {_cell(message)}")
            if n["checks"]:
                add(f"  - checks that could not look at it: {_cell(n['checks'])}")
        add("")
    every = bool(unseen) and unseen == set(r["hosts"])
    findings = [f for f in r["findings"] if not (f["host"] in unseen or (every and not f["host"]))]
    add("## Findings")
    add("")
    if not findings:
        add("No failing, warning or erroring check" + (" on a host observed." if unseen else "."))
    else:
        add("| Status | Severity | Check | Host | Tenants | Summary | Ack |")
        add("|---|---|---|---|---|---|---|")
        for f in findings:
            add(
                f"| {f['status'].upper()} | {f['severity']} | {_cell(f['check_id'])} | {_cell(f['host'])} | "
                f"{_cell(', '.join(f['tenants']))} | {_cell(f['summary'])} | {'yes' if f['acknowledged'] else ''} |"
            )
        for f in findings:
            add("")
            add(f"### {f['check_id']}: {_cell(f['title'])} ({f['status'].upper()}, {f['severity']})")
            add("")
            add(f"{_cell(f['summary'])}")
            add("")
            add(f"**Why it matters.** {_cell(f['why'])}")
            add("")
            add("**Evidence.**")
            add("")
            for where, detail in f["evidence"] or [["—", ""]]:
                add(
                    f"- {_cell(where)}"
                    + (f": `{_cell(detail)}`" if detail and "`" not in detail and "\n" not in detail else "")
                )
                if detail and ("`" in detail or "\n" in detail):
                    add("")
                    add(_fence(detail))
            add("")
            add("**Fix.**")
            add("")
            add(_fence(f["fix"] or "(no fix given)"))
            if f["acknowledged"]:
                add("")
                add(f"**Acknowledged:** {_cell(f['ack_note']) if f['ack_note'] else '(no note)'}")
    add("")
    add("## Reachability")
    for m in r["matrices"]:
        add("")
        add(f"Host {m['host']}: {m['summary']}. Cell: expected / actual.")
        add("")
        add("| from \\ to | " + " | ".join(_cell(d) for d in m["destinations"]) + " |")
        add("|---" * (len(m["destinations"]) + 1) + "|")
        cells = {(c["src"], c["dst"]): c for c in m["cells"]}
        for s in m["sources"]:
            row = []
            for d in m["destinations"]:
                c = cells.get((s, d))
                row.append(
                    ""
                    if c is None
                    else f"{c['expected']} / {c['actual']}" + (" **WRONG**" if c["status"] == "wrong" else "")
                )
            add(f"| {_cell(s)} | " + " | ".join(row) + " |")
    if not r["matrices"]:
        add("")
        add("No topology observed.")
    add("")
    add("## Resource peaks")
    add("")
    if r["peaks"]:
        add("| Host | Workload | Metric | Peak | Baseline | At |")
        add("|---|---|---|---|---|---|")
        for p in r["peaks"]:
            add(
                f"| {_cell(p['host'])} | {_cell(p['workload'])} | {p['metric']} | {p['peak']:.1f} | "
                f"{p['baseline']:.1f} | {_ts(p['at'])} |"
            )
    else:
        add("No resource samples.")
    add("")
    add("## Log lines")
    add("")
    if r["logs"]:
        add(
            _fence(
                "\n".join(
                    f"{_ts(e['at'])} {e['host']} {e['severity']:<7} {e['ref']}"
                    + (f" [{e['tenant']}]" if e["tenant"] else "")
                    + f" {e['message']}"
                    for e in r["logs"]
                )
            )
        )
    else:
        add("No log line behind a finding.")
    add("")
    add("## Acknowledgements")
    add("")
    if r["acknowledgements"]:
        for a in r["acknowledgements"]:
            add(f"- {_ts(a['at'])} {a['check_id']}: {_cell(a['note']) if a['note'] else '(no note)'}")
    else:
        add("None.")
    if r["passed"]:
        add("")
        add(f"Passed checks: {', '.join(r['passed'])}.")
    add("")
    return "\n".join(out)


def file_stem(report: Report) -> str:
    """tenantscope-report-HOST-YYYYmmdd-HHMMSS (the first host; "+N" for a fleet)."""
    host = report.hosts[0] if report.hosts else "nohost"
    host = re.sub(r"[^A-Za-z0-9_.-]+", "_", host) + (
        f"+{len(report.hosts) - 1}" if len(report.hosts) > 1 else ""
    )
    return f"tenantscope-report-{host}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(report.generated_at))}"
