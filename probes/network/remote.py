"""Active probes over SSH: the local prober's measurement run by a remote python3 helper
(probes/network/remote_prober.py), or, on hosts without python3, `ip netns exec NS ping -c1
-W1` batched per source namespace (only "reply" and "timeout" can be told apart that way, and
the reason for the fallback is in the matrix's errors).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Sequence
from dataclasses import replace

from probes.hosts.base import HostTransport
from probes.model import HostState
from probes.network.model import ReachMatrix, ReachResult
from probes.network.plan import Source, plan
from probes.network.prober import Progress, probe_matrix


async def probe_remote(
    host: HostTransport,
    hs: HostState,
    *,
    timeout: float = 0.5,
    ports: Sequence[int] = (),
    progress: Progress | None = None,
    exec_ping: bool = False,
    python: str = "python3",
) -> ReachMatrix:
    """Probe the matrix of an SSH host as the local prober does, through one remote python3
    helper; `ip netns exec ... ping` where the helper cannot run (or when `exec_ping`)."""
    from probes.network.remote_prober import RemoteProber

    rp = RemoteProber(host, python)
    why = "exec-ping asked for" if exec_ping else await rp.unavailable()
    if not why:
        return await probe_matrix(hs, timeout=timeout, ports=ports, progress=progress, measure=rp.measure_all)
    rm = await probe_exec_ping(host, hs, timeout=max(1.0, timeout), progress=progress)
    note = f"{why}: probed with `ip netns exec ... ping` (ICMP only, reply or timeout; slower)"
    return replace(rm, errors=(note, *rm.errors), ports=())


async def probe_exec_ping(
    host: HostTransport,
    hs: HostState,
    *,
    timeout: float = 1.0,
    concurrency: int = 8,
    progress: Progress | None = None,
) -> ReachMatrix:
    """Over SSH: `ip netns exec NS ping -c1 -W1` for every address, one command per source
    (pings run in parallel inside it), at most `concurrency` sources at a time. Only reply or
    timeout can be told apart this way."""
    started = time.time()
    sources, dests, results = plan(hs)
    sem = asyncio.Semaphore(concurrency)
    wait = str(max(1, round(timeout)))
    total = sum(len(d.addresses) for s in sources for d in dests if d.workload != s.endpoint.workload)
    done = 0

    async def one(src: Source) -> list[ReachResult]:
        nonlocal done
        ns = netns_of_path(src.path)
        pid = src.path.split("/")[2] if src.path.startswith("/proc/") else ""
        targets = [
            (d, a) for d in dests if d.workload != src.endpoint.workload for a in d.addresses if _is_ip(a)
        ]
        if (ns is None and not pid.isdigit()) or not targets:
            return []
        script = (
            'for a in "$@"; do (ping -n -c1 -W'
            + wait
            + ' "$a" >/dev/null 2>&1 && echo "$a reply" || echo "$a timeout") & done; wait'
        )
        enter = ["ip", "netns", "exec", ns] if ns else ["nsenter", "-t", pid, "-n"]
        argv = [*enter, "sh", "-c", script, "sh", *sorted({a for _, a in targets})]
        async with sem:
            try:
                res = await host.run(argv, timeout=float(wait) + 10)
                seen = dict(line.split(" ", 1) for line in res.stdout.splitlines() if " " in line)
                err = "" if res.ok else res.stderr.strip()[:200]
            except Exception as e:
                seen, err = {}, str(e)
        done += len(targets)
        if progress is not None:
            progress(done, total)
        return [
            ReachResult(
                src.endpoint.tenant,
                d.tenant,
                src.endpoint.workload,
                d.workload,
                a,
                "icmp",
                seen.get(a, "error"),
                detail=("ip netns exec ping" if a in seen else err or "no output"),
            )
            for d, a in targets
        ]

    for part in await asyncio.gather(*(one(s) for s in sources)):
        results += part
    return ReachMatrix(results=tuple(results), started_at=started, finished_at=time.time(), timeout_s=timeout)


def netns_of_path(path: str) -> str | None:
    return path.rsplit("/", 1)[1] if path.startswith("/run/netns/") else None


def _is_ip(a: str) -> bool:
    try:
        ipaddress.ip_address(a)
        return True
    except ValueError:
        return False
