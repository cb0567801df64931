"""The libvirt inventory probe: every domain of a host's libvirt as a Workload of kind vm.

How it stays cheap: one `getAllDomainStats(state)` call per refresh lists every domain with
its state; a domain's XML is fetched and parsed again only when the domain is new, its
(id, state) changed, a libvirt event said it changed (lifecycle, device added/removed,
tunables, metadata: delivered by libvirt's event loop in a daemon thread, see _EventThread),
or the periodic resync is due (a safety net for missed events). All libvirt calls run in a worker thread.

Safety: the connection is read-only (`openReadOnly`), except for `test:` URIs (libvirt's
in-process simulated driver reading a file: nothing real can change) which are opened
read-write only to read secure XML, so that the demo can show whether a password is set.

When libvirt is not there or goes away, collect raises; `failed()` keeps the last known VMs
(marked stale) and sets the libvirt Connection to "unreachable since HH:MM, retrying"; the
engine backs off and the next run reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from probes.engine import Probe
from probes.hosts.base import HostError, HostTransport, LibvirtAbsent
from probes.inventory.libvirt_link import LibvirtLink
from probes.model import (
    Connection,
    ConnState,
    Feed,
    HostKind,
    HostState,
    ProbeError,
    VmDetails,
    Workload,
    WorkloadKind,
)

log = logging.getLogger(__name__)

XML_ERRORS_PROBE = "libvirt-xml"  # probe name of per-domain XML errors (ProbeError.probe)

# virsh's words for virDomainState
STATE_NAMES = {
    0: "no state",
    1: "running",
    2: "idle",
    3: "paused",
    4: "in shutdown",
    5: "shut off",
    6: "crashed",
    7: "pmsuspended",
}


class LibvirtUnavailable(Exception):
    """libvirt could not be reached; the message is for the user."""


@dataclass(frozen=True)
class LibvirtResult:
    uri: str
    vms: tuple[Workload, ...]
    xml_errors: tuple[str, ...] = ()  # one message per domain whose XML failed
    events: bool = False  # change detection by events (else by state and resync only)
    parsed: int = 0  # domains whose XML was (re)parsed in this run
    absent: str = ""  # the host has no libvirt at all (why): a state, not an error


# ------------------------------------------------------------------ libvirt events


class _EventThread:
    """libvirt's event loop in a daemon thread, registered once per process.

    libvirt accepts one event implementation per process, registered before connections are
    opened. libvirtaio (libvirt-python's asyncio adapter) was tried first and measured here:
    it schedules timers and watches from whichever thread calls libvirt, without
    `call_soon_threadsafe`, so with our libvirt calls in worker threads (as they must be) the
    loop never wakes up and no event arrives. libvirt's own default implementation is
    thread-safe (it has a wake-up pipe): it runs here in a daemon thread that sleeps in
    poll() when idle. Callbacks run on this thread: they must only record and return. Other
    areas that want libvirt events (logs) call `ensure_libvirt_events()` and share it.
    """

    def __init__(self) -> None:
        self.ok = False
        self.error = ""
        self.started = False
        self._lock = threading.Lock()

    def ensure(self) -> bool:
        with self._lock:
            if self.started:
                return self.ok
            self.started = True
            import libvirt

            try:
                libvirt.virEventRegisterDefaultImpl()
            except (RuntimeError, libvirt.libvirtError) as e:
                # someone registered an implementation already: it delivers the events
                self.error = f"libvirt event loop: {e}"
                self.ok = True
                return True

            def run() -> None:
                while True:
                    try:
                        libvirt.virEventRunDefaultImpl()
                    except Exception:  # keep the loop alive whatever a callback did
                        log.exception("libvirt event loop iteration failed")
                        time.sleep(0.5)

            threading.Thread(target=run, name="libvirt-events", daemon=True).start()
            self.ok = True
            return True


_EVENTS = _EventThread()


def ensure_libvirt_events() -> bool:
    """Make sure a libvirt event implementation runs (once per process); True when it does.

    Call it before opening the connections that should deliver events.
    """
    return _EVENTS.ensure()


_quiet_done = False


def missing_test_file(uri: str) -> str:
    """The file a test: URI names when it is not there ('' otherwise). The test driver reads
    a local file, and libxml2 prints its own I/O warning about a missing one on fd 2, past
    libvirt's error handler (over the console's screen): no connection is tried to one."""
    if not uri.startswith("test:"):
        return ""
    from urllib.parse import urlsplit

    path = urlsplit(uri).path
    return path if path != "/default" and not os.path.isfile(path) else ""


def quiet_libvirt() -> None:
    """libvirt prints every error to stderr by default: that would scribble over the TUI.

    Process-wide and idempotent; every area that opens libvirt connections benefits.
    """
    global _quiet_done
    if not _quiet_done:
        import libvirt

        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        _quiet_done = True


# ------------------------------------------------------------------ the probe


@dataclass
class _Cached:
    name: str
    sig: tuple[int, int]  # (id, state)
    vm: VmDetails
    error: str = ""
    workload: Workload | None = None  # built once per change, reused while unchanged


class LibvirtProbe(Probe[LibvirtResult]):
    name = "libvirt"

    def __init__(
        self,
        interval: float = 2.0,
        timeout: float = 15.0,
        *,
        resync: float = 300.0,
        resync_without_events: float = 30.0,
        events: bool = True,
        safety: float = 30.0,
        link: LibvirtLink | None = None,
    ) -> None:
        self.interval = interval
        self.poll_interval = interval
        self.safety = safety
        self.timeout = timeout
        self.resync = resync
        self.resync_without_events = resync_without_events
        self.use_events = events
        self._conn: Any = None
        # this probe's libvirt calls run one at a time anyway (_call_lock): a thread of its own
        # keeps a libvirtd that stalls for seconds (busy QEMU monitors) from holding the shared
        # worker threads that every other probe and host needs (seen with 30 SSH hosts)
        # With a link (probes/inventory/libvirt_link.py) the thread and this probe's connection
        # are the host's, shared with its domain statistics and networks.
        self._link = link.retain() if link is not None else None
        self._thread = (
            link.thread if link is not None else ThreadPoolExecutor(1, thread_name_prefix="libvirt-inventory")
        )
        self._uri = ""
        self._absent = ""  # why the host has no libvirt (no daemon socket), while it has none
        self._secure = False
        self._events_on = False
        self._callback_ids: list[int] = []
        self._cache: dict[str, _Cached] = {}
        self._dirty: set[str] = set()
        self._all_dirty = True
        self._dirty_lock = threading.Lock()
        self._call_lock = threading.Lock()
        self._last_full = 0.0
        self._broken = False
        self._last_vms: tuple[Workload, ...] = ()
        self._last_keys: tuple[str, ...] = ()
        self._last_host = ""
        # graphics passwords from libvirt's own files (see _with_passwords)
        self.read_status_files = True
        self._pw: dict[str, tuple[Workload, Workload]] = {}
        self._pw_in: tuple[Workload, ...] | None = None
        self._pw_out: tuple[Workload, ...] = ()
        self._pw_pending = False

    # -- engine interface

    async def collect(self, host: HostTransport) -> LibvirtResult:
        self.interval = self.poll_interval  # until this run says events are live
        uri = host.host.libvirt_uri
        if not uri:
            raise LibvirtUnavailable("no libvirt URI for this host")
        try:
            # an SSH host forwards its libvirt socket over its own connection; a local one
            # without a daemon socket is absent before libvirt is even imported (memory)
            open_uri = await host.open_libvirt_uri() or uri
        except LibvirtAbsent as e:
            # a daemon that starts later is found at the safety poll: every run publishes (and
            # redraws the header), so an absent libvirt is not asked for every 2 s
            self._absent = str(e)
            self.interval = max(self.poll_interval, self.safety)
            return LibvirtResult(uri=uri, vms=(), absent=str(e))
        except HostError as e:
            raise LibvirtUnavailable(f"SSH connection down: {e}") from None
        self._absent = ""
        try:
            import libvirt  # noqa: F401
        except ImportError:
            raise LibvirtUnavailable("libvirt-python is not installed here") from None
        quiet_libvirt()  # before this process opens its first libvirt connection
        r = await asyncio.get_running_loop().run_in_executor(
            self._thread, self._collect_sync, open_uri, host.name
        )
        # with events, a domain's change wakes this probe at once: the poll is a safety net
        self.interval = max(self.poll_interval, self.safety) if r.events else self.poll_interval
        if open_uri != uri:
            r = replace(r, uri=f"{uri} (over tenantscope's SSH connection)")
        if self.read_status_files and not self._secure and _reads_own_files(uri, host):
            r = await self._with_passwords(host, r)
        return r

    def merge(self, state: HostState, result: LibvirtResult) -> HostState:
        now = time.time()
        others = tuple(w for w in state.workloads if w.kind != WorkloadKind.VM)
        if result.absent:
            prev = state.connection("libvirt")
            since = prev.since if prev is not None and prev.state == ConnState.ABSENT and prev.since else now
            conn = Connection("libvirt", ConnState.ABSENT, result.absent, since)
            return replace(state, workloads=others, connections=_set_connection(state.connections, conn))
        prev = state.connection("libvirt")
        since = prev.since if prev is not None and prev.state == ConnState.UP and prev.since else now
        conn = Connection("libvirt", ConnState.UP, result.uri, since)
        old = {e.message: e for e in state.probe_errors if e.probe == XML_ERRORS_PROBE}
        errors = tuple(e for e in state.probe_errors if e.probe != XML_ERRORS_PROBE) + tuple(
            old.get(msg) or ProbeError(XML_ERRORS_PROBE, state.host.name, msg, now, now)
            for msg in result.xml_errors
        )
        return replace(
            state,
            workloads=others + result.vms,
            connections=_set_connection(state.connections, conn),
            probe_errors=errors,
        )

    def failed(self, state: HostState, error: str, now: float) -> HostState:
        prev = state.connection("libvirt")
        was_up = prev is not None and prev.state in (ConnState.UP, ConnState.UNREACHABLE)
        if not was_up and _looks_absent(error) and not state.host.libvirt_uri_given:
            cstate = ConnState.ABSENT
            since = prev.since if prev is not None and prev.state == cstate and prev.since else now
            detail = f"not found ({error})"
        else:
            cstate = ConnState.UNREACHABLE
            since = prev.since if prev is not None and prev.state == cstate and prev.since else now
            detail = f"unreachable since {time.strftime('%H:%M', time.localtime(since))}, retrying: {error}"
        conn = Connection("libvirt", cstate, detail, since)
        workloads = tuple(
            replace(w, vm=replace(w.vm, stale=True))
            if w.kind == WorkloadKind.VM and w.vm is not None and not w.vm.stale
            else w
            for w in state.workloads
        )
        return replace(state, workloads=workloads, connections=_set_connection(state.connections, conn))

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._disconnect)
        if self._link is not None:
            self._link.release()
        else:
            self._thread.shutdown(wait=False)

    def feed(self) -> Feed:
        if self._events_on:
            return Feed(
                self.name,
                "events",
                "libvirt domain events (lifecycle, devices, tunables, metadata)",
                self.interval,
            )
        if self._absent:  # a stat of the daemon's sockets per poll, nothing imported
            return Feed(
                self.name, "polled", f"{self._absent}: looked for every {self.interval:g} s", self.interval
            )
        why = "this libvirt gives no domain events" if self._conn is not None else "not connected"
        return Feed(self.name, "polled", why, self.interval)

    # -- graphics passwords

    async def _with_passwords(self, host: HostTransport, r: LibvirtResult) -> LibvirtResult:
        """Whether each display has a password, from libvirt's own files on the host.

        A read-only connection never sees `passwd` (libvirt refuses secure XML to it), so
        "VNC without a password" could not be told from "VNC with one". libvirt's status
        file of a running domain (/run/libvirt/qemu/NAME.xml) and the config of a defined one
        (/etc/libvirt/qemu/NAME.xml) have it; root can read them, locally or over SSH. Only
        the presence of a password is kept; the file's text is dropped at once. Read again
        only when the domain changed; unreadable files leave the password "unknown".
        """
        if r.vms is self._pw_in and not self._pw_pending:
            return replace(r, vms=self._pw_out)
        out: list[Workload] = list(r.vms)
        todo: list[int] = []
        for i, w in enumerate(r.vms):
            vm = w.vm
            if vm is None or not vm.graphics or all(g.passwd_known for g in vm.graphics):
                continue
            prev = self._pw.get(w.uuid)
            if prev is not None and prev[0] is w:
                out[i] = prev[1]
            else:
                todo.append(i)
        # local files cost nothing; over SSH every read is a round trip: a few per refresh,
        # the rest at the next ones (they stay "unknown" meanwhile)
        budget = len(todo) if host.is_local else PASSWORD_READS_PER_REFRESH
        sem = asyncio.Semaphore(8)

        async def one(i: int) -> None:
            w = r.vms[i]
            async with sem:
                flags = await _passwd_flags(host, w)
            nw = w
            vm = w.vm
            assert vm is not None
            if flags is not None and len(flags) == len(vm.graphics):
                nw = replace(
                    w,
                    vm=replace(
                        vm,
                        graphics=tuple(
                            replace(g, passwd_set=f, passwd_known=True) for g, f in zip(vm.graphics, flags)
                        ),
                    ),
                )
            self._pw[w.uuid] = (w, nw)
            out[i] = nw

        await asyncio.gather(*(one(i) for i in todo[:budget]))
        self._pw_pending = len(todo) > budget
        present = {w.uuid for w in r.vms}
        for gone in set(self._pw) - present:
            del self._pw[gone]
        self._pw_in, self._pw_out = r.vms, tuple(out)
        return replace(r, vms=self._pw_out)

    def warm_up(self, host: HostTransport) -> None:
        """Start opening the connection now, on this probe's thread, so that the first collect
        finds it open: for the test driver (a node XML parsed in process, 0.5-1 s at 1,000
        domains) on a local host or a libvirt-only view (bench.fleet's hosts), while the console composes and draws its first frame. Any
        failure is left to the first collect, which connects and reports as always."""
        uri = host.host.libvirt_uri or ""
        if not uri.startswith("test:") or host.host.kind not in (HostKind.LOCAL, HostKind.LIBVIRT):
            return  # (an SSH host's libvirt is reached through its connection, opened later)
        try:
            import libvirt  # noqa: F401
        except ImportError:
            return
        self._thread.submit(self._warm, uri)
        # and the domain XML parser (xml.etree, defusedxml: ~10 ms of imports), here while the
        # open runs in C with the GIL released, not in the first collect after it
        import probes.inventory.domxml  # noqa: F401

    # -- worker thread

    def _warm(self, uri: str) -> None:
        if not self._call_lock.acquire(blocking=False):  # a collect is on it already
            return
        try:
            if self._conn is None:
                self._connect(uri)
        except Exception:  # the first collect connects again and says why
            log.debug("libvirt warm-up of %s failed", uri, exc_info=True)
        finally:
            self._call_lock.release()

    def _collect_sync(self, uri: str, host_name: str) -> LibvirtResult:
        if not self._call_lock.acquire(timeout=self.timeout):
            raise LibvirtUnavailable("the previous libvirt call has not returned yet")
        try:
            return self._collect_locked(uri, host_name)
        finally:
            self._call_lock.release()

    def _collect_locked(self, uri: str, host_name: str) -> LibvirtResult:
        import libvirt

        # here, with libvirt: the domain XML parser brings xml.etree and defusedxml (~0.7 MiB)
        # that a host without a libvirt daemon never needs
        from probes.inventory.domxml import DomainXmlError, error_details, parse_domain

        if uri != self._uri or self._broken:
            self._disconnect()
        if self._conn is None:
            self._connect(uri)
        conn = self._conn
        try:
            records = self._list(conn)
        except libvirt.libvirtError as e:
            self._disconnect()
            raise LibvirtUnavailable(f"{uri}: {_msg(e)}") from None

        now = time.monotonic()
        period = self.resync if self._events_on else self.resync_without_events
        with self._dirty_lock:
            full = self._all_dirty or now - self._last_full >= period
            dirty, self._dirty, self._all_dirty = self._dirty, set(), False
        if full:
            self._last_full = now

        flags = libvirt.VIR_DOMAIN_XML_SECURE if self._secure else 0
        seen: set[str] = set()
        vms: list[Workload] = []
        parsed = 0
        for dom, st in records:
            try:
                uuid = dom.UUIDString()
                name = dom.name()
                sig = (dom.ID(), st)
            except libvirt.libvirtError:
                continue
            seen.add(uuid)
            c = self._cache.get(uuid)
            if (
                full
                or c is None
                or c.sig != sig
                or uuid in dirty
                or c.name != name
                or host_name != self._last_host
            ):
                try:
                    xml = dom.XMLDesc(flags)
                except libvirt.libvirtError as e:
                    if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                        continue  # went away between the listing and now
                    if _is_connection_error(e):
                        self._disconnect()
                        raise LibvirtUnavailable(f"{uri}: {_msg(e)}") from None
                    c = _Cached(
                        name,
                        sig,
                        error_details(f"domain {name!r}: XMLDesc failed: {_msg(e)}"),
                        f"domain {name!r}: XMLDesc failed: {_msg(e)}",
                    )
                else:
                    parsed += 1
                    try:
                        p = parse_domain(xml, name_hint=name, secure=self._secure)
                        c = _Cached(name, sig, p.vm)
                    except DomainXmlError as e:
                        c = _Cached(name, sig, error_details(str(e)), str(e))
                self._cache[uuid] = c
            if c.workload is None:
                c.workload = Workload(
                    kind=WorkloadKind.VM,
                    name=name,
                    host=host_name,
                    uuid=uuid,
                    state=STATE_NAMES.get(st, f"state {st}"),
                    vm=c.vm,
                )
            vms.append(c.workload)
        for gone in set(self._cache) - seen:
            del self._cache[gone]
        keys = tuple(w.uuid for w in vms)
        if parsed == 0 and keys == self._last_keys:
            out = self._last_vms  # nothing changed: the same tuple, cheap to compare downstream
        else:
            vms.sort(key=lambda w: w.name)
            out = tuple(vms)
        self._last_vms, self._last_keys, self._last_host = out, keys, host_name
        errors = tuple(self._cache[w.uuid].error for w in out if self._cache[w.uuid].error)
        return LibvirtResult(uri=uri, vms=out, xml_errors=errors, events=self._events_on, parsed=parsed)

    def _list(self, conn: Any) -> list[tuple[Any, int]]:
        """Every domain with its state, in one call where the daemon can."""
        import libvirt

        try:
            stats = conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE, 0)
            return [(dom, int(s.get("state.state", 0))) for dom, s in stats]
        except libvirt.libvirtError as e:
            if e.get_error_code() not in (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_INVALID_ARG):
                raise
        out = []
        for dom in conn.listAllDomains(0):
            try:
                out.append((dom, dom.state()[0]))
            except libvirt.libvirtError as e:
                if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
        return out

    def _connect(self, uri: str) -> None:
        import libvirt

        quiet_libvirt()
        events = self.use_events and ensure_libvirt_events()
        self._secure = uri.startswith("test:")
        if path := missing_test_file(uri):
            raise LibvirtUnavailable(f"cannot connect to {uri}: no such file {path}")
        try:
            conn = libvirt.open(uri) if self._secure else libvirt.openReadOnly(_batch_uri(uri))
        except libvirt.libvirtError as e:
            raise LibvirtUnavailable(f"cannot connect to {uri}: {_msg(e)}") from None
        self._conn, self._uri, self._broken = conn, uri, False
        if self._link is not None:
            self._link.set(conn, uri)
        with self._dirty_lock:
            self._all_dirty = True
        self._events_on = False
        if events:
            self._events_on = self._register_events(conn)
            with contextlib.suppress(libvirt.libvirtError):
                conn.setKeepAlive(5, 3)  # a hung daemon is noticed in about 20 s
        with contextlib.suppress(libvirt.libvirtError, AttributeError):
            conn.registerCloseCallback(self._on_close, None)

    def _register_events(self, conn: Any) -> bool:
        import libvirt

        ids = [
            libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
            libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_ADDED,
            libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
            libvirt.VIR_DOMAIN_EVENT_ID_TUNABLE,
            libvirt.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
        ]
        for ev in ids:
            try:
                self._callback_ids.append(conn.domainEventRegisterAny(None, ev, self._on_event, None))
            except libvirt.libvirtError as e:
                log.debug("libvirt event %s not available: %s", ev, _msg(e))
                if ev == libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE:
                    return False
        return True

    def _on_event(self, _conn: Any, dom: Any, *_rest: Any) -> None:
        try:
            uuid = dom.UUIDString()
        except Exception:  # never raise into libvirt's dispatcher
            with self._dirty_lock:
                self._all_dirty = True
            self.wake()
            return
        with self._dirty_lock:
            self._dirty.add(uuid)
        self.wake()  # re-read now (thread-safe), not at the next poll

    def _on_close(self, _conn: Any, _reason: int, _opaque: Any) -> None:
        self._broken = True
        self.wake()  # say so now, and reconnect on the poll's back-off from here

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        self._events_on = False
        if conn is None:
            return
        if self._link is not None:
            self._link.drop(conn)
        for cid in self._callback_ids:
            with contextlib.suppress(Exception):
                conn.domainEventDeregisterAny(cid)
        self._callback_ids.clear()
        with contextlib.suppress(Exception):
            conn.unregisterCloseCallback()
        with contextlib.suppress(Exception):
            conn.close()


# ------------------------------------------------------------------ helpers


PASSWORD_READS_PER_REFRESH = 32  # remote hosts: files read per collect (see _with_passwords)
STATUS_DIR = "/run/libvirt/qemu"  # live status XML of running domains (root only)
CONFIG_DIR = "/etc/libvirt/qemu"  # persistent definitions


def _reads_own_files(uri: str, host: HostTransport) -> bool:
    """True when `uri` is the system QEMU driver of the very host the transport reaches."""
    from urllib.parse import urlsplit

    u = urlsplit(uri)
    if not u.scheme.startswith("qemu") or u.path.rstrip("/") != "/system":
        return False
    return (u.scheme == "qemu" and not u.netloc) if host.is_local else bool(u.hostname)


async def _passwd_flags(host: HostTransport, w: Workload) -> tuple[bool, ...] | None:
    """For each <graphics> of the domain, whether it has a password; None when unknown."""
    from xml.etree.ElementTree import ParseError

    from probes.inventory.domxml import DefusedXmlException, safe_fromstring

    name = w.name
    if not name or "/" in name or name.startswith(".") or "\x00" in name:
        return None
    base = CONFIG_DIR if w.state == "shut off" else STATUS_DIR
    try:
        text = await host.read_text(f"{base}/{name}.xml", timeout=3.0)
    except Exception:  # absent, not root, host gone: the password stays unknown
        return None
    try:
        root = safe_fromstring(text)
    except (ParseError, DefusedXmlException):
        return None
    finally:
        del text
    dom = root if root.tag == "domain" else root.find("domain")
    if dom is None or (dom.findtext("uuid") or "").strip() != w.uuid:
        return None  # not the same domain (renamed or replaced): do not guess
    return tuple(bool(g.get("passwd")) for g in dom.findall("devices/graphics"))


def _batch_uri(uri: str) -> str:
    """`qemu+ssh://` without a terminal: never let ssh sit waiting for a password prompt
    in a worker thread (`no_tty=1`; host keys are still verified)."""
    from urllib.parse import parse_qsl, urlsplit

    u = urlsplit(uri)
    if u.scheme.endswith("+ssh") and "no_tty" not in dict(parse_qsl(u.query)):
        return uri + ("&" if u.query else "?") + "no_tty=1"
    return uri


def _set_connection(conns: tuple[Connection, ...], c: Connection) -> tuple[Connection, ...]:
    from probes.hosts.connection import set_connection

    return set_connection(conns, c)


def _msg(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]


def _is_connection_error(e: Any) -> bool:
    import libvirt

    return e.get_error_domain() in (libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE) or e.get_error_code() in (
        libvirt.VIR_ERR_SYSTEM_ERROR,
        libvirt.VIR_ERR_RPC,
        libvirt.VIR_ERR_NO_CONNECT,
        libvirt.VIR_ERR_INVALID_CONN,
    )


def _looks_absent(error: str) -> bool:
    """No libvirt on this host at all (as opposed to one that stopped answering)."""
    e = error.lower()
    return (
        ("no such file or directory" in e and "sock" in e)
        or "no connection driver" in e
        or "libvirt uri" in e
        or "not installed" in e
    )
