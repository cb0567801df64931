"""Silencing accepted warnings per tenant: the config's `[checks] silence` table.

```toml
[checks]
silence = { "VM-13" = ["acme", "globex"] }   # check id -> tenants whose WARN results are accepted
```

Only warnings can be silenced (a FAIL is never hidden), and a silenced result is not dropped:
it becomes a PASS that says it was silenced and by which file, so the decision stays visible.
This is a policy of the user applied after the checks ran, so the checks stay pure functions
of State.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from probes.model import Finding, Severity, Status

Silences = tuple[tuple[str, frozenset[str]], ...]


class SilenceError(ValueError):
    """A bad `[checks]` table; the message names the file and key."""


def silences_from(config: Any, catalog_ids: Sequence[str] | None = None) -> Silences:
    """Read and validate `[checks] silence` from a probes.config.Config (or None)."""
    if config is None:
        return ()
    table: Mapping[str, Any] = config.table("checks")
    where = getattr(config, "path", "") or "config"
    unknown = [k for k in table if k != "silence"]
    if unknown:
        raise SilenceError(f"{where}: checks.{unknown[0]}: unknown key (known: silence)")
    raw = table.get("silence", {})
    if not isinstance(raw, Mapping):
        raise SilenceError(f"{where}: checks.silence: must be a table of check id = [tenants]")
    out = []
    for cid, tenants in raw.items():
        if catalog_ids is not None and cid not in catalog_ids:
            raise SilenceError(
                f"{where}: checks.silence.{cid}: unknown check id (see tenantscope check --list)"
            )
        if isinstance(tenants, str) or not all(isinstance(t, str) for t in tenants):
            raise SilenceError(f"{where}: checks.silence.{cid}: must be a list of tenant names")
        out.append((cid, frozenset(tenants)))
    return tuple(out)


def apply(findings: Sequence[Finding], silences: Silences, source: str = "config") -> tuple[Finding, ...]:
    if not silences:
        return tuple(findings)
    by_id = dict(silences)
    out = []
    for f in findings:
        ts = by_id.get(f.check_id)
        if ts and f.status == Status.WARN and f.tenants and set(f.tenants) <= ts:
            f = replace(
                f,
                status=Status.PASS,
                severity=Severity.INFO,
                summary=f"silenced by [checks] silence in {source}: {f.summary}",
            )
        out.append(f)
    return tuple(out)
