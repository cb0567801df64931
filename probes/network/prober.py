"""Active reachability probes from inside each tenant's network namespace.

Only run when the user asks (TUI key, `tenantscope check --probe`). Per source namespace one
raw ICMP socket is opened from a thread that entered the namespace (probes/network/nsenter.py);
all sources then run concurrently on the event loop, bounded. Every probe has a timeout. A
raw socket sees every ICMP packet of its namespace, so a reply counts only when its type,
identifier, sequence number and source address all match what was sent.

Outcomes: `reply` (echo reply or TCP connect), `refused` (TCP RST: reachable, port closed),
`no-arp` (the neighbour entry of the next hop is INCOMPLETE/FAILED after the timeout, or the
kernel said host unreachable: L2 separation), `timeout` (the next hop answered ARP but the
probe got nothing back: filtered), `no-route`, `error` (e.g. the namespace disappeared).
For reached pairs whose reply TTL shows routers in between, TTL-limited echoes from the same
socket name each hop (a direct pair has a reply TTL of 64/128/255 and no hops).
Nothing in a tenant's namespace is changed: no sysctls, no addresses, only these packets.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from probes.hosts.base import HostTransport
from probes.model import HostState
from probes.network.icmp import _Target
from probes.network.measure import EchoOutcome, SourceMeasurement, SourceProbe, measure_source
from probes.network.model import Hop, ReachMatrix, ReachResult, Route, Topology
from probes.network.neigh import NO_NEIGH, NUD_FAILED, NUD_INCOMPLETE, neigh_table_note
from probes.network.plan import SOURCE_KINDS, Source, plan
from probes.network.segments import Endpoint

Progress = Callable[[int, int], object]  # (pairs done, pairs total)
# Measures many sources at once (the remote helper): yields (index of the request, its answer)
MeasureAll = Callable[[Sequence[SourceProbe]], AsyncIterator[tuple[int, SourceMeasurement]]]


async def probe_matrix(
    hs: HostState,
    *,
    timeout: float = 0.5,
    ports: Sequence[int] = (),
    concurrency: int = 256,
    trace: bool = True,
    progress: Progress | None = None,
    measure: MeasureAll | None = None,
) -> ReachMatrix:
    """Probe every destination address from every source namespace of `hs`. Cancellable.
    Here (raw sockets in this process), or through `measure` (the remote helper on an SSH
    host: probes/network/remote_prober.py), which gets every source's request at once."""
    started = time.time()
    sources, dests, results = plan(hs)
    topo = hs.topology or Topology()
    total = sum(
        len([1 for d in dests if d.workload != s.endpoint.workload for _ in d.addresses]) for s in sources
    ) * (1 + len(ports))
    done = 0
    sem = asyncio.Semaphore(max(1, concurrency))
    owners = {a.split("/")[0]: lk.where for lk in topo.links for a in lk.addresses}
    budget = _fd_budget(min(len(sources), concurrency))
    errors: list[str] = []
    planned = [
        p
        for s in sources
        if (p := _plan_source(s, dests, topo, timeout=timeout, ports=ports, trace=trace, tcp_budget=budget))
        is not None
    ]

    def got(p: _Planned, m: SourceMeasurement) -> list[ReachResult]:
        nonlocal done
        out = p.results(m, owners)
        done += sum(1 for r in out if r.method != "predicted")
        if progress is not None:
            progress(done, total)
        return out

    if measure is not None:
        seen: set[int] = set()
        async for i, m in measure([p.req for p in planned]):
            if 0 <= i < len(planned) and i not in seen:
                seen.add(i)
                results += got(planned[i], m)
        for i, p in enumerate(planned):
            if i not in seen:
                results += got(p, SourceMeasurement(error=f"{p.req.path}: no answer from the remote prober"))
    else:

        async def one(p: _Planned) -> list[ReachResult]:
            async with sem:
                m = await measure_source(p.req)
            return got(p, m)

        tasks = [asyncio.ensure_future(one(p)) for p in planned]
        try:
            for part in await asyncio.gather(*tasks):
                results += part
        except asyncio.CancelledError:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
    errors += sorted({r.detail for r in results if r.outcome == "error" and r.detail})
    no_entry = sum(1 for r in results if r.outcome == "timeout" and NO_NEIGH in r.detail)
    if no_entry:
        errors.append(neigh_table_note(no_entry))
    return ReachMatrix(
        results=tuple(results),
        started_at=started,
        finished_at=time.time(),
        timeout_s=timeout,
        ports=tuple(ports),
        errors=tuple(errors),
        sources=("namespace",),
    )


def merged(hs: HostState, matrix: ReachMatrix) -> HostState:
    """Pure: the host's state with this probe run as its observed reachability."""
    return replace(hs, reach=matrix)


async def _probe_source(
    src: Source,
    dests: Sequence[Endpoint],
    topo: Topology,
    *,
    timeout: float,
    ports: Sequence[int],
    trace: bool,
    owners: dict[str, str],
    tcp_budget: int = 64,
) -> list[ReachResult]:
    """Probe `dests` from one source namespace, here (probes/network/measure.py does the work)."""
    p = _plan_source(src, dests, topo, timeout=timeout, ports=ports, trace=trace, tcp_budget=tcp_budget)
    if p is None:
        return []
    return p.results(await measure_source(p.req), owners)


@dataclass
class _Planned:
    """One source's request and what is needed to read its answer (local, not sent)."""

    src: Source
    pairs: list[tuple[Endpoint, str]]  # (destination, address), in the order of req.addresses
    routes: Routes
    req: SourceProbe

    def results(self, m: SourceMeasurement, owners: dict[str, str]) -> list[ReachResult]:
        """The measurement as ReachResults (carrying the source's kind): silences classified by
        the source's routes and neighbour states, hops named by the owners of their addresses."""
        return [replace(r, via=self.src.via) for r in self._results(m, owners)]

    def _results(self, m: SourceMeasurement, owners: dict[str, str]) -> list[ReachResult]:
        me, ports = self.src.endpoint, self.req.ports
        if m.error:
            return [_result(me, d, a, "icmp", "error", m.error) for d, a in self.pairs] + [
                _result(me, d, a, f"tcp:{p}", "error", m.error) for d, a in self.pairs for p in ports
            ]
        if len(m.echoes) != len(self.pairs) or len(m.tcp) != len(self.pairs) * len(ports):
            why = f"{self.req.path}: malformed measurement ({len(m.echoes)} echoes for {len(self.pairs)} probes)"
            return [_result(me, d, a, "icmp", "error", why) for d, a in self.pairs]
        neigh = dict(m.neighbours)
        out = []
        for (d, a), e in zip(self.pairs, m.echoes):
            outcome, detail = e.outcome, e.detail
            if not outcome:
                outcome, why = _classify_silence(self.routes, a, neigh)
                detail = "; ".join([why, detail]).strip("; ")
            out.append(
                _result(
                    me, d, a, "icmp", outcome, detail, rtt=e.rtt_ms, hops=_hops(owners, e), ttl=e.reply_ttl
                )
            )
        pairs_ports = [(d, a) for d, a in self.pairs for _ in ports]
        for (d, a), t in zip(pairs_ports, m.tcp):
            outcome, detail = t.outcome, t.detail
            if outcome == "timeout":
                outcome, detail = _classify_silence(self.routes, a, neigh)
            out.append(_result(me, d, a, f"tcp:{t.port}", outcome, detail, rtt=t.rtt_ms))
        return out


def _plan_source(
    src: Source,
    dests: Sequence[Endpoint],
    topo: Topology,
    *,
    timeout: float,
    ports: Sequence[int],
    trace: bool,
    tcp_budget: int,
) -> _Planned | None:
    me = src.endpoint
    pairs = [(d, a) for d in dests if d.workload != me.workload for a in d.addresses]
    if not pairs:
        return None
    routes = Routes(topo, me.netns or "")
    hops = []
    for _, a in pairs:
        r = routes.lookup(a)
        hops.append(r.gateway if r is not None and r.gateway else "")
    req = SourceProbe(
        src.path,
        src.inode,
        tuple(a for _, a in pairs),
        tuple(ports),
        timeout,
        trace,
        tuple(hops),
        min(len(pairs) * len(ports), tcp_budget),
    )
    return _Planned(src, pairs, routes, req)


def _result(
    me: Endpoint,
    dst: Endpoint,
    address: str,
    method: str,
    outcome: str,
    detail: str = "",
    *,
    rtt: float | None = None,
    hops: tuple[Hop, ...] = (),
    ttl: int | None = None,
) -> ReachResult:
    return ReachResult(
        me.tenant,
        dst.tenant,
        me.workload,
        dst.workload,
        address,
        method,
        outcome,
        rtt_ms=None if rtt is None else round(rtt, 3),
        detail=detail,
        hops=hops,
        reply_ttl=ttl,
    )


def _fd_budget(sources: int) -> int:
    """TCP sockets one source may hold at once, within the process's open-file limit."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    soft = 65536 if soft == resource.RLIM_INFINITY else soft
    return max(8, (soft - 128 - 3 * sources) // max(1, sources))


def _classify_silence(routes: Routes, address: str, neigh: dict[str, int]) -> tuple[str, str]:
    r = routes.lookup(address)
    hop = (r.gateway or address) if r else address
    state = neigh.get(hop)
    if state is not None and state & (NUD_INCOMPLETE | NUD_FAILED):
        return "no-arp", f"no ARP answer from {hop}: L2 separated"
    if state is None and r is None and routes.known:
        return "no-route", "no route in the source namespace"
    if state is None:
        return "timeout", f"no answer within the timeout ({NO_NEIGH} for {hop})"
    return "timeout", f"{hop} answers ARP but the probe got no answer: filtered"


class Routes:
    """The main routing table of one namespace, parsed once (lookups are per probe)."""

    def __init__(self, topo: Topology, ns: str) -> None:
        self.table = []
        for r in topo.routes:
            if r.netns == ns:
                try:
                    self.table.append((ipaddress.ip_network(r.dst, strict=False), r))
                except ValueError:
                    continue
        self.table.sort(key=lambda x: -x[0].prefixlen)
        self.known = bool(topo.routes)
        self._cache: dict[str, Route | None] = {}

    def lookup(self, address: str) -> Route | None:
        if address not in self._cache:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                ip = None
            self._cache[address] = next(
                (r for net, r in self.table if ip is not None and net.version == ip.version and ip in net),
                None,
            )
        return self._cache[address]


def _hops(owners: dict[str, str], t: _Target | EchoOutcome) -> tuple[Hop, ...]:
    hops = dict(t.hops)
    if not hops:
        return ()
    last = t.hop_done or (max(hops) + 1)
    out = []
    for ttl in range(1, last):
        addr = hops.get(ttl, "")
        out.append(Hop(ttl, addr or "*", owners.get(addr, "")))
    return tuple(out)


def valid_ports(ports: Sequence[int]) -> tuple[int, ...]:
    bad = [p for p in ports if not 0 < p < 65536]
    if bad:
        raise ValueError(f"not a TCP port: {', '.join(map(str, bad))}")
    return tuple(ports)


async def probe_host(
    t: HostTransport,
    hs: HostState,
    *,
    ports: Sequence[int] = (),
    timeout: float | None = None,
    progress: Progress | None = None,
    sources: Sequence[str] = ("namespace",),
    ovs_db: str | None = None,
    run_dir: Any = None,
    agent_timeout: float = 5.0,
) -> ReachMatrix:
    """One host's probe run: locally from inside its namespaces (root), remotely through its
    transport; a local run without root is a matrix that says why nothing was sent.

    `sources` adds VM sources (the caller checked they were asked for and are allowed, i.e.
    not read-only): `segment`, a temporary probe port on each VM's segment (locally, as root:
    the one source that adds objects to the host, removed after the run), and `guest`,
    commands through each VM's guest agent (through the host's libvirt URI, so over
    qemu+ssh too). Their rows replace the VM's "not testable" rows."""
    bad = [s for s in sources if s not in SOURCE_KINDS]
    if bad:
        raise ValueError(f"unknown probe source: {', '.join(bad)} (known: {', '.join(SOURCE_KINDS)})")
    if not t.is_local or os.geteuid() == 0:
        from probes.network.probeport import SegmentRun, probe_from_segments

        async def namespaces() -> ReachMatrix:
            if t.is_local:
                return await probe_matrix(hs, ports=ports, timeout=timeout or 0.5, progress=progress)
            from probes.network.remote import probe_remote

            return await probe_remote(t, hs, timeout=timeout or 0.5, ports=ports, progress=progress)

        async def segments() -> SegmentRun | None:
            if "segment" not in sources or not t.is_local:
                return None
            return await probe_from_segments(
                hs, timeout=timeout or 0.5, ports=ports, ovs_db=ovs_db, run_dir=run_dir
            )

        # the probe ports' set-up overlaps the namespaces' probes: the run takes the longer one
        rm, seg = await asyncio.gather(namespaces(), segments())
        if seg is not None:
            rm = _merge_vm_rows(rm, seg.results, "segment", seg.errors, seg.changes)
        elif "segment" in sources:
            rm = replace(rm, errors=rm.errors + ("probes from VM segments run only on the local host",))
    else:
        return ReachMatrix(
            started_at=time.time(),
            finished_at=time.time(),
            errors=("active probes need root (raw sockets and entering namespaces)",),
        )
    if "guest" in sources and t.host.libvirt_uri and getattr(t, "libvirt_forward", None) is not None:
        # an SSH host's libvirt is its read-only socket forwarded over our connection (its
        # display URI, qemu+ssh://, would run the system ssh): guest-exec needs read-write
        rm = replace(
            rm,
            errors=rm.errors
            + (
                "guest probes: this SSH host's libvirt is reached read-only through the SSH "
                "connection; guest-exec needs its read-write socket (give the host a libvirt URI "
                "to use it)",
            ),
        )
    elif "guest" in sources and t.host.libvirt_uri:
        from probes.network.guestprobe import probe_from_guests

        g = await probe_from_guests(
            hs, t.host.libvirt_uri, timeout=max(1.0, timeout or 1.0), ports=ports, agent_timeout=agent_timeout
        )
        rm = _merge_vm_rows(rm, g.results, "guest", g.errors, ())
        rm = replace(rm, agent_addresses=rm.agent_addresses + g.addresses)
    return replace(rm, finished_at=time.time())


def _merge_vm_rows(
    rm: ReachMatrix, rows: Sequence[ReachResult], kind: str, errors: Sequence[str], changes: Sequence[str]
) -> ReachMatrix:
    measured = {r.src for r in rows if r.outcome != "not-testable"}
    kept = [r for r in rm.results if not (r.outcome == "not-testable" and r.src in measured)]
    return replace(
        rm,
        results=tuple(kept) + tuple(rows),
        sources=rm.sources + (kind,),
        errors=rm.errors + tuple(errors),
        changes=rm.changes + tuple(changes),
    )
