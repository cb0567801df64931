"""Topology from `ip -j -d` output, for hosts reached over SSH (no netlink there).

`ip -n NAME` refuses a namespace that does not exist (it never creates one), so a typo is an
error here too. All commands of one namespace run concurrently over the one connection.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from probes.hosts.base import HostError, HostTransport
from probes.network.model import Link, Namespace, Neighbour, Route, Topology
from probes.network.topology import resolve_peers


def _loads(text: str, what: str) -> list[dict[str, Any]]:
    text = text.strip()
    if not text:
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise HostError(f"{what}: not JSON ({e.msg} at char {e.pos})") from None
    if not isinstance(data, list):
        raise HostError(f"{what}: expected a JSON list")
    return [d for d in data if isinstance(d, dict)]


async def _ip(host: HostTransport, ns: str, *args: str, pid: int = 0) -> list[dict[str, Any]]:
    if pid:  # a namespace only processes hold: enter it by the holder's pid
        argv = ["nsenter", "-t", str(pid), "-n", "ip", "-j", *args]
    else:
        argv = ["ip", *(["-n", ns] if ns else []), "-j", *args]
    res = await host.run(argv, timeout=10.0)
    if not res.ok:
        raise HostError(f"{' '.join(argv)}: {res.stderr.strip()[:200] or f'exit {res.returncode}'}")
    return _loads(res.stdout, " ".join(argv))


async def list_namespaces(host: HostTransport) -> list[str]:
    return sorted(str(n.get("name")) for n in await _ip(host, "", "netns", "list") if n.get("name"))


async def read_topology(
    host: HostTransport,
    unnamed: Sequence[tuple[str, tuple[int, ...]]] = (),
    *,
    only: frozenset[str] | None = None,
    prev: Topology | None = None,
) -> Topology:
    """With `only` and `prev` (the remote helper said which namespaces changed: names, '' the
    host's, '/' the set of names), the others are taken from `prev` as they were; a namespace
    `prev` does not have, or had an error in, is read."""
    from probes.network.events import LIST
    from probes.network.topology import _by_namespace

    pids = {n: p for n, p in unnamed if p}
    kept = _by_namespace(prev) if only is not None and prev is not None else {}
    if kept and only is not None and LIST not in only:  # the same names as before
        named = [n.name for n in prev.namespaces if n.name and not n.pids] if prev else []
    else:
        named = await list_namespaces(host)
    names = [""] + named + list(pids)
    todo = [
        ns
        for ns in names
        if not (ns in kept and only is not None and ns not in only and kept[ns][0].pids == pids.get(ns, ()))
    ]
    parts = dict(
        zip(
            todo,
            await asyncio.gather(
                *(_read_ns(host, ns, pids[ns][0] if ns in pids else 0) for ns in todo), return_exceptions=True
            ),
        )
    )
    links: list[Link] = []
    routes: list[Route] = []
    neigh: list[Neighbour] = []
    spaces: list[Namespace] = []
    problems: list[str] = []
    for ns in names:
        if ns not in parts:  # unchanged since `prev`
            old = kept[ns]
            spaces.append(old[0])
            links.extend(replace(lk, peer="") for lk in old[1])
            routes.extend(old[2])
            neigh.extend(old[3])
            continue
        part = parts[ns]
        if isinstance(part, BaseException):
            spaces.append(Namespace(ns, error=str(part)))
            if ns not in pids:  # a process-held namespace may simply have ended
                problems.append(f"namespace {ns or 'host'}: {part}")
            continue
        lk, rt, fw, nb = part
        links += lk
        routes += rt
        neigh += nb
        spaces.append(Namespace(ns, ip_forward=fw, pids=pids.get(ns, ())))
    return Topology(
        links=resolve_peers(links),
        ip_forward=any(n.ip_forward for n in spaces if not n.name),
        namespaces=tuple(spaces),
        routes=tuple(routes),
        neighbours=tuple(sorted(set(neigh), key=lambda n: (n.netns, n.dev, n.address))),
        source="ip-json",
        problems=tuple(problems),
    )


async def _read_ns(
    host: HostTransport, ns: str, pid: int = 0
) -> tuple[list[Link], list[Route], bool, list[Neighbour]]:
    raw_links, raw_addrs, raw_routes, netconf, raw_neigh = await asyncio.gather(
        _ip(host, ns, "-d", "link", "show", pid=pid),
        _ip(host, ns, "addr", "show", pid=pid),
        _ip(host, ns, "-4", "route", "show", "table", "main", pid=pid),
        _ip(host, ns, "netconf", "show", pid=pid),
        _ip(host, ns, "-4", "neigh", "show", pid=pid),
    )
    links = parse_links(ns, raw_links, raw_addrs, netconf)
    fw = any(lk.forwarding for lk in links if lk.name != "lo")
    return links, parse_routes(ns, raw_routes), fw, parse_neighbours(ns, raw_neigh)


BAD_NUD = {"INCOMPLETE", "FAILED", "NOARP", "NONE"}


def parse_neighbours(ns: str, raw: list[dict[str, Any]]) -> list[Neighbour]:
    """Complete entries of `ip -j -4 neigh show` (with a MAC, not failed or incomplete)."""
    out = []
    for n in raw:
        states = {str(x).upper() for x in (n.get("state") or ())}
        mac = str(n.get("lladdr") or "")
        if mac and n.get("dst") and not states & BAD_NUD:
            out.append(Neighbour(ns, str(n.get("dev") or ""), str(n["dst"]), mac.lower()))
    return out


def parse_links(
    ns: str,
    raw_links: list[dict[str, Any]],
    raw_addrs: list[dict[str, Any]],
    netconf: list[dict[str, Any]] = (),
) -> list[Link]:  # type: ignore[assignment]
    addrs: dict[str, list[str]] = {}
    for a in raw_addrs:
        for ai in a.get("addr_info") or ():
            if ai.get("family") == "inet" and ai.get("local"):
                addrs.setdefault(str(a.get("ifname")), []).append(f"{ai['local']}/{ai.get('prefixlen', 32)}")
    conf = {str(c.get("interface")): c for c in netconf if c.get("family") == "inet"}
    index = {str(lk.get("ifname")): int(lk.get("ifindex") or 0) for lk in raw_links}
    out = []
    for lk in raw_links:
        name = str(lk.get("ifname") or "")
        info = lk.get("linkinfo") or {}
        kind = str(info.get("info_kind") or "")
        data = info.get("info_data") or {}
        sd = info.get("info_slave_data") or {} if info.get("info_slave_kind") == "bridge" else {}
        peer_idx = lk.get("link_index") or (index.get(str(lk.get("link")), 0) if lk.get("link") else 0)
        c = conf.get(name, {})
        out.append(
            Link(
                name=name,
                ifindex=int(lk.get("ifindex") or 0),
                kind=kind,
                netns=ns,
                master=str(lk.get("master") or ""),
                mac=str(lk.get("address") or ""),
                state=str(lk.get("operstate") or ""),
                addresses=tuple(addrs.get(name, ())),
                mtu=int(lk.get("mtu") or 0),
                link_ifindex=int(peer_idx or 0),
                vlan_id=data.get("id") if kind == "vlan" else None,
                port_isolated=bool(sd.get("isolated")) if sd else None,
                port_learning=sd.get("learning") if sd else None,
                port_flood=sd.get("flood") if sd else None,
                vlan_filtering=bool(data.get("vlan_filtering")) if kind == "bridge" else None,
                proxy_arp=bool(c.get("proxy_neigh")),
                forwarding=c.get("forwarding") if c else None,
            )
        )
    return out


def parse_routes(ns: str, raw: list[dict[str, Any]]) -> list[Route]:
    out = []
    for r in raw:
        if r.get("type", "unicast") != "unicast":
            continue
        dst = str(r.get("dst") or "")
        if dst == "default":
            dst = "0.0.0.0/0"
        elif "/" not in dst:
            dst += "/32"
        out.append(Route(ns, dst, gateway=str(r.get("gateway") or ""), dev=str(r.get("dev") or "")))
    return out
