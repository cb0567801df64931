"""Reading cgroup counters and limits directly from the cgroup filesystem, v1 and v2.

A container runtime's stats API is never called: the kernel's own files are cheaper, work for
every runtime, and cannot be lied to by the runtime. Hosts come in three shapes: pure v2
(/sys/fs/cgroup is cgroup2), pure v1 (one mount per controller) and hybrid (v1 controllers
plus a v2 mount at /sys/fs/cgroup/unified, usually with no controllers enabled). The layout
is read once from /proc/mounts, and each value is taken from whichever hierarchy actually has
it for that workload: a v1 controller where the workload sits in its own v1 group, else v2.

Cost matters (500 workloads per refresh within 100 ms): locally counter files stay open and
are re-read in place (on the event loop for a few dozen groups, else in one worker thread);
over SSH all files of a refresh are read with one
`grep -H '' FILE...` command per chunk. Limits change rarely, so callers read them less often
than counters (see `read_groups(..., limits=False)`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from probes.hosts.base import HostTransport
from probes.resources.model import Limits

UNLIMITED_V1 = 1 << 62  # memory.limit_in_bytes at or above this means "no limit" (PAGE_COUNTER_MAX)

# v1 controller -> files; v2 files. Counters are read every refresh, limits less often.
V1_COUNTERS = {
    "cpuacct": ("cpuacct.usage",),
    "memory": ("memory.usage_in_bytes",),
    "blkio": ("blkio.throttle.io_service_bytes_recursive",),
    "pids": ("pids.current",),
}
V1_LIMITS = {
    "cpu": ("cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.shares"),
    "memory": ("memory.limit_in_bytes",),
    "pids": ("pids.max",),
}
V2_COUNTERS = {
    "cpu": ("cpu.stat",),
    "memory": ("memory.current",),
    "io": ("io.stat",),
    "pids": ("pids.current",),
}
V2_LIMITS = {"cpu": ("cpu.max", "cpu.weight"), "memory": ("memory.max",), "pids": ("pids.max",)}


# ------------------------------------------------------------------ layout


@dataclass(frozen=True)
class Layout:
    """Where each cgroup hierarchy is mounted on a host."""

    v1: tuple[tuple[str, str], ...] = ()  # (controller, mountpoint)
    v2: str = ""  # cgroup2 mountpoint, "" when none
    v2_controllers: tuple[str, ...] = ()  # enabled at the v2 root

    def v1_mount(self, controller: str) -> str:
        return next((m for c, m in self.v1 if c == controller), "")

    @property
    def kind(self) -> str:
        if self.v1 and self.v2:
            return "hybrid"
        return "v2" if self.v2 else ("v1" if self.v1 else "none")


def parse_mounts(text: str, v2_controllers: str = "") -> Layout:
    v1: list[tuple[str, str]] = []
    v2 = ""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        mnt, fstype, opts = parts[1].replace("\\040", " "), parts[2], parts[3].split(",")
        if fstype == "cgroup2":
            v2 = v2 or mnt
        elif fstype == "cgroup":
            for o in opts:
                if o in ("cpu", "cpuacct", "memory", "blkio", "pids", "cpuset"):
                    v1.append((o, mnt))
    return Layout(tuple(v1), v2, tuple(v2_controllers.split()))


async def detect_layout(host: HostTransport) -> Layout:
    text = await host.read_text("/proc/mounts")
    lay = parse_mounts(text)
    if lay.v2:
        try:
            ctl = await host.read_text(f"{lay.v2}/cgroup.controllers")
        except (OSError, Exception):
            ctl = ""
        lay = Layout(lay.v1, lay.v2, tuple(ctl.split()))
    return lay


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/PID/cgroup -> {controller: path}; the v2 path is under the key ""."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, ctrls, path = parts
        if not ctrls:
            out[""] = path
        for c in ctrls.split(","):
            if c:
                out[c] = path
    return out


# ------------------------------------------------------------------ one workload's group


@dataclass(frozen=True)
class GroupRef:
    """Where one workload's cgroup is: a path per v1 controller and the v2 path."""

    owner: str  # workload key
    paths: tuple[tuple[str, str], ...] = ()  # (controller or "" for v2, path)

    def path(self, controller: str) -> str:
        d = dict(self.paths)
        return d.get(controller, d.get("*", ""))

    @classmethod
    def same_everywhere(cls, owner: str, path: str) -> GroupRef:
        return cls(owner, (("*", "/" + path.strip("/")),))


@dataclass
class GroupReading:
    """Raw values of one group from one refresh (counters absolute, not rates)."""

    owner: str
    version: str = ""  # "cgroup v1", "cgroup v2", mixed as "cgroup v1+v2"
    exists: bool = False
    cpu_ns: int | None = None
    mem_bytes: int | None = None
    blk_read: int | None = None
    blk_write: int | None = None
    pids: int | None = None
    limits: Limits | None = None  # None when limits were not read this time
    where: str = ""
    sources: set[str] = field(default_factory=set)


def _plan(lay: Layout, ref: GroupRef, limits: bool) -> list[tuple[str, str, str]]:
    """(what, version, file path) for one group. `what` names the value."""
    plan: list[tuple[str, str, str]] = []

    def v1(ctrl: str, name: str) -> str | None:
        mnt = lay.v1_mount(ctrl)
        p = ref.path(ctrl)
        return f"{mnt}{p.rstrip('/')}/{name}" if mnt and p else None

    def v2(name: str) -> str | None:
        p = ref.path("")
        return f"{lay.v2}{p.rstrip('/')}/{name}" if lay.v2 and p else None

    def specific(ctrl: str) -> bool:
        return bool(lay.v1_mount(ctrl)) and ref.path(ctrl) not in ("", "/")

    v2ok = bool(lay.v2) and ref.path("") not in ("",)
    # CPU time: v1 cpuacct where the group has its own; else v2 cpu.stat (always present in v2)
    if specific("cpuacct"):
        plan.append(("cpu", "v1", v1("cpuacct", "cpuacct.usage") or ""))
    elif v2ok and ref.path("") != "/":
        plan.append(("cpu", "v2", v2("cpu.stat") or ""))
    for what, ctrl, f1, f2 in (
        ("mem", "memory", "memory.usage_in_bytes", "memory.current"),
        ("blk", "blkio", "blkio.throttle.io_service_bytes_recursive", None),
        ("pids", "pids", "pids.current", "pids.current"),
    ):
        v2ctrl = "io" if ctrl == "blkio" else ctrl
        if specific(ctrl):  # a v1 group at "/" would report the whole host: not this workload's
            plan.append((what, "v1", v1(ctrl, f1) or ""))
        elif v2ok and v2ctrl in lay.v2_controllers and ref.path("") != "/":
            plan.append((what, "v2", v2(f2 or "io.stat") or ""))
    if limits:
        # A group is limited by its own files and by every ancestor's (a Kubernetes pod, a
        # systemd slice, docker's parent group): read them all, the tightest one counts.
        def levels(ctrl: str) -> list[tuple[int, str]]:
            p = ref.path(ctrl).rstrip("/")
            out = [(0, p)]
            while p.count("/") > 1:
                p = p.rsplit("/", 1)[0]
                out.append((len(out), p))
            return out

        def add(what: str, ver: str, mnt: str, ctrl: str, name: str) -> None:
            if not ref.path(ctrl):
                return
            for depth, p in levels(ctrl):
                plan.append((what if depth == 0 else f"{what}@{depth}", ver, f"{mnt}{p}/{name}"))

        if lay.v1_mount("cpu"):
            for f in V1_LIMITS["cpu"]:
                add(f, "v1", lay.v1_mount("cpu"), "cpu", f)
        elif v2ok and "cpu" in lay.v2_controllers:
            for f in V2_LIMITS["cpu"]:
                add(f, "v2", lay.v2, "", f)
        if lay.v1_mount("memory"):
            add("memory.limit", "v1", lay.v1_mount("memory"), "memory", "memory.limit_in_bytes")
        elif v2ok and "memory" in lay.v2_controllers:
            add("memory.limit", "v2", lay.v2, "", "memory.max")
        if lay.v1_mount("pids"):
            add("pids.max", "v1", lay.v1_mount("pids"), "pids", "pids.max")
        elif v2ok and "pids" in lay.v2_controllers:
            add("pids.max", "v2", lay.v2, "", "pids.max")
    return [p for p in plan if p[2]]


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    t = text.strip()
    try:
        return int(t)
    except ValueError:
        return None


def parse_cpu_stat_usec(text: str) -> int | None:
    for line in text.splitlines():
        if line.startswith("usage_usec "):
            return _int(line.split()[1])
    return None


def parse_blkio_v1(text: str) -> tuple[int, int]:
    """blkio.throttle.io_service_bytes(_recursive): '8:0 Read 123' lines, summed per op."""
    r = w = 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            if parts[1] == "Read":
                r += int(parts[2])
            elif parts[1] == "Write":
                w += int(parts[2])
    return r, w


def parse_io_stat_v2(text: str) -> tuple[int, int]:
    """io.stat: '8:0 rbytes=1 wbytes=2 rios=..' per device, summed."""
    r = w = 0
    for line in text.splitlines():
        for kv in line.split()[1:]:
            k, _, v = kv.partition("=")
            if k == "rbytes":
                r += int(v)
            elif k == "wbytes":
                w += int(v)
    return r, w


def _v2_max(text: str | None) -> int | None:
    t = (text or "").strip()
    return None if not t or t == "max" else _int(t)


def interpret(
    owner: str, plan: Sequence[tuple[str, str, str]], files: Mapping[str, str | None], limits: bool
) -> GroupReading:
    g = GroupReading(owner)
    got: dict[str, str] = {}
    planned = {what for what, _, _ in plan}
    for what, ver, path in plan:
        text = files.get(path)
        if text is None:
            continue
        got[what] = text
        g.sources.add(ver)
        g.exists = True
        if what == "cpu":
            g.cpu_ns = _int(text) if ver == "v1" else _scale(parse_cpu_stat_usec(text), 1000)
            g.where = g.where or path.rsplit("/", 1)[0]
        elif what == "mem":
            g.mem_bytes = _int(text)
        elif what == "blk":
            g.blk_read, g.blk_write = parse_blkio_v1(text) if ver == "v1" else parse_io_stat_v2(text)
        elif what == "pids":
            g.pids = _int(text)
    g.version = "cgroup " + "+".join(sorted(g.sources)) if g.sources else ""
    if limits and g.exists:
        g.limits = _limits(g, got, planned, plan)
    return g


def _limits(
    g: GroupReading, got: dict[str, str], planned: set[str], plan: Sequence[tuple[str, str, str]]
) -> Limits:
    """Effective limits: the tightest over the group and its ancestors (`NAME@DEPTH`)."""
    levels: dict[int, dict[str, str]] = {}
    where_of: dict[tuple[str, int], str] = {}
    for what, _, path in plan:
        name, _, d = what.partition("@")
        depth = int(d) if d else 0
        kind = name.split(".")[0]  # cpu, memory, pids
        where_of.setdefault((kind, depth), path.rsplit("/", 1)[0])
        if what in got:
            levels.setdefault(depth, {})[name] = got[what]
    quotas: list[tuple[float, int]] = []
    mems: list[tuple[int, int]] = []
    pids: list[tuple[int, int]] = []
    shares = None
    for depth, f in sorted(levels.items()):
        if "cpu.cfs_quota_us" in f:
            q, p = _int(f["cpu.cfs_quota_us"]), _int(f.get("cpu.cfs_period_us"))
            if q is not None and q > 0 and p:
                quotas.append((q / p, depth))
            if depth == 0:
                shares = _int(f.get("cpu.shares"))
        elif "cpu.max" in f:
            parts = f["cpu.max"].split()
            if len(parts) == 2 and parts[0] != "max":
                quotas.append((int(parts[0]) / int(parts[1]), depth))
            if depth == 0:
                shares = _int(f.get("cpu.weight"))
        if "memory.limit" in f:
            m = _v2_max(f["memory.limit"])
            if m is not None and m < UNLIMITED_V1:
                mems.append((m, depth))
        if "pids.max" in f:
            n = _v2_max(f["pids.max"])
            if n is not None:
                pids.append((n, depth))
    notes = []
    chosen = []
    for what, vals in (("cpu", quotas), ("memory", mems), ("pids", pids)):
        best = min(vals) if vals else None
        chosen.append(best[0] if best else None)
        if best and best[1] > 0:
            notes.append(f"{what} limit from {where_of.get((what, best[1]), 'a parent')}")
    quota, mem, npids = chosen
    where = g.where + (" (" + "; ".join(notes) + ")" if notes else "")
    return Limits(
        source=g.version,
        cpu_quota_cores=quota,
        cpu_shares=shares,
        mem_limit_bytes=int(mem) if mem is not None else None,
        pids_limit=int(npids) if npids is not None else None,
        where=where,
        # a limit file planned but absent is the root group: no limit there
        cpu_known=bool(planned & {"cpu.cfs_quota_us", "cpu.max"}),
        mem_known="memory.limit" in planned,
        pids_known="pids.max" in planned,
    )


def _scale(v: int | None, k: int) -> int | None:
    return None if v is None else v * k


# ------------------------------------------------------------------ reading files in bulk


def _read_local(paths: Iterable[str], root: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for p in paths:
        try:
            fd = os.open(root + p, os.O_RDONLY)
        except OSError:
            out[p] = None
            continue
        try:
            out[p] = os.read(fd, 65536).decode("ascii", "replace")
        except OSError:  # e.g. ENODEV on a group being removed
            out[p] = None
        finally:
            os.close(fd)
    return out


def parse_grep_h(text: str, wanted: Iterable[str]) -> dict[str, str | None]:
    """Output of `grep -s -H '' FILE...` back to {file: content}. File names may contain
    ':', so each line is matched against the requested names, not split blindly."""
    want = set(wanted)
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        i = line.find(":")
        while i != -1:
            name = line[:i]
            if name in want:
                out.setdefault(name, []).append(line[i + 1 :])
                break
            i = line.find(":", i + 1)
    return {p: ("\n".join(out[p]) + "\n" if p in out else None) for p in want}


class OpenFiles:
    """Counter files kept open between refreshes and re-read with pread(2) at offset 0.

    Reopening a cgroup file costs a path walk (about 12 us here); pread on an open one about
    1 us, and the kernel regenerates the content on every read from offset 0. A file of a
    removed group answers ENODEV: it is closed and opened again by path (the group may have
    been recreated), else reported missing. At most `budget` files stay open; the budget
    comes from RLIMIT_NOFILE, whose soft limit is raised towards the hard one when needed
    (tenantscope uses epoll, never select, so many descriptors are harmless).
    """

    def __init__(self, budget: int | None = None) -> None:
        self._fds: dict[str, int] = {}
        self._last: dict[str, tuple[bytes, str]] = {}  # a kept file's last content, and as text
        self.budget = budget if budget is not None else _fd_budget()

    def read(self, path: str) -> str | None:
        """The file's content; the very same str as the last read when it did not change
        (an idle group's counters: read_groups then reuses what it made of them)."""
        fd = self._fds.get(path)
        if fd is not None:
            try:
                return self._text(path, os.pread(fd, 65536, 0))
            except OSError:
                os.close(fd)
                del self._fds[path]
                self._last.pop(path, None)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            data = os.pread(fd, 65536, 0)
        except OSError:
            os.close(fd)
            return None
        if len(self._fds) < self.budget:
            self._fds[path] = fd
            return self._text(path, data)
        os.close(fd)
        return data.decode("ascii", "replace")

    def _text(self, path: str, data: bytes) -> str:
        last = self._last.get(path)
        if last is not None and last[0] == data:
            return last[1]
        text = data.decode("ascii", "replace")
        self._last[path] = (data, text)
        return text

    def not_open(self, paths: Iterable[str], root: str = "") -> int:
        """How many of `paths` are not kept open (a read opens them by path)."""
        fds = self._fds
        return sum(1 for p in paths if root + p not in fds)

    def keep_only(self, paths: set[str]) -> None:
        for p in [p for p in self._fds if p not in paths]:
            os.close(self._fds.pop(p))
            self._last.pop(p, None)

    def close(self) -> None:
        self.keep_only(set())

    def __len__(self) -> int:
        return len(self._fds)


def _fd_budget(want: int = 16384) -> int:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want + 1024:
        target = want + 1024 if hard == resource.RLIM_INFINITY else min(hard, want + 1024)
        if target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (ValueError, OSError):
                pass
    return max(0, min(want, soft - 1024)) if soft != resource.RLIM_INFINITY else want


def _read_counters(paths: Iterable[str], root: str, keep: OpenFiles) -> dict[str, str | None]:
    return {p: keep.read(root + p) for p in paths}


def _read_values(paths: Iterable[str], root: str, keep: OpenFiles) -> list[str | None]:
    read = keep.read
    return [read(root + p) for p in paths]


# Kept-open counter files re-read with pread cost ~1-2 us each: a refresh of up to this many
# (a file opened by path counting 8) is read on the event loop, which costs less CPU than a
# worker-thread hop and its wake-ups (~0.5 ms at most on the loop); more (hundreds of groups,
# or the limits' refresh) go to a worker thread.
ON_LOOP_FILES = 320


async def read_files(
    host: HostTransport,
    paths: Sequence[str],
    *,
    chunk: int = 400,
    keep: OpenFiles | None = None,
) -> dict[str, str | None]:
    """Contents of many small files; None for each one missing or unreadable. Locally, with
    `keep`, the files are kept open there for the next refresh."""
    if not paths:
        return {}
    if host.is_local:
        if keep is not None:
            n_new = keep.not_open(paths, host.root)
            if len(paths) - n_new + 8 * n_new <= ON_LOOP_FILES:  # (opening by path: ~8x a pread)
                return _read_counters(paths, host.root, keep)
            return await asyncio.to_thread(_read_counters, paths, host.root, keep)
        return await asyncio.to_thread(_read_local, paths, host.root)
    out: dict[str, str | None] = {}
    for i in range(0, len(paths), chunk):
        part = list(paths[i : i + chunk])
        r = await host.run(["grep", "-s", "-H", "", "--", *part], timeout=10.0)
        out.update(parse_grep_h(r.stdout, part))
    return out


PlanCache = dict[tuple[GroupRef, bool], list[tuple[str, str, str]]]
# a group's last counter texts (as OpenFiles returned them) and what interpret made of them
Readings = dict[tuple[GroupRef, bool], tuple[tuple[str | None, ...], GroupReading]]


class Prepared:
    """What a refresh of the same groups repeats, made once for one list of refs (the caller
    hands the very same list again while its groups stay the same): their plans, the files
    in reading order, each plan's places in that order, and the last texts and readings."""

    def __init__(self, refs: Sequence[GroupRef], plans: list[list[tuple[str, str, str]]]) -> None:
        self.refs = refs
        self.plans = plans
        self.paths = list(dict.fromkeys(p for plan in plans for _, _, p in plan))
        at = {p: i for i, p in enumerate(self.paths)}
        self.places = [tuple(at[p] for _, _, p in plan) for plan in plans]
        self.last: list[tuple[tuple[str | None, ...], GroupReading] | None] = [None] * len(refs)


# per `limits` (True, False): the last Prepared (ResourcesProbe keeps one of these)
PreparedCache = dict[bool, Prepared]


async def read_groups(
    host: HostTransport,
    lay: Layout,
    refs: Sequence[GroupRef],
    *,
    limits: bool,
    cache: PlanCache | None = None,
    keep: OpenFiles | None = None,
    last: Readings | None = None,
    prepared: PreparedCache | None = None,
) -> list[GroupReading]:
    """One refresh of counters (and limits, if asked) of many groups. `cache` keeps the file
    lists between refreshes (the caller clears it when the layout changes); `last` the
    readings of a refresh without limits, reused for a group whose kept-open files all
    returned the same text (an idle group: nothing to parse again). `prepared` (with `keep`
    and `last`): when `refs` is the very list of the last refresh, its plans and file order
    are taken as they were, and its last readings compared by place, not looked up."""
    if prepared is not None and keep is not None and last is not None:
        return await _read_prepared(host, lay, refs, limits, cache, keep, prepared)
    if cache is None:
        plans = [_plan(lay, ref, limits) for ref in refs]
    else:
        plans = []
        for ref in refs:
            plan = cache.get((ref, limits))
            if plan is None:
                plan = cache[(ref, limits)] = _plan(lay, ref, limits)
            plans.append(plan)
    # dict.fromkeys: a parent shared by many children (a pod, a slice) is read once. Locally
    # the limits' files are kept open too: read every few refreshes, a path walk each time
    # (~12 us a file, ~10 files a group) was most of an idle console's refresh cost.
    paths = list(dict.fromkeys(p for plan in plans for _, _, p in plan))
    files = await read_files(host, paths, keep=keep)
    if keep is not None and limits and len(keep) > len(paths):  # groups went away: close their files
        keep.keep_only({host.root + p for p in paths})
    if last is None or keep is None:
        return [interpret(ref.owner, plan, files, limits) for ref, plan in zip(refs, plans)]
    if len(last) > 4 * len(refs) + 64:  # groups came and went: start afresh
        last.clear()
    out = []
    for ref, plan in zip(refs, plans):
        texts = tuple([files.get(p) for _, _, p in plan])
        prev = last.get((ref, limits))
        if prev is not None and len(prev[0]) == len(texts) and all(a is b for a, b in zip(prev[0], texts)):
            out.append(prev[1])
            continue
        g = interpret(ref.owner, plan, files, limits)
        last[(ref, limits)] = (texts, g)
        out.append(g)
    return out


async def _read_prepared(
    host: HostTransport,
    lay: Layout,
    refs: Sequence[GroupRef],
    limits: bool,
    cache: PlanCache | None,
    keep: OpenFiles,
    prepared: PreparedCache,
) -> list[GroupReading]:
    """read_groups with `prepared`: the same readings (a group whose texts are those of its
    last reading reuses it; the texts are the very str objects OpenFiles returns for an
    unchanged file), without making the plans, the file list and the lookups again."""
    prep = prepared.get(limits)
    if prep is None or prep.refs is not refs:
        plans = []
        for ref in refs:
            plan = cache.get((ref, limits)) if cache is not None else None
            if plan is None:
                plan = _plan(lay, ref, limits)
                if cache is not None:
                    cache[(ref, limits)] = plan
            plans.append(plan)
        prep = prepared[limits] = Prepared(refs, plans)
    paths = prep.paths
    files: Mapping[str, str | None] | None = None
    if host.is_local:  # the texts in reading order, no mapping made unless a group changed
        n_new = keep.not_open(paths, host.root)
        if len(paths) - n_new + 8 * n_new <= ON_LOOP_FILES:
            vals = _read_values(paths, host.root, keep)
        else:
            vals = await asyncio.to_thread(_read_values, paths, host.root, keep)
    else:
        files = await read_files(host, paths, keep=keep)
        vals = [files.get(p) for p in paths]
    if limits and len(keep) > len(paths):  # groups went away: close their files
        keep.keep_only({host.root + p for p in paths})
    out = []
    last = prep.last
    for i, (ref, plan, places) in enumerate(zip(refs, prep.plans, prep.places)):
        texts = tuple([vals[j] for j in places])
        prev = last[i]
        if prev is not None and prev[0] == texts:  # (identical str objects: compared by identity)
            out.append(prev[1])
            continue
        if files is None:
            files = dict(zip(paths, vals))
        g = interpret(ref.owner, plan, files, limits)
        last[i] = (texts, g)
        out.append(g)
    return out
