"""The demo fleet's logs: what demo-hv1 would have written in the minutes before it was opened.

The demo's hypervisor is libvirt's test driver: nothing runs there and nothing writes a log, so
the Logs pane had nothing to show. So that search, filters, Enter on a line and a finding's
evidence can be tried in the demo, this source hands the logs service a few simulated lines
about the demo's planted faults (probes/demo/fleet.xml), written in the format of the file they
would be read from and read by the same parsers, classification and attribution as real lines.
Each message is one a real host writes (its origin beside it; the disk-lock and OOM messages
are also in tests/data/logs/real-messages.json and corpus.log with their sources). The times
are minutes before the demo started, so the pane reads like a host that was just looked at. No
file of this machine is read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from probes.logs.model import SourceState

HOST = "demo-hv1"
SYSLOG = "file:/var/log/syslog"
DETAIL = "simulated lines of the demo fleet (no file of this machine is read)"
_SCRATCH = "/var/lib/libvirt/images/shared-scratch.qcow2"
_BLOCKDEV = (
    '-blockdev {"driver":"file","filename":"' + _SCRATCH + '","node-name":"libvirt-2-storage",'
    '"auto-read-only":true,"discard":"unmap"}'
)
_STARTING = (
    "starting up libvirt version: 9.0.0, package: 9.0.0-4+deb12u2 (Debian), "
    "qemu version: 7.2.19Debian 1:7.2+dfsg-7+deb12u16, kernel: 6.1.0-40-amd64, hostname: " + HOST
)

# (seconds before the demo started, source, line): {syslog} is an rsyslog RFC 3339 time stamp,
# {libvirt} libvirt's "2026-12-07 02:01:00.123+0000", {qemu} qemu's "2026-12-07T02:01:00.123456Z"
LINES: tuple[tuple[int, str, str], ...] = (
    # systemd: "Started %s - %s." (unit start job done)
    (1510, SYSLOG, "{syslog} demo-hv1 systemd[1]: Started libvirtd.service - Virtualization daemon."),
    # fault 1 (NET-02, NET-04): two tenants' ports join host bridge br-shared (Linux
    # net/bridge/br_stp.c br_log_state: "port %u(%s) entered %s state")
    (1442, SYSLOG, "{syslog} demo-hv1 kernel: br-shared: port 1(tap-acmedb1s) entered blocking state"),
    (1442, SYSLOG, "{syslog} demo-hv1 kernel: br-shared: port 1(tap-acmedb1s) entered forwarding state"),
    (1380, SYSLOG, "{syslog} demo-hv1 kernel: br-shared: port 2(tap-initechci1) entered blocking state"),
    (1380, SYSLOG, "{syslog} demo-hv1 kernel: br-shared: port 2(tap-initechci1) entered forwarding state"),
    # dnsmasq's lease log: "DHCPACK(%s) %s %s %s" (interface, address, MAC, client name)
    (
        1322,
        SYSLOG,
        "{syslog} demo-hv1 dnsmasq-dhcp[1187]: DHCPACK(br-acme) 10.10.1.11 52:54:00:a0:00:01 acme-web-1",
    ),
    (
        1290,
        SYSLOG,
        "{syslog} demo-hv1 dnsmasq-dhcp[1191]: DHCPACK(br-globex) 10.10.2.11 52:54:00:b0:00:01 globex-app-1",
    ),
    # fault 5 (VM-09 -> LOG-02): globex-db-1 cannot start: acme-db-1 holds shared-scratch's
    # lock (qemu block/file-posix.c raw_check_lock_bytes and its hint; libvirt's qemu log
    # "starting up ..." and "shutting down, reason=%s"; libvirtd qemu_monitor.c's message)
    (764, "file:/var/log/libvirt/qemu/globex-db-1.log", "{libvirt}: " + _STARTING),
    (
        763,
        "file:/var/log/libvirt/qemu/globex-db-1.log",
        "{qemu} qemu-system-x86_64: " + _BLOCKDEV + ': Failed to get "write" lock',
    ),
    (
        763,
        "file:/var/log/libvirt/qemu/globex-db-1.log",
        "Is another process using the image [" + _SCRATCH + "]?",
    ),
    (762, "file:/var/log/libvirt/qemu/globex-db-1.log", "{libvirt}: shutting down, reason=failed"),
    (
        762,
        SYSLOG,
        "{syslog} demo-hv1 libvirtd[1021]: internal error: qemu unexpectedly closed the monitor (vm='globex-db-1'): {qemu} qemu-system-x86_64: "
        + _BLOCKDEV
        + ': Failed to get "write" lock',
    ),
    # fault 8 (VM-05 -> LOG-03): initech-build-1 has no memory hard limit; the host ran out of
    # memory and the kernel's OOM killer chose its qemu (Linux mm/oom_kill.c dump_oom_summary
    # and __oom_kill_process: "%s: Killed process %d (%s) total-vm:%lukB, ...")
    (
        561,
        SYSLOG,
        "{syslog} demo-hv1 kernel: qemu-system-x86 invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0",
    ),
    (
        561,
        SYSLOG,
        "{syslog} demo-hv1 kernel: oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/machine.slice/machine-qemu\\x2d7\\x2dinitech\\x2dbuild\\x2d1.scope/libvirt/emulator,task=qemu-system-x86,pid=48213,uid=64055",
    ),
    (
        561,
        SYSLOG,
        "{syslog} demo-hv1 kernel: Out of memory: Killed process 48213 (qemu-system-x86) total-vm:6893320kB, anon-rss:4235112kB, file-rss:21504kB, shmem-rss:0kB, UID:64055 pgtables:9012kB oom_score_adj:0",
    ),
    (540, "file:/var/log/libvirt/qemu/initech-build-1.log", "{libvirt}: " + _STARTING),
    # sshd: "Accepted %s for %s from %s port %d %s%s%s"
    (
        95,
        SYSLOG,
        "{syslog} demo-hv1 sshd[52310]: Accepted publickey for oncall from 192.0.2.10 port 51234 ssh2: ED25519 SHA256:Qx3u0C1p2W8lZq5yV9bQmH7f2kJd8sE4aT6nR1oYcLw",
    ),
)


def _stamps(at: float) -> dict[str, str]:
    t = datetime.fromtimestamp(at, UTC)
    return {
        "syslog": t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}+00:00",
        "libvirt": t.strftime("%Y-%m-%d %H:%M:%S.") + f"{t.microsecond // 1000:03d}+0000",
        "qemu": t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}Z",
    }


def lines(started: float) -> list[tuple[str, str]]:
    """(source, line) of the demo's logs, timed before `started`, oldest first."""
    out = []
    for i, (before, source, line) in enumerate(LINES):
        # a few milliseconds apart: lines of one second keep their order on any sort by time
        stamps = _stamps(started - before + i / 1000)
        for k, v in stamps.items():  # (not str.format: qemu's -blockdev JSON has braces)
            line = line.replace("{" + k + "}", v)
        out.append((source, line))
    return out


def demo_sources(clock: Callable[[], float] = time.time) -> Callable[[Any], list[tuple[str, Any]]]:
    """The logs service's sources for the demo host (LogService(sources=...)): one simulated
    source per file, each read to its end at once."""

    def sources(hl: Any) -> list[tuple[str, Any]]:
        if hl.name != HOST:
            return []
        return [("demo", _put_all(hl, lines(clock())))]

    return sources


async def _put_all(sink: Any, got: list[tuple[str, str]]) -> None:
    """Every line in time order, each source's through its file's parser (one parser per
    source: an untimed line takes the time of that file's line before)."""
    from probes.logs.sources import line_parser

    parsers: dict[str, Callable[[str], Any]] = {}
    run: list[str] = []
    for i, (source, line) in enumerate(got):
        run.append(line)
        if i + 1 == len(got) or got[i + 1][0] != source:
            parse = parsers.setdefault(source, line_parser(source, HOST))
            sink.put_lines(parse, run)
            run = []
    for source in parsers:
        sink.state(source, "file", SourceState.DONE, DETAIL)
