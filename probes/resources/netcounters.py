"""Interface counters inside network namespaces, without forking per refresh.

A process's namespace is readable at /proc/PID/net/dev. A named namespace with no process
known (/run/netns/NAME) is entered by one dedicated worker thread with setns(2): setns only
affects the calling thread, and /proc/thread-self/net/dev then shows that namespace's
interfaces; the thread switches back to its own namespace before doing anything else. Over
SSH, one `ip -all netns exec cat /proc/net/dev` answers for every named namespace.

Loopback is left out: traffic a tenant sends to itself is not traffic between tenants.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import ctypes.util
import os
from collections.abc import Sequence
from dataclasses import dataclass

from probes.hosts import remote_helper
from probes.hosts.base import HostTransport

CLONE_NEWNET = 0x40000000


@dataclass(frozen=True)
class NetCounters:
    rx_bytes: int = 0
    tx_bytes: int = 0
    drops: int = 0  # rx + tx drops
    interfaces: int = 0


def parse_net_dev(text: str) -> NetCounters:
    """/proc/net/dev -> totals over every interface but loopback (the remote helper's parser)."""
    return NetCounters(*remote_helper.net_dev(text))


def parse_all_netns(text: str) -> dict[str, NetCounters]:
    """Output of `ip -all netns exec cat /proc/net/dev`: blocks headed 'netns: NAME'."""
    out: dict[str, NetCounters] = {}
    name: str | None = None
    block: list[str] = []
    for line in text.splitlines() + ["netns: "]:
        if line.startswith("netns: "):
            if name is not None:
                out[name] = parse_net_dev("\n".join(block))
            name, block = line[7:].strip(), []
        else:
            block.append(line)
    return out


class _Setns:
    """One thread that visits namespaces with setns(2) and always comes back."""

    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tsh-netns")
        libc_name = ctypes.util.find_library("c") or "libc.so.6"
        self._libc = ctypes.CDLL(libc_name, use_errno=True)

    def _setns(self, fd: int) -> None:
        if self._libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))

    def _visit(self, paths: Sequence[tuple[str, str]]) -> dict[str, NetCounters | None]:
        out: dict[str, NetCounters | None] = {}
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            for key, path in paths:
                try:
                    fd = os.open(path, os.O_RDONLY)
                except OSError:
                    out[key] = None
                    continue
                try:
                    try:
                        self._setns(fd)
                    except OSError:
                        out[key] = None
                        continue
                    try:
                        with open("/proc/thread-self/net/dev", "rb") as f:
                            out[key] = parse_net_dev(f.read().decode("ascii", "replace"))
                    except OSError:
                        out[key] = None
                    finally:
                        self._setns(home)  # if this fails, raise: never stay in a tenant's netns
                finally:
                    os.close(fd)
        finally:
            os.close(home)
        return out

    async def read(self, paths: Sequence[tuple[str, str]]) -> dict[str, NetCounters | None]:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._visit, paths)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class NetnsReader:
    """Counters for (key, netns name or path, pid) triples; pid 0 means unknown."""

    def __init__(self) -> None:
        self._setns: _Setns | None = None

    async def read(
        self, host: HostTransport, targets: Sequence[tuple[str, str, int]]
    ) -> dict[str, NetCounters | None]:
        from probes.resources.cgroups import read_files

        by_pid = {key: f"/proc/{pid}/net/dev" for key, _, pid in targets if pid > 0}
        out: dict[str, NetCounters | None] = {}
        if by_pid:
            files = await read_files(host, list(by_pid.values()))
            for key, path in by_pid.items():
                text = files.get(path)
                out[key] = parse_net_dev(text) if text is not None else None
        named = [
            (key, ns if ns.startswith("/") else f"/run/netns/{ns}")
            for key, ns, pid in targets
            if pid <= 0 or out.get(key) is None
        ]
        if not named:
            return out
        if host.is_local and not host.root and os.geteuid() == 0:
            if self._setns is None:
                self._setns = _Setns()
            out.update(await self._setns.read(named))
        elif not host.is_local:
            r = await host.run(["ip", "-all", "netns", "exec", "cat", "/proc/net/dev"], timeout=10)
            found = parse_all_netns(r.stdout)
            for key, path in named:
                out[key] = found.get(path.rsplit("/", 1)[-1])
        return out

    def close(self) -> None:
        if self._setns is not None:
            self._setns.close()
            self._setns = None
