"""Benchmark: how soon a change shows in the published State, event-driven vs polled.

    .venv/bin/python -m bench.events [--repeats 5]   (root: bridges, namespaces)

For each event source, a real change is made N times and the time from the moment the
command that made it returned to the first published State showing it is measured, with the
probe event-driven (its poll 60 s away) and, as the anchor in the same run, with the same
probe polled at its former interval (events off):

- netlink: a veth moved from one bridge to another (TopologyProbe; polled every 5 s);
- inotify on /run/netns: a named namespace added (NetnsProbe; polled every 5 s);
- libvirt domain event: a domain suspended and resumed on the test driver (LibvirtProbe;
  polled every 2 s).

Target: every change shows within 0.5 s. Everything created is removed by name.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from probes.engine import Engine
from probes.hosts.local import LocalHost
from probes.model import State

PREFIX = "tsbe-"
TARGET = 0.5


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def cleanup() -> None:
    for ns in os.listdir("/run/netns") if os.path.isdir("/run/netns") else []:
        if ns.startswith(PREFIX):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(PREFIX):
            subprocess.run(["ip", "link", "del", name], capture_output=True)


async def latencies(
    probe: object, host: LocalHost, change: Callable[[int], None], shows: Callable[[State, int], bool], n: int
) -> list[float]:
    engine = Engine([host], lambda h: [probe])  # type: ignore[list-item]
    got: dict[int, float] = {}
    want = [-1]

    def sub(st: State) -> None:
        if want[0] >= 0 and want[0] not in got and shows(st, want[0]):
            got[want[0]] = time.monotonic()

    engine.subscribe(sub)
    engine.start()
    out: list[float] = []
    try:
        await asyncio.sleep(1.5)  # the first run and its publish
        for i in range(n):
            await asyncio.to_thread(change, i)
            t0 = time.monotonic()
            want[0] = i
            sub(engine.state)
            for _ in range(2000):
                if i in got:
                    break
                await asyncio.sleep(0.005)
            out.append(got.get(i, float("inf")) - t0)
            await asyncio.sleep(0.3)
    finally:
        await engine.stop()
    return out


def report(name: str, ev: list[float], poll: list[float], poll_every: float) -> bool:
    med_e, med_p = statistics.median(ev), statistics.median(poll)
    ok = max(ev) <= TARGET
    print(
        f"  {name:34} events: median {med_e * 1000:6.0f} ms, max {max(ev) * 1000:6.0f} ms | "
        f"polled every {poll_every:g} s: median {med_p * 1000:6.0f} ms | "
        f"ratio {med_p / med_e if med_e > 0 else float('inf'):5.1f}x | "
        f"target {TARGET * 1000:.0f} ms: {'met' if ok else 'MISSED'}"
    )
    return ok


async def bench_netlink(n: int) -> bool:
    from probes.network.events import LocalNetEvents
    from probes.network.topology import TopologyProbe

    for br in ("tsbe-br1", "tsbe-br2"):
        sh("ip", "link", "add", br, "type", "bridge")
    sh("ip", "link", "add", "tsbe-v0", "type", "veth", "peer", "name", "tsbe-v1")

    def change(i: int) -> None:
        sh("ip", "link", "set", "tsbe-v0", "master", f"tsbe-br{1 + i % 2}")

    def shows(st: State, i: int) -> bool:
        topo = st.hosts[0].topology
        want = f"tsbe-br{1 + i % 2}"
        return topo is not None and any(lk.name == "tsbe-v0" and lk.master == want for lk in topo.links)

    host = LocalHost(libvirt_uri=None)
    ev = await latencies(
        TopologyProbe(interval=60, events=LocalNetEvents(), safety=60), host, change, shows, n
    )
    poll = await latencies(TopologyProbe(interval=5.0), host, change, shows, n)
    return report("netlink: veth moved to a bridge", ev, poll, 5.0)


async def bench_netns(n: int) -> bool:
    from probes.inventory.netns import NetnsProbe
    from probes.network.events import LocalNetEvents

    run = [0]

    def change(i: int) -> None:
        sh("ip", "netns", "add", f"tsbe-ns{run[0]}-{i}")

    def shows(st: State, i: int) -> bool:
        return any(w.name == f"tsbe-ns{run[0]}-{i}" for w in st.hosts[0].workloads)

    host = LocalHost(libvirt_uri=None)
    ev = await latencies(NetnsProbe(interval=60, events=LocalNetEvents(), safety=60), host, change, shows, n)
    run[0] = 1
    poll = await latencies(NetnsProbe(interval=5.0), host, change, shows, n)
    return report("inotify: namespace added", ev, poll, 5.0)


async def bench_libvirt(n: int) -> bool:
    from probes.inventory.libvirt import LibvirtProbe
    from probes.session import demo_uri

    host = LocalHost("demo-hv1", libvirt_uri=demo_uri())

    def make(events: bool) -> tuple[LibvirtProbe, Callable[[int], None]]:
        p = LibvirtProbe(interval=60.0 if events else 2.0, safety=60.0, events=events)

        def change(i: int) -> None:
            dom = p._conn.lookupByName("acme-web-1")
            dom.suspend() if i % 2 == 0 else dom.resume()

        return p, change

    def shows(st: State, i: int) -> bool:
        want = "paused" if i % 2 == 0 else "running"
        return any(w.name == "acme-web-1" and w.state == want for w in st.workloads())

    p, change = make(True)
    ev = await latencies(p, host, change, shows, n)
    p, change = make(False)
    poll = await latencies(p, host, change, shows, n)
    return report("libvirt: domain suspended/resumed", ev, poll, 2.0)


async def main_async(n: int) -> int:
    cleanup()
    ok = True
    try:
        print(f"== change -> published State, {n} changes per source (machine shared: medians)")
        ok &= await bench_netlink(n)
        ok &= await bench_netns(n)
        ok &= await bench_libvirt(n)
    finally:
        cleanup()
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.events", description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench.events: needs root (bridges, namespaces)", file=sys.stderr)
        return 2
    return asyncio.run(main_async(args.repeats))


if __name__ == "__main__":
    sys.exit(main())
