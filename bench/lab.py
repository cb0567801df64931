"""The training lab: how long `lab up` and `lab down` take for 3, 10 and 30 tenants, and how
long a fault takes to show in `tenantscope check`. Targets (issue 9): up and down of 30 tenants
under 5 s each; fault to finding within one refresh interval plus one probe timeout.

Baselines, measured in the same run:
- up/down: the bare network the lab needs, built with the same library (pyroute2) and nothing
  else: N*2.5 namespaces with veths, one bridge per tenant; no cgroups, services, record,
  collision checks. The ratio is what the rest of the lab costs on top.
- fault to finding: a plain `tenantscope check --check NET-02` on the healthy lab (the cost of
  one observation), against the time from `lab break shared-bridge` until a check run reports
  NET-02 for the lab's tenants.

Needs root; uses its own state directory and removes everything it built. Run:
    .venv/bin/python -m bench.lab
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from probes.lab import build
from probes.lab.plan import make_plan
from probes.lab.record import Store

REPEAT = 2


def bare_network(tenants: int) -> tuple[float, float]:
    from pyroute2 import IPRoute, netns

    plan = make_plan(tenants, prefix="tsl-")
    t0 = time.perf_counter()
    with IPRoute() as ipr:
        for t in plan.tenants:
            ipr.link("add", ifname=t.bridge, kind="bridge")
            br = ipr.link_lookup(ifname=t.bridge)[0]
            for w in t.workloads:
                netns.create(w.name)
                ipr.link("add", ifname=w.host_if, kind="veth", peer={"ifname": "eth0", "net_ns_fd": w.name})
                ipr.link("set", index=ipr.link_lookup(ifname=w.host_if)[0], master=br, state="up")
    up = time.perf_counter() - t0
    t0 = time.perf_counter()
    with IPRoute() as ipr:
        for t in plan.tenants:
            for w in t.workloads:
                ipr.link("del", index=ipr.link_lookup(ifname=w.host_if)[0])
                netns.remove(w.name)
            ipr.link("del", index=ipr.link_lookup(ifname=t.bridge)[0])
    return up, time.perf_counter() - t0


def lab(tenants: int, store: Store) -> tuple[float, float]:
    t0 = time.perf_counter()
    build.up(store, tenants=tenants)
    up = time.perf_counter() - t0
    t0 = time.perf_counter()
    d = build.down(store)
    assert d is not None and not d.left, d
    return up, time.perf_counter() - t0


def check_ids(cfg: str, check: str) -> tuple[float, bool]:
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "tui.cli", "check", "--config", cfg, "--format", "json", "--check", check],
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - t0
    doc = json.loads(r.stdout)
    hit = any(
        f["check_id"] == check and f["status"] == "fail" and "acme" in (f.get("tenants") or [])
        for f in doc["results"]
    )
    return took, hit


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("bench.lab needs root")
    if build.existing_netns() & {w.name for w in make_plan(3).workloads()}:
        sys.exit("a lab is up on this machine: `tenantscope lab down` first")
    d = tempfile.mkdtemp(prefix="tsi-bench-lab-")
    store = Store(d)
    print(f"lab up/down, best of {REPEAT} (baseline: bare namespaces + veths + bridges with pyroute2)")
    print(
        f"{'tenants':>7} {'workloads':>9} {'up s':>7} {'base':>7} {'ratio':>6} {'down s':>7} {'base':>7} {'ratio':>6}"
    )
    try:
        for n in (3, 10, 30):
            wl = len(make_plan(n).workloads())
            base = [bare_network(n) for _ in range(REPEAT)]
            got = [lab(n, store) for _ in range(REPEAT)]
            bu, bd = min(b[0] for b in base), min(b[1] for b in base)
            lu, ld = min(g[0] for g in got), min(g[1] for g in got)
            print(
                f"{n:>7} {wl:>9} {lu:>7.2f} {bu:>7.2f} {lu / bu:>6.1f} {ld:>7.2f} {bd:>7.2f} {ld / bd:>6.1f}"
                + ("   (target < 5 s each)" if n == 30 else "")
            )

        print("\nbreak shared-bridge -> NET-02 in `tenantscope check` (3 tenants)")
        build.up(store, tenants=3)
        from probes.lab import faults

        plain = [check_ids(str(store.config), "NET-02")[0] for _ in range(3)]
        lat = []
        for _ in range(3):
            t0 = time.perf_counter()
            faults.inject(store, "shared-bridge")
            while True:
                _, hit = check_ids(str(store.config), "NET-02")
                if hit:
                    break
            lat.append(time.perf_counter() - t0)
            faults.repair(store, "shared-bridge")
        base = statistics.median(plain)
        med = statistics.median(lat)
        print(f"  one plain check run (baseline): median {base:.2f} s")
        print(
            f"  break -> finding:               median {med:.2f} s (ratio {med / base:.2f}; "
            f"target: one refresh interval (2 s) + one probe timeout (20 s))"
        )
    finally:
        build.down(store)
        os.rmdir(d) if os.path.isdir(d) and not os.listdir(d) else None


if __name__ == "__main__":
    main()
