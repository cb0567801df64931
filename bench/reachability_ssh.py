"""Reachability over SSH: the remote python3 helper against `ip netns exec ... ping` over the
same SSH connection, and against the local prober, on fresh real labs (root).

A real OpenSSH sshd on 127.0.0.1 (the test fixture's, throwaway keys) is the "remote" host;
the lab is bench.reachability's (N namespaces, two tenants on two bridges, one /16: about half
of the pairs are blocked by L2 separation), built fresh for each method (a failed ARP entry
would make later probes fail at once and flatter the next run). The SSH connection is made
before the timing; the helper's python3 check is inside it. Target: the helper at least 10x
faster than exec-ping over the same connection.

    .venv/bin/python -m bench.reachability_ssh [--sizes 10 30] [--timeout 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time

import bench.reachability as lab
from probes.network.prober import probe_matrix
from probes.network.remote import probe_remote
from tests.fixtures.sshd import make_sshd, ssh_host, sshd_missing_reason

lab.PREFIX = "tss-b"  # not the names bench.reachability or its users may be building right now


async def over_ssh(s, hs, timeout: float, exec_ping: bool) -> tuple[float, object]:
    host = ssh_host(s)
    try:
        await host.run(["true"])  # connected (and the command server up) before the clock starts
        t0 = time.monotonic()
        rm = await probe_remote(host, hs, timeout=timeout, exec_ping=exec_ping)
        return time.monotonic() - t0, rm
    finally:
        await host.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 30])
    ap.add_argument("--timeout", type=float, default=0.5)
    args = ap.parse_args()
    limit = int(open("/proc/sys/net/ipv4/neigh/default/gc_thresh3").read())
    reason = sshd_missing_reason()
    if os.geteuid() != 0 or reason:
        print(f"skipped: {reason or 'needs root (namespaces, raw sockets)'}")
        return 0
    tmp = tempfile.mkdtemp(prefix="tse-bench-reach-")
    s = make_sshd(tmp)
    print(f"sshd on 127.0.0.1:{s.port}; probe timeout {args.timeout:g} s")
    print(
        f"{'N':>4} {'pairs':>6} {'local s':>8} {'helper s':>9} {'exec-ping s':>12} "
        f"{'exec-ping/helper':>17} {'helper/local':>13}  notes"
    )
    try:
        for n in args.sizes:
            times: dict[str, float] = {}
            seen: dict[str, tuple[int, int]] = {}
            notes = []
            # l2 while N*(N-1) neighbour entries fit the host's table, else a router per tenant
            make = lab.build if n * (n - 1) < limit else lab.build_routed
            notes.append("l2 lab" if make is lab.build else "routed lab")
            for method in ("local", "helper", "exec-ping"):
                built = make(n)
                hs = lab.state_of(built)
                if method == "local":
                    t0 = time.monotonic()
                    rm = asyncio.run(probe_matrix(hs, timeout=args.timeout))
                    times[method] = time.monotonic() - t0
                else:
                    times[method], rm = asyncio.run(over_ssh(s, hs, args.timeout, method == "exec-ping"))
                mine = [r for r in rm.results if r.dst != "host" and r.method == "icmp"]  # type: ignore[attr-defined]
                seen[method] = (len(mine), sum(r.reached for r in mine))
                if method == "helper" and rm.errors:  # type: ignore[attr-defined]
                    notes.append("helper: " + "; ".join(rm.errors)[:160])  # type: ignore[attr-defined]
                lab.cleanup()
            pairs = seen["helper"][0]
            notes.append("reached " + ", ".join(f"{k} {v[1]}/{v[0]}" for k, v in seen.items()))
            print(
                f"{n:>4} {pairs:>6} {times['local']:>8.3f} {times['helper']:>9.3f} {times['exec-ping']:>12.3f} "
                f"{times['exec-ping'] / times['helper']:>16.1f}x {times['helper'] / times['local']:>12.2f}x  "
                + "; ".join(notes),
                flush=True,
            )
    finally:
        lab.cleanup()
        s.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print("target: exec-ping/helper >= 10x (same SSH connection, same run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
