"""Drift as text, for `tenantscope diff` and the end of `tenantscope check --baseline`."""

from __future__ import annotations

from datetime import UTC, datetime

from probes.drift.model import Area, Drift
from probes.untrusted import visible

_ORDER = (Area.FINDINGS, Area.WORKLOADS, Area.TOPOLOGY, Area.LIMITS, Area.LOGS)


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if at else "an unknown time"


def drift_text(drift: Drift) -> str:
    """Grouped by area, newest first within each; one change a line (host text made visible)."""
    head = f"changes since {visible(drift.baseline or 'the baseline')} ({_when(drift.baseline_at)})"
    out = [head + f": {len(drift.new_findings())} new finding(s), {len(drift.cleared)} cleared"]
    if not drift.changes:
        out.append("  nothing changed")
    for area in _ORDER:
        changes = [c for c in drift.newest_first() if c.area is area]
        if not changes:
            continue
        out.append(f"{area}:")
        out += [
            f"  {visible(c.host)}: {visible(c.summary)}" if c.host else f"  {visible(c.summary)}"
            for c in changes
        ]
    return "\n".join(out) + "\n"
