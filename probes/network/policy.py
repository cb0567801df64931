"""Expected reachability, from the user's config (probes/config.py).

Default: every tenant reaches itself and nothing else; workloads of no tenant and the host's
own addresses are expected unreachable (shown, never silently allowed). `[policy] allow`
pairs (optionally with ports) open a pair both ways:

    [policy]
    allow = [["acme", "globex"], ["acme", "initech", [443]]]

Namespace names given without glob characters in `[[tenant]] netns` are kept in the Policy,
so the topology probe can report one that does not exist (a typo) instead of testing nothing.
The network area's own options live in the opaque `[network]` table: `probe_ports = [22, 443]`
and `probe_timeout = 0.5`; static VM addresses (for guests with no agent, no DHCP lease and no
neighbour entry yet) per domain name:

    [network.addresses]
    "acme-web-1" = ["10.0.1.5"]
"""

from __future__ import annotations

from typing import Any

from probes.config import NetworkSettings
from probes.network.model import AllowRule, Policy


def allows(policy: Policy | None, src: str, dst: str, port: int | None = None) -> bool:
    """Whether `src` may reach `dst`: with `port`, on that TCP port; without (port None), with
    any traffic, ICMP included. The one rule for both: a rule limited to ports allows those
    ports and nothing else, so port None is not allowed by it (the safe side: a reach that no
    rule clearly allows is reported, never taken as expected)."""
    policy = policy or Policy()
    if src == dst and policy.self_reach and not src.startswith("("):
        return True
    return any(not r.ports or (port is not None and port in r.ports) for r in _rules(policy, src, dst))


def allowed_ports(policy: Policy | None, src: str, dst: str) -> tuple[int, ...]:
    """The TCP ports a port-limited rule opens between `src` and `dst` (() when none)."""
    return tuple(sorted({p for r in _rules(policy or Policy(), src, dst) for p in r.ports}))


def _rules(policy: Policy, src: str, dst: str) -> list[AllowRule]:
    out = []
    for r in policy.allow:
        pairs = [(r.src, r.dst)] + ([(r.dst, r.src)] if r.both_ways else [])
        if any(_m(a, src) and _m(b, dst) for a, b in pairs):
            out.append(r)
    return out


def _m(pat: str, name: str) -> bool:
    return pat == name or (pat == "*" and not name.startswith("("))


def from_config(cfg: Any) -> Policy:
    """Policy from a probes.config.Config (duck-typed: probes/config.py owns the parsing)."""
    if cfg is None:
        return Policy()
    rules = tuple(getattr(cfg.policy, "allow", ()))  # the config parses into this module's AllowRule
    names = {
        n
        for t in getattr(cfg, "tenants", ())
        for n in getattr(t, "netns", ())
        if n and not any(c in n for c in "*?[")
    }
    return Policy(
        allow=rules,
        netns_named=tuple(sorted(names)),
        source=str(getattr(cfg, "path", "") or "config"),
        static_addresses=static_addresses(cfg),
    )


def static_addresses(cfg: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`[network.addresses]`: domain name -> IPv4 addresses (checked by probes/config.py)."""
    return _settings(cfg).addresses


def network_options(cfg: Any) -> tuple[tuple[int, ...], float]:
    """(probe_ports, probe_timeout) from the config's `[network]` table, with defaults."""
    n = _settings(cfg)
    return n.probe_ports, n.probe_timeout


def _settings(cfg: Any) -> NetworkSettings:
    n = getattr(cfg, "network", None)
    return n if isinstance(n, NetworkSettings) else NetworkSettings()
