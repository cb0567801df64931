"""The lab's cgroups: one group per workload in every hierarchy that carries a controller the
limits need (v1 cpu, cpuacct, memory, pids; the v2 mount as well, where the group's path names
the workload for the container inventory), created under `<mount>/tsl/TENANT/WL`.

Limits are written in whichever hierarchy has the controller: v1 files where the v1 controller
is mounted, else v2 (cpu.max, memory.max, pids.max).
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from dataclasses import dataclass

V1_WANTED = ("cpu", "cpuacct", "memory", "pids")


@dataclass(frozen=True)
class Mounts:
    v1: tuple[tuple[str, str], ...]  # (controller, mountpoint)
    v2: str  # cgroup2 mountpoint or ""

    def v1_mount(self, ctrl: str) -> str:
        return next((m for c, m in self.v1 if c == ctrl), "")

    def roots(self) -> tuple[str, ...]:
        """Distinct mountpoints to create groups in (co-mounted controllers share one)."""
        out: list[str] = []
        for _, m in self.v1:
            if m not in out:
                out.append(m)
        if self.v2 and self.v2 not in out:
            out.append(self.v2)
        return tuple(out)

    def v2_has(self, ctrl: str) -> bool:
        if not self.v2 or self.v1_mount(ctrl):
            return False
        try:
            return ctrl in open(os.path.join(self.v2, "cgroup.controllers")).read().split()
        except OSError:
            return False


def mounts(proc_mounts: str = "/proc/mounts") -> Mounts:
    """The hierarchies the lab writes to, from the same mount parsing the resources probe uses."""
    from probes.resources.cgroups import parse_mounts

    with open(proc_mounts) as f:
        layout = parse_mounts(f.read())
    return Mounts(tuple((c, m) for c, m in layout.v1 if c in V1_WANTED), layout.v2)


def dirs_for(m: Mounts, rel: str) -> list[str]:
    """The group `rel` (e.g. tsl/acme/web) in every hierarchy, with its parents, parents first."""
    parts = rel.strip("/").split("/")
    out = []
    for root in m.roots():
        for i in range(1, len(parts) + 1):
            d = os.path.join(root, *parts[:i])
            if d not in out:
                out.append(d)
    return out


def leaves(m: Mounts, rel: str) -> list[str]:
    return [os.path.join(root, rel.strip("/")) for root in m.roots()]


def write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def set_limits(
    m: Mounts,
    rel: str,
    *,
    quota_us: int | None,
    period_us: int,
    shares: int | None,
    mem: int | None,
    pids: int | None,
) -> None:
    """Write the limits (None: no limit) into the hierarchy that has each controller."""
    rel = rel.strip("/")
    if cpu := m.v1_mount("cpu"):
        d = os.path.join(cpu, rel)
        write(f"{d}/cpu.cfs_period_us", str(period_us))
        write(f"{d}/cpu.cfs_quota_us", str(quota_us if quota_us is not None else -1))
        if shares is not None:
            write(f"{d}/cpu.shares", str(shares))
    elif m.v2_has("cpu"):
        d = os.path.join(m.v2, rel)
        write(f"{d}/cpu.max", f"{quota_us if quota_us is not None else 'max'} {period_us}")
        if shares is not None:
            write(f"{d}/cpu.weight", str(max(1, min(10000, shares * 100 // 1024))))
    if mm := m.v1_mount("memory"):
        write(f"{os.path.join(mm, rel)}/memory.limit_in_bytes", str(mem if mem is not None else -1))
    elif m.v2_has("memory"):
        write(f"{os.path.join(m.v2, rel)}/memory.max", str(mem) if mem is not None else "max")
    if pm := m.v1_mount("pids"):
        write(f"{os.path.join(pm, rel)}/pids.max", str(pids) if pids is not None else "max")
    elif m.v2_has("pids"):
        write(f"{os.path.join(m.v2, rel)}/pids.max", str(pids) if pids is not None else "max")


def enable_v2_controllers(m: Mounts, rel_parents: list[str]) -> None:
    """On a v2-only host: enable cpu/memory/pids for the lab's own subtree (never the root's)."""
    if not m.v2 or m.v1:
        return
    want = [c for c in ("cpu", "memory", "pids") if m.v2_has(c)]
    for rel in rel_parents:
        with contextlib.suppress(OSError):
            write(os.path.join(m.v2, rel, "cgroup.subtree_control"), " ".join("+" + c for c in want))


def procs_in(d: str) -> list[int]:
    try:
        return [int(x) for x in open(os.path.join(d, "cgroup.procs")).read().split()]
    except OSError:
        return []


def remove(d: str, timeout: float = 5.0) -> bool:
    """rmdir one group; it may take a moment after its last process died (EBUSY)."""
    end = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(d)
            return True
        except FileNotFoundError:
            return True
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > end:
                return False
            time.sleep(0.02)
