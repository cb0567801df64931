"""Which tenant owns each workload, and which rule said so.

Rules, first match wins:
1. the user's config (probes/config.py), tenants in file order; per tenant its selectors:
   domain name globs and libvirt metadata (VMs), netns name globs (network namespaces),
   cgroup path globs and container name / `label=value` globs (containers);
2. OpenStack Nova's libvirt metadata: `<nova:owner><nova:project>` (the project name, else
   its uuid);
3. the name prefix: the part of the name before the first separator ("-" unless configured),
   only when the name has one and was given by someone (not for made-up names such as an
   unnamed namespace's `net:[4026532…]` or a container's `sleep[1234]`, nor for names a tool
   generated: `instance-0000abcd`, `vm-3`, UUIDs; probes/generated_names.py).
Every workload records `placed_by` and `placed_rule`; unplaced ones keep tenant "" and stay
in the state. Tenants spanning hosts are one tenant.

`assign` runs on every state change, so it is cheap when nothing changed: the parsed config
and its compiled globs are cached, each placement is memoised on the few fields it reads, and
unchanged workloads and host states are reused as they are.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from probes.config import Config, ConfigError, MetadataSelector, TenantRule, load
from probes.generated_names import generated_why
from probes.model import MetadataItem, Placement, State, Tenant, Workload, WorkloadKind
from probes.netns_fold import namespace_name

log = logging.getLogger(__name__)

NOVA_NS_PREFIX = "http://openstack.org/xmlns/libvirt/nova/"
NOVA_RULE = "nova:owner/nova:project"
MEMO_MAX = 20_000

Placed = tuple[str, Placement, str]
UNPLACED: Placed = ("", Placement.UNPLACED, "")


def assign(state: State, opts: Any, placer: Placer | None = None) -> State:
    """`state` with every workload's tenant, placed_by and placed_rule set, and State.tenants.
    `placer`: the session's (it remembers the workloads it placed); else one for this call."""
    placer = placer if placer is not None else Placer(config_for(opts))
    hosts = []
    members: dict[str, tuple[list[str], set[str]]] = {t.name: ([], set()) for t in placer.config.tenants}
    for hs in state.hosts:
        # a host whose workloads are those placed last time (most derives: another host, or
        # only the figures, changed) is not placed again
        got = placer.by_host.get(hs.host.name)
        if got is not None and got[0] is not hs.workloads and got[0] == hs.workloads:
            # the same workloads in a new tuple: kept as the one to compare next time by
            # identity (else every later derive compared every workload in full)
            got = placer.by_host[hs.host.name] = (hs.workloads, got[1], got[2])
        if got is None or got[0] is not hs.workloads:
            changed = False
            ws: list[Workload] = []
            placed: list[tuple[str, str, str]] = []  # (tenant, workload key, host)
            for w in hs.workloads:
                tenant, by, rule = placer.place(w)
                if w.tenant != tenant or w.placed_by != by or w.placed_rule != rule:
                    w = replace(w, tenant=tenant, placed_by=by, placed_rule=rule)
                    changed = True
                ws.append(w)
                if tenant:
                    placed.append((tenant, w.key, w.host))
            got = (hs.workloads, tuple(ws) if changed else hs.workloads, tuple(placed))
            placer.by_host[hs.host.name] = got
        for tenant, key, host in got[2]:
            keys, hs_names = members.setdefault(tenant, ([], set()))
            keys.append(key)
            hs_names.add(host)
        hosts.append(hs if got[1] is hs.workloads else replace(hs, workloads=got[1]))
    if len(placer.by_host) > len(hosts):
        names = {hs.host.name for hs in hosts}
        placer.by_host = {k: v for k, v in placer.by_host.items() if k in names}
    tenants = tuple(
        Tenant(name=n, workloads=tuple(sorted(k)), hosts=tuple(sorted(h)))
        for n, (k, h) in sorted(members.items())
    )
    return replace(state, hosts=tuple(hosts), tenants=tenants)


# ------------------------------------------------------------------ the config to use


def config_for(opts: Any) -> Config:
    """Options.config when the CLI (or the session) loaded it; else the file Options names.

    In demo mode only an explicit --config applies: the user's own config describes their
    fleet, not the bundled one.
    """
    cfg = getattr(opts, "config", None)
    if isinstance(cfg, Config):
        return cfg
    path = getattr(opts, "config_path", None)
    if getattr(opts, "demo", False) and path is None:
        return _EMPTY
    return _load(path)


_EMPTY = Config()


def _load(path: str | None) -> Config:
    try:
        return load(path)
    except ConfigError as e:  # the CLI refuses bad configs up front; here: log, place by rules 2-3
        log.warning("%s", e)
        return _EMPTY


# ------------------------------------------------------------------ placing one workload


class _Globs:
    """Globs of several tenants in one regex: `first(s)` is (tenant index, glob) of the first
    pattern, in config order, that matches all of `s` (case-sensitive), or None.

    One alternation runs in C instead of a Python loop over every tenant's globs; Python
    tries alternatives left to right, so the first tenant in the file wins. (fnmatch's
    patterns have no capturing groups of their own on Python >= 3.11, so `lastgroup` is ours.)
    """

    def __init__(self, items: list[tuple[int, str]]) -> None:
        self.items = items
        self.rx = (
            re.compile("|".join(f"(?P<p{n}>{fnmatch.translate(g)})" for n, (_, g) in enumerate(items)))
            if items
            else None
        )

    def first(self, s: str) -> tuple[int, str] | None:
        if self.rx is None:
            return None
        m = self.rx.match(s)
        return self.items[int(m.lastgroup[1:])] if m and m.lastgroup else None


def _globs(tenants: tuple[TenantRule, ...], field: Callable[[TenantRule], tuple[str, ...]]) -> _Globs:
    return _Globs([(i, g) for i, t in enumerate(tenants) for g in field(t)])


def _metadata_match(
    items: tuple[MetadataItem, ...],
    sels: tuple[tuple[MetadataSelector, re.Pattern[str], re.Pattern[str]], ...],
) -> str | None:
    for sel, value_rx, ns_rx in sels:
        for it in items:
            if it.path != sel.element or not ns_rx.match(it.namespace):
                continue
            if sel.attr:
                val = next((v for k, v in it.attrs if k == sel.attr), None)
                if val is None:
                    continue
            else:
                val = it.text
            if value_rx.match(val):
                ns = f"{{{sel.namespace}}}" if sel.namespace else ""
                return f"metadata {ns}{sel.path} = {sel.value!r}"
    return None


class Placer:
    """The config's tenant rules compiled, and where it placed each workload (bounded memo).
    One per session (probes/session.py make_deriver): two sessions share nothing."""

    def __init__(self, config: Config) -> None:
        self.config = config
        # per host: (the workloads last placed, them placed, their (tenant, key, host))
        self.by_host: dict[
            str, tuple[tuple[Workload, ...], tuple[Workload, ...], tuple[tuple[str, str, str], ...]]
        ] = {}
        ts = config.tenants
        self.domains = _globs(ts, lambda t: t.domains)
        self.netns = _globs(ts, lambda t: t.netns)
        self.cgroups = _globs(ts, lambda t: t.cgroups)
        self.names = _globs(ts, lambda t: tuple(c for c in t.containers if "=" not in c))
        self.labels = tuple(
            (i, k, re.compile(fnmatch.translate(v)), c)
            for i, t in enumerate(ts)
            for c in t.containers
            if "=" in c
            for k, _, v in [c.partition("=")]
        )
        self.metadata = tuple(
            (
                i,
                tuple(
                    (
                        m,
                        re.compile(fnmatch.translate(m.value)),
                        re.compile(fnmatch.translate(m.namespace or "*")),
                    )
                    for m in t.metadata
                ),
            )
            for i, t in enumerate(ts)
            if t.metadata
        )
        self.memo: dict[tuple[Any, ...], Placed] = {}

    def place(self, w: Workload) -> Placed:
        key = _memo_key(w)
        hit = self.memo.get(key)
        if hit is None:
            if len(self.memo) >= MEMO_MAX:
                self.memo.clear()
            hit = self.memo[key] = self._place(w)
        return hit

    def _place(self, w: Workload) -> Placed:
        hit = self._config_match(w)
        if hit is not None:
            return self.config.tenants[hit[0]].name, Placement.CONFIG, hit[1]
        if w.kind == WorkloadKind.VM and w.vm is not None:
            nova = nova_project(w.vm.metadata)
            if nova:
                return nova, Placement.NOVA, NOVA_RULE
        p = self.config.prefix
        if p.enabled and p.separator and _named(w):
            head, sep, _ = w.name.partition(p.separator)
            if sep and head:
                why = generated_why(w.name, p.separator, p.generated)
                if why:  # a tool's name (instance-0000abcd, vm-3, a UUID) names no tenant
                    return "", Placement.UNPLACED, f"generated name ({why}): no prefix tenant"
                return head, Placement.PREFIX, f"name prefix before {p.separator!r}"
        return UNPLACED

    def _config_match(self, w: Workload) -> tuple[int, str] | None:
        """(tenant index, rule text) of the first tenant in the file with a matching selector;
        within one tenant: names, then metadata or labels, then cgroups."""
        found: list[tuple[int, str]] = []
        if w.kind == WorkloadKind.VM:
            g = self.domains.first(w.name)
            if g is not None:
                found.append((g[0], f"domains {g[1]!r}"))
            if w.vm is not None and w.vm.metadata:
                for i, sels in self.metadata:
                    if g is not None and i >= g[0]:
                        break
                    why = _metadata_match(w.vm.metadata, sels)
                    if why:
                        found.append((i, why))
                        break
        elif w.kind == WorkloadKind.NETNS:
            g = self.netns.first(w.name)
            if g is not None:
                found.append((g[0], f"netns {g[1]!r}"))
        elif w.kind == WorkloadKind.CONTAINER:
            g = self.names.first(w.name)
            if g is not None:
                found.append((g[0], f"containers {g[1]!r}"))
            c = w.container
            if c is not None:
                for i, k, rx, text in self.labels:
                    if any(lk == k and rx.match(lv) for lk, lv in c.labels):
                        found.append((i, f"containers {text!r}"))
                        break
                g = self.cgroups.first(c.cgroup) if c.cgroup else None
                if g is not None:
                    found.append((g[0], f"cgroups {g[1]!r}"))
            ns = namespace_name(w)  # a container inside a named namespace: netns selectors too
            g = self.netns.first(ns) if ns else None
            if g is not None:
                found.append((g[0], f"netns {g[1]!r}"))
        return min(found, key=lambda f: f[0]) if found else None


def _memo_key(w: Workload) -> tuple[Any, ...]:
    if w.kind == WorkloadKind.VM:
        return ("vm", w.name, w.vm.metadata if w.vm is not None else ())
    if w.kind == WorkloadKind.CONTAINER and w.container is not None:
        c = w.container
        return ("ct", w.name, c.cgroup, c.labels, c.name_source, namespace_name(w))
    if w.kind == WorkloadKind.NETNS:
        return ("ns", w.name, w.netns.named if w.netns is not None else True)
    return (str(w.kind), w.name)


def _named(w: Workload) -> bool:
    """Whether somebody chose this name (made-up names say nothing about a tenant)."""
    if w.kind == WorkloadKind.NETNS:
        return w.netns is None or w.netns.named
    if w.kind == WorkloadKind.CONTAINER:
        return w.container is None or bool(w.container.name_source)
    return True


def nova_project(items: tuple[MetadataItem, ...]) -> str:
    """The project of `<nova:instance><nova:owner><nova:project uuid=...>NAME`, or ''."""
    for it in items:
        if it.namespace.startswith(NOVA_NS_PREFIX) and (
            it.path == "owner/project" or it.path.endswith("/owner/project")
        ):
            name = it.text.strip() or next((v for k, v in it.attrs if k == "uuid"), "")
            if name:
                return name
    return ""
