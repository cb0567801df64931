"""Containers: processes whose namespaces differ from the host's, grouped into containers.

A process belongs to a container when its cgroup path names a container runtime (docker,
containerd, cri-o, podman, lxc, libvirt-lxc, systemd-nspawn) or when it has its own pid, user,
uts or ipc namespace. Processes that differ only in net (and mnt) are plain network namespaces
(probes/inventory/netns.py); mnt alone is service sandboxing; libvirt's QEMU processes are VMs
(probes/inventory/libvirt.py). Processes are grouped by runtime + container id where the
cgroup path gives one, else by namespace set + cgroup path.

For each container the init process (the member whose parent is outside the group) is
inspected: CapEff, Seccomp, NoNewPrivs, LSM label, namespaces shared with the host, its own
user namespace and uid_map, and its mounts: the fields the CTR-* checks judge. Everything is
read through the host transport, so it works the same locally, over SSH and on a test tree.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from urllib.parse import quote

from probes.engine import Probe
from probes.hosts.base import HostError, HostTransport
from probes.inventory import procfs
from probes.inventory.procfs import NS_TYPES, Runtime
from probes.inventory.runtime_api import follow, remote_events_argv
from probes.inventory.runtimes import ApiContainer, InspectCache, RuntimeView, observe
from probes.model import ContainerDetails, Feed, HostState, Mount, RuntimeDaemon, Workload, WorkloadKind
from probes.network.events import ALL, PROCS, NetEvents

log = logging.getLogger(__name__)
# container and network events only (start, die, connect, ...), the filter URL-encoded
EVENTS_PATH = "/events?filters=" + quote(
    json.dumps({"type": ["container", "network"]}, separators=(",", ":"))
)

MAX_LABELS = 64
MAX_LABEL_TEXT = 256
# seconds between full reads once the /proc scan (local, or the remote helper's) wakes the probe:
# a container's start and end show at the scan (2 s) and at its runtime's /events; the poll is only
# for in-place changes no event reports (a mount added inside a running container, an LSM label
# changed), rare ones. 60 s rather than the topology's 30 s: each poll re-reads every container's
# records, init files and namespaces (~0.3 ms of CPU a second at 50 containers at 30 s).
SAFETY_POLL = 60.0


@dataclass(frozen=True)
class ContainerScan:
    """The containers of a host and the runtime daemons (Docker, Podman) that were found."""

    workloads: tuple[Workload, ...] = ()
    runtimes: tuple[RuntimeDaemon, ...] = ()


class ContainerProbe(Probe[ContainerScan]):
    """Containers from /proc, named and labelled by their runtime's API where it answers.

    Locally, each daemon's /events stream wakes the probe when a container or network changes
    (a `docker run` shows at once); containers outside a runtime (unshare, lxc) are polled."""

    name = "containers"
    kind = WorkloadKind.CONTAINER

    def __init__(
        self,
        interval: float = 5.0,
        timeout: float = 20.0,
        *,
        events: bool = True,
        proc_events: NetEvents | None = None,
        safety: float = SAFETY_POLL,
    ) -> None:
        self.interval = interval
        self.poll_interval = interval
        self.timeout = timeout
        self.events = events
        # an SSH host's remote helper scans /proc on the host (probes/hosts/remote_events.py):
        # a new namespace or runtime daemon wakes this probe; `interval` is then the safety poll
        self.proc_events = proc_events
        self.safety = safety
        self._inspected: InspectCache = {}  # reused inspects (runtimes.observe)
        self._followers: dict[str, asyncio.Task[None]] = {}  # socket -> its /events reader

    def attach(self, wake: Callable[[], None]) -> None:
        super().attach(wake)
        if self.proc_events is not None:
            self.proc_events.subscribe(self._changed)

    def _changed(self, what: str) -> None:
        if what in (PROCS, ALL):
            self.wake()

    def _procs_live(self) -> bool:
        return bool(getattr(self.proc_events, "procs", False))

    def feed(self) -> Feed:
        live = sorted(s.removeprefix("remote:") for s, t in self._followers.items() if not t.done())
        remote = getattr(self.proc_events, "remote", False)
        procs = (
            ("the remote helper's" if remote else "a") + " /proc scan (namespaces, runtime daemons)"
            if self._procs_live()
            else ""
        )
        if live:
            return Feed(
                self.name,
                "events",
                f"runtime /events on {', '.join(live)}; processes outside a runtime: {procs or 'polled'}",
                self.interval,
            )
        if procs:
            return Feed(self.name, "events", procs + "; safety poll", self.interval)
        return super().feed()

    async def collect(self, host: HostTransport) -> ContainerScan:
        if self.proc_events is not None:
            await self.proc_events.start()
            self.interval = self.safety if self._procs_live() else self.poll_interval
        try:
            view = await observe(host, self._inspected)
        except Exception as e:  # the API is an extra: /proc and the files still name containers
            log.debug("runtime daemons on %s: %s", host.name, e, exc_info=True)
            view = RuntimeView()
        live = sorted(d.socket for d in view.daemons if d.api == "ok" and d.socket)
        if self.events and host.is_local and not host.root:
            self._follow(live)
        elif self.events and not host.is_local and live:
            self._follow_remote(host, live)
        return ContainerScan(await discover(host, api=view), view.daemons)

    def _follow_remote(self, host: HostTransport, sockets: list[str]) -> None:
        """Over SSH: one remote command follows every daemon's /events (one stream per host)."""
        key = "remote:" + ",".join(sockets)
        t = self._followers.get(key)
        if t is not None and not t.done():
            return
        for k in [k for k in self._followers if k.startswith("remote:")]:
            self._followers.pop(k).cancel()  # the set of daemons changed
        self._followers[key] = asyncio.create_task(self._remote_events(host, sockets))

    async def _remote_events(self, host: HostTransport, sockets: list[str]) -> None:
        try:
            async for line in host.stream(remote_events_argv(EVENTS_PATH, sockets)):
                if line.startswith("event "):
                    self.wake()
        except (OSError, HostError) as e:  # no python3, no session left, connection lost: polled
            log.debug("remote events on %s: %s", host.name, e)

    def _follow(self, sockets: Iterable[str]) -> None:
        for sock in sockets:
            t = self._followers.get(sock)
            if t is None or t.done():
                self._followers[sock] = asyncio.create_task(self._events(sock))

    async def _events(self, sock: str) -> None:
        try:
            await follow(sock, EVENTS_PATH, self.wake)
        except (OSError, HostError) as e:  # the daemon went away: polls go on, the next collect retries
            log.debug("events on %s: %s", sock, e)

    async def close(self) -> None:
        for t in self._followers.values():
            t.cancel()
        for t in self._followers.values():
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        self._followers.clear()

    def merge(self, state: HostState, result: ContainerScan) -> HostState:
        keep = tuple(w for w in state.workloads if w.kind != self.kind)
        return replace(state, workloads=keep + result.workloads, runtimes=result.runtimes)


@dataclass(frozen=True)
class _Proc:
    pid: int
    ns: tuple[tuple[str, int], ...]
    diff: frozenset[str]
    cgroups: tuple[tuple[str, str], ...]
    runtime: Runtime | None
    pid_for_children: int = 0

    def ns_without_pid(self) -> tuple[tuple[str, int], ...]:
        return tuple((t, i) for t, i in self.ns if t != "pid")

    @property
    def pid_ns(self) -> int:
        return dict(self.ns).get("pid", 0)


async def container_processes(
    host: HostTransport,
    table: Mapping[int, Mapping[str, int]],
    host_ns: Mapping[str, int],
    batch: bool | None = None,
) -> list[_Proc]:
    """Every process that classifies as part of a container."""
    cands = {pid: procfs.differing(ns, host_ns) for pid, ns in table.items()}
    cands = {pid: d for pid, d in cands.items() if d}
    got = await procfs.read_many(host, [f"/proc/{pid}/cgroup" for pid in cands], batch=batch)
    out: list[_Proc] = []
    for pid, diff in cands.items():
        text = got[f"/proc/{pid}/cgroup"]
        if text is None:  # exited meanwhile
            continue
        cg = procfs.parse_cgroup(text)
        rt = procfs.recognise(cg)
        if procfs.classify(diff, rt) == "container":
            ns = table[pid]
            out.append(
                _Proc(
                    pid,
                    tuple((t, ns[t]) for t in NS_TYPES if t in ns),
                    diff,
                    cg,
                    rt,
                    ns.get("pid_for_children", 0),
                )
            )
    return out


def _group_key(p: _Proc) -> tuple[str, ...]:
    if p.runtime is not None and (p.runtime.id or p.runtime.name):
        return ("rt", p.runtime.runtime, p.runtime.id, p.runtime.name)
    return ("ns", repr(p.ns), procfs.main_cgroup(p.cgroups))


async def discover(
    host: HostTransport, *, batch: bool | None = None, api: RuntimeView | None = None
) -> tuple[Workload, ...]:
    """The containers on `host`. `batch`: read /proc files in one command per step (default:
    on remote hosts only; see procfs.read_many). `api`: what the runtimes' APIs said (names,
    labels, image, networks, ports, restart policy), matched by container id or init PID."""
    api = api or RuntimeView()
    table = await procfs.ns_table(host, native=host.is_local and not batch)
    host_ns = procfs.host_namespaces(table)
    procs = await container_processes(host, table, host_ns, batch)
    groups: dict[tuple[str, ...], list[_Proc]] = {}
    for p in procs:
        groups.setdefault(_group_key(p), []).append(p)
    launchers = _fold_launchers(groups)
    got = await procfs.read_many(host, [f"/proc/{p.pid}/status" for p in procs], batch=batch)
    status = {p.pid: procfs.parse_status(t) for p in procs if (t := got[f"/proc/{p.pid}/status"]) is not None}
    inits = [(members, _init(members, status, launchers)) for members in groups.values()]
    mounts_of = _mount_sources(host, [init for _, init in inits if init is not None], batch)
    files = [
        f"/proc/{init.pid}/{f}"
        for _, init in inits
        if init is not None
        for f in ("attr/current", "cmdline", "uid_map")
    ] + [f"/proc/{mounts_of.get(init.pid, init.pid)}/mountinfo" for _, init in inits if init is not None]
    # what the runtimes left on disk for the containers their APIs did not name, read with
    # the /proc files in one batch (locally one worker-thread hop, not one per file)
    named = {init.pid: _from_api(api, init.runtime, init.pid) for _, init in inits if init is not None}
    wanted = [
        p
        for _, init in inits
        if init is not None and named[init.pid] is None
        for p in _identity_paths(init.runtime, api.data_roots)
    ]
    texts = await procfs.read_many(host, list(dict.fromkeys(files + wanted)), batch=batch)
    docs = _Docs(texts)
    mounts: dict[str, tuple[Mount, ...]] = {}  # containers sharing a mount namespace: one parse
    built = [
        _build(
            host,
            members,
            init,
            status,
            host_ns,
            launchers,
            texts,
            named[init.pid],
            docs,
            api,
            mounts,
            mounts_of.get(init.pid, init.pid),
        )
        for members, init in inits
        if init is not None
    ]
    seen: set[str] = set()
    out: list[Workload] = []
    for w in sorted(built, key=lambda w: w.name):
        if w.name in seen:  # two groups that claim one name: keep both, distinguishable
            assert w.container is not None
            w = replace(w, name=f"{w.name}[{w.container.init_pid}]")
        seen.add(w.name)
        out.append(w)
    return tuple(out)


def _mount_sources(host: HostTransport, inits: list[_Proc], batch: bool | None) -> dict[int, int]:
    """Locally: init PID -> the first init whose /proc/PID/mountinfo says the same, so that it is
    read once (50 containers of `unshare --uts --ipc` share the host's mount table: 50 reads of
    it were the largest part of a safety poll). The same mount namespace and the same root (as
    the path /proc/PID/root names) give the same text: mountinfo's paths are relative to the
    process's root. Elsewhere (or a root it may not read): every init reads its own."""
    if not host.is_local or batch:
        return {}
    first: dict[tuple[int, str], int] = {}
    out: dict[int, int] = {}
    for init in inits:
        mnt = dict(init.ns).get("mnt")
        if mnt is None:
            continue
        try:
            root = os.readlink(f"{host.root}/proc/{init.pid}/root")
        except OSError:
            continue
        out[init.pid] = first.setdefault((mnt, root), init.pid)
    return out


def _fold_launchers(groups: dict[tuple[str, ...], list[_Proc]]) -> set[int]:
    """Move `unshare --pid --fork`-style parents into the container they launched.

    Such a parent holds the new namespaces except pid (its children are born in the new pid
    namespace, `pid_for_children`), so it would otherwise show as a container of its own.
    Returns the PIDs of the launchers: they count as members but never as the init process.
    """
    inside: dict[tuple[int, tuple[tuple[str, int], ...]], tuple[str, ...]] = {}
    for key, members in groups.items():
        for p in members:
            inside.setdefault((p.pid_ns, p.ns_without_pid()), key)
    launchers: set[int] = set()
    for key in list(groups):
        for p in list(groups.get(key, ())):
            if not p.pid_for_children or p.pid_for_children == p.pid_ns:
                continue
            target = inside.get((p.pid_for_children, p.ns_without_pid()))
            if target is None or target == key:
                continue
            groups[key].remove(p)
            groups[target].append(p)
            launchers.add(p.pid)
        if key in groups and not groups[key]:
            del groups[key]
    return launchers


def _init(members: list[_Proc], status: Mapping[int, procfs.ProcStatus], launchers: set[int]) -> _Proc | None:
    """The container's init: the member whose parent is outside the group (lowest PID)."""
    inner = [p for p in members if p.pid in status and p.pid not in launchers]
    if not inner:
        return None
    inner_pids = {p.pid for p in inner}
    roots = [p for p in inner if status[p.pid].ppid not in inner_pids]
    return min(roots or inner, key=lambda p: p.pid)


def _build(
    host: HostTransport,
    members: list[_Proc],
    init: _Proc,
    status: Mapping[int, procfs.ProcStatus],
    host_ns: Mapping[str, int],
    launchers: set[int],
    texts: Mapping[str, str | None],
    found: ApiContainer | None,
    docs: _Docs,
    api: RuntimeView,
    mounts: dict[str, tuple[Mount, ...]],
    mounts_from: int,
) -> Workload:
    pids = {p.pid for p in members if p.pid in status}
    st = status[init.pid]
    ns = dict(init.ns)
    own_user = "user" in init.diff
    label, cmdline, uid_map = (
        texts.get(f"/proc/{init.pid}/{f}") for f in ("attr/current", "cmdline", "uid_map")
    )
    mountinfo = texts.get(f"/proc/{mounts_from}/mountinfo")
    if not own_user:
        uid_map = None
    parsed = mounts.get(mountinfo or "")
    if parsed is None:
        parsed = mounts[mountinfo or ""] = procfs.parse_mountinfo(mountinfo or "")
    rt = init.runtime
    if found is not None:
        name, source, labels = found.name, "api", found.labels
    else:
        name, source, labels = _identity(docs, rt, st.name, init.pid, api.data_roots)
    details = ContainerDetails(
        runtime=rt.runtime if rt else "",
        container_id=rt.id if rt else "",
        cgroup=procfs.main_cgroup(init.cgroups),
        pids=tuple(sorted(pids)),
        init_pid=init.pid,
        command=procfs.command_line(cmdline or ""),
        shared_namespaces=tuple(t for t in NS_TYPES if t in ns and t in host_ns and ns[t] == host_ns[t]),
        own_user_namespace=own_user,
        uid_map=", ".join(" ".join(line.split()) for line in (uid_map or "").splitlines() if line.strip()),
        cap_eff=st.cap_eff,
        seccomp_mode=st.seccomp,
        no_new_privs=st.no_new_privs,
        lsm_label=(label or "").strip("\0\n "),
        mounts=parsed,
        name_source=source,
        labels=labels,
        image=found.image if found else "",
        networks=found.networks if found else (),
        ports=found.ports if found else (),
        restart_policy=found.restart_policy if found else "",
        network_mode=found.network_mode if found else "",
        daemon=found.daemon if found else "",
    )
    return Workload(
        kind=WorkloadKind.CONTAINER,
        name=name,
        host=host.name,
        uuid=details.container_id,
        state="running",
        container=details,
    )


# ------------------------------------------------------------------ names and labels


def _from_api(api: RuntimeView, rt: Runtime | None, pid: int) -> ApiContainer | None:
    """The API's record of this container: by the id its cgroup shows, else by init PID (a
    rootless or systemd-managed runtime whose cgroup paths name no id)."""
    c = api.containers.get(rt.id) if rt is not None and rt.id else None
    if c is None:
        c = api.by_pid().get(pid)
    return c if c is not None and c.name else None


_OCI_BUNDLES = {
    "cri-o": ("/run/containers/storage/overlay-containers/{id}/userdata/config.json",),
    "podman": (
        "/var/lib/containers/storage/overlay-containers/{id}/userdata/config.json",
        "/run/containers/storage/overlay-containers/{id}/userdata/config.json",
    ),
    "containerd": tuple(
        f"/run/containerd/io.containerd.runtime.v2.task/{ns}/{{id}}/config.json"
        for ns in ("k8s.io", "default", "moby")
    ),
}
_K8S_NAME_KEYS = (
    ("io.kubernetes.pod.namespace", "io.kubernetes.pod.name", "io.kubernetes.container.name"),
    (
        "io.kubernetes.cri.sandbox-namespace",
        "io.kubernetes.cri.sandbox-name",
        "io.kubernetes.cri.container-name",
    ),
)


_PODMAN_CONTAINERS = "/var/lib/containers/storage/overlay-containers/containers.json"
MAX_IDENTITY_FILE = 1 << 20  # a runtime's record larger than this is not read as one


def _identity_paths(rt: Runtime | None, docker_roots: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The files `_identity` may read for a container, in the order it tries them."""
    if rt is None or rt.name:
        return ()
    if rt.runtime == "docker":
        return tuple(
            f"{root}/containers/{rt.id}/config.v2.json"
            for root in dict.fromkeys((*docker_roots, "/var/lib/docker"))
        )
    out = [path.format(id=rt.id) for path in _OCI_BUNDLES.get(rt.runtime, ())]
    if rt.runtime == "podman":
        out.append(_PODMAN_CONTAINERS)
    return tuple(out)


class _Docs:
    """The runtimes' JSON records as read in one batch: each parsed once, None when absent,
    unreadable, too large or not JSON (no identity from it)."""

    def __init__(self, texts: Mapping[str, str | None]) -> None:
        self._texts = texts
        self._parsed: dict[str, object] = {}

    def get(self, path: str) -> object:
        if path not in self._parsed:
            text = self._texts.get(path)
            doc = None
            if text is not None and len(text) <= MAX_IDENTITY_FILE:
                try:
                    doc = json.loads(text)
                except ValueError:
                    doc = None
            self._parsed[path] = doc
        return self._parsed[path]


def _identity(
    docs: _Docs,
    rt: Runtime | None,
    comm: str,
    pid: int,
    docker_roots: tuple[str, ...] = (),
) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    """(name, where the name came from, labels) from what the runtime left on disk.

    Best effort, read-only: docker's config.v2.json (under each running dockerd's data-root,
    then the default one), the OCI bundle's annotations (cri-o, containerd, podman) and
    podman's containers.json, as read beforehand (`_identity_paths`). A name nobody gave is
    made up from the runtime and short id, or the init's command and PID, and marked as such
    (name_source "").
    """
    if rt is None:
        return f"{comm or 'pid'}[{pid}]", "", ()
    if rt.name:
        return rt.name, "cgroup", ()
    fallback = f"{rt.runtime}:{rt.id[:12]}"
    if rt.runtime == "docker":
        for path in _identity_paths(rt, docker_roots):
            doc = docs.get(path)
            if isinstance(doc, dict):
                cfg = doc.get("Config")
                labels = _labels(cfg.get("Labels") if isinstance(cfg, dict) else None)
                name = str(doc.get("Name") or "").lstrip("/")
                return (name, "docker", labels) if name else (fallback, "", labels)
        return fallback, "", ()
    for path in _OCI_BUNDLES.get(rt.runtime, ()):
        doc = docs.get(path.format(id=rt.id))
        if not isinstance(doc, dict):
            continue
        raw_ann = doc.get("annotations")
        ann: dict[str, object] = raw_ann if isinstance(raw_ann, dict) else {}
        found = dict(_labels(ann))
        crio_labels = ann.get("io.kubernetes.cri-o.Labels")
        if isinstance(crio_labels, str):
            try:
                found.update(_labels(json.loads(crio_labels)))
            except ValueError:
                pass
        name = ""
        for keys in _K8S_NAME_KEYS:
            if all(ann.get(k) for k in keys):
                name = "/".join(str(ann[k]) for k in keys)
                break
        if not name and rt.runtime == "podman":
            name = _podman_name(docs, rt.id)
        lab = tuple(sorted(found.items()))[:MAX_LABELS]
        return (name, "oci", lab) if name else (fallback, "", lab)
    if rt.runtime == "podman":
        name = _podman_name(docs, rt.id)
        if name:
            return name, "oci", ()
    return fallback, "", ()


def _podman_name(docs: _Docs, cid: str) -> str:
    doc = docs.get(_PODMAN_CONTAINERS)
    if isinstance(doc, list):
        for c in doc:
            if isinstance(c, dict) and c.get("id") == cid and c.get("names"):
                return str(c["names"][0])
    return ""


def _labels(d: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(d, dict):
        return ()
    items = ((str(k)[:MAX_LABEL_TEXT], str(v)[:MAX_LABEL_TEXT]) for k, v in d.items())
    return tuple(sorted(items))[:MAX_LABELS]
