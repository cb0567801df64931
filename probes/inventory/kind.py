"""What every /proc-based inventory probe shares: it owns one kind of workload on its host."""

from __future__ import annotations

from dataclasses import replace

from probes.engine import Probe
from probes.model import HostState, Workload, WorkloadKind


class KindProbe(Probe[tuple[Workload, ...]]):
    """Discovers the workloads of `kind`; merging replaces only those (VMs, containers and
    namespaces each belong to their own probe)."""

    kind: WorkloadKind

    def __init__(self, interval: float = 5.0, timeout: float = 20.0) -> None:
        self.interval = interval
        self.timeout = timeout

    def merge(self, state: HostState, result: tuple[Workload, ...]) -> HostState:
        keep = tuple(w for w in state.workloads if w.kind != self.kind)
        return replace(state, workloads=keep + result)
