"""Time to the full observed reachability matrix: tenantscope's prober against
`ip netns exec SRC ping -c1 -W1 DST` at 64 in parallel, on a fresh real lab (root).

For N = 10, 30, 100 namespaces split over two tenants on two bridges (one /16, so about half
of the pairs are blocked by L2 separation), each method gets its own freshly built lab (a
failed ARP entry would make later probes fail at once and flatter the second run). Baseline
at N=100 samples --baseline-pairs pairs and scales up by pair count (printed as
"extrapolated"); --full-baseline runs all 9,900.

    .venv/bin/python -m bench.reachability [--sizes 10 30 100] [--timeout 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time

from probes.model import Host, HostState, NetnsDetails, Placement, Workload, WorkloadKind
from probes.network.prober import probe_matrix
from probes.network.topology import read_netlink

PREFIX = "tsf-b"


def cleanup() -> None:
    for ns in os.listdir("/run/netns") if os.path.isdir("/run/netns") else []:
        if ns.startswith(PREFIX + "-"):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(PREFIX):
            subprocess.run(["ip", "link", "del", name], capture_output=True)


def build(n: int) -> list[tuple[str, str, str]]:
    """n namespaces (name, tenant, address), tenants t0/t1 on bridges tsf-bb0/tsf-bb1."""
    from pyroute2 import IPRoute, netns

    cleanup()
    out = []
    with IPRoute() as ipr:
        bridges = []
        for b in range(2):
            ipr.link("add", ifname=f"{PREFIX}b{b}", kind="bridge")
            idx = ipr.link_lookup(ifname=f"{PREFIX}b{b}")[0]
            ipr.link("set", index=idx, state="up")
            bridges.append(idx)
        for i in range(n):
            ns, hif, t = f"{PREFIX}-{i:03d}", f"{PREFIX}h{i:03d}", i % 2
            addr = f"10.74.{i // 250}.{i % 250 + 1}"
            netns.create(ns)
            ipr.link("add", ifname=hif, kind="veth", peer={"ifname": "eth0", "net_ns_fd": ns})
            ipr.link("set", index=ipr.link_lookup(ifname=hif)[0], state="up", master=bridges[t])
            with IPRoute(netns=ns, flags=0) as nr:
                e = nr.link_lookup(ifname="eth0")[0]
                nr.addr("add", index=e, address=addr, prefixlen=16)
                nr.link("set", index=e, state="up")
            out.append((ns, f"t{t}", addr))
    return out


def build_routed(n: int) -> list[tuple[str, str, str]]:
    """n namespaces, each on its own /30 link to its tenant's router namespace (t0: 10.75/16,
    t1: 10.76/16); each router drops the other tenant's prefix silently (blackhole). Needs
    only ~2 neighbour entries per namespace, so it fits the host's shared neighbour table."""
    from pyroute2 import IPRoute, netns

    from probes.network.nsenter import in_netns

    cleanup()
    out = []
    routers = [f"{PREFIX}-r{t}" for t in range(2)]
    for t, r in enumerate(routers):
        netns.create(r)
        in_netns(f"/run/netns/{r}", lambda: open("/proc/sys/net/ipv4/ip_forward", "w").write("1"))
    with IPRoute() as ipr:
        for i in range(n):
            ns, t, k = f"{PREFIX}-{i:03d}", i % 2, i // 2
            base = k * 4
            net = f"10.{75 + t}.{base // 256}"
            ws_ip, gw_ip = f"{net}.{base % 256 + 2}", f"{net}.{base % 256 + 1}"
            netns.create(ns)
            ipr.link("add", ifname=f"{PREFIX}w{i:03d}", kind="veth", peer={"ifname": "eth0", "net_ns_fd": ns})
            ipr.link("set", index=ipr.link_lookup(ifname=f"{PREFIX}w{i:03d}")[0], net_ns_fd=routers[t])
            with IPRoute(netns=ns, flags=0) as nr:
                e = nr.link_lookup(ifname="eth0")[0]
                nr.addr("add", index=e, address=ws_ip, prefixlen=30)
                nr.link("set", index=e, state="up")
                nr.route("add", dst="0.0.0.0/0", gateway=gw_ip)
            with IPRoute(netns=routers[t], flags=0) as rr:
                e = rr.link_lookup(ifname=f"{PREFIX}w{i:03d}")[0]
                rr.addr("add", index=e, address=gw_ip, prefixlen=30)
                rr.link("set", index=e, state="up")
            out.append((ns, f"t{t}", ws_ip))
    for t, r in enumerate(routers):
        with IPRoute(netns=r, flags=0) as rr:
            rr.route("add", dst=f"10.{76 - t}.0.0/16", type="blackhole")
    return out


def state_of(lab: list[tuple[str, str, str]]) -> HostState:
    wl = tuple(
        Workload(
            WorkloadKind.NETNS,
            ns,
            "bench",
            tenant=t,
            placed_by=Placement.CONFIG,
            netns=NetnsDetails(path=f"/run/netns/{ns}"),
        )
        for ns, t, _ in lab
    )
    return HostState(Host("bench"), workloads=wl, topology=read_netlink())


async def baseline(
    lab: list[tuple[str, str, str]], pairs: list[tuple[str, str]], parallel: int = 64
) -> tuple[float, int]:
    sem = asyncio.Semaphore(parallel)
    ok = 0

    async def one(src: str, dst: str) -> None:
        nonlocal ok
        async with sem:
            p = await asyncio.create_subprocess_exec(
                "ip",
                "netns",
                "exec",
                src,
                "ping",
                "-n",
                "-c1",
                "-W1",
                dst,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            rc = await p.wait()
            ok += rc == 0

    t0 = time.monotonic()
    await asyncio.gather(*(one(s, d) for s, d in pairs))
    return time.monotonic() - t0, ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 30, 100])
    ap.add_argument("--timeout", type=float, default=0.5)
    ap.add_argument(
        "--baseline-pairs", type=int, default=1500, help="sample size for the baseline when N*(N-1) is larger"
    )
    ap.add_argument("--full-baseline", action="store_true")
    ap.add_argument(
        "--lab",
        choices=("auto", "l2", "routed"),
        default="auto",
        help="l2: two bridges, one /16 (N*(N-1) neighbour entries); routed: a /30 per "
        "namespace to its tenant's router; auto: l2 while it fits the host's neighbour table",
    )
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench.reachability needs root (namespaces, raw sockets)", file=sys.stderr)
        return 2
    print(
        f"{'N':>4} {'pairs':>6} {'reached':>8} {'build s':>8} {'prober s':>9} {'x timeout':>9} "
        f"{'baseline s':>11} {'speed-up':>9}  notes"
    )
    try:
        limit = int(open("/proc/sys/net/ipv4/neigh/default/gc_thresh3").read())
        for n in args.sizes:
            kind = args.lab if args.lab != "auto" else ("l2" if n * (n - 1) < limit else "routed")
            make = build if kind == "l2" else build_routed
            t0 = time.monotonic()
            lab = make(n)
            built = time.monotonic() - t0
            hs = state_of(lab)
            t0 = time.monotonic()
            rm = asyncio.run(probe_matrix(hs, timeout=args.timeout))
            ours = time.monotonic() - t0
            mine = [r for r in rm.results if r.dst != "host"]  # the host's own address is probed too
            reached = sum(r.reached for r in mine)
            pairs_n = len(mine)
            cleanup()

            lab = make(n)
            pairs = [(s, da) for s, _, _ in lab for d, _, da in lab if d != s]
            note = f"{kind} lab; "
            if len(pairs) > args.baseline_pairs and not args.full_baseline:
                sample = random.Random(n).sample(pairs, args.baseline_pairs)
                t, ok = asyncio.run(baseline(lab, sample))
                base = t * len(pairs) / len(sample)
                note += f"baseline extrapolated from {len(sample)} pairs ({t:.1f} s, {ok} answered)"
            else:
                base, ok = asyncio.run(baseline(lab, pairs))
                note += f"baseline answered {ok}"
            if rm.errors:
                note += "; prober: " + "; ".join(rm.errors)[:200]
            cleanup()
            print(
                f"{n:>4} {pairs_n:>6} {reached:>8} {built:>8.2f} {ours:>9.3f} {ours / args.timeout:>8.2f}x "
                f"{base:>11.2f} {base / ours:>8.1f}x  {note}",
                flush=True,
            )
    finally:
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
