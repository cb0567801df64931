"""Benchmark: what a State change costs the TUI on a large fleet (headless, with the Pilot).

    .venv/bin/python -m bench.tui [--workloads 1000] [--tenants 50] [--findings 300]

The app is fed through tui.source.StaticSource (the same path as the live Engine) and each
case pushes one State and waits until the app has processed it and repainted:

- baseline: a State whose only change is its timestamp (panes must skip all work);
- relabel: one workload changes state (the Tenants tree relabels in place);
- rebuild: a workload appears (the tree is rebuilt, cursor and collapsed groups kept);
- findings: one finding changes (the Findings table is refilled);
- burst: 100 States pushed at once (coalesced into one render).

For each: the panes' work for one State (measured around the app's render call) and the
repaint after it. Prints medians and the ratio of the work to the baseline; these machines
are noisy, so only the ratios mean anything from one run to the next.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import replace
from datetime import UTC

from probes.model import (
    Finding,
    Host,
    HostState,
    Placement,
    Severity,
    State,
    Status,
    Tenant,
    Workload,
    WorkloadKind,
)
from tui.app import TenantScopeApp
from tui.source import StaticSource


def fleet(n: int, tenants: int, findings: int) -> State:
    ws = tuple(
        Workload(
            WorkloadKind.VM,
            f"t{i % tenants:02d}-vm{i:04d}",
            "hv1",
            state="running",
            tenant=f"t{i % tenants:02d}",
            placed_by=Placement.PREFIX,
            placed_rule="prefix",
        )
        for i in range(n)
    )
    host = HostState(host=Host("hv1"), workloads=ws, refreshed_at=1.0)
    statuses = list(Status)
    fs = tuple(
        Finding(
            f"VM-{i % 20:02d}",
            "vm",
            "t",
            statuses[i % len(statuses)],
            Severity.MEDIUM,
            "hv1",
            f"finding {i}",
            tenants=(f"t{i % tenants:02d}",),
        )
        for i in range(findings)
    )
    return State(
        hosts=(host,), tenants=tuple(Tenant(f"t{t:02d}") for t in range(tenants)), findings=fs, taken_at=1.0
    )


async def run(args: argparse.Namespace) -> None:
    base = fleet(args.workloads, args.tenants, args.findings)
    source = StaticSource(base)
    app = TenantScopeApp(source=source, clock=lambda: 1.0, tz=UTC)
    t0 = time.perf_counter()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        print(
            f"first frame with {args.workloads} workloads, {args.findings} findings: "
            f"{(time.perf_counter() - t0) * 1000:.0f} ms"
        )

        async def measure(make, reps: int = args.reps) -> tuple[float, float]:
            """Pane work (the app's render of one State, no coalescing wait) and the
            repaint that follows, in ms (medians)."""
            work, paint = [], []
            for i in range(reps):
                state = make(i)
                t = time.perf_counter()
                app._render(state)
                t1 = time.perf_counter()
                await pilot.pause()
                work.append((t1 - t) * 1000)
                paint.append((time.perf_counter() - t1) * 1000)
            return statistics.median(work), statistics.median(paint)

        h = base.hosts[0]

        def same(i: int) -> State:
            return replace(base, taken_at=2.0 + i)

        def relabel(i: int) -> State:
            ws = list(h.workloads)
            ws[5] = replace(ws[5], state=f"paused {i}")
            return replace(base, hosts=(replace(h, workloads=tuple(ws)),), taken_at=3.0 + i)

        def rebuild(i: int) -> State:
            extra = Workload(WorkloadKind.VM, f"t00-new{i}", "hv1", tenant="t00")
            return replace(base, hosts=(replace(h, workloads=h.workloads + (extra,)),), taken_at=4.0 + i)

        def findings(i: int) -> State:
            fs = list(base.findings)
            fs[0] = replace(fs[0], summary=f"changed {i}")
            return replace(base, findings=tuple(fs), taken_at=5.0 + i)

        results = {"baseline (nothing changed)": await measure(same)}
        results["relabel one workload"] = await measure(relabel)
        results["rebuild (workload added)"] = await measure(rebuild)
        results["findings changed"] = await measure(findings)

        before = app.renders
        t = time.perf_counter()
        for i in range(100):
            source.push(replace(base, taken_at=10.0 + i))
        while app.renders == before:
            await asyncio.sleep(0)
        await pilot.pause()
        burst_ms = (time.perf_counter() - t) * 1000
        burst_renders = app.renders - before

    base_ms = max(results["baseline (nothing changed)"][0], 0.001)
    print(f"per State (medians of {args.reps}): pane work, then the repaint that follows")
    for name, (ms, paint) in results.items():
        print(f"  {name:30s} work {ms:8.2f} ms  x{ms / base_ms:7.1f} of baseline   repaint {paint:6.1f} ms")
    print(
        f"  burst of 100 States pushed at once: {burst_renders} render(s), {burst_ms:.0f} ms until shown "
        f"(coalescing window {app.COALESCE * 1000:.0f} ms)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", type=int, default=1000)
    p.add_argument("--tenants", type=int, default=50)
    p.add_argument("--findings", type=int, default=300)
    p.add_argument("--reps", type=int, default=5)
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
