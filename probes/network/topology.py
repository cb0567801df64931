"""The topology probe: links, bridges, veth peers, addresses, routes and forwarding, in the root
namespace and in every named network namespace, plus Open vSwitch when present.

Locally it reads four rtnetlink dumps per namespace (links, IPv4 addresses, routes and
neighbours; probes/network/rtnl.py parses what the checks read: pyroute2 cost ~23 MiB of RSS
and decoded every attribute) in a fresh thread, on sockets that thread opened inside each
namespace with setns (nothing is spawned), opening each namespace by path, so that a mistyped
name is an error and never a new, empty namespace. Over SSH it runs `ip -j -d` (probes/network/ipjson.py), which
never creates namespaces either. Both paths give the same Topology.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from probes.engine import Probe
from probes.hosts.base import HostTransport
from probes.inventory.libvirt_link import LibvirtLink
from probes.model import Feed, HostState
from probes.network import ovs
from probes.network.events import NFT, OVS, PROCS, NetEvents
from probes.network.libvirtnet import NetworkReader
from probes.network.model import Link, Namespace, Neighbour, OvsBridge, Policy, Route, Topology
from probes.network.ovsdb import OvsMonitor
from probes.network.rtnl import RtnlReader, route_socket

NETNS_DIR = "/run/netns"
SAFETY_POLL = 30.0  # seconds: with events, a full read this often catches what they missed


class TopologyProbe(Probe[Topology]):
    name = "topology"
    interval = 10.0
    timeout = 20.0

    def __init__(
        self,
        *,
        interval: float = 10.0,
        policy: Policy | None = None,
        ovs_db: str | None = None,
        use_netlink: bool | None = None,
        libvirt_only: bool = False,
        events: NetEvents | None = None,
        safety: float = SAFETY_POLL,
        libvirt_link: LibvirtLink | None = None,
    ) -> None:
        self.interval = interval if libvirt_only else max(interval, 5.0)
        self.poll_interval = self.interval
        self.policy = policy
        self.ovs_db = ovs_db
        self.use_netlink = use_netlink
        self.libvirt_only = libvirt_only  # the demo: no kernel to read, only libvirt's view
        # local hosts: netlink + inotify (events) and an OVSDB monitor; SSH hosts: the same
        # events streamed by their remote helper; `interval` is then the safety poll
        self.events = events
        self.safety = safety
        self._ovs: OvsMonitor | None = None
        self._local = False
        from probes.network.filterread import FilterCache

        self._filters = FilterCache()  # locally: filters re-read only when nftables' generation moved
        from probes.network.ovsflows import OvsFlowCache

        self._ovs_flows = OvsFlowCache()  # traces kept while a bridge's flows do not change
        self._dirty: set[str] = set()  # namespaces events said changed since the last read
        # a libvirt view's last merge: (workloads, networks, policy) -> the topology it made; a
        # fleet of libvirt views merges every 10 s per host, mostly the very same inputs
        self._view_made: tuple[object, object, object, Topology] | None = None
        self._remote = False  # an SSH host whose events come from its remote helper
        self._ovs_prev: tuple[tuple[OvsBridge, ...], str] | None = None  # over SSH, between events
        self._nets: tuple[Any, ...] = ()
        self._nics: tuple[Any, ...] = ()  # libvirt nwfilter bindings, read with the networks
        self._unnamed: list[tuple[str, tuple[int, ...]]] = []
        self._last_full = 0.0
        self._prev: Topology | None = None
        self._networks = NetworkReader(libvirt_link)  # the host's libvirt connection, kept

    def attach(self, wake: Callable[[], None]) -> None:
        super().attach(wake)
        if self.events is not None:
            self.events.subscribe(self._changed)

    def _changed(self, ns: str) -> None:
        """An event: re-read that namespace (or all of them) at the next run, which is now."""
        self._dirty.add(ns)
        self.wake()

    def feed(self) -> Feed:
        if self.libvirt_only:
            return Feed(self.name, "polled", "the demo's simulated libvirt", self.interval)
        ev = self.events
        if (self._local or self._remote) and ev is not None and ev.live:
            what = f"netlink (links, addresses, routes) in the host and {len(ev.namespaces)} named namespaces"
            what += ", inotify on /run/netns"
            if self._remote:
                what = "the remote helper's " + what + ", inotify on the OVSDB file"
            procs = getattr(ev, "procs", False)
            if procs:
                what += ", a /proc scan (namespaces only processes hold)"
            if getattr(ev, "nft", False):
                what += ", nftables rule changes"
            if self._ovs is not None:
                what += ", an OVSDB monitor" + ("" if self._ovs.connected else " (reconnecting)")
            if not procs:
                what += "; namespaces only processes hold: safety poll"
            return Feed(self.name, "events", what, self.interval)
        if ev is None:
            why = "over SSH: `ip -j` and `ovs-vsctl` per poll" if not self._local else ""
        else:
            why = ev.error + ("; `ip -j` and `ovs-vsctl` per poll" if self._remote and ev.error else "")
        return Feed(self.name, "polled", why or "no event source", self.interval)

    async def collect(self, host: HostTransport) -> Topology:
        from probes.network.events import ALL

        netlink = host.is_local and not host.root if self.use_netlink is None else self.use_netlink
        self._local = bool(netlink)
        self._remote = not netlink and bool(getattr(self.events, "remote", False))
        evented = False
        if (netlink or self._remote) and self.events is not None:
            await self.events.start()
            evented = self.events.live
            self.interval = self.safety if evented else self.poll_interval
        # an event-driven run reads only the namespaces that changed (and new ones), and
        # keeps what no event covers (libvirt's networks, namespaces only processes hold);
        # the safety poll (and any run without live events) reads everything
        dirty, self._dirty = self._dirty, set()
        # over SSH, the helper says whose nftables rules changed: only those filters are read
        # again between safety polls (legacy iptables sends nothing: read at the safety poll)
        nft_dirty = frozenset(d[len(NFT) :] for d in dirty if d.startswith(NFT))
        dirty -= {NFT + n for n in nft_dirty}
        now = time.monotonic()
        full = self._prev is None or ALL in dirty or not evented or now - self._last_full >= self.safety * 0.9
        if full:
            self._last_full = now
            # libvirt's networks: locally, and for a host seen only through its libvirt URI
            local = host.is_local or self.libvirt_only
            self._nets = await self._networks.read(await _libvirt_uri(host)) if local else ()
        nets = self._nets
        if not self.libvirt_only:
            # on every read (a new VM's tap wakes a partial one): one RPC, no process; an SSH
            # host's through its forwarded read-only libvirt socket (probes/hosts/libvirt_forward)
            from probes.network.nwfilter import read_bindings

            # (no daemon socket: no libvirt import, no connection attempt)
            self._nics = await self._networks.call(await _nwfilter_uri(host), read_bindings, ())
        if self.libvirt_only:
            return Topology(libvirt_networks=nets, source="libvirt", policy=self.policy, taken_at=time.time())
        if full or PROCS in dirty:  # the remote helper saw processes' namespaces change
            self._unnamed = await unnamed_namespaces(host)
        unnamed = self._unnamed
        if netlink:
            from probes.network.nsenter import in_fresh_thread

            only = None if full else frozenset(dirty)
            prev = self._prev
            topo = await in_fresh_thread(lambda: read_netlink(unnamed, only=only, prev=prev))
            self._prev = topo
            if self.events is not None:
                await self.events.sync(n.name for n in topo.namespaces if n.name and n.name in list_netns())
        else:
            from probes.network import ipjson  # imports this module

            only = None if full else frozenset(dirty)
            topo = await ipjson.read_topology(host, unnamed, only=only, prev=self._prev)
            self._prev = topo
        if self._remote and not full and OVS not in dirty and self._ovs_prev is not None and not self.ovs_db:
            bridges, state = self._ovs_prev  # over SSH: re-read when the OVSDB file changed
        else:
            bridges, state = await self._read_ovs(host, bool(netlink))
            self._ovs_prev = (bridges, state)
        from probes.network.filterread import read_filters

        nft_events = self._remote and evented and not full and getattr(self.events, "nft", False)
        filters = await read_filters(host, topo, cache=self._filters, only=nft_dirty if nft_events else None)
        from probes.network.ovsflows import read_ovs_flows

        ovs_flows = await read_ovs_flows(
            host,
            replace(topo, ovs=bridges, ovs_state=state, filters=filters, policy=self.policy),
            db=self.ovs_db,
            cache=self._ovs_flows,
        )
        problems = list(topo.problems)
        policy = self.policy
        if policy is not None:
            known = {n.name for n in topo.namespaces}
            for name in policy.netns_named:
                if name not in known:
                    problems.append(
                        f"namespace {name!r} named in config does not exist on this host "
                        f"(not created; its workloads are not tested)"
                    )
        return replace(
            topo,
            ovs=bridges,
            ovs_state=state,
            problems=tuple(problems),
            policy=policy,
            libvirt_networks=nets,
            filters=filters,
            ovs_flows=ovs_flows,
            nic_filters=self._nics,
            taken_at=time.time(),
        )

    async def _read_ovs(self, host: HostTransport, local: bool) -> tuple[tuple[OvsBridge, ...], str]:
        """Locally (with events): the OVSDB monitor's replica, started when a database is
        there; otherwise `ovs-vsctl` (over SSH, or when events are off)."""
        if not (local and self.events is not None):
            return await ovs.read_ovs(host, db=self.ovs_db)
        if self._ovs is None:
            bridges, state = await ovs.read_ovs(host, db=self.ovs_db)  # answers `absent` without a process
            if state == "absent":
                return bridges, state
            remote = self.ovs_db or f"unix:{ovs.db_socket(None)}"
            self._ovs = OvsMonitor(remote, self.wake)
            self._ovs.start(asyncio.get_running_loop())
            return bridges, state
        return self._ovs.snapshot

    async def close(self) -> None:
        await self._networks.close()
        if self._ovs is not None:
            self._ovs.close()
            self._ovs = None
        if self.events is not None:
            self.events.close()

    def merge(self, state: HostState, result: Topology) -> HostState:
        if self.libvirt_only:
            from probes.network.libvirtnet import from_libvirt

            made, nets, policy = self._view_made, result.libvirt_networks, result.policy
            if (
                made is not None
                and made[0] is state.workloads
                and made[3] is state.topology
                and made[1] == nets
                and made[2] == policy
            ):
                return state  # the same inputs made the topology it has
            built = from_libvirt(state.workloads, nets)
            merged = self._merged(state, replace(built, policy=policy, taken_at=result.taken_at))
            if merged.topology is not None:
                self._view_made = (state.workloads, nets, policy, merged.topology)
            return merged
        return self._merged(state, result)

    @staticmethod
    def _merged(state: HostState, result: Topology) -> HostState:
        old = state.topology
        if old is not None and replace(result, taken_at=old.taken_at) == old:
            return state  # nothing moved: keep the object, so nothing is re-derived or redrawn
        return replace(state, topology=result)


async def _libvirt_uri(host: HostTransport) -> str | None:
    """The URI to read libvirt's networks at; None where the host has no libvirt daemon (a
    local host without its socket: libvirt is then not even imported)."""
    from probes.hosts.base import LibvirtAbsent

    try:
        return await host.open_libvirt_uri() if host.is_local else host.host.libvirt_uri
    except LibvirtAbsent:
        return None


async def _nwfilter_uri(host: HostTransport) -> str | None:
    """The URI to read the nwfilter bindings at: the one this process opens (an SSH host's
    forwarded socket, so no system `ssh` and no second connection); None without libvirt or
    while the host cannot be reached (the connection probe reports that)."""
    from probes.hosts.base import HostError, LibvirtAbsent

    try:
        return await host.open_libvirt_uri()
    except (LibvirtAbsent, HostError):
        return None


# ---------------------------------------------------------------- netlink (local)


def list_netns(root: str = "") -> list[str]:
    try:
        return sorted(n for n in os.listdir(root + NETNS_DIR) if not n.startswith("."))
    except FileNotFoundError:
        return []


async def unnamed_namespaces(host: HostTransport) -> list[tuple[str, tuple[int, ...]]]:
    """(net:[INODE], pids) of network namespaces only processes hold (containers, sandboxes),
    read from /proc through the transport; [] when /proc cannot be read."""
    from probes.inventory import procfs

    try:
        table = await procfs.ns_table(host)
        host_net = procfs.host_namespaces(table).get("net")
        if host.is_local:
            from probes.inventory.netns import named_namespaces

            named = {ino for _, ino in await named_namespaces(host)}
            return _unnamed_from(table, host_net, named)
        res = await host.run(
            [
                "sh",
                "-c",
                'for f in "$1"/*; do [ -e "$f" ] && stat -L -c %i "$f"; done',
                "sh",
                f"{host.root}{NETNS_DIR}",
            ],
            timeout=5.0,
        )
    except Exception:
        return []
    return _unnamed_from(table, host_net, {int(x) for x in res.stdout.split() if x.isdigit()})


def _unnamed_from(
    table: dict[int, dict[str, int]], host_net: int | None, named: set[int]
) -> list[tuple[str, tuple[int, ...]]]:
    by_ino: dict[int, list[int]] = {}
    for pid, ns in table.items():
        ino = ns.get("net")
        if ino and ino != host_net and ino not in named:
            by_ino.setdefault(ino, []).append(pid)
    return [(f"net:[{ino}]", tuple(sorted(p))) for ino, p in sorted(by_ino.items())]


def read_netlink(
    unnamed: Sequence[tuple[str, tuple[int, ...]]] = (),
    *,
    only: frozenset[str] | None = None,
    prev: Topology | None = None,
) -> Topology:
    """Blocking: read every namespace's rtnetlink dumps (call from a fresh thread). With
    `only` and `prev` (an event said which namespaces changed), the others are taken from
    `prev` as they were; a namespace `prev` does not have, or had an error in, is read."""
    links: list[Link] = []
    routes: list[Route] = []
    neigh: list[Neighbour] = []
    spaces: list[Namespace] = []
    problems: list[str] = []
    pids = dict(unnamed)
    kept = _by_namespace(prev) if only is not None and prev is not None else {}
    for ns in [""] + list_netns() + [n for n, _ in unnamed]:
        old = kept.get(ns)
        if old is not None and ns not in only and old[0].pids == pids.get(ns, ()):  # type: ignore[operator]
            spaces.append(old[0])
            links.extend(replace(lk, peer="") for lk in old[1])
            routes.extend(old[2])
            neigh.extend(old[3])
            continue
        try:
            if not ns:
                ipr = _reader_in("")
            elif ns in pids:  # by a holder's /proc path, never by name
                ipr = _open_pid_netns(pids[ns])
            else:
                ipr = _reader_in(f"{NETNS_DIR}/{ns}")
        except OSError as e:  # vanished between listdir and open: never created
            spaces.append(Namespace(ns, error=f"cannot open: {e.strerror or e}"))
            continue
        try:
            ns_links, forward = _links_from_netlink(ns, ipr.get_links(), ipr.get_addr(family=socket.AF_INET))
            links.extend(ns_links)
            routes.extend(
                _routes_from_netlink(ns, ipr.get_routes(family=socket.AF_INET, table=254), ns_links)
            )
            neigh.extend(_neighbours_from_netlink(ns, ipr.get_neighbours(family=socket.AF_INET), ns_links))
            spaces.append(Namespace(ns, ip_forward=forward, pids=pids.get(ns, ())))
        except Exception as e:  # one broken namespace must not hide the others
            spaces.append(Namespace(ns, error=str(e) or type(e).__name__))
            problems.append(f"namespace {ns or 'host'}: {e}")
        finally:
            ipr.close()
    return Topology(
        links=resolve_peers(links),
        ip_forward=any(n.ip_forward for n in spaces if n.name == ""),
        namespaces=tuple(spaces),
        routes=tuple(routes),
        neighbours=tuple(sorted(set(neigh), key=lambda n: (n.netns, n.dev, n.address))),
        source="netlink",
        problems=tuple(problems),
    )


def _by_namespace(
    topo: Topology,
) -> dict[str, tuple[Namespace, list[Link], list[Route], list[Neighbour]]]:
    """What `topo` holds per namespace (error-free namespaces only)."""
    out: dict[str, tuple[Namespace, list[Link], list[Route], list[Neighbour]]] = {
        n.name: (n, [], [], []) for n in topo.namespaces if not n.error
    }
    for lk in topo.links:
        if lk.netns in out:
            out[lk.netns][1].append(lk)
    for r in topo.routes:
        if r.netns in out:
            out[r.netns][2].append(r)
    for nb in topo.neighbours:
        if nb.netns in out:
            out[nb.netns][3].append(nb)
    return out


def _reader_in(path: str) -> RtnlReader:
    """Blocking: the rtnetlink dumps of the namespace at `path` ('' = this thread's own), on a
    socket this thread opened inside it (setns; never created, nothing forked). Call from a
    thread of its own."""
    return RtnlReader(route_socket(path))


def _open_pid_netns(pids: Sequence[int]) -> RtnlReader:
    """A reader in the namespace of the first holder still alive (never created)."""
    err: OSError = FileNotFoundError("no process holds it any more")
    for pid in pids[:5]:
        try:
            return _reader_in(f"/proc/{pid}/ns/net")
        except OSError as e:
            err = e
    raise err


NUD_BAD = 0x01 | 0x20 | 0x40  # INCOMPLETE, FAILED, NOARP


def _neighbours_from_netlink(ns: str, raw: Iterable[dict], links: Sequence[Link]) -> list[Neighbour]:
    names = {lk.ifindex: lk.name for lk in links}
    out = []
    for n in raw:
        mac, dst = n.get("NDA_LLADDR"), n.get("NDA_DST")
        if mac and dst and not (n.get("state") or 0) & NUD_BAD:
            out.append(Neighbour(ns, names.get(n.get("ifindex") or 0, ""), str(dst), str(mac).lower()))
    return out


def _flag(v: object) -> bool | None:
    return None if v is None else bool(v)


def _links_from_netlink(
    ns: str, raw_links: Iterable[dict], raw_addrs: Iterable[dict]
) -> tuple[list[Link], bool]:
    addrs: dict[int, list[str]] = {}
    for a in raw_addrs:
        ip = a.get("IFA_LOCAL") or a.get("IFA_ADDRESS")
        if ip:
            addrs.setdefault(a["index"], []).append(f"{ip}/{a['prefixlen']}")
    by_index: dict[int, str] = {lk["index"]: lk.get("IFLA_IFNAME", "") for lk in raw_links}
    out: list[Link] = []
    forward = False
    for lk in raw_links:
        name = lk.get("IFLA_IFNAME", "")
        info = lk.get("IFLA_LINKINFO")
        kind = slave_kind = ""
        vlan_id = vf = None
        iso = learn = flood = None
        if info:
            kind = info.get("IFLA_INFO_KIND") or ""
            slave_kind = info.get("IFLA_INFO_SLAVE_KIND") or ""
            data = info.get("IFLA_INFO_DATA")
            if data and kind == "bridge":
                vf = _flag(data.get("IFLA_BR_VLAN_FILTERING"))
            if data and kind == "vlan":
                vlan_id = data.get("IFLA_VLAN_ID")
            sd = info.get("IFLA_INFO_SLAVE_DATA")
            if sd and slave_kind == "bridge":
                iso = bool(sd.get("IFLA_BRPORT_ISOLATED") or 0)
                learn = _flag(sd.get("IFLA_BRPORT_LEARNING"))
                flood = _flag(sd.get("IFLA_BRPORT_UNICAST_FLOOD"))
        fw = proxy = None
        spec = lk.get("IFLA_AF_SPEC")
        if spec:
            inet = spec.get("AF_INET")
            if inet:
                fw = bool(inet.get("forwarding"))
                proxy = bool(inet.get("proxy_arp"))
        if fw and name != "lo":
            forward = True
        master_idx = lk.get("IFLA_MASTER")
        out.append(
            Link(
                name=name,
                ifindex=lk["index"],
                kind=kind,
                netns=ns,
                master=by_index.get(master_idx, "") if master_idx else "",
                mac=lk.get("IFLA_ADDRESS") or "",
                state=lk.get("IFLA_OPERSTATE") or "",
                addresses=tuple(addrs.get(lk["index"], ())),
                mtu=lk.get("IFLA_MTU") or 0,
                link_ifindex=lk.get("IFLA_LINK") or 0,
                vlan_id=vlan_id,
                port_isolated=iso,
                port_learning=learn,
                port_flood=flood,
                vlan_filtering=vf,
                proxy_arp=bool(proxy),
                forwarding=fw,
            )
        )
    return out, forward


def _routes_from_netlink(ns: str, raw: Iterable[dict], links: Sequence[Link]) -> list[Route]:
    names = {lk.ifindex: lk.name for lk in links}
    out = []
    for r in raw:
        if r.get("type", 1) != 1:  # unicast only
            continue
        dst = r.get("RTA_DST") or "0.0.0.0"
        out.append(
            Route(
                ns,
                f"{dst}/{r.get('dst_len', 0)}",
                gateway=r.get("RTA_GATEWAY") or "",
                dev=names.get(r.get("RTA_OIF") or 0, ""),
                table=r.get("RTA_TABLE") or 254,
            )
        )
    return out


def resolve_peers(links: Sequence[Link]) -> tuple[Link, ...]:
    """Name each veth's peer: the veth elsewhere whose IFLA_LINK points back at it."""
    veths = [lk for lk in links if lk.kind == "veth"]
    by_ifindex: dict[int, list[Link]] = {}
    for v in veths:
        by_ifindex.setdefault(v.ifindex, []).append(v)
    out = []
    for lk in links:
        if lk.kind == "veth" and lk.link_ifindex and not lk.peer:
            cands = [
                c for c in by_ifindex.get(lk.link_ifindex, ()) if c.link_ifindex == lk.ifindex and c is not lk
            ]
            # several candidates only when ifindexes collide across namespaces; prefer another ns
            cands.sort(key=lambda c: c.netns == lk.netns)
            if cands:
                lk = replace(lk, peer=f"{cands[0].netns}/{cands[0].name}")
        out.append(lk)
    return tuple(out)


# ---------------------------------------------------------------- helpers for other modules


def route_lookup(topo: Topology, netns: str, address: str) -> Route | None:
    """Longest-prefix match of `address` in the main table of `netns`."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    best: tuple[int, Route] | None = None
    for r in topo.routes:
        if r.netns != netns:
            continue
        try:
            net = ipaddress.ip_network(r.dst, strict=False)
        except ValueError:
            continue
        if ip.version == net.version and ip in net and (best is None or net.prefixlen > best[0]):
            best = (net.prefixlen, r)
    return best[1] if best else None


def address_owner(topo: Topology, address: str) -> Link | None:
    for lk in topo.links:
        for a in lk.addresses:
            if a.split("/")[0] == address:
                return lk
    return None
