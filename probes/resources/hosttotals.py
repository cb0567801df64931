"""The host's own totals: CPU busy and steal, memory, disk and network, as raw counters.

Locally psutil reads them (already parsed, no fork); over SSH the same numbers come from
/proc/stat, /proc/meminfo, /proc/diskstats and /proc/net/dev in one read. The host's steal
is time its hypervisor gave to someone else: a host that is itself a VM and is starved
explains slowness that no tenant on it caused.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from probes.hosts import remote_helper
from probes.hosts.base import HostTransport
from probes.resources.netcounters import parse_net_dev


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
    at: float | None = None  # when it was sampled (pushed totals: received); None: now


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


# the same parsers as the remote helper's, which pushes these totals from an SSH host
parse_proc_stat = remote_helper.proc_stat
parse_meminfo = remote_helper.meminfo
parse_diskstats = remote_helper.diskstats


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
