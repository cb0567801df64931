"""Read-only sessions: every action that changes anything is removed AND refused.

A session is read-only with `--read-only`, with `TENANTSCOPE_READONLY=1` (set by `tenantscope
serve` for keys without `tenantscope-write`), and by default for `tenantscope replay`.
"Changes anything" means: sends traffic (active network probes), asks a host's package manager
(software-update lookups), or would write to a host. Looking, sorting, filtering, reports and
acknowledgements (kept in this session only) stay available.

Two layers, so that hiding is never the only protection:
- `hidden(app, action)`: the help screen, footer and palette leave the action out;
- `refuse(node, what)`: called first thing by each changing action method (and by the worker
  that would do the work); it notifies and returns True when the session is read-only.
"""

from __future__ import annotations

import os
from typing import Any

# action names (as bound) that change something; pane and app actions alike
CHANGING_ACTIONS = frozenset({"probe", "runbook_network", "runbook_updates"})


def env_read_only(environ: dict[str, str] | None = None) -> bool:
    v = (environ if environ is not None else os.environ).get("TENANTSCOPE_READONLY", "")
    return v.strip().lower() in ("1", "yes", "true", "on")


def is_read_only(node: Any) -> bool:
    app = getattr(node, "app", node)
    return bool(getattr(app, "read_only", False))


def hidden(app: Any, action: str) -> bool:
    name = action.split("(", 1)[0].rsplit(".", 1)[-1]
    return is_read_only(app) and name in CHANGING_ACTIONS


def refuse(node: Any, what: str) -> bool:
    """True (and a notification) when `what` must not run because the session is read-only."""
    if not is_read_only(node):
        return False
    app = getattr(node, "app", node)
    app.notify(
        f"Read-only session: {what} is disabled (it would change something).",
        title="read-only",
        severity="warning",
    )
    return True
