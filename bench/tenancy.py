"""Tenant assignment and the netns/container inventories: how much each state change costs.

`assign` runs on every state change (every probe result), so its steady cost matters most.
Baseline, measured in the same run: a naive assign that re-matches every glob with
fnmatch for every workload on every call (what the memo and compiled globs avoid).

Run: .venv/bin/python -m bench.tenancy
"""

from __future__ import annotations

import asyncio
import fnmatch
import statistics
import time
from dataclasses import replace

from probes.config import parse
from probes.model import (
    ContainerDetails,
    Host,
    HostState,
    MetadataItem,
    NetnsDetails,
    Placement,
    State,
    Tenant,
    VmDetails,
    Workload,
    WorkloadKind,
)
from probes.session import Options
from probes.tenancy import assign, nova_project

N_TENANTS = 50
N_HOSTS = 10
N_WORKLOADS = 1000
NOVA = "http://openstack.org/xmlns/libvirt/nova/1.1"


def fleet() -> State:
    hosts = []
    per = N_WORKLOADS // N_HOSTS
    for h in range(N_HOSTS):
        ws = []
        for i in range(per):
            t = (h * per + i) % (N_TENANTS + 10)  # 10 tenant names not in the config
            name = f"t{t:02d}-w{h}-{i}"
            if i % 3 == 0:
                md = (MetadataItem(NOVA, "instance/owner/project", f"proj{t}"),) if i % 6 == 0 else ()
                ws.append(Workload(WorkloadKind.VM, name, f"hv{h}", vm=VmDetails(metadata=md)))
            elif i % 3 == 1:
                ws.append(
                    Workload(
                        WorkloadKind.CONTAINER,
                        name,
                        f"hv{h}",
                        container=ContainerDetails(
                            cgroup=f"/machine.slice/libpod-{t}.scope",
                            labels=(("tenant", f"t{t:02d}"),),
                            name_source="docker",
                        ),
                    )
                )
            else:
                ws.append(Workload(WorkloadKind.NETNS, name, f"hv{h}", netns=NetnsDetails()))
        hosts.append(HostState(Host(f"hv{h}"), workloads=tuple(ws)))
    return State(hosts=tuple(hosts))


def config_text() -> str:
    out = []
    for t in range(N_TENANTS):
        out.append(
            f'[[tenant]]\nname = "tenant{t:02d}"\ndomains = ["t{t:02d}-*"]\n'
            f'netns = ["t{t:02d}-*"]\ncontainers = ["tenant=t{t:02d}"]\n'
            f'cgroups = ["/machine.slice/*-{t}.scope"]\n'
        )
    return "\n".join(out)


def naive_assign(state: State, cfg) -> State:
    """The baseline: no memo, fnmatch on every call, every host rebuilt."""
    members: dict[str, list[str]] = {}
    hosts = []
    for hs in state.hosts:
        ws = []
        for w in hs.workloads:
            tenant, by, rule = "", Placement.UNPLACED, ""
            for r in cfg.tenants:
                pats = {
                    WorkloadKind.VM: r.domains,
                    WorkloadKind.NETNS: r.netns,
                    WorkloadKind.CONTAINER: r.containers,
                }[w.kind]
                g = next((p for p in pats if "=" not in p and fnmatch.fnmatchcase(w.name, p)), None)
                if g is None and w.container is not None:
                    g = next(
                        (
                            p
                            for p in r.containers
                            if "=" in p
                            and any(
                                k == p.split("=")[0] and fnmatch.fnmatchcase(v, p.split("=", 1)[1])
                                for k, v in w.container.labels
                            )
                        ),
                        None,
                    ) or next((p for p in r.cgroups if fnmatch.fnmatchcase(w.container.cgroup, p)), None)
                if g is not None:
                    tenant, by, rule = r.name, Placement.CONFIG, g
                    break
            if not tenant and w.vm is not None and nova_project(w.vm.metadata):
                tenant, by, rule = nova_project(w.vm.metadata), Placement.NOVA, "nova"
            if not tenant and "-" in w.name:
                tenant, by, rule = w.name.split("-")[0], Placement.PREFIX, "prefix"
            ws.append(replace(w, tenant=tenant, placed_by=by, placed_rule=rule))
            if tenant:
                members.setdefault(tenant, []).append(w.key)
        hosts.append(replace(hs, workloads=tuple(ws)))
    return replace(
        state,
        hosts=tuple(hosts),
        tenants=tuple(Tenant(n, tuple(sorted(k))) for n, k in sorted(members.items())),
    )


def timed(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    raw = fleet()
    cfg = parse(config_text(), "bench.toml")
    opts = Options(config=cfg)

    base = timed(lambda: naive_assign(raw, cfg), 5)
    first = {}

    from probes.tenancy import Placer

    def cold() -> None:
        first["s"] = assign(raw, opts, Placer(cfg))  # a new session's placer: compiles

    cold_ms = timed(cold, 5)
    placer = Placer(cfg)  # one session's
    steady_ms = timed(lambda: assign(raw, opts, placer), 20)  # raw state from probes, placements memoised
    placed = assign(raw, opts, placer)
    again_ms = timed(lambda: assign(placed, opts, placer), 20)  # nothing changed at all
    one = replace(raw, hosts=(replace(raw.hosts[0], workloads=raw.hosts[0].workloads[:-1]),) + raw.hosts[1:])
    one_ms = timed(lambda: assign(one, opts, placer), 20)
    assert naive_assign(raw, cfg).tenants and placed.tenants
    print(f"tenancy: {N_WORKLOADS} workloads, {N_TENANTS} configured tenants, {N_HOSTS} hosts")
    print(f"  baseline naive assign       {base:8.2f} ms")
    print(f"  assign, cold (compile)      {cold_ms:8.2f} ms   ratio {cold_ms / base:.2f}x of baseline")
    print(f"  assign, steady (memo)       {steady_ms:8.2f} ms   ratio {steady_ms / base:.2f}x of baseline")
    print(f"  assign, already placed      {again_ms:8.2f} ms   ratio {again_ms / base:.2f}x of baseline")
    print(f"  assign, one workload gone   {one_ms:8.2f} ms   ratio {one_ms / base:.2f}x of baseline")

    # the inventories on this machine, against a baseline of one `ip -j netns list`
    from probes.hosts.local import LocalHost
    from probes.inventory import containers, netns

    async def inv() -> None:
        h = LocalHost()

        async def t(coro_fn, n=10) -> float:
            ts = []
            for _ in range(n):
                s = time.perf_counter()
                await coro_fn()
                ts.append(time.perf_counter() - s)
            return statistics.median(ts) * 1000

        b = await t(lambda: h.run(["ip", "-j", "netns", "list"]))
        n = await t(lambda: netns.discover(h))
        c = await t(lambda: containers.discover(h))
        nn = len(await netns.discover(h))
        nc = len(await containers.discover(h))
        print(f"inventories on this host ({nn} netns, {nc} containers):")
        print(f"  baseline `ip -j netns list`   {b:8.2f} ms")
        print(f"  netns probe                   {n:8.2f} ms   ratio {n / b:.1f}x")
        print(f"  container probe               {c:8.2f} ms   ratio {c / b:.1f}x")

    asyncio.run(inv())


if __name__ == "__main__":
    main()
