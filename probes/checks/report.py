"""Headless renderings of check results: text, JSON (with its JSON Schema), the Prometheus
node_exporter textfile format, the markdown catalog table; and the exit code.

Shared by `tenantscope check`, the TUI's export and the README's catalog table (a test keeps
that table equal to `catalog_markdown()`). Every host-supplied string in text and Prometheus
output goes through probes.untrusted.visible(); JSON carries raw strings, escaped by JSON.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from probes.checks.base import Check, nothing_observed
from probes.drift.model import Drift
from probes.model import (
    SEVERITY_ORDER,
    STATUS_ORDER,
    ConnState,
    Finding,
    HostKind,
    HostState,
    ProbeError,
    Severity,
    State,
    Status,
)
from probes.untrusted import visible

JSON_SCHEMA_VERSION = 1
JSON_SCHEMA_ID = "https://tenantscope.invalid/schema/check-report-v1.json"

AREA_ORDER = ("host", "vm", "xen", "network", "container", "runtime", "resources", "logs", "software")
AREA_TITLE = {
    "host": "Host",
    "vm": "VMs",
    "xen": "Xen",
    "network": "Network",
    "container": "Containers",
    "runtime": "Container runtimes",
    "resources": "Resources",
    "logs": "Logs",
    "software": "Software",
}
STATUS_WORD = {
    Status.PASS: "PASS",
    Status.WARN: "WARN",
    Status.FAIL: "FAIL",
    Status.ERROR: "ERROR",
    Status.SKIPPED: "SKIP",
}
MAX_EVIDENCE_LINES = 6


def _area_key(area: str) -> tuple[int, str]:
    return (AREA_ORDER.index(area) if area in AREA_ORDER else len(AREA_ORDER), area)


# ---------------------------------------------------------------- catalog


def catalog_text(catalog: dict[str, Check]) -> str:
    lines = [
        f"{c.spec.id:8} {c.spec.area:10} {c.spec.severity:8} {c.spec.title}"
        for c in sorted(catalog.values(), key=lambda c: (_area_key(c.spec.area), c.spec.id))
    ]
    return "\n".join(lines) + "\n"


def catalog_markdown(catalog: dict[str, Check]) -> str:
    """The README's catalog table (between the catalog markers), generated from the registry."""

    def cell(s: str) -> str:
        return (
            s.replace("&", "&amp;")
            .replace("<", "&lt;")
            .replace(">", "&gt;")
            .replace("|", "\\|")
            .replace("\n", " ")
        )

    rows = ["| id | area | severity | check | why it matters |", "|---|---|---|---|---|"]
    for c in sorted(catalog.values(), key=lambda c: (_area_key(c.spec.area), _id_key(c.spec.id))):
        s = c.spec
        rows.append(f"| `{s.id}` | {s.area} | {s.severity} | {cell(s.title)} | {cell(s.why)} |")
    return "\n".join(rows) + "\n"


def _id_key(cid: str) -> tuple[str, int]:
    prefix, _, num = cid.rpartition("-")
    return (prefix, int(num) if num.isdigit() else 0)


# ---------------------------------------------------------------- text


def normalized(state: State) -> State:
    """Results of a one-host run that name no host (the runner's plain PASS, some area checks)
    are about that host: name it, so JSON and Prometheus series always carry a host."""
    if len(state.hosts) != 1 or all(f.host for f in state.findings):
        return state
    from dataclasses import replace

    name = state.hosts[0].host.name
    return replace(state, findings=tuple(f if f.host else replace(f, host=name) for f in state.findings))


def _sorted(findings: tuple[Finding, ...]) -> list[Finding]:
    return sorted(
        findings,
        key=lambda f: (_area_key(f.area), _id_key(f.check_id), f.host, STATUS_ORDER.get(f.status, 9)),
    )


def summary_counts(state: State) -> dict[str, int]:
    c = Counter(f.status for f in state.findings)
    return {s.value: c.get(s, 0) for s in STATUS_ORDER}


def as_text(state: State, *, verbose: bool = False) -> str:
    """Grouped by area; each result one line; FAIL/WARN/ERROR also get evidence and the fix."""
    v = visible
    state = normalized(state)
    when = datetime.fromtimestamp(state.taken_at or time.time(), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    hosts = (
        ", ".join(
            v(h.host.name)
            + (f" (libvirt's view: {v(h.host.libvirt_uri or '')})" if h.host.kind == "libvirt" else "")
            for h in state.hosts
        )
        or "(none)"
    )
    out = [
        f"tenantscope check: {hosts} at {when}"
        + (" (demo fleet: libvirt test driver, simulated hypervisor)" if state.source == "demo" else "")
    ]
    multi = len(state.hosts) > 1
    area = None
    new = set(state.drift.new_findings()) if state.drift is not None else set()
    unseen = not_observed(state)
    blind = {n.host for n, _ in unseen}
    every = bool(blind) and len(blind) == len(state.hosts)
    for n, _ in unseen:  # one block per host never reached, not one ERROR per check
        out.extend(_not_observed(n))
    for f in _sorted(tuple(f for f in state.findings if not (f.host in blind or (every and not f.host)))):
        if f.area != area:
            area = f.area
            out.append("")
            out.append(f"== {AREA_TITLE.get(area, area.title())} ==")
        tenants = f"  [{', '.join(v(t) for t in f.tenants)}]" if f.tenants else ""
        on = f" @{v(f.host)}" if multi and f.host else ""
        sev = f" ({f.severity})" if f.status in (Status.FAIL, Status.WARN) else ""
        mark = " NEW" if f.key in new else ""  # new since the baseline
        out.append(f"{STATUS_WORD[f.status]:5} {f.check_id:8}{on}{mark} {v(f.summary)}{sev}{tenants}")
        if f.status in (Status.FAIL, Status.WARN, Status.ERROR) or verbose:
            if verbose:
                out.append(f"      check: {v(f.title)}")
                out.append(f"      why: {v(f.why)}")
            for e in f.evidence[:MAX_EVIDENCE_LINES]:
                out.append(f"      evidence: {v(e.where)}" + (f": {v(e.detail)}" if e.detail else ""))
            if len(f.evidence) > MAX_EVIDENCE_LINES:
                out.append(
                    f"      evidence: ... {len(f.evidence) - MAX_EVIDENCE_LINES} more (see --format json)"
                )
            if f.fix and f.status != Status.ERROR:  # a fix of several commands: one a line
                first, *more = f.fix.split("\n")
                out.append(f"      fix: {v(first)}")
                out.extend(f"           {v(line)}" for line in more)
    errors = [(h.host.name, e) for h in state.hosts if h.host.name not in blind for e in h.probe_errors]
    if errors:
        out.append("")
        out.append("== Probe errors ==")
        for (host, message), probes in _by_message(errors).items():
            what = f"probe {v(probes[0])}" if len(probes) == 1 else f"probes {', '.join(map(v, probes))}"
            out.append(f"ERROR {what} on {v(host)}: {v(message)}")
    if state.drift is not None:  # --baseline: what changed since it
        from probes.drift.text import drift_text

        out.append("")
        out.append("== " + drift_text(state.drift).rstrip())
    c = summary_counts(state)
    out.append("")
    out.append("summary: " + ", ".join(f"{n} {k}" for k, n in c.items()))
    return "\n".join(out) + "\n"


def _by_message(errors: list[tuple[str, ProbeError]]) -> dict[tuple[str, str], list[str]]:
    """Probe errors by (host, message): one line per distinct failure, naming its probes."""
    out: dict[tuple[str, str], list[str]] = {}
    for host, pe in errors:
        out.setdefault((host, pe.message), []).append(pe.probe)
    return out


@dataclass(frozen=True)
class NotObserved:
    """Why nothing was observed on a host, said once: the cause, what was tried, the probes
    that failed on that cause, every other distinct failure, and the check ids that could not
    look at it (by status). Raw host text: the renderers make it visible()."""

    host: str
    cause: str
    tried: str
    probes: tuple[str, ...]
    other: tuple[tuple[str, tuple[str, ...]], ...]  # (message, its probes)
    checks: tuple[tuple[str, tuple[str, ...]], ...]  # (status, check ids)

    def checks_text(self) -> str:
        """'42 in error (HOST-01..12, ...), 26 skipped (...)' (ids as ranges)."""
        return ", ".join(
            f"{len(ids)} {'in error' if st == Status.ERROR else st} ({_id_ranges(list(ids))})"
            for st, ids in self.checks
        )


def not_observed(state: State) -> list[tuple[NotObserved, list[Finding]]]:
    """Each host where nothing was observed, with its findings (and the fleet-wide ones when
    no host was observed)."""
    blind = [h for h in state.hosts if nothing_observed(h)]
    every = bool(blind) and len(blind) == len(state.hosts)
    return [
        (
            _why_not_observed(
                h, fs := [f for f in state.findings if f.host == h.host.name or (every and not f.host)]
            ),
            fs,
        )
        for h in blind
    ]


def _why_not_observed(hs: HostState, findings: list[Finding]) -> NotObserved:
    name = hs.host.name
    cause = nothing_observed(hs)
    ssh, lv = hs.connection("ssh"), hs.connection("libvirt")
    if ssh is not None and ssh.state != ConnState.UP and ssh.state != ConnState.CONNECTING:
        cause = f"{hs.host.address}: {ssh.state}: {ssh.detail}"
    elif hs.host.kind == HostKind.LIBVIRT and lv is not None and lv.state != ConnState.UP:
        cause = lv.detail.split("retrying: ", 1)[-1]  # (the console's "since T, retrying")
    if hs.host.kind == HostKind.SSH:
        tried = f"SSH to {hs.host.address}"
    elif hs.host.kind == HostKind.LIBVIRT:
        tried = f"libvirt at {hs.host.libvirt_uri or ''}"
    else:
        tried = f"this machine ({hs.host.address or name})"
    same: list[str] = []
    other: list[tuple[str, tuple[str, ...]]] = []
    for (_, message), probes in _by_message([(name, pe) for pe in hs.probe_errors]).items():
        if cause in message or message.split(": ", 1)[-1] in cause:  # ("libvirt: <cause's end>")
            same.extend(probes)
        else:
            other.append((message, tuple(probes)))
    by_status: dict[Status, list[str]] = {}
    for f in sorted(findings, key=lambda f: (_area_key(f.area), _id_key(f.check_id))):
        ids = by_status.setdefault(f.status, [])
        if f.check_id not in ids:
            ids.append(f.check_id)
    checks = tuple(
        (st.value, tuple(ids))
        for st, ids in sorted(by_status.items(), key=lambda kv: STATUS_ORDER.get(kv[0], 9))
    )
    return NotObserved(name, cause, tried, tuple(same), tuple(other), checks)


def _not_observed(n: NotObserved) -> list[str]:
    """A host where nothing was observed in the text report: its cause once, what was tried,
    each other distinct failure once, and which checks could not look at it (each is an ERROR
    in JSON and Prometheus: machines get one result per check)."""
    v = visible
    out = ["", f"== Not observed: {v(n.host)} ==", f"ERROR {v(n.cause)}"]
    out.append(
        f"      tried: {v(n.tried)}" + (f", for the probes {', '.join(map(v, n.probes))}" if n.probes else "")
    )
    for message, probes in n.other:
        out.append(f"ERROR probe{'s' if len(probes) > 1 else ''} {', '.join(map(v, probes))}: {v(message)}")
    if n.checks:
        out.append(f"      checks that could not look at it: {v(n.checks_text())}; --format json has each")
    return out


def _id_ranges(ids: list[str]) -> str:
    """HOST-01..12, VM-01..14, NET-08: check ids (in the report's order: by area, then id)
    with consecutive numbers as one range."""
    runs: list[tuple[str, int, int, int]] = []  # prefix, first, last, digits
    for cid in ids:
        prefix, _, num = cid.rpartition("-")
        if not num.isdigit():
            runs.append((cid, -1, -1, 0))
            continue
        n = int(num)
        if runs and runs[-1][0] == prefix and runs[-1][2] == n - 1:
            runs[-1] = (prefix, runs[-1][1], n, runs[-1][3])
        else:
            runs.append((prefix, n, n, len(num)))
    out = []
    for prefix, a, b, w in runs:
        if a < 0:
            out.append(prefix)
        elif a == b:
            out.append(f"{prefix}-{a:0{w}d}")
        else:
            out.append(f"{prefix}-{a:0{w}d}..{b:0{w}d}")
    return ", ".join(out)


# ---------------------------------------------------------------- JSON


@dataclass(frozen=True)
class HostEntry:
    name: str
    kind: HostKind
    address: str
    probe_errors: tuple[ProbeError, ...] = ()
    not_observed: str = ""  # why nothing was observed on this host ("" when something was)


@dataclass(frozen=True)
class Summary:
    fail: int = 0
    error: int = 0
    warn: int = 0
    skipped: int = 0
    # `pass` is a keyword; stored as passed, written as "pass"
    passed: int = 0


@dataclass(frozen=True)
class CheckReport:
    """The document `tenantscope check --format json` writes (see json_schema())."""

    schema_version: int
    generated_at: str  # RFC 3339, UTC
    generated_at_unix: float
    source: str  # live, demo, replay of FILE
    hosts: tuple[HostEntry, ...]
    summary: Summary
    results: tuple[Finding, ...]
    drift: Drift | None = None  # with --baseline: what changed since it (probes/drift)


def report_of(state: State) -> CheckReport:
    state = normalized(state)
    at = state.taken_at or time.time()
    c = summary_counts(state)
    unseen = {n.host: n for n, _ in not_observed(state)}
    return CheckReport(
        schema_version=JSON_SCHEMA_VERSION,
        generated_at=datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        generated_at_unix=round(at, 3),
        source=state.source,
        hosts=tuple(
            HostEntry(h.host.name, h.host.kind, h.host.address, h.probe_errors, n.cause if n else "")
            for h in state.hosts
            for n in [unseen.get(h.host.name)]
        ),
        summary=Summary(c["fail"], c["error"], c["warn"], c["skipped"], c["pass"]),
        results=tuple(_sorted(state.findings)),
        drift=state.drift,
    )


def as_json(state: State) -> str:
    import msgspec

    data = msgspec.json.encode(report_of(state))
    return msgspec.json.format(data, indent=1).decode() + "\n"


def json_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of as_json()'s document, generated from the types by msgspec."""
    import msgspec

    schema = msgspec.json.schema(CheckReport)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = JSON_SCHEMA_ID
    schema["title"] = "tenantscope check report"
    return schema


def load_report(text: str | bytes) -> CheckReport:
    """Read a JSON report back (typed); raises msgspec.ValidationError on a bad document."""
    import msgspec

    return msgspec.json.decode(text, type=CheckReport)


# ---------------------------------------------------------------- Prometheus


def _label(value: str) -> str:
    """A Prometheus label value: visible() first, then the exposition format's escapes."""
    return visible(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**kv: str) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in kv.items()) + "}"


def as_prometheus(state: State) -> str:
    """node_exporter textfile format: per check and host one `tenantscope_check_status` series
    (value 1) carrying the worst status and its severity as labels, plus result counts. With a
    baseline (State.drift), `tenantscope_check_new` counts the findings new since it per check.

    Alert with e.g. `tenantscope_check_status{status="fail"} == 1` (probes/alerting has rules).
    """
    state = normalized(state)
    per: dict[tuple[str, str], list[Finding]] = {}
    for f in state.findings:
        per.setdefault((f.host, f.check_id), []).append(f)
    out = [
        "# HELP tenantscope_check_status Worst result of a tenantscope isolation check on a host "
        "(1; status and severity are labels).",
        "# TYPE tenantscope_check_status gauge",
    ]
    counts: list[str] = []
    for (host, cid), fs in sorted(per.items(), key=lambda kv: (kv[0][0], _id_key(kv[0][1]))):
        worst = min(fs, key=lambda f: STATUS_ORDER.get(f.status, 9)).status
        sev = max(
            (f.severity for f in fs if f.status == worst),
            key=lambda s: SEVERITY_ORDER[s],
            default=Severity.INFO,
        )
        out.append(
            f"tenantscope_check_status{_labels(host=host, check=cid, area=fs[0].area, status=worst, severity=sev)} 1"
        )
        c = Counter(f.status for f in fs)
        for st in (Status.FAIL, Status.WARN, Status.ERROR):
            counts.append(
                f"tenantscope_check_results{_labels(host=host, check=cid, status=st)} {c.get(st, 0)}"
            )
    out += [
        "# HELP tenantscope_check_results Number of results of a check on a host with this status.",
        "# TYPE tenantscope_check_results gauge",
        *counts,
    ]
    out += [
        "# HELP tenantscope_probe_errors Probes that failed on a host in this run.",
        "# TYPE tenantscope_probe_errors gauge",
    ]
    out += [f"tenantscope_probe_errors{_labels(host=h.host.name)} {len(h.probe_errors)}" for h in state.hosts]
    out += [
        "# HELP tenantscope_check_run_timestamp_seconds When the checks ran (unix time).",
        "# TYPE tenantscope_check_run_timestamp_seconds gauge",
        f"tenantscope_check_run_timestamp_seconds {state.taken_at or time.time():.3f}",
    ]
    if state.drift is not None:
        new_keys = set(state.drift.new_findings())
        new = [f for f in state.findings if f.key in new_keys]
        baseline_at = state.drift.baseline_at
        per_new = Counter((f.host, f.check_id, str(f.severity)) for f in new)
        out += [
            "# HELP tenantscope_check_new Findings of a check on a host that are new since the baseline.",
            "# TYPE tenantscope_check_new gauge",
        ]
        out += [
            f"tenantscope_check_new{_labels(host=h, check=cid, severity=sev)} {n}"
            for (h, cid, sev), n in sorted(per_new.items(), key=lambda kv: (kv[0][0], _id_key(kv[0][1])))
        ]
        out += [
            "# HELP tenantscope_baseline_timestamp_seconds When the baseline was observed (unix time).",
            "# TYPE tenantscope_baseline_timestamp_seconds gauge",
            f"tenantscope_baseline_timestamp_seconds {baseline_at:.3f}",
        ]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- exit code


def exit_code(state: State, fail_on: str = "any") -> int:
    """0 all pass (warnings and skips included), 1 any fail. With `fail_on="new"` (and a
    baseline), 1 only for a fail that is new since the baseline: a cron job alerts on drift,
    not on accepted debt. The caller returns 2 when the run itself failed (no host reachable,
    bad arguments)."""
    fails = [f for f in state.findings if f.status == Status.FAIL]
    if fail_on == "new" and state.drift is not None:
        new = set(state.drift.new_findings())
        fails = [f for f in fails if f.key in new]
    return 1 if fails else 0


# ---------------------------------------------------------------- the README's table

README_START = "<!-- catalog:start -->"
README_END = "<!-- catalog:end -->"


def readme_block(catalog: dict[str, Check]) -> str:
    """What README.md holds between the catalog markers (a test keeps them equal)."""
    return "\n" + catalog_markdown(catalog) + "\n"


def update_readme(path: str) -> bool:
    """Rewrite the table between the markers of README.md (markers appended when absent);
    True when the file changed. Nothing outside the markers is touched."""
    from probes.checks.base import load_catalog

    with open(path, encoding="utf-8") as f:
        text = f.read()
    block = readme_block(load_catalog())
    if README_START in text and README_END in text:
        head, rest = text.split(README_START, 1)
        _, tail = rest.split(README_END, 1)
        new = head + README_START + block + README_END + tail
    else:
        new = text.rstrip("\n") + "\n\n" + README_START + block + README_END + "\n"
    if new != text:
        with open(path, "w", encoding="utf-8") as f:
            f.write(new)
    return new != text


if __name__ == "__main__":  # python -m probes.checks.report README.md
    import sys

    changed = update_readme(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    print("README.md catalog table " + ("updated" if changed else "already up to date"))
