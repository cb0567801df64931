"""libvirt networks (bridge, forward mode), and a topology built from libvirt alone.

`NetworkReader` keeps one read-only connection per host, lists the networks and reads each
one's bridge and forward mode. `from_libvirt` builds a Topology out of the VMs' NICs and
those networks, for hosts where the kernel cannot be read (the bundled demo on libvirt's test
driver, a replay): each NIC becomes a tap on its network's bridge (or on its source bridge,
or a port of its OVS bridge with its VLAN tag). It is marked `source="libvirt"` so nobody
mistakes it for an observation of the kernel.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

from probes.inventory.libvirt_link import LibvirtLink
from probes.model import HostState, State, Workload, WorkloadKind
from probes.network.model import DhcpLease, LibvirtNetwork, Link, OvsBridge, OvsInterface, OvsPort, Topology


def parse_network(xml: str, active: bool = True) -> LibvirtNetwork:
    # imported here (and in _read_on), with libvirt: xml.etree is ~0.5 MiB that a host without
    # a libvirt daemon never needs (the topology probe imports this module everywhere)
    import xml.etree.ElementTree as ET

    root = ET.fromstring(xml)
    br = root.find("bridge")
    fwd = root.find("forward")
    addrs = []
    for ip in root.findall("ip"):
        a, mask, prefix = ip.get("address"), ip.get("netmask"), ip.get("prefix")
        if a and (mask or prefix):
            try:
                n = ipaddress.ip_network(f"{a}/{prefix or mask}", strict=False)
                addrs.append(f"{a}/{n.prefixlen}")
            except ValueError:
                pass
    vp = root.find("virtualport")
    return LibvirtNetwork(
        name=root.findtext("name") or "",
        bridge=br.get("name", "") if br is not None else "",
        forward_mode=(fwd.get("mode") or "nat") if fwd is not None else "",
        active=active,
        addresses=tuple(addrs),
        virtualport=vp.get("type", "") if vp is not None else "",
    )


def _read_on(conn: Any) -> tuple[LibvirtNetwork, ...]:
    import xml.etree.ElementTree as ET

    import libvirt

    out = []
    for net in conn.listAllNetworks():
        try:
            parsed = parse_network(net.XMLDesc(0), bool(net.isActive()))
        except (libvirt.libvirtError, ET.ParseError):
            continue
        if parsed.active:
            try:  # works on a read-only connection
                parsed = replace(parsed, leases=leases(net.DHCPLeases()))
            except libvirt.libvirtError:
                pass
        out.append(parsed)
    return tuple(sorted(out, key=lambda n: n.name))


T = TypeVar("T")


class NetworkReader:
    """One host's libvirt networks over one read-only connection, kept between polls (opening
    one per poll cost most of a fleet's worker time: a test:// URI re-parses its whole file,
    a remote one is a new TLS/SSH session). Its calls run on a thread of its own, so a stalled
    libvirtd holds only this reader (as the inventory's). A failed call drops the connection;
    the next read opens a new one."""

    def __init__(self, link: LibvirtLink | None = None) -> None:
        self._conn: Any = None
        self._uri = ""
        # with a link: the host's thread and its inventory's connection (libvirt_link.py)
        self._link = link.retain() if link is not None else None
        self._thread: ThreadPoolExecutor | None = link.thread if link is not None else None
        self._closed = False

    def _read(self, uri: str, fn: Callable[[Any], Any] = _read_on) -> Any:
        import libvirt

        from probes.inventory.libvirt import (
            LibvirtUnavailable,
            _batch_uri,  # qemu+ssh: never prompt on the terminal
            missing_test_file,
            quiet_libvirt,
        )

        quiet_libvirt()  # libvirt's errors come back to us, not printed over the TUI
        shared = self._link.borrow(uri) if self._link is not None else None
        if shared is not None:  # the inventory's connection is up: no connection of our own
            self._drop()
            return fn(shared)
        if self._conn is not None and self._uri != uri:
            self._drop()
        if self._conn is None:
            if path := missing_test_file(uri):  # (libxml2 would warn on fd 2, over the screen)
                raise LibvirtUnavailable(f"no such file {path}")
            self._conn, self._uri = libvirt.openReadOnly(_batch_uri(uri)), uri
        try:
            return fn(self._conn)
        except libvirt.libvirtError:
            self._drop()
            raise

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    async def read(self, uri: str | None) -> tuple[LibvirtNetwork, ...]:
        """The host's libvirt networks; () when libvirt is not reachable (not an error here:
        the inventory probe reports the connection)."""
        if not uri or self._closed:
            return ()
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="libvirt-networks")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, self._read, uri)
        except Exception:
            return ()

    async def call(self, uri: str | None, fn: Callable[[Any], T], default: T) -> T:
        """`fn(connection)` on this reader's read-only connection and thread (the nwfilter
        bindings are read so); `default` when libvirt is not reachable or `fn` fails."""
        if not uri or self._closed:
            return default
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="libvirt-networks")
        try:
            out: T = await asyncio.get_running_loop().run_in_executor(self._thread, self._read, uri, fn)
            return out
        except Exception:
            return default

    async def close(self) -> None:
        """Close the connection (on its thread); a second close does nothing."""
        if self._closed:
            return
        self._closed = True
        thread, self._thread = self._thread, None
        if thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the interpreter is shutting down
            await asyncio.get_running_loop().run_in_executor(thread, self._drop)
        if self._link is not None:
            self._link.release()
        else:
            thread.shutdown(wait=False)


def leases(raw: Sequence[dict[str, object]]) -> tuple[DhcpLease, ...]:
    """IPv4 leases from virNetworkGetDHCPLeases (a list of dicts with mac, ipaddr, prefix, type)."""
    out = []
    for le in raw:
        mac, ip, prefix = le.get("mac"), le.get("ipaddr"), le.get("prefix")
        if isinstance(mac, str) and isinstance(ip, str) and le.get("type", 0) == 0:
            out.append(DhcpLease(mac.lower(), ip, prefix if isinstance(prefix, int) else 0))
    return tuple(sorted(out, key=lambda x: (x.mac, x.address)))


def from_libvirt(workloads: Sequence[Workload], networks: Sequence[LibvirtNetwork]) -> Topology:
    by_name = {n.name: n for n in networks}
    links: dict[str, Link] = {}
    ovs: dict[str, list[OvsPort]] = {}
    for n in networks:
        if n.bridge and n.virtualport != "openvswitch":
            links[n.bridge] = Link(n.bridge, 0, kind="bridge", addresses=n.addresses, state="UP")
    for w in workloads:
        if w.kind != WorkloadKind.VM or not w.vm:
            continue
        for i, nic in enumerate(w.vm.nics):
            net = by_name.get(nic.source) if nic.type == "network" else None
            bridge = nic.bridge or (net.bridge if net else nic.source if nic.type == "bridge" else "")
            if not bridge:
                continue
            tap = nic.target_dev or f"({w.name}#{i})"
            mac = "fe" + nic.mac[2:] if len(nic.mac) == 17 else ""
            if nic.virtualport_type == "openvswitch" or (net and net.virtualport == "openvswitch"):
                tag = nic.vlan_tags[0] if len(nic.vlan_tags) == 1 and not nic.vlan_trunk else None
                trunks = tuple(nic.vlan_tags) if nic.vlan_trunk else ()
                ovs.setdefault(bridge, []).append(
                    OvsPort(
                        tap,
                        bridge,
                        tag=tag,
                        trunks=trunks,
                        interfaces=(
                            OvsInterface(
                                tap, ofport=1, external_ids=(("iface-id", nic.virtualport_interfaceid),)
                            ),
                        ),
                    )
                )
                links[tap] = Link(tap, 0, kind="tun", mac=mac, state="UP")
            else:
                links.setdefault(bridge, Link(bridge, 0, kind="bridge", state="UP"))
                links[tap] = Link(
                    tap, 0, kind="tun", master=bridge, mac=mac, state="UP", port_isolated=nic.port_isolated
                )
    return Topology(
        links=tuple(links.values()),
        ovs=tuple(OvsBridge(b, ports=tuple(sorted(p, key=lambda x: x.name))) for b, p in sorted(ovs.items())),
        ovs_state="ok" if ovs else "absent",
        libvirt_networks=tuple(networks),
        source="libvirt",
        ip_forward=any(n.forward_mode in ("nat", "route", "open") for n in networks),
    )


ViewCache = dict[str, tuple[object, object, Topology]]


def current_views(state: State, cache: ViewCache | None = None) -> State:
    """Rebuild each libvirt-view topology from the host's workloads now: it is derived from the
    domains' interfaces, so a domain published after the topology probe merged (both run at
    once) must not leave it stale. Hosts whose view already matches are kept as they are.
    `cache` (the session's): per host, the workloads and topology it was last made from, and
    the view made; a host with the same two is not made again."""
    hosts: list[HostState] = []
    changed = False
    for hs in state.hosts:
        t = hs.topology
        if t is not None and t.source == "libvirt":
            got = cache.get(hs.host.name) if cache is not None else None
            if got is not None and got[0] is hs.workloads and got[1] is t:
                built = got[2]
            else:
                built = from_libvirt(hs.workloads, t.libvirt_networks)
                built = replace(built, policy=t.policy, taken_at=t.taken_at, problems=t.problems)
                if built == t:
                    built = t
                if cache is not None:
                    cache[hs.host.name] = (hs.workloads, t, built)
            if built is not t:
                hs = replace(hs, topology=built)
                changed = True
        hosts.append(hs)
    if cache is not None and len(cache) > len(hosts):
        names = {hs.host.name for hs in hosts}
        for k in [k for k in cache if k not in names]:
            del cache[k]
    return replace(state, hosts=tuple(hosts)) if changed else state
