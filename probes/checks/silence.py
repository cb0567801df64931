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

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from probes.model import Finding, Severity, Status

Silences = tuple[tuple[str, frozenset[str]], ...]


class SilenceError(ValueError):
    """A bad `[checks]` table; the message names the file and key."""


def silences_from(config: Any, catalog_ids: Sequence[str] | None = None) -> Silences:
    """`[checks] silence` of a probes.config.Config (or None), its check ids checked against
    the catalog when given (the table's shape was checked when the file was read)."""
    if config is None:
        return ()
    where = getattr(config, "path", "") or "config"
    out = []
    for s in getattr(config, "silences", ()):
        if catalog_ids is not None and s.check_id not in catalog_ids:
            at = f"{where}:{s.line}" if s.line else where
            raise SilenceError(
                f"{at}: checks.silence.{s.check_id}: unknown check id (see tenantscope check --list)"
            )
        out.append((s.check_id, frozenset(s.tenants)))
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
