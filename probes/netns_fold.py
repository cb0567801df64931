"""One service, one workload: a container running inside a named network namespace is shown as
the container, with its namespace named on it, not as two workloads (a tenant with 3 services
counted 6).

A named namespace (/run/netns/NAME) that holds one or more containers' init processes is folded
into those containers: each gets the namespace's details (`Workload.netns`), and the namespace
stops being a workload of its own. A namespace without containers stays a workload. Runs in the
derive step on the raw observations (the netns and container probes each merge their own kind),
so it is a pure function and idempotent.
"""

from __future__ import annotations

from dataclasses import replace

from probes.model import HostState, State, Workload, WorkloadKind


def fold_container_namespaces(state: State) -> State:
    hosts = tuple(_fold(hs) for hs in state.hosts)
    if all(a is b for a, b in zip(hosts, state.hosts)):
        return state
    return replace(state, hosts=hosts)


def _fold(hs: HostState) -> HostState:
    by_pid: dict[int, Workload] = {}
    for w in hs.workloads:
        if w.kind == WorkloadKind.NETNS and w.netns is not None and w.netns.named:
            for p in w.netns.pids:
                by_pid[p] = w
    if not by_pid:
        return hs
    folded: set[str] = set()
    out: list[Workload] = []
    for w in hs.workloads:
        c = w.container
        if w.kind == WorkloadKind.CONTAINER and c is not None and "net" not in c.shared_namespaces:
            ns = by_pid.get(c.init_pid) if c.init_pid > 0 else None
            if ns is not None:
                folded.add(ns.key)
                if w.netns != ns.netns:
                    w = replace(w, netns=ns.netns)
        out.append(w)
    if not folded:
        return hs
    return replace(hs, workloads=tuple(w for w in out if w.key not in folded))


def namespace_name(w: Workload) -> str:
    """The /run/netns name a container runs in ('' when none)."""
    if w.kind == WorkloadKind.CONTAINER and w.netns is not None and w.netns.path.startswith("/run/netns/"):
        return w.netns.path[len("/run/netns/") :]
    return ""
