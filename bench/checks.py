"""Benchmark: the check catalog over a large fleet, and the facts probe on this machine.

The TUI re-derives findings on every state change, so the whole catalog must stay cheap next to
what the engine already does per change. Measured in the same run:

- catalog: the checks over 1,000 domains of 50 tenants (pins, disks, graphics, labels, a
  shared image and overlapping pins planted), against the baseline of one msgspec encoding of
  the same State (what a snapshot costs): a first run (nothing to reuse), then a session's
  CheckRunner on the common poll (only the resource samples changed: the checks that declare
  `samples` run, the others are reused) and on a State equal to the last one;
- the facts probe on this machine (one collect: ~10 reads and 4 commands), against the
  baseline of one `true` run through the same transport.

Run: .venv/bin/python -m bench.checks
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

import msgspec

from probes.checks.base import CheckRunner, load_catalog, run_checks
from probes.facts.probe import FactsProbe
from probes.hosts.local import LocalHost
from probes.model import (
    Connection,
    ConnState,
    CpuTune,
    Disk,
    Graphics,
    Host,
    HostState,
    Nic,
    SecLabel,
    State,
    VmDetails,
    Workload,
    WorkloadKind,
)
from probes.resources.model import Limits, ResourceSnapshot, Sample

N_DOMAINS = 1000
N_TENANTS = 50


def fleet(worst: bool = False) -> State:
    """Realistic: each tenant pinned to two CPUs of its own, a few planted overlaps. Worst: pins
    spread so that every tenant shares CPUs with every other (1,225 tenant pairs to report)."""
    ws = []
    for i in range(N_DOMAINS):
        t = f"t{i % N_TENANTS:02d}"
        cpu = i % 64 if worst else (0 if i % 97 == 0 else 2 * (i % N_TENANTS))
        disks: tuple[Disk, ...] = (
            Disk("file", "disk", "virtio", "vda", f"/var/lib/libvirt/images/{t}-{i}.qcow2"),
            Disk("file", "cdrom", "sata", "sdc", "/var/lib/libvirt/images/install.iso", readonly=True),
        )
        if i % 97 == 0:
            disks += (
                Disk("file", "disk", "virtio", "vdb", "/var/lib/libvirt/images/shared.img", shareable=True),
            )
        vm = VmDetails(
            domain_type="kvm",
            vcpus=2,
            cputune=CpuTune(
                vcpupin=((0, str(cpu)), (1, str(cpu + 1))),
                emulatorpin=str((cpu + 2) % 64) if worst else str(cpu + 1),
            ),
            disks=disks,
            nics=(
                Nic(
                    "network",
                    mac=f"52:54:00:00:{i >> 8:02x}:{i & 255:02x}",
                    source="net",
                    model="virtio" if i % 10 else "e1000",
                ),
            ),
            graphics=(Graphics("vnc", listen="0.0.0.0" if i % 50 == 0 else "127.0.0.1", passwd_known=True),),
            seclabels=(
                SecLabel(
                    "dynamic",
                    "selinux",
                    label=f"system_u:system_r:svirt_t:s0:c{i % 1000},c{(i * 7) % 1000 + 1}",
                ),
            ),
        )
        ws.append(
            Workload(WorkloadKind.VM, f"{t}-vm{i}", "hv1", uuid=f"{i:08d}", state="running", tenant=t, vm=vm)
        )
    hs = HostState(
        host=Host("hv1", libvirt_uri="qemu:///system"),
        workloads=tuple(ws),
        connections=(Connection("libvirt", ConnState.UP),),
    )
    return State(hosts=(hs,), taken_at=time.time())


def best(fn: Callable[[], object], n: int) -> tuple[float, float]:
    """(min, median) in ms of n runs."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times) * 1000, statistics.median(times) * 1000


def with_samples(st: State, at: float) -> State:
    """What a resources poll changes: new samples (and live limits) for every domain."""
    hs = st.hosts[0]
    samples = tuple(
        Sample(w.key, at, kind="vm", cpu_pct=(at * 7 + i) % 100, live=Limits("libvirt live", 1.0, 1024))
        for i, w in enumerate(hs.workloads)
    )
    return replace(st, hosts=(replace(hs, samples=ResourceSnapshot(samples=samples, at=at)),))


def main() -> None:
    catalog = load_catalog()
    mine = sorted(
        c
        for c, v in catalog.items()
        if v.fn.__module__.split(".")[-1] in ("vm", "host", "container", "software")
    )
    enc = msgspec.json.Encoder()
    for label, st0 in (("realistic", fleet()), ("worst case", fleet(worst=True))):
        st = with_samples(st0, 1.0)
        polls = iter(with_samples(st0, 2.0 + i) for i in range(100))
        base_min, base_med = best(lambda: enc.encode(st), 5)
        mine_min, mine_med = best(lambda: run_checks(st, mine), 5)
        all_min, all_med = best(lambda: run_checks(st), 3)
        runner = CheckRunner()
        runner.run(st)
        poll_min, poll_med = best(lambda: runner.run(next(polls)), 5)
        ran = len(runner.ran)
        last = with_samples(st0, 999.0)
        runner.run(last)
        same_min, same_med = best(lambda: runner.run(last), 5)
        out = run_checks(st, mine)
        print(
            f"{label} fleet: {N_DOMAINS} domains, {N_TENANTS} tenants; {len(mine)} checks of this area "
            f"({len(catalog)} in all); {len(out)} results"
        )
        print(f"  baseline  msgspec encode of the State : min {base_min:7.1f} ms  median {base_med:7.1f} ms")
        for what, lo, med in (
            ("this area's catalog, first run", mine_min, mine_med),
            ("the whole catalog, first run  ", all_min, all_med),
            (f"poll: samples changed ({ran:2} run) ", poll_min, poll_med),
            ("poll: nothing changed         ", same_min, same_med),
        ):
            print(
                f"  checks    {what}: min {lo:7.1f} ms  median {med:7.1f} ms  "
                f"ratio {lo / base_min:5.1f}x baseline (min/min)"
            )

    host = LocalHost("bench")

    async def one_true() -> None:
        await host.run(["true"])

    async def facts() -> None:
        await FactsProbe().collect(host)

    t_min, t_med = best(lambda: asyncio.run(one_true()), 5)
    f_min, f_med = best(lambda: asyncio.run(facts()), 5)
    print(f"baseline  one `true` via LocalHost.run  : min {t_min:7.1f} ms  median {t_med:7.1f} ms")
    print(
        f"facts     FactsProbe.collect (this host): min {f_min:7.1f} ms  median {f_med:7.1f} ms  "
        f"ratio {f_min / t_min:5.1f}x baseline (min/min)"
    )


if __name__ == "__main__":
    main()
