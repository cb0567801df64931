"""The host's own totals: CPU busy and steal, memory, disk and network, as raw counters.

They come from /proc/stat, /proc/meminfo, /proc/diskstats and /proc/net/dev, parsed by the
same functions as the remote helper's (which pushes them from an SSH host). Locally the four
files stay open and are re-read in place on the event loop (~0.07 ms; psutil took ~0.27 ms
and a worker-thread hop, at every refresh of an idle console). Disks are whole physical
disks, as over SSH (psutil also counted dm-/md devices, counting LVM or RAID I/O twice). The
host's steal is time its hypervisor gave to someone else: a host that is itself a VM and is
starved explains slowness that no tenant on it caused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from probes.hosts import remote_helper
from probes.hosts.base import HostTransport
from probes.resources.cgroups import OpenFiles, read_files
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


# the same parsers as the remote helper's, which pushes these totals from an SSH host
parse_proc_stat = remote_helper.proc_stat
parse_meminfo = remote_helper.meminfo
parse_diskstats = remote_helper.diskstats


FILES = ("/proc/stat", "/proc/meminfo", "/proc/diskstats", "/proc/net/dev")


async def read_totals(host: HostTransport, keep: OpenFiles | None = None) -> RawTotals:
    """`keep`: locally, the files kept open between refreshes (read on the event loop)."""
    if host.is_local and keep is not None:
        files = {p: keep.read(host.root + p) for p in FILES}
    else:
        files = await read_files(host, list(FILES))
    cpus, total, idle, steal = parse_proc_stat(files.get("/proc/stat") or "")
    mt, mu = parse_meminfo(files.get("/proc/meminfo") or "")
    br, bw = parse_diskstats(files.get("/proc/diskstats") or "")
    net = parse_net_dev(files.get("/proc/net/dev") or "")
    return RawTotals(cpus, total, idle, steal, mt, mu, br, bw, net.rx_bytes, net.tx_bytes, "/proc")


def cpu_count_local() -> int:
    return os.cpu_count() or 1
