"""Which pairs an active probe run can test, before anything is sent.

Pure: the Reachability pane's confirmation counts what will be sent from it, and the prober
(probes/network/prober.py) sends exactly that.
"""

from __future__ import annotations

from dataclasses import dataclass

from probes.model import HostState, WorkloadKind
from probes.network.model import ReachResult
from probes.network.nsenter import netns_path
from probes.network.segments import Endpoint, endpoints, netns_of


@dataclass(frozen=True)
class Source:
    endpoint: Endpoint
    path: str
    inode: int = 0  # for /proc/PID/ns/net paths: the namespace it must still be
    via: str = "namespace"  # the source kind its results carry: namespace, container, segment


SOURCE_KINDS = ("namespace", "segment", "guest")  # what a probe run may use (containers: namespace)


def plan(hs: HostState) -> tuple[list[Source], list[Endpoint], list[ReachResult]]:
    """Sources we can enter, destinations with addresses, and results for what cannot be tested."""
    eps = endpoints(hs)
    by_key = {w.key: w for w in hs.workloads}
    sources, untestable = [], []
    dests = [e for e in eps if e.addresses]
    for e in eps:
        if e.workload == "host":
            continue
        w = by_key.get(e.workload)
        if e.netns is not None and w is not None:
            if w.kind == WorkloadKind.CONTAINER and w.container:
                path = f"/proc/{w.container.init_pid}/ns/net"
            else:
                path = w.netns.path if (w.netns and w.netns.path) else netns_path(netns_of(w) or w.name)
            ino = e.netns[5:-1] if e.netns.startswith("net:[") else ""
            via = "container" if w.kind == WorkloadKind.CONTAINER else "namespace"
            sources.append(Source(e, path, int(ino) if ino.isdigit() else 0, via))
            continue
        why = (
            "not testable from inside: predicted only (VM: probe it from its segment or through its "
            "guest agent: --probe-from segment,guest)"
            if w is not None and w.kind == WorkloadKind.VM
            else "not testable from inside: predicted only (no network namespace to enter)"
        )
        for d in dests:
            if d.workload != e.workload:
                untestable.append(
                    ReachResult(
                        e.tenant,
                        d.tenant,
                        e.workload,
                        d.workload,
                        "",
                        "predicted",
                        "not-testable",
                        detail=why,
                    )
                )
    return sources, dests, untestable
