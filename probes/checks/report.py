"""Headless renderings of check results: text, JSON, Prometheus textfile; and the exit code.

Shared by `tenantscope check` and the TUI's export; host text goes through visible().
"""

from __future__ import annotations

import json
import time

from probes.checks.base import Check
from probes.model import State, Status
from probes.untrusted import visible

JSON_SCHEMA_VERSION = 1


def catalog_text(catalog: dict[str, Check]) -> str:
    lines = [f"{c.spec.id:8} {c.spec.area:10} {c.spec.severity:8} {c.spec.title}" for c in
             (catalog[k] for k in sorted(catalog))]
    return "\n".join(lines) + "\n"


def as_text(state: State) -> str:
    out: list[str] = []
    for f in state.findings:
        where = f" [{', '.join(f.tenants)}]" if f.tenants else ""
        out.append(f"{f.status.upper():7} {f.check_id:8} {visible(f.summary)}{visible(where)}")
    for h in state.hosts:
        for e in h.probe_errors:
            out.append(f"ERROR   probe {e.probe} on {visible(h.host.name)}: {visible(e.message)}")
    return "\n".join(out) + "\n"


def as_json(state: State) -> str:
    import msgspec
    doc = {"schema_version": JSON_SCHEMA_VERSION, "generated_at": time.time(),
           "hosts": [h.host.name for h in state.hosts],
           "results": msgspec.to_builtins(state.findings)}
    return json.dumps(doc, indent=1) + "\n"


def as_prometheus(state: State) -> str:
    out = ["# HELP tenantscope_check_status 1 when the check result has this status",
           "# TYPE tenantscope_check_status gauge"]
    for f in state.findings:
        out.append(f'tenantscope_check_status{{check="{f.check_id}",status="{f.status}",'
                   f'severity="{f.severity}"}} 1')
    return "\n".join(out) + "\n"


def exit_code(state: State) -> int:
    if any(f.status == Status.FAIL for f in state.findings):
        return 1
    return 0
