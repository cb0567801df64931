"""One host or all: the fleet view narrowed to the host the engineer is triaging.

The header keeps showing every host (a down host must stay visible); the panes get the State
narrowed by `only_host`, a pure function, so the checks and tenants stay those of the fleet.
"""

from __future__ import annotations

from dataclasses import replace

from probes.model import State, Tenant


def only_host(state: State, host: str | None) -> State:
    """`state` with only `host`'s observations, findings and tenants (None: unchanged)."""
    if host is None or all(h.host.name == host for h in state.hosts):
        return state
    keep = {host}
    tenants = []
    for t in state.tenants:
        ws = tuple(k for k in t.workloads if k.split("/", 1)[0] in keep)
        if ws:
            tenants.append(Tenant(t.name, ws, tuple(h for h in t.hosts if h in keep)))
    return replace(
        state,
        hosts=tuple(h for h in state.hosts if h.host.name in keep),
        tenants=tuple(tenants),
        findings=tuple(f for f in state.findings if f.host in keep or not f.host),
    )


def next_host(state: State | None, current: str | None) -> str | None:
    """The host after `current` in the fleet's order, then None (all hosts) again."""
    names = [h.host.name for h in state.hosts] if state else []
    if len(names) < 2:
        return None
    if current not in names:
        return names[0]
    i = names.index(current) + 1
    return names[i] if i < len(names) else None
