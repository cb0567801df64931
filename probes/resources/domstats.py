"""VM counters from libvirt: one `getAllDomainStats` call for every domain per refresh.

One bulk call costs about as much as one per-domain call (7 ms for one domain, 24 ms for three
here), so per-domain polling is never used for counters. The call asks for the state, cpu,
balloon, vcpu, interface and block groups with the NOWAIT flag (do not queue behind a busy
domain's monitor job: report what is at hand); a daemon that predates a flag or a stats group
answers VIR_ERR_NO_SUPPORT or VIR_ERR_INVALID_ARG, and the call is retried without it.

vCPU `delay` is the time a vCPU was runnable but waiting for a host CPU: per-VM steal, the
clearest sign that a neighbour is taking the CPU.

Live limits (scheduler and memory parameters, which libvirt reads from the domain's cgroup)
are per-domain calls, so they are fetched only every few refreshes.

All libvirt calls are blocking and run in a worker thread, on a read-only connection.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from probes.inventory.libvirt_link import LibvirtLink
from probes.resources.model import Limits

log = logging.getLogger(__name__)

MEMORY_UNLIMITED_KIB = 9007199254740991  # VIR_DOMAIN_MEMORY_PARAM_UNLIMITED


@dataclass
class DomainReading:
    """Raw counters of one domain from one bulk call (absolute, not rates)."""

    name: str
    uuid: str
    dom_id: int = -1
    state: int = 0  # virDomainState
    cpu_ns: int | None = None
    vcpus: int | None = None
    vcpu_delay_ns: int | None = None  # summed over vCPUs
    balloon_kib: int | None = None
    rss_kib: int | None = None
    max_kib: int | None = None
    net_rx: int | None = None
    net_tx: int | None = None
    net_drops: int | None = None
    blk_read: int | None = None
    blk_write: int | None = None
    live: Limits | None = None
    taps: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def parse_stats(name: str, uuid: str, dom_id: int, s: Mapping[str, Any]) -> DomainReading:
    """The typed-parameter dict of one domain from getAllDomainStats -> DomainReading."""
    r = DomainReading(name, uuid, dom_id, int(s.get("state.state", 0)))
    r.cpu_ns = s.get("cpu.time")
    r.balloon_kib = s.get("balloon.current")
    r.rss_kib = s.get("balloon.rss")
    r.max_kib = s.get("balloon.maximum")
    n = s.get("vcpu.current")
    if n is not None:
        r.vcpus = int(n)
        delays = [
            s[f"vcpu.{i}.delay"] for i in range(int(s.get("vcpu.maximum", n))) if f"vcpu.{i}.delay" in s
        ]
        r.vcpu_delay_ns = sum(delays) if delays else None
    nets = int(s.get("net.count", 0))
    if "net.count" in s:
        r.net_rx = sum(int(s.get(f"net.{i}.rx.bytes", 0)) for i in range(nets))
        r.net_tx = sum(int(s.get(f"net.{i}.tx.bytes", 0)) for i in range(nets))
        r.net_drops = sum(
            int(s.get(f"net.{i}.rx.drop", 0)) + int(s.get(f"net.{i}.tx.drop", 0)) for i in range(nets)
        )
        r.taps = tuple(str(s.get(f"net.{i}.name", "")) for i in range(nets))
    if "block.count" in s:
        blocks = int(s["block.count"])
        r.blk_read = sum(int(s.get(f"block.{i}.rd.bytes", 0)) for i in range(blocks))
        r.blk_write = sum(int(s.get(f"block.{i}.wr.bytes", 0)) for i in range(blocks))
    return r


def live_limits(sched: Mapping[str, Any] | None, mem: Mapping[str, Any] | None, vcpus: int | None) -> Limits:
    """Scheduler + memory parameters (live) -> Limits. libvirt's `vcpu_quota` applies to each
    vCPU, `global_quota` to the whole domain; the tighter one (in cores) is the cap."""
    quota: float | None = None
    shares = None
    if sched:
        caps = []
        vq, vp = sched.get("vcpu_quota", -1), sched.get("vcpu_period", 0)
        if vq and vq > 0 and vp:
            caps.append(vq / vp * max(1, vcpus or 1))
        gq, gp = sched.get("global_quota", -1), sched.get("global_period", 0)
        if gq and gq > 0 and gp:
            caps.append(gq / gp)
        quota = min(caps) if caps else None
        shares = sched.get("cpu_shares")
        if shares is None and "weight" in sched:  # cgroup v2 hosts
            shares = sched.get("weight")
    hard = None
    if mem:
        h = mem.get("hard_limit")
        hard = h * 1024 if h is not None and 0 < h < MEMORY_UNLIMITED_KIB else None
    cpu_known = bool(sched) and ("vcpu_quota" in sched or "global_quota" in sched)
    return Limits(
        source="libvirt live",
        cpu_quota_cores=quota,
        cpu_shares=int(shares) if shares is not None else None,
        mem_limit_bytes=hard,
        where="schedinfo/memtune --live",
        cpu_known=cpu_known,
        mem_known=bool(mem) and "hard_limit" in mem,
        pids_known=False,
    )


class DomainStats:
    """A read-only libvirt connection kept open between refreshes (reopened on failure)."""

    def __init__(self, uri: str, link: LibvirtLink | None = None) -> None:
        self.uri = uri
        self._link = link  # the host's shared connection (probes/inventory/libvirt_link.py)
        self._conn: Any = None
        self._flags_ok = True
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        import libvirt

        # libvirt's default error handler prints every error to stderr, where the TUI draws
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        shared = self._link.borrow(self.uri) if self._link is not None else None
        if shared is not None:  # the inventory's connection is up: no connection of our own
            own, self._conn = self._conn, None  # (the caller holds self._lock)
            if own is not None:
                try:
                    own.close()
                except Exception:
                    pass
            return shared
        if self._conn is None or not self._alive():
            from probes.inventory.libvirt import LibvirtUnavailable, missing_test_file

            if path := missing_test_file(self.uri):  # (libxml2 would warn on fd 2, over the screen)
                raise LibvirtUnavailable(f"no such file {path}")
            self._conn = libvirt.openReadOnly(self.uri)
        return self._conn

    def _alive(self) -> bool:
        try:
            return bool(self._conn.isAlive())
        except Exception:
            return False

    def collect(self, with_limits: bool) -> list[DomainReading]:
        """Blocking: one bulk stats call (+ per-domain live limits when asked)."""
        import libvirt

        with self._lock:
            conn = self._connect()
            stats = (
                libvirt.VIR_DOMAIN_STATS_STATE
                | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
                | libvirt.VIR_DOMAIN_STATS_BALLOON
                | libvirt.VIR_DOMAIN_STATS_VCPU
                | libvirt.VIR_DOMAIN_STATS_INTERFACE
                | libvirt.VIR_DOMAIN_STATS_BLOCK
            )
            nowait = getattr(libvirt, "VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT", 0)
            try:
                result = conn.getAllDomainStats(stats, nowait if self._flags_ok else 0)
            except libvirt.libvirtError as e:
                if (
                    e.get_error_code() not in (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_INVALID_ARG)
                    or not self._flags_ok
                ):
                    self._conn = (
                        None
                        if e.get_error_code()
                        in (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_RPC, libvirt.VIR_ERR_INTERNAL_ERROR)
                        else self._conn
                    )
                    raise
                log.debug("getAllDomainStats flags refused (%s): retrying without", e)
                self._flags_ok = False
                result = conn.getAllDomainStats(stats, 0)
            out = []
            for dom, s in result:
                try:
                    r = parse_stats(dom.name(), dom.UUIDString(), dom.ID(), s)
                except libvirt.libvirtError:  # the domain vanished between calls
                    continue
                if with_limits and r.state in (1, 2, 3):  # running, blocked, paused
                    r.live = self._limits(dom, r.vcpus)
                out.append(r)
            return out

    def _limits(self, dom: Any, vcpus: int | None) -> Limits | None:
        import libvirt

        sched = mem = None
        calls = (
            lambda: dom.schedulerParametersFlags(libvirt.VIR_DOMAIN_AFFECT_LIVE),
            dom.schedulerParameters,
        )  # some drivers (the test driver) refuse every flag
        for call in calls:
            try:
                sched = call()
                break
            except libvirt.libvirtError as e:
                log.debug("scheduler parameters of %s: %s", dom.name(), e)
        for flags in (libvirt.VIR_DOMAIN_AFFECT_LIVE, 0):
            try:
                mem = dom.memoryParameters(flags)
                break
            except libvirt.libvirtError as e:
                log.debug("memoryParameters(%d) of %s: %s", flags, dom.name(), e)
        if sched is None and mem is None:
            return None
        return live_limits(sched, mem, vcpus)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except Exception:
                    pass
                self._conn = None
