"""The lab's layout: tenants, workloads, names and addresses, computed before anything exists.

Names are short enough for Linux interface names (15 bytes): a workload's network namespace
and its host-side veth share the name `tsl-TENANT-WL`; a tenant's bridge is `tsl-b-TENANT`.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "tsl-"
NAMED_TENANTS = ("acme", "globex", "initech")
WORKLOADS = ("web", "db", "app")
SERVICE_PORT = 8080
SUBNET = "10.213"  # tenant i: 10.213.i.0/24 (i from 1); the bridge's gateway address is .254
OVS_VLAN_BASE = 100

# Limits of every workload's cgroup (a small, well-behaved tenant).
CPU_QUOTA_US = 25_000  # of a 100 ms period: a quarter of a core
CPU_PERIOD_US = 100_000
CPU_SHARES = 1024
MEM_LIMIT = 64 << 20
PIDS_MAX = 64


@dataclass(frozen=True)
class WorkloadPlan:
    tenant: str
    short: str  # web, db, app
    name: str  # netns name == host-side veth name == the service's comm
    address: str  # 10.213.i.j
    cgroup: str  # relative cgroup path, e.g. tsl/acme/web

    @property
    def host_if(self) -> str:
        return self.name


@dataclass(frozen=True)
class TenantPlan:
    name: str
    index: int  # 1-based
    bridge: str  # Linux bridge name, or the OVS bridge for the OVS tenant
    ovs_tag: int | None  # VLAN tag on the OVS bridge; None: on its own Linux bridge
    workloads: tuple[WorkloadPlan, ...]

    @property
    def subnet(self) -> str:
        return f"{SUBNET}.{self.index}.0/24"

    @property
    def gateway(self) -> str:
        return f"{SUBNET}.{self.index}.254"


@dataclass(frozen=True)
class LabPlan:
    prefix: str
    tenants: tuple[TenantPlan, ...]
    ovs_bridge: str  # "" when no tenant is on OVS

    @property
    def cgroup_root(self) -> str:
        return self.prefix.rstrip("-")

    def workloads(self) -> tuple[WorkloadPlan, ...]:
        return tuple(w for t in self.tenants for w in t.workloads)

    def tenant(self, name: str) -> TenantPlan:
        return next(t for t in self.tenants if t.name == name)

    def linux_bridges(self) -> tuple[str, ...]:
        return tuple(t.bridge for t in self.tenants if t.ovs_tag is None)


def tenant_names(n: int) -> tuple[str, ...]:
    return tuple(NAMED_TENANTS[i] if i < len(NAMED_TENANTS) else f"t{i + 1:02d}" for i in range(n))


def make_plan(tenants: int = 3, *, ovs: bool = False, prefix: str = PREFIX) -> LabPlan:
    """`tenants` tenants with 3, 2, 3, 2, ... workloads; with `ovs`, the third tenant sits on a
    private OVS bridge with its own VLAN tag instead of a Linux bridge."""
    if not 1 <= tenants <= 200:
        raise ValueError("tenants: between 1 and 200")
    root = prefix.rstrip("-")
    ovs_bridge = f"{prefix}ovs" if ovs and tenants >= 3 else ""
    out = []
    for i, t in enumerate(tenant_names(tenants), start=1):
        n = 3 if i % 2 else 2
        wls = tuple(
            WorkloadPlan(t, s, f"{prefix}{t}-{s}", f"{SUBNET}.{i}.{j}", f"{root}/{t}/{s}")
            for j, s in enumerate(WORKLOADS[:n], start=1)
        )
        on_ovs = bool(ovs_bridge) and i == 3
        out.append(
            TenantPlan(
                t, i, ovs_bridge if on_ovs else f"{prefix}b-{t}", OVS_VLAN_BASE + i if on_ovs else None, wls
            )
        )
    for t in out:
        for name in (t.bridge, *(w.name for w in t.workloads)):
            if len(name.encode()) > 15:
                raise ValueError(f"{name}: longer than an interface name may be (15 bytes)")
    return LabPlan(prefix, tuple(out), ovs_bridge)
