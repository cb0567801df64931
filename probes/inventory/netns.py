"""Network namespaces: the named ones (/run/netns) and those only processes hold.

Named namespaces are listed from /run/netns and their interfaces and addresses read with
`ip -j -n NAME addr`; namespaces without a name are found from /proc/PID/ns/net of running
processes (inodes other than the host's), skipping those that belong to containers or VMs,
which the container and libvirt probes show. Their interfaces come from
`nsenter --net=/proc/PID/ns/net ip -j addr`.

Only the host transport is used (`run`, `read_text`, `root`), with one command per step for
all namespaces (names passed as argv, never spliced into the script), so over SSH it costs
four round trips whatever the number of namespaces. Nothing here creates a namespace: `ip -n`
and `nsenter` only open existing ones (unlike pyroute2's `IPRoute(netns=...)`).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Mapping, Sequence

from probes.hosts.base import HostTransport
from probes.inventory import procfs
from probes.inventory.kind import KindProbe
from probes.model import Feed, NetnsDetails, Workload, WorkloadKind
from probes.network.events import NFT, OVS, NetEvents

# Constant scripts; data only as positional arguments.
# stat, not find's %i: find reports the tmpfs file under the mount, not the namespace.
_LIST_SCRIPT = (
    '[ -d "$1" ] || exit 0; exec find "$1" -mindepth 1 -maxdepth 1 '
    "-exec stat -L --printf '%i %n\\0' -- {} + 2>/dev/null"
)
_ADDR_NAMED = "for n; do ip -j -n \"$n\" addr 2>/dev/null; printf '\\0'; done"
_ADDR_PIDS = (
    "r=$1; shift; for p; do nsenter --net=\"$r/proc/$p/ns/net\" ip -j addr 2>/dev/null; printf '\\0'; done"
)


SAFETY_POLL = 30.0  # seconds, with events: catches namespaces only processes hold


class NetnsProbe(KindProbe):
    """With `events` (local hosts; SSH hosts through their remote helper): re-read when
    /run/netns or a namespace's links or addresses change; `interval` is then the slow
    safety poll."""

    name = "netns"
    kind = WorkloadKind.NETNS

    def __init__(
        self,
        interval: float = 5.0,
        timeout: float = 20.0,
        *,
        events: NetEvents | None = None,
        safety: float = SAFETY_POLL,
    ) -> None:
        super().__init__(interval, timeout)
        self.poll_interval = interval
        self.events = events
        self.safety = safety
        self._live = False

    def attach(self, wake: Callable[[], None]) -> None:
        super().attach(wake)
        if self.events is not None:
            self.events.subscribe(self._changed)

    def _changed(self, ns: str) -> None:
        """Only what this inventory shows: the set of named namespaces, their addresses
        (the host namespace's own changes are the topology's business)."""
        if ns not in ("", OVS) and not ns.startswith(NFT):
            self.wake()

    def feed(self) -> Feed:
        remote = getattr(self.events, "remote", False)
        if self._live:
            procs = (
                ("the helper's" if remote else "a") + " /proc scan"
                if getattr(self.events, "procs", False)
                else "safety poll"
            )
            return Feed(
                self.name,
                "events",
                ("the remote helper's " if remote else "")
                + f"inotify on /run/netns, netlink address changes; namespaces only processes hold: {procs}",
                self.interval,
            )
        if self.events is None:
            return Feed(self.name, "polled", "over SSH: one command per step", self.interval)
        return Feed(self.name, "polled", self.events.error, self.interval)

    async def collect(self, host: HostTransport) -> tuple[Workload, ...]:
        if self.events is not None and (
            getattr(self.events, "remote", False) or (host.is_local and not host.root)
        ):
            await self.events.start()
            self._live = self.events.live
            self.interval = self.safety if self._live else self.poll_interval
        return await discover(host)

    async def close(self) -> None:
        if self.events is not None:
            self.events.close()


def named_namespaces_local(base: str) -> list[tuple[str, int]]:
    """Blocking: (name, inode) of the entries of a local /run/netns, as `stat -L` gives them."""
    out: list[tuple[str, int]] = []
    try:
        names = os.listdir(base)
    except OSError:
        return out
    for n in names:
        try:
            out.append((n, os.stat(f"{base}/{n}").st_ino))
        except OSError:
            continue
    return sorted(out)


async def named_namespaces(host: HostTransport, *, native: bool | None = None) -> list[tuple[str, int]]:
    """(name, inode) of every entry in /run/netns (the inode of the mounted nsfs file)."""
    base = f"{host.root}/run/netns"
    if host.is_local if native is None else native:
        return await asyncio.to_thread(named_namespaces_local, base)
    res = await host.run(["sh", "-c", _LIST_SCRIPT, "sh", base])
    out: list[tuple[str, int]] = []
    for rec in res.stdout.split("\0"):
        ino, sep, path = rec.partition(" ")
        if sep and ino.isdigit() and path.startswith(base + "/"):
            out.append((path[len(base) + 1 :], int(ino)))
    return sorted(out)


def parse_ip_addr(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(interfaces, addresses as CIDR) from `ip -j addr`; host-scope addresses (127.0.0.1,
    ::1) are left out: they say nothing about reachability."""
    try:
        doc = json.loads(text) if text.strip() else []
    except ValueError:
        return (), ()
    ifs: list[str] = []
    addrs: list[str] = []
    for link in doc if isinstance(doc, list) else ():
        if not isinstance(link, dict):
            continue
        if link.get("ifname"):
            ifs.append(str(link["ifname"]))
        for a in link.get("addr_info") or ():
            if isinstance(a, dict) and a.get("local") and a.get("scope") != "host":
                addrs.append(f"{a['local']}/{a.get('prefixlen', '')}".rstrip("/"))
    return tuple(ifs), tuple(addrs)


async def _addr_batch(host: HostTransport, argv: Sequence[str], n: int) -> list[str]:
    """Run one batch script; its answers are NUL-separated in argument order."""
    if n == 0 or host.root:  # commands cannot look into a test tree
        return [""] * n
    res = await host.run(argv, timeout=15.0)
    parts = res.stdout.split("\0")
    return (parts + [""] * n)[:n]


def _native_addresses(paths: Sequence[tuple[str, int]]) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Blocking (in a fresh thread: it enters namespaces): (interfaces, addresses) per path."""
    from probes.network.rtnl import namespace_addresses

    out: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    for path, ino in paths:
        try:
            a = namespace_addresses(path, ino)
            out.append((a.interfaces, a.addresses))
        except (OSError, RuntimeError):  # gone meanwhile
            out.append(((), ()))
    return out


async def discover(host: HostTransport, *, batch: bool | None = None) -> tuple[Workload, ...]:
    """The network namespaces of `host`. `batch`: True reads through commands (the remote
    path, also on a local host: tests compare both), False or None locally with os calls and
    netlink, spawning nothing."""
    native = host.is_local and not batch
    table = await procfs.ns_table(host, native=native)
    host_ns = procfs.host_namespaces(table)
    named = await named_namespaces(host, native=native)
    named_inodes = {ino for _, ino in named}

    by_inode: dict[int, list[int]] = {}
    for pid, ns in table.items():
        if "net" in ns:
            by_inode.setdefault(ns["net"], []).append(pid)

    unnamed = await _unnamed(host, table, host_ns, by_inode, named_inodes, batch)

    names = [n for n, _ in named]
    first_pids = [str(pids[0]) for _, pids in unnamed]
    if native and host.root:  # a test tree: no namespace to look into
        named_ips = [((), ())] * len(named)
        unnamed_ips: list[tuple[tuple[str, ...], tuple[str, ...]]] = [((), ())] * len(unnamed)
    elif native:
        from probes.network.nsenter import in_fresh_thread

        paths = [(f"/run/netns/{n}", ino) for n, ino in named] + [
            (f"/proc/{pids[0]}/ns/net", ino) for ino, pids in unnamed
        ]
        got = await in_fresh_thread(lambda: _native_addresses(paths))
        named_ips, unnamed_ips = got[: len(named)], got[len(named) :]
    else:
        named_out = await _addr_batch(host, ["sh", "-c", _ADDR_NAMED, "sh", *names], len(names))
        unnamed_out = await _addr_batch(
            host, ["sh", "-c", _ADDR_PIDS, "sh", host.root, *first_pids], len(first_pids)
        )
        named_ips = [parse_ip_addr(t) for t in named_out]
        unnamed_ips = [parse_ip_addr(t) for t in unnamed_out]

    out: list[Workload] = []
    for (name, ino), (ifs, addrs) in zip(named, named_ips):
        pids = tuple(sorted(by_inode.get(ino, ())))
        out.append(
            Workload(
                kind=WorkloadKind.NETNS,
                name=name,
                host=host.name,
                uuid=str(ino),
                state="active" if pids else "idle",
                netns=NetnsDetails(
                    path=f"/run/netns/{name}",
                    inode=ino,
                    pids=pids,
                    interfaces=ifs,
                    addresses=addrs,
                    named=True,
                ),
            )
        )
    for (ino, pids), (ifs, addrs) in zip(unnamed, unnamed_ips):
        out.append(
            Workload(
                kind=WorkloadKind.NETNS,
                name=f"net:[{ino}]",
                host=host.name,
                uuid=str(ino),
                state="active",
                netns=NetnsDetails(
                    path=f"/proc/{pids[0]}/ns/net",
                    inode=ino,
                    pids=tuple(pids),
                    interfaces=ifs,
                    addresses=addrs,
                    named=False,
                ),
            )
        )
    return tuple(out)


async def _unnamed(
    host: HostTransport,
    table: Mapping[int, Mapping[str, int]],
    host_ns: Mapping[str, int],
    by_inode: Mapping[int, list[int]],
    named_inodes: set[int],
    batch: bool | None,
) -> list[tuple[int, list[int]]]:
    """Namespaces held only by processes, minus those of containers and VMs."""
    cands = {
        ino: sorted(pids)
        for ino, pids in by_inode.items()
        if ino != host_ns.get("net") and ino not in named_inodes
    }
    # Processes whose namespaces alone make them containers need no file read.
    owned = {
        ino
        for ino, pids in cands.items()
        if any(procfs.classify(procfs.differing(table[p], host_ns), None) == "container" for p in pids)
    }
    rest = [(ino, p) for ino, pids in cands.items() if ino not in owned for p in pids]
    texts = await procfs.read_many(host, [f"/proc/{p}/cgroup" for _, p in rest], batch=batch)
    for ino, p in rest:
        rt = procfs.recognise(procfs.parse_cgroup(texts[f"/proc/{p}/cgroup"] or ""))
        if procfs.classify(procfs.differing(table[p], host_ns), rt) in ("container", "vm"):
            owned.add(ino)
    return sorted((ino, pids) for ino, pids in cands.items() if ino not in owned)
