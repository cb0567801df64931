"""A fleet of hundreds in one console: first full fleet view, memory, idle CPU, key latency.

Each host is a libvirt test-driver fleet (the demo's 12 domains, libvirt's view: its own
connection, inventory, topology and checks), so N hosts cost what N hypervisors' libvirt
views cost in tenantscope; SSH transport costs are measured by bench/ssh_idle.py. The app runs
headless (`App.run_test`) on the real Session and Engine, in this process.

For each N (the anchor N=1 first, in the same run):
- first full fleet view: from start until every host's lead probe has published and the fleet
  view (H) lists N rows;
- RSS after it (this process: the app, the engine, N libvirt connections);
- idle CPU over a window at the default 2 s interval (process CPU time / wall time);
- key latency: `s` (re-sort) in the fleet view, p50/p95 over 20 presses: from the press until
  the table holds the new order (and, for comparison, until the app is idle).
Targets at N=200: first view <= 10 s, RSS <= 400 MiB, idle CPU <= 5% of one core, key p95 <= 100 ms.

    .venv/bin/python -m bench.fleet [--sizes 1,50,200] [--idle 20]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import time

import psutil

from probes.engine import Engine
from probes.hosts.libvirt_view import LibvirtViewHost
from probes.session import Options, Session, demo_uri, make_deriver, make_probes
from tui.screens.fleet import FleetScreen

TARGETS = {"first_view_s": 10.0, "rss_mib": 400.0, "idle_cpu_pct": 5.0, "key_p95_ms": 100.0}


def _thread_cpu() -> dict[str, float]:
    """CPU seconds so far per kind of thread (its name up to the first '-' or '_': the event
    loop, tsf-derive, libvirt-HOST, ThreadPoolExecutor workers...)."""
    import re
    import threading

    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for th in psutil.Process().threads():
        name = names.get(th.id, "other")
        kind = re.sub(r"[-_]\w*$|\d+$", "", name.split(" ")[0])
        kind = (
            "tsf-derive"
            if name.startswith("tsf-derive")
            else "libvirt"
            if name.startswith("libvirt")
            else kind
        )
        out[kind] = out.get(kind, 0.0) + th.user_time + th.system_time
    return out


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def measure(n: int, idle_s: float, mark: str = "", profile: str = "") -> dict[str, float]:
    from tui.app import TenantScopeApp

    opts = Options(interval=2.0)
    hosts = [LibvirtViewHost(demo_uri(), name=f"hv{i:03d}") for i in range(n)]
    engine = Engine(hosts, make_probes(opts), make_deriver(opts), source="live", lead=("libvirt",))
    session = Session(opts, engine=engine)
    app = TenantScopeApp(opts, source=session)
    t0 = time.perf_counter()
    out: dict[str, float] = {}
    async with app.run_test(size=(200, 60)) as pilot:
        while True:  # every host's inventory in the State
            st = session.state
            if len(st.hosts) == n and all(h.workloads for h in st.hosts):
                break
            if time.perf_counter() - t0 > 120:
                raise RuntimeError(f"N={n}: not every host published within 120 s")
            await asyncio.sleep(0.05)
        await pilot.press("H")
        while not (isinstance(app.screen, FleetScreen) and len(app.screen._rows) == n):
            await pilot.pause(0.02)
        out["first_view_s"] = time.perf_counter() - t0
        await asyncio.sleep(4.0)  # let the first round of every probe settle
        out["rss_mib"] = psutil.Process().memory_info().rss / 2**20
        if mark:  # for a profiler attached to the idle window only (py-spy record --pid)
            with open(mark, "w") as f:
                f.write(f"{n}\n")
        c0, w0, t0 = _cpu(), time.perf_counter(), _thread_cpu()
        prof = None
        if profile:  # the event loop's thread only (cProfile), over the idle window
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        await asyncio.sleep(idle_s)
        if prof is not None:
            prof.disable()
            prof.dump_stats(f"{profile}.{n}")
        wall = time.perf_counter() - w0
        out["idle_cpu_pct"] = 100.0 * (_cpu() - c0) / wall
        t1 = _thread_cpu()  # where the idle CPU went, by kind of thread (printed with --threads)
        for k, v in t1.items():
            out[f"thread:{k}"] = 100.0 * (v - t0.get(k, 0.0)) / wall
        # The key's own answer: from the press until the fleet view holds the new order (polled
        # every millisecond on the loop, so it includes any work the key queued behind). Not
        # until the app is idle (pilot.pause): States keep arriving from N hosts, and waiting
        # for a quiet moment measures them, not the key; that figure is printed beside it.
        screen = app.screen
        assert isinstance(screen, FleetScreen)
        lat, idle = [], []
        for _ in range(20):
            before = screen.sort
            k0 = time.perf_counter()
            press = asyncio.ensure_future(pilot.press("s"))
            while not (screen.sort != before and _shows_order(screen)):
                await asyncio.sleep(0.001)
            lat.append((time.perf_counter() - k0) * 1000)
            await press
            await pilot.pause()
            idle.append((time.perf_counter() - k0) * 1000)
            await asyncio.sleep(0.1)
        out["key_p50_ms"] = statistics.median(lat)
        out["key_p95_ms"] = statistics.quantiles(lat, n=20)[18]
        out["idle_p95_ms"] = statistics.quantiles(idle, n=20)[18]
    await session.stop()
    return out


def _shows_order(screen: FleetScreen) -> bool:
    """Whether the fleet table's rows are in the screen's current sort order."""
    from textual.widgets import DataTable

    table = screen.query_one("#fleet-table", DataTable)
    want = [r.host for r in screen._rows]
    return [r.key.value for r in table.ordered_rows] == want  # (the order shown; a sort moves no row)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,50,200")
    ap.add_argument("--idle", type=float, default=20.0, help="idle window in seconds")
    ap.add_argument("--mark", default="", help="write this file when an idle window starts")
    ap.add_argument("--threads", action="store_true", help="print the idle CPU by kind of thread")
    ap.add_argument("--profile", default="", help="cProfile the event loop's idle window into FILE.N")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    results = {}
    for n in sizes:
        results[n] = asyncio.run(measure(n, args.idle, args.mark, args.profile))
        r = results[n]
        print(
            f"N={n:4d}: first fleet view {r['first_view_s']:.2f} s · RSS {r['rss_mib']:.0f} MiB · "
            f"idle CPU {r['idle_cpu_pct']:.2f}% of a core · key p50 {r['key_p50_ms']:.0f} ms, "
            f"p95 {r['key_p95_ms']:.0f} ms (until idle p95 {r['idle_p95_ms']:.0f} ms)",
            flush=True,
        )
        if args.threads:
            by = sorted(((v, k[7:]) for k, v in r.items() if k.startswith("thread:")), reverse=True)
            print(
                "  idle CPU by thread: " + ", ".join(f"{k} {v:.2f}%" for v, k in by if v >= 0.05), flush=True
            )
    anchor = results.get(sizes[0])
    if anchor and len(sizes) > 1:
        for n in sizes[1:]:
            r = results[n]
            print(
                f"N={n} vs N={sizes[0]} (same run): first view x{r['first_view_s'] / anchor['first_view_s']:.1f}, "
                f"RSS x{r['rss_mib'] / anchor['rss_mib']:.1f} "
                f"(+{(r['rss_mib'] - anchor['rss_mib']) / max(n - sizes[0], 1):.2f} MiB/host), "
                f"idle CPU +{(r['idle_cpu_pct'] - anchor['idle_cpu_pct']) / max(n - sizes[0], 1):.3f}%/host"
            )
    big = results[max(sizes)]
    for k, limit in TARGETS.items():
        verdict = "met" if big[k] <= limit else "MISSED"
        print(f"target N={max(sizes)} {k}: {big[k]:.2f} (<= {limit}) {verdict}")


if __name__ == "__main__":
    main()
