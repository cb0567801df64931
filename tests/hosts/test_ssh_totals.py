"""Issue 19 (idle cost per SSH host): an SSH host's totals (/proc/stat, meminfo, diskstats,
net/dev) are pushed by its remote helper every interval, and the resources probe takes the
newest instead of asking (one short line instead of a request and the files' text); without
the helper it asks the host as before. Frames are untrusted: malformed totals are dropped.

Real parts: OpenSSH sshd on loopback (tests/fixtures/sshd.py) whose "remote" is this machine,
the real helper and probe; the host's `run` is wrapped only to record which commands ran."""

from __future__ import annotations

import asyncio
import json
import os
import time

import psutil

from probes.hosts import remote_helper
from probes.hosts.remote_events import RemoteNetEvents, parse_frame
from probes.resources import hosttotals, netcounters
from probes.resources.probe import ResourcesProbe
from tests.fixtures.sshd import ssh_host, sshd  # noqa: F401
from tests.helpers import needs_root

GOOD = [2, 100.0, 50.0, 0.0, 4096, 1024, 0, 0, 10, 20]


def test_pushed_totals_frames_are_checked():
    assert parse_frame(json.dumps(["T", GOOD])) == ("T", tuple(GOOD))
    for bad in (
        GOOD[:9],  # not ten
        [*GOOD[:9], -1],  # negative
        [*GOOD[:9], "20"],  # not a number
        [*GOOD[:9], True],
        [*GOOD[:9], 2**70],  # beyond any counter
        [0, *GOOD[1:]],  # no CPU
    ):
        assert parse_frame(json.dumps(["T", bad])) == ("", None), bad
    assert parse_frame('["T", [2, NaN, 1, 1, 1, 1, 1, 1, 1, 1]]') == ("", None)


def test_the_console_parses_proc_files_with_the_helpers_code():
    """One implementation: what the helper pushes and what the console reads when it asks."""
    assert hosttotals.parse_proc_stat is remote_helper.proc_stat
    assert hosttotals.parse_diskstats is remote_helper.diskstats
    assert hosttotals.parse_meminfo is remote_helper.meminfo
    with open("/proc/net/dev") as f:
        text = f.read()
    assert netcounters.parse_net_dev(text) == netcounters.NetCounters(*remote_helper.net_dev(text))
    # the per-CPU lines end the read of /proc/stat: the interrupts line is not parsed
    assert remote_helper.proc_stat("cpu  1 0 1 7 1 0 0 5 0 0\ncpu0 1\ncpu1 1\nintr x y\ncpu9 1\n") == (
        2,
        0.15,
        0.08,
        0.05,
    )


@needs_root
async def test_an_ssh_hosts_totals_come_pushed_not_asked(sshd, monkeypatch):
    host = ssh_host(sshd)
    asked: list[list[str]] = []
    real_run = host.run

    async def run(argv, **kw):  # recording only: the real SSH command runs
        asked.append(list(argv))
        return await real_run(argv, **kw)

    monkeypatch.setattr(host, "run", run)
    events = RemoteNetEvents(host, totals=0.3)
    probe = ResourcesProbe(interval=0.3, libvirt=False, pushed=events)
    try:
        await events.start()
        end = time.monotonic() + 20
        while events.totals_seq < 2:
            assert time.monotonic() < end, events.error
            await asyncio.sleep(0.05)
        snaps = []
        for _ in range(3):
            snaps.append(await probe.collect(host))
            await asyncio.sleep(0.4)
        read_proc = [a for a in asked if "/proc/stat" in a]
        assert not read_proc, read_proc  # never asked: pushed
        t = snaps[-1].totals
        assert t.source == "/proc (pushed by the remote helper)"
        assert t.cpus == os.cpu_count() and t.mem_total == psutil.virtual_memory().total
        assert t.cpu_pct is not None and 0.0 <= t.cpu_pct <= 100.0  # a rate over two pushes
        # the helper's stream ends: nothing pushed any more, the probe asks the host itself
        await events.stop_stream()
        snap = await probe.collect(host)
        assert [a for a in asked if "/proc/stat" in a] and snap.totals.source == "/proc"
    finally:
        events.close()
        await probe.close()
        await host.close()
