"""Attribution: which workload (and so which tenant) a log entry is about.

The index is built from the State (workloads with their tenant, and the topology's host-side
veth peers); an entry is matched by the strongest evidence it carries, in this order:

  file     the qemu log file of a domain (/var/log/libvirt/qemu/NAME.log)
  uuid     a domain uuid, or an AppArmor profile `libvirt-UUID`
  mcs      the MCS category pair of an svirt label (s0:c12,c34)
  cgroup   a cgroup path: machine-qemu\\x2dN\\x2dNAME.scope, qemu-N-NAME.libvirt-qemu, docker-ID
  name     a domain, container or namespace name; a container id
  tap      a tap or veth name
  mac/ip   a NIC's MAC, a namespace's address
  pid      a container's or namespace's process, or one learned from an earlier line
           (the kernel's `oom-kill:` line names the cgroup, the next line only the pid)

A token that belongs to two workloads (eth0 in every namespace) is ambiguous and ignored.
For MAC denials the object is attributed too (tcontext, the path touched), so LOG-01 can tell
one tenant touching another's files from a denial inside one tenant.
Unattributed entries stay as they are: nothing is hidden for lack of a tenant.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from probes.logs import classify
from probes.logs.fastlog import native
from probes.logs.model import LogEvent, new_event, set_attribution
from probes.model import State, Workload, WorkloadKind

RANK = {
    "file": 0,
    "uuid": 1,
    "profile": 1,
    "mcs": 2,
    "cgroup": 2,
    "name": 3,
    "tap": 4,
    "mac": 5,
    "ip": 6,
    "pid": 7,
}

_TOKEN = re.compile(
    r"[A-Za-z0-9_\\-]++(?:[.:][A-Za-z0-9_\\-]++)*+"
)  # possessive: the same tokens, ~15% fewer steps


def key_tokens(text: str, keys: Mapping[str, object]) -> list[str]:
    """The message's tokens that are index keys, in order (the reference of
    probes/logs/_fastlog.c's key_tokens)."""
    tokens = _TOKEN.findall(text)
    found = keys.keys() & tokens  # (one C-level set intersection: most lines name no key)
    return [t for t in tokens if t in found] if found else []


def token_filter(keys: Mapping[str, object]) -> bytes:
    """What the native key_tokens looks up before it makes a token's string: bit
    (first & 127) << 12 | (last & 127) << 5 | min(length, 31) of every key (a token is ASCII:
    one whose bit is clear is no key). Every bit when a key is no string."""
    bits = bytearray(1 << 16)
    for k in keys:
        if not isinstance(k, str):
            return b"\xff" * (1 << 16)
        if k:
            i = (ord(k[0]) & 127) << 12 | (ord(k[-1]) & 127) << 5 | min(len(k), 31)
            bits[i >> 3] |= 1 << (i & 7)
    return bytes(bits)


def cgroup_field(fields: tuple[tuple[str, str], ...]) -> str:
    """e.field("systemd_cgroup") or e.field("systemd_unit") in one pass (the first value of
    each key counts)."""
    cg = unit = None
    for k, v in fields:
        if k == "systemd_cgroup":
            if cg is None:
                if v:
                    return v
                cg = v
        elif k == "systemd_unit" and unit is None:
            unit = v
    return unit or ""


_MCS = re.compile(r":(c\d+(?:[.,]c\d+)*)$")
_CG_PATTERNS = (
    re.compile(r"machine-qemu\\x2d\d+\\x2d(.+?)\.scope"),
    re.compile(r"qemu-\d+-(.+?)\.libvirt-qemu"),
    re.compile(r"(?:docker|libpod|cri-containerd|crio)-([0-9a-f]{12,64})\.scope"),
    re.compile(r"/docker/([0-9a-f]{12,64})"),
    re.compile(r"lxc\.payload\.([^/]+)"),
)
_AMBIGUOUS = object()
_KVM_PID = re.compile(r"kvm \[(\d+)\]")


@dataclass(frozen=True, slots=True)
class Hit:
    workload: str  # Workload.key
    tenant: str
    how: str

    @property
    def rank(self) -> int:
        return RANK.get(self.how, 9)


def mcs_pair(label: str) -> str:
    """'system_u:system_r:svirt_t:s0:c12,c34' -> 'c12,c34' ('' when there is none)."""
    m = _MCS.search(label.strip())
    if not m:
        return ""
    cats = sorted(m.group(1).replace(".", ",").split(","), key=lambda c: int(c[1:]))
    return ",".join(cats)


def cgroup_name(path: str) -> str:
    """The domain name or container id a cgroup path names ('' when none)."""
    for rx in _CG_PATTERNS:
        m = rx.search(path)
        if m:
            return m.group(1).replace("\\x2d", "-")
    return ""


class Index:
    """token -> Hit per host, from the workloads of a State."""

    def __init__(self, state: State | None = None) -> None:
        self.by_host: dict[str, dict[str, object]] = {}
        self.global_: dict[str, object] = {}
        self.short_names: dict[str, dict[str, object]] = {}  # libvirt's 20-char short names
        self._combined: dict[str, dict[str, object]] = {}
        self._token_keys: dict[str, tuple[dict[str, object], bytes]] = {}
        self.pids: dict[str, dict[int, object]] = {}  # host -> pid -> Hit
        if state is not None:
            for w in state.workloads():
                self._add_workload(w)
            for hs in state.hosts:
                if hs.topology is not None:
                    self._add_topology(hs.host.name, hs.topology, hs.workloads)

    @property
    def empty(self) -> bool:
        return not self.by_host and not self.global_

    def within(self, other: Index) -> bool:
        """True when every key of this index is in `other` with the same answer: then an
        entry `other` could not attribute, this one cannot either (re-attribution is moot)."""

        def sub(a: Mapping[object, object], b: Mapping[object, object]) -> bool:
            return all(k in b and b[k] == v for k, v in a.items())

        return (
            sub(self.global_, other.global_)
            and all(sub(d, other.by_host.get(h, {})) for h, d in self.by_host.items())
            and all(sub(d, other.short_names.get(h, {})) for h, d in self.short_names.items())
            and all(sub(d, other.pids.get(h, {})) for h, d in self.pids.items())
        )

    def _put(self, d: dict[str, object], key: str, hit: Hit) -> None:
        if not key:
            return
        old = d.get(key)
        if old is None:
            d[key] = hit
        elif old is not _AMBIGUOUS and isinstance(old, Hit) and old.workload != hit.workload:
            d[key] = _AMBIGUOUS

    def _add_workload(self, w: Workload) -> None:
        d = self.by_host.setdefault(w.host, {})
        t = w.tenant

        def put(key: str, how: str) -> None:
            self._put(d, key, Hit(w.key, t, how))

        if len(w.name) >= 2:
            put(w.name, "name")
        if w.kind == WorkloadKind.VM:
            if w.uuid:
                self._put(self.global_, w.uuid.lower(), Hit(w.key, t, "uuid"))
                self._put(self.global_, "libvirt-" + w.uuid.lower(), Hit(w.key, t, "profile"))
            self._put(self.short_names.setdefault(w.host, {}), w.name[:20], Hit(w.key, t, "cgroup"))
            put("cg:" + w.name, "cgroup")
            vm = w.vm
            if vm is not None:
                for sl in vm.seclabels:
                    for lab in (sl.label, sl.imagelabel):
                        pair = mcs_pair(lab) if lab else ""
                        if pair:
                            put("mcs:" + pair, "mcs")
                for n in vm.nics:
                    if n.target_dev:
                        put(n.target_dev, "tap")
                    if n.mac:  # logs print MACs either way
                        put(n.mac.lower(), "mac")
                        put(n.mac.upper(), "mac")
                for disk in vm.disks:
                    if disk.source.startswith("/"):
                        put("path:" + disk.source, "name")
        elif w.kind == WorkloadKind.CONTAINER:
            c = w.container
            if w.uuid:
                put(w.uuid, "name")
            if c is not None:
                if c.container_id:
                    put(c.container_id, "name")
                    put(c.container_id[:12], "name")
                    put("cg:" + c.container_id, "cgroup")
                if c.cgroup:
                    put("cgpath:" + c.cgroup, "cgroup")
                for p in set(c.pids) | ({c.init_pid} if c.init_pid else set()):
                    self._put(self.pids.setdefault(w.host, {}), p, Hit(w.key, t, "pid"))  # type: ignore[arg-type]
                if c.lsm_label:
                    pair = mcs_pair(c.lsm_label)
                    if pair:
                        put("mcs:" + pair, "mcs")
        elif w.kind == WorkloadKind.NETNS:
            put("cg:" + w.name, "cgroup")
            n = w.netns
            if n is not None:
                for i in n.interfaces:
                    if i != "lo":
                        put(i, "tap")
                for a in n.addresses:
                    put(a.split("/", 1)[0], "ip")
                for p in n.pids:
                    self._put(self.pids.setdefault(w.host, {}), p, Hit(w.key, t, "pid"))  # type: ignore[arg-type]

    def _add_topology(self, host: str, topo, workloads) -> None:
        """Host-side veths whose peer is in a workload's namespace belong to that workload."""
        by_ns = {w.name: w for w in workloads if w.kind == WorkloadKind.NETNS}
        d = self.by_host.setdefault(host, {})
        for lk in topo.links:
            if lk.netns or not lk.peer:
                continue
            ns = lk.peer.split("/", 1)[0]
            w = by_ns.get(ns)
            if w is not None:
                self._put(d, lk.name, Hit(w.key, w.tenant, "tap"))
                if lk.mac:
                    pass  # the host side's MAC is not the tenant's
        for lk in topo.links:  # MACs of links inside tenant namespaces
            w = by_ns.get(lk.netns)
            if w is not None and lk.mac and lk.name != "lo":
                self._put(d, lk.mac.lower(), Hit(w.key, w.tenant, "mac"))
                self._put(d, lk.mac.upper(), Hit(w.key, w.tenant, "mac"))
                for a in lk.addresses:
                    self._put(d, a.split("/", 1)[0], Hit(w.key, w.tenant, "ip"))

    def combined(self, host: str) -> dict[str, object]:
        """Host and global keys in one dict (a host's key over the global one, as `get` reads
        them), built once per host."""
        c = self._combined.get(host)
        if c is None:
            c = self._combined[host] = {**self.global_, **self.by_host.get(host, {})}
        return c

    def token_keys(self, host: str) -> tuple[dict[str, object], bytes]:
        """combined(host) and its token_filter, built once per host."""
        c = self._token_keys.get(host)
        if c is None:
            keys = self.combined(host)
            c = self._token_keys[host] = (keys, token_filter(keys))
        return c

    def get(self, host: str, key: str) -> Hit | None:
        h = self.combined(host).get(key)
        return h if isinstance(h, Hit) else None

    def cgroup(self, host: str, path: str) -> Hit | None:
        h = self.get(host, "cgpath:" + path)
        if h is not None:
            return h
        name = cgroup_name(path)
        if not name:
            return None
        h = self.get(host, "cg:" + name)
        if h is None:
            s = self.short_names.get(host, {}).get(name[:20])
            h = s if isinstance(s, Hit) else None
        return h


class Attributor:
    """Attributes entries with an Index; remembers PIDs learned from earlier lines."""

    def __init__(self, index: Index | None = None, *, max_pids: int = 4096) -> None:
        self.index = index or Index()
        self._pids: OrderedDict[tuple[str, int], Hit] = OrderedDict()
        self._max_pids = max_pids
        self._file_hits: dict[tuple[str, str], Hit | None] = {}
        self._keys_for: tuple[str | None, dict[str, object], bytes] = (None, {}, b"")
        # lazy lines (probes/logs/lazy.py) are attributed after later lines taught PIDs: each
        # line has an arrival order (`clock`), and every change of a learned PID is kept with
        # the order of the line that made it, so `pid_at` answers as of a line's arrival
        self.clock = 0
        # (host, pid) -> [order, Hit | None, order, Hit | None, ...]: flat (no tuple per
        # change: the bench's every AVC line teaches a new PID, and these live long)
        self._pid_log: dict[tuple[str, int], list[Any]] = {}
        self._mcs: dict[str, str] = {}
        self._pid_hits: dict[tuple[str, str], Hit] = {}
        self.pid_version = 0  # bumped when a PID is learned for a new workload
        self.lazy_cache: dict[object, Any] = {}  # probes/logs/lazy.py: per-tenant patterns

    def advance(self, n: int) -> int:
        """Reserve arrival orders for n lines; returns the first (lazy chunks)."""
        first = self.clock + 1
        self.clock += n
        return first

    def set_index(self, index: Index) -> None:
        self.index = index
        self._keys_for = (None, {}, b"")
        self._file_hits.clear()
        self._pid_hits.clear()
        for key in self._pids:
            self._pid_log.setdefault(key, []).extend((self.clock, None))
        self._pids.clear()

    def learn_pid(self, host: str, pid: int, hit: Hit, order: int = 0) -> None:
        if pid <= 0:
            return
        key = (host, pid)
        old = self._pids.get(key)
        if old is not None and old.workload == hit.workload and old.tenant == hit.tenant:
            self._pids.move_to_end(key)  # the same: its history already ends with it
            return
        hk = (hit.workload, hit.tenant)
        h = self._pid_hits.get(hk)  # one Hit per workload (every AVC line teaches its PID)
        if h is None:
            h = self._pid_hits[hk] = Hit(hit.workload, hit.tenant, "pid")
        pids = self._pids
        pids[key] = h
        if old is not None:
            pids.move_to_end(key)  # (a new key is inserted at the end)
        log = self._pid_log.get(key)
        if log is None:
            self._pid_log[key] = [order or self.clock, h]
            self.pid_version += 1
        else:
            last = log[-1] if log else None
            # (None first: `None != h` falls back to Hit.__eq__, a Python call)
            if last is None or (last is not h and last != h):
                log += (order or self.clock, h)
                self.pid_version += 1
        if len(pids) > self._max_pids:
            gone, _ = pids.popitem(last=False)
            self._pid_log.setdefault(gone, []).extend((order or self.clock, None))

    def pid_at(self, host: str, pid: int, order: int) -> Hit | None:
        """The learned PID's hit as the line of arrival `order` would have seen it."""
        log = self._pid_log.get((host, pid))
        if log:
            for k in range(len(log) - 2, -1, -2):
                if log[k] < order:
                    hit: Hit | None = log[k + 1]
                    return hit
        return None

    def pids_of(self, host: str, tenant: str | None) -> set[int]:
        """Every PID that ever stood for a workload of `tenant` (None: of any tenant) on `host`
        (the index's and the learned ones, whenever learned): what a lazy line attributed by
        PID can name."""

        def wanted(h: object) -> bool:
            return isinstance(h, Hit) and (h.tenant == tenant if tenant is not None else h.tenant != "")

        out = {p for p, h in self.index.pids.get(host, {}).items() if wanted(h)}
        for (h_, p), log in list(self._pid_log.items()):
            if h_ == host and any(wanted(x) for x in log[1::2]):
                out.add(p)
        return out

    def forget_before(self, order: int) -> None:
        """Drop PID history no line of arrival >= `order` can need (bounded memory)."""
        for key in list(self._pid_log):
            log = self._pid_log[key]
            k = 0  # (log[k] is an order, log[k + 1] its hit)
            while k + 2 < len(log) and log[k + 2] < order:
                k += 2
            if k:
                del log[:k]
            if len(log) == 2 and log[1] is None and log[0] < order:
                del self._pid_log[key]

    def _pid(self, host: str, pid: int, order: int | None = None) -> Hit | None:
        if pid <= 0:
            return None
        h = self._pids.get((host, pid)) if order is None else self.pid_at(host, pid, order)
        if h is None:
            d = self.index.pids.get(host)
            h = d.get(pid) if d else None  # type: ignore[assignment]
        return h if isinstance(h, Hit) else None

    def _file(self, host: str, source: str) -> Hit | None:
        key = (host, source)
        if key in self._file_hits:
            return self._file_hits[key]
        hit = None
        if source.startswith("file:") and "/libvirt/qemu/" in source and source.endswith(".log"):
            name = source.rsplit("/", 1)[1][:-4]
            h = self.index.get(host, name)
            if h is not None:
                hit = Hit(h.workload, h.tenant, "file")
        self._file_hits[key] = hit
        return hit

    def _key_dicts(self, host: str) -> tuple[dict[str, object], bytes]:
        """index.token_keys(host), kept for the next entry (of the same host, mostly)."""
        keys, filt = self.index.token_keys(host)
        self._keys_for = (host, keys, filt)
        return keys, filt

    def _tokens(self, host: str, text: str, fast: Any) -> Hit | None:
        """The best hit among the message's tokens: one C-level set intersection per line
        (most lines name no workload at all). `fast`: native(), or None."""
        cached_host, keys, filt = self._keys_for  # one tuple: the loop and a worker may both ask
        if cached_host != host:
            keys, filt = self._key_dicts(host)
        found = fast.key_tokens(text, keys, filt) if fast is not None else key_tokens(text, keys)
        if not found:
            return None
        if len(found) == 1:
            h = keys[found[0]]
            return h if isinstance(h, Hit) else None
        # Several: the strongest evidence wins, and between equals the one named first in the
        # line.
        best: Hit | None = None
        for tok in found:
            h = keys[tok]
            if isinstance(h, Hit) and (best is None or h.rank < best.rank):
                best = h
        return best

    def _mcs_pair(self, label: str) -> str:
        """mcs_pair, remembered: a host has few labels and every AVC line names two."""
        p = self._mcs.get(label)
        if p is None:
            if len(self._mcs) > 4096:
                self._mcs.clear()
            p = self._mcs[label] = mcs_pair(label)
        return p

    def _mac_denial(self, e: LogEvent, order: int | None) -> tuple[Hit | None, Hit | None]:
        f = dict(e.fields)
        host = e.host
        get = self.index.get
        subj: Hit | None = None
        prof = f.get("profile", "")
        if prof.startswith("libvirt-"):
            subj = get(host, prof.lower())
        if subj is None and f.get("scontext"):
            subj = get(host, "mcs:" + self._mcs_pair(f["scontext"]))
        if subj is None:
            subj = self._pid(host, int(f["pid"]), order) if f.get("pid", "").isdigit() else None
        obj: Hit | None = None
        if f.get("tcontext"):
            obj = get(host, "mcs:" + self._mcs_pair(f["tcontext"]))
        for k in ("path", "name"):
            if obj is None and f.get(k, "").startswith("/"):
                obj = get(host, "path:" + f[k])
        return subj, obj

    def attribute(
        self, e: LogEvent, order: int | None = None, *, late: bool = False, fresh: bool = False
    ) -> LogEvent:
        """The entry with tenant/workload set where evidence names one; else `e` itself.
        `order`: the line's arrival order (else the next one); `late`: the line arrived
        earlier (a lazy line): learned PIDs are those known at its arrival, and it teaches none.
        `fresh`: nobody else holds `e` yet (ingest): it is attributed in place, not copied."""
        if order is None:
            order = self.clock = self.clock + 1
        if e.workload:
            return e
        fast = native()
        at = order if late else None
        host = e.host
        tags = e.tags
        target: Hit | None = None
        hit: Hit | None = None
        if tags:
            tag = tags[0]
            if tag == classify.MAC_DENIAL:
                hit, target = self._mac_denial(e, at)
            elif tag == classify.OOM_CONTEXT:
                memcg = e.field("task_memcg") or e.field("oom_memcg")
                hit = self.index.cgroup(host, memcg) if memcg else None
                pid = e.field("pid")
                if hit is not None and pid.isdigit() and not late:
                    self.learn_pid(host, int(pid), hit, order)
            elif tag == classify.OOM_KILL:
                hit = self._pid(host, e.pid, at)
            elif tag == classify.LIFECYCLE or (tag == classify.GUEST_CRASH and e.kind == "lifecycle"):
                hit = self.index.get(host, e.field("domain"))
        if hit is None and "/qemu/" in e.source:  # a domain's own log file
            hit = self._file(host, e.source)
        if hit is None and e.fields:
            cg = cgroup_field(e.fields)
            if cg:
                hit = self.index.cgroup(host, cg)
        if hit is None:
            hit = self._tokens(host, e.message, fast)
            if hit is None and e.pid and e.kind != "kernel":
                hit = self._pid(host, e.pid, at)
            elif hit is None and e.kind == "kernel" and e.message.startswith("kvm ["):
                m = _KVM_PID.match(e.message)  # "kvm [4321]: vcpu0 ...": the VM's qemu
                hit = self._pid(host, int(m.group(1)), at) if m else None
        if hit is None and target is None:
            return e
        if hit is not None and e.pid and hit.rank <= 3 and e.kind in ("audit", "qemu") and not late:
            self.learn_pid(host, e.pid, hit, order)
        if fresh:
            return (fast.set_attribution if fast is not None else set_attribution)(
                e,
                hit.tenant if hit else "",
                hit.workload if hit else "",
                hit.how if hit else "",
                target.tenant if target else "",
                target.workload if target else "",
            )
        # a new entry built directly (dataclasses.replace costs 4x as much)
        return (fast.new_event if fast is not None else new_event)(
            e.at,
            e.host,
            e.source,
            e.severity,
            e.message,
            hit.tenant if hit else "",
            hit.workload if hit else "",
            e.tags,
            e.seq,
            e.kind,
            e.program,
            e.pid,
            e.fields,
            hit.how if hit else "",
            target.tenant if target else "",
            target.workload if target else "",
        )
