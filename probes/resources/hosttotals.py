"""The host's own totals: CPU busy and steal, memory, disk and network, as raw counters.

Locally psutil reads them (already parsed, no fork); over SSH the same numbers come from
/proc/stat, /proc/meminfo, /proc/diskstats and /proc/net/dev in one read. The host's steal
is time its hypervisor gave to someone else: a host that is itself a VM and is starved
explains slowness that no tenant on it caused.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass

from probes.hosts.base import HostTransport
from probes.resources.netcounters import parse_net_dev

_SKIP_DISK = re.compile(r"^(loop|ram|zram|sr|fd|dm-|md)\d*")


@dataclass(frozen=True)
class RawTotals:
    cpus: int
    cpu_total: float  # seconds, all CPUs, all states
    cpu_idle: float  # idle + iowait
    cpu_steal: float
    mem_total: int
    mem_used: int  # total - available
    blk_read: int
    blk_write: int
    net_rx: int
    net_tx: int
    source: str


def _psutil_totals() -> RawTotals:
    import psutil

    t = psutil.cpu_times()
    total = sum(t)
    # guest time is already counted in user on Linux (psutil reports it separately)
    total -= getattr(t, "guest", 0.0) + getattr(t, "guest_nice", 0.0)
    vm = psutil.virtual_memory()
    d = psutil.disk_io_counters(perdisk=False)
    nics = psutil.net_io_counters(pernic=True)
    rx = sum(v.bytes_recv for k, v in nics.items() if k != "lo")
    tx = sum(v.bytes_sent for k, v in nics.items() if k != "lo")
    return RawTotals(
        psutil.cpu_count() or 1,
        total,
        t.idle + getattr(t, "iowait", 0.0),
        getattr(t, "steal", 0.0),
        vm.total,
        vm.total - vm.available,
        d.read_bytes if d else 0,
        d.write_bytes if d else 0,
        rx,
        tx,
        "psutil",
    )


def parse_proc_stat(text: str) -> tuple[int, float, float, float]:
    """(cpus, total s, idle+iowait s, steal s) from /proc/stat (USER_HZ = 100)."""
    cpus = 0
    total = idle = steal = 0.0
    for line in text.splitlines():
        if line.startswith("cpu "):
            f = [int(x) for x in line.split()[1:]]
            f += [0] * (10 - len(f))
            total = sum(f[:8]) / 100.0  # guest fields 8, 9 are included in user/nice
            idle = (f[3] + f[4]) / 100.0
            steal = f[7] / 100.0
        elif line.startswith("cpu"):
            cpus += 1
    return max(cpus, 1), total, idle, steal


def parse_meminfo(text: str) -> tuple[int, int]:
    vals: dict[str, int] = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        parts = v.split()
        if parts:
            vals[k] = int(parts[0]) * 1024
    total = vals.get("MemTotal", 0)
    avail = vals.get("MemAvailable", vals.get("MemFree", 0))
    return total, total - avail


def parse_diskstats(text: str) -> tuple[int, int]:
    """Bytes read and written by whole disks (partitions and virtual devices left out)."""
    rows = []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 10 and not _SKIP_DISK.match(f[2]):
            rows.append((f[2], int(f[5]) * 512, int(f[9]) * 512))
    names = {r[0] for r in rows}
    r = w = 0
    for name, rd, wr in rows:
        if any(name != n and name.startswith(n) for n in names):
            continue  # a partition of a disk already counted
        r += rd
        w += wr
    return r, w


async def read_totals(host: HostTransport) -> RawTotals:
    if host.is_local and not host.root:
        return await asyncio.to_thread(_psutil_totals)
    from probes.resources.cgroups import read_files

    files = await read_files(host, ["/proc/stat", "/proc/meminfo", "/proc/diskstats", "/proc/net/dev"])
    cpus, total, idle, steal = parse_proc_stat(files.get("/proc/stat") or "")
    mt, mu = parse_meminfo(files.get("/proc/meminfo") or "")
    br, bw = parse_diskstats(files.get("/proc/diskstats") or "")
    net = parse_net_dev(files.get("/proc/net/dev") or "")
    return RawTotals(cpus, total, idle, steal, mt, mu, br, bw, net.rx_bytes, net.tx_bytes, "/proc")


def cpu_count_local() -> int:
    return os.cpu_count() or 1
