"""Benchmark: how soon a change on an SSH host shows in the published State, through the
host's remote helper (events) vs the same probes polled (the anchor, same run).

    .venv/bin/python -m bench.ssh_events [--repeats 5]   (root: sshd, namespaces)

A real OpenSSH sshd on 127.0.0.1 (the test fixture's) is the "remote"; on it, N times:

- netlink: a veth moved from one bridge to another inside a namespace made here (TopologyProbe);
- inotify on /run/netns: a named namespace added (NetnsProbe);
- inotify on a followed log file: a line appended (the remote log follower, woken by inotify,
  its safety read 60 s away; no polled anchor: it looked every 0.25 s before).

Each change is timed from the moment the command that made it returned to the first published
State (or received line) showing it. Event-driven: polls 60 s away; polled: the probes'
default intervals (5 s) with the helper absent (a python that does not exist). Target: 0.5 s.
Everything created is removed by name.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from probes.engine import Engine
from probes.hosts.remote_events import RemoteNetEvents
from probes.inventory.netns import NetnsProbe
from probes.network.topology import TopologyProbe
from tests.fixtures.events import bridged_veth_ns, master_of, until_state
from tests.fixtures.sshd import make_sshd, ssh_host, sshd_missing_reason

TARGET = 0.5
SLOW = 60.0
WAIT = 30.0  # the bound on one change showing (a hang, not a measurement)


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


async def network(sshd: object, ns: str, n: int, evented: bool) -> tuple[list[float], list[float]]:
    """(veth moves, namespaces added) in seconds."""
    events = RemoteNetEvents(ssh_host(sshd), python="python3" if evented else "tsbs-no-python")  # type: ignore[arg-type]
    every = SLOW if evented else 5.0
    topo = TopologyProbe(interval=every, events=events, safety=SLOW)
    netns = NetnsProbe(interval=every, events=events, safety=SLOW)
    engine = Engine([events.host], lambda _: [netns, topo])
    engine.start()
    moves: list[float] = []
    adds: list[float] = []
    try:
        await until_state(engine, lambda st: master_of(st, "tsbs-v0", ns) in ("tsbs-br1", "tsbs-br2"), WAIT)
        for _ in range(100):
            if events.live or events.no_python:
                break
            await asyncio.sleep(0.1)
        engine.poke()
        await asyncio.sleep(1.0)
        for _ in range(n):
            br = "tsbs-br2" if master_of(engine.state, "tsbs-v0", ns) == "tsbs-br1" else "tsbs-br1"
            sh("ip", "-n", ns, "link", "set", "tsbs-v0", "master", br)
            moves.append(
                await until_state(engine, lambda st, br=br: master_of(st, "tsbs-v0", ns) == br, WAIT)
            )
            await asyncio.sleep(0.5)
        for i in range(n):
            name = f"{ns}-{i}"
            sh("ip", "netns", "add", name)
            adds.append(
                await until_state(
                    engine, lambda st, name=name: any(w.name == name for w in st.hosts[0].workloads), WAIT
                )
            )
            sh("ip", "netns", "del", name)
            await asyncio.sleep(0.5)
    finally:
        await engine.stop()
        await events.host.close()
    return moves, adds


async def log_lines(s: object, d: str, n: int) -> list[float]:
    from probes.logs.remote_follow import RemoteFiles
    from tests.logs.test_logs_remote_follow import Sink

    path = os.path.join(d, "tsbs-app.log")
    with open(path, "w") as f:
        f.write("start\n")
    host = ssh_host(s)  # type: ignore[arg-type]
    sink = Sink()
    rf = RemoteFiles([path], host, sink, interval=0.25, safety=SLOW)
    task = asyncio.create_task(rf.run())
    out: list[float] = []
    name = f"file:{path}"
    try:
        for _ in range(300):
            if sink.by_source().get(name):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        for i in range(n):
            line = f"tsbs line {i}"
            with open(path, "a") as f:
                f.write(line + "\n")
            t0 = time.monotonic()
            while line not in sink.by_source().get(name, []):
                await asyncio.sleep(0.005)
                if time.monotonic() - t0 > 30:
                    break
            out.append(time.monotonic() - t0)
            await asyncio.sleep(0.7)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await host.close()
    return out


def _fmt(xs: list[float]) -> str:
    return f"median {statistics.median(xs) * 1000:6.0f} ms, max {max(xs) * 1000:6.0f} ms"


async def main_async(n: int) -> None:
    tmp = tempfile.mkdtemp(prefix="tse-bench-sshev-")
    s = make_sshd(tmp)
    ns = ""
    try:
        with bridged_veth_ns("tsbs") as ns:
            print(
                f"load: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {n} changes per source; target {TARGET} s"
            )
            ev_moves, ev_adds = await network(s, ns, n, True)
            po_moves, po_adds = await network(s, ns, n, False)
            ev_log = await log_lines(s, tmp, n)
            print(f"{'source':34} {'events (remote helper)':32} {'polled (same run)':32} ratio")
            for label, ev, po in (
                ("netlink: veth moved", ev_moves, po_moves),
                ("inotify /run/netns: netns added", ev_adds, po_adds),
            ):
                ratio = statistics.median(po) / max(statistics.median(ev), 1e-6)
                met = (
                    "met"
                    if max(ev) <= TARGET
                    else ("median met, max missed" if statistics.median(ev) <= TARGET else "MISSED")
                )
                print(f"{label:34} {_fmt(ev):32} {_fmt(po):32} {ratio:5.1f}x ({met})")
            met = "met" if max(ev_log) <= TARGET else "MISSED"
            print(
                f"{'inotify: log line appended':34} {_fmt(ev_log):32} {'(was: looked at every 0.25 s)':32}       ({met})"
            )
            print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        for x in os.listdir("/run/netns") if ns else ():
            if x.startswith(ns):  # the namespaces the run added beside its own
                subprocess.run(["ip", "netns", "del", x], capture_output=True)
        s.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    reason = sshd_missing_reason() or (None if os.geteuid() == 0 else "needs root")
    if reason:
        print(f"skipped: {reason}")
        return 0
    asyncio.run(main_async(args.repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
