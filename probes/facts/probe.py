"""FactsProbe: reads the host files and versions the HOST-*, VM-* and SW-* checks need.

Everything goes through the transport (`read_text`, `run` with argv lists), prefixed with
`host.root`, so the same code reads a real host, a host over SSH, or a tree of real files in a
temp directory (the tests). Small sysfs/procfs files are read in one round trip: a constant
`sh -c` script gets the root as "$1" and constant glob patterns as the other arguments, and
greps them (`grep -H` gives "path:line", at most 64 lines per file); no host-supplied name is
ever put into a shell string. Disk image paths (from domain XML, untrusted) go to `stat` as
argv after `--`.

Disk paths to stat come from the workloads this probe saw at its last merge (the probe does
not talk to libvirt): the first run has none; `tenantscope check` runs the probe a second time
when that matters (see tui/cli.py).

SW-02 (pending security updates) is expensive and asks the package manager: it runs only when
the probe is built with `updates=True`; the result is cached on this machine with its time,
and later runs without `updates` report the cached answer and its age.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from probes.engine import Probe
from probes.facts.model import (
    ConfFile,
    ConfSetting,
    CpuSiblings,
    FileFact,
    HostFacts,
    HypervisorProcess,
    IommuGroup,
    PathStat,
    PendingUpdates,
    SriovVf,
    Vulnerability,
)
from probes.hosts.base import CommandResult, HostError, HostTransport
from probes.model import HostState, WorkloadKind

FILE_LIMIT = 256 << 10  # bytes read of one config file
MAX_PROCS = 256  # hypervisor processes looked at
MAX_DISKS = 512  # disk images stat'ed per run
CMDLINE_LIMIT = 4096
UPDATES_TIMEOUT = 90.0

# Constant script: cd to the root given as $1, grep the glob patterns given as the rest.
# Unquoted $* is what expands the globs; patterns come from this module, never from a host.
_GREP_SCRIPT = 'cd -- "$1" || exit 3; shift; grep -sHa -m 64 "" $*; exit 0'
_LIST_SCRIPT = 'cd -- "$1" || exit 3; shift; for f in $*; do [ -e "$f" ] && printf "%s\\n" "$f"; done; exit 0'
_STAT_SCRIPT = (
    'cd -- "$1" || exit 3; shift; for f in $*; do [ -e "$f" ] && '
    'stat --printf "%a\\t%u\\t%g\\t%U\\t%G\\t%F\\t%n\\0" -- "$f"; done; exit 0'
)
_STAT_FMT = "%a\\t%u\\t%g\\t%U\\t%G\\t%F\\t%n\\0"  # stat interprets the escapes

SMALL_FILES = (
    "proc/sys/kernel/osrelease",
    "proc/sys/kernel/cap_last_cap",
    "proc/cmdline",
    "sys/fs/selinux/enforce",
    "sys/module/apparmor/parameters/enabled",
    "sys/devices/system/cpu/vulnerabilities/*",
    "sys/devices/system/cpu/smt/control",
    "sys/kernel/mm/ksm/run",
    "sys/kernel/mm/ksm/pages_sharing",
    "sys/kernel/mm/ksm/pages_shared",
    "sys/module/kvm_intel/parameters/nested",
    "sys/module/kvm_amd/parameters/nested",
    "sys/fs/cgroup/cgroup.controllers",
    "sys/fs/cgroup/unified/cgroup.controllers",
    "sys/devices/system/cpu/cpu[0-9]*/topology/thread_siblings_list",
    "proc/[0-9]*/comm",
    "proc/1/status",
)
SOCKETS = ("run/libvirt/*sock*", "var/run/libvirt/*sock*")
RUNTIME_SOCKETS = (
    "run/docker.sock",
    "run/containerd/containerd.sock",
    "run/podman/podman.sock",
    "run/crio/crio.sock",
    "var/lib/lxd/unix.socket",
    "var/snap/lxd/common/lxd/unix.socket",
    "run/incus/unix.socket",
    "var/lib/incus/unix.socket",
)
IOMMU_DEVICES = "sys/kernel/iommu_groups/*/devices/*"
HYPERVISOR_COMMS = ("qemu-system-", "qemu-kvm", "firecracker", "cloud-hyperviso", "kvm")
LIBVIRT_PORTS = (16509, 16514)

# component -> candidate executables (first found answers `--version`); one constant script
# tries them all in one round trip (over SSH each command costs a login shell).
_VERSION_CANDIDATES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("qemu", ("qemu-system-x86_64", "qemu-kvm", "qemu-system-aarch64")),
    ("libvirt", ("libvirtd", "virtqemud", "virsh")),
    ("ovs", ("ovs-vswitchd", "ovs-vsctl")),
    ("cloud-hypervisor", ("cloud-hypervisor",)),
    ("firecracker", ("firecracker",)),
)
_VERSION_SCRIPT = (
    'PATH="$PATH:/usr/sbin:/sbin:/usr/libexec"; '
    'for spec in "$@"; do comp=${spec%%=*}; for c in $(echo "${spec#*=}" | tr , " "); do '
    'if command -v "$c" >/dev/null 2>&1; then '
    'printf "%s\\t%s\\n" "$comp" "$("$c" --version 2>&1 | head -n 1)"; break; fi; done; done; exit 0'
)
_VERSION_RE = re.compile(r"(\d+\.\d+(?:\.\d+)?[^\s,)]*)")
_SECRET_RE = re.compile(r"((?:password|passwd|data|secret|key)=)[^,\s]*", re.I)


class FactsProbe(Probe[HostFacts]):
    name = "facts"

    def __init__(
        self, *, interval: float = 60.0, updates: bool = False, cache_dir: str | None = None
    ) -> None:
        self._interval = interval
        self._pending = False  # disk images known but not stat'ed yet: come back soon
        self.updates = updates
        self.timeout = UPDATES_TIMEOUT + 30 if updates else 30.0
        self.cache_dir = cache_dir
        self._disk_paths: tuple[str, ...] = ()
        self.native = True  # local hosts: os calls instead of the scripts (tests compare both)
        self._version_cache: VersionCache = {}

    @property  # type: ignore[override]
    def interval(self) -> float:
        """The engine reads this after every run: soon again while VM-10 waits for a stat."""
        return min(self._interval, 5.0) if self._pending else self._interval

    # -- the engine's interface

    async def collect(self, host: HostTransport) -> HostFacts:
        root = host.root
        rootdir = root or "/"
        files = (
            "/proc/cpuinfo",
            "/etc/libvirt/qemu.conf",
            "/etc/libvirt/libvirtd.conf",
            "/proc/cgroups",
            "/proc/net/tcp",
            "/proc/net/tcp6",
        )
        reads = await asyncio.gather(*(_read(host, p) for p in files))
        text = dict(zip(files, reads))
        if host.is_local and self.native:  # os calls, same output: nothing spawned
            grep, iommu, socks = await asyncio.to_thread(_local_scripts, rootdir)
            versions, vfs = await asyncio.gather(
                _versions(host, self._version_cache), _sriov(host) if not root else _none()
            )
        else:
            grep, iommu, socks, versions, vfs = await asyncio.gather(
                host.run(["sh", "-c", _GREP_SCRIPT, "sh", rootdir, *SMALL_FILES]),
                host.run(["sh", "-c", _LIST_SCRIPT, "sh", rootdir, IOMMU_DEVICES]),
                host.run(["sh", "-c", _STAT_SCRIPT, "sh", rootdir, "dev/kvm", *SOCKETS, *RUNTIME_SOCKETS]),
                _versions(host),
                _sriov(host) if not root else _none(),
            )
        small = parse_grep(grep.stdout)
        missing: list[str] = []
        errors: list[tuple[str, str]] = []
        for p, r in text.items():
            if isinstance(r, FileNotFoundError):
                missing.append(p)
            elif isinstance(r, Exception):
                errors.append((p, _err(r)))
        for what, r in (("sysfs", grep), ("iommu", iommu), ("stat", socks)):
            if r.returncode == 3:
                errors.append((what, f"cannot enter {rootdir}"))

        stats = parse_stat(socks.stdout)
        kvm = next((s for s in stats if s.path == "/dev/kvm"), PathStat("/dev/kvm", False))
        if not kvm.exists:
            missing.append("/dev/kvm")
        comms = {
            int(m.group(1)): lines[0]
            for path, lines in small.items()
            if (m := re.fullmatch(r"/proc/(\d+)/comm", path)) and lines
        }
        procs = await _hypervisors(host, comms)
        disks = await _stat_disks(host, self._disk_paths)
        updates = await self._updates(host)
        vendor, flags = parse_cpuinfo(_ok(text["/proc/cpuinfo"]))
        cmdline = _first(small, "/proc/cmdline")
        facts = HostFacts(
            kernel=_first(small, "/proc/sys/kernel/osrelease"),
            files=(FileFact("/proc/cmdline", bool(cmdline), cmdline),),
            versions=tuple([("kernel", _first(small, "/proc/sys/kernel/osrelease"))] + versions),
            collected_at=time.time(),
            kvm_device=kvm,
            cpu_flags=flags,
            cpu_vendor=vendor,
            selinux={"1": "enforcing", "0": "permissive"}.get(_first(small, "/sys/fs/selinux/enforce"), ""),
            apparmor={"Y": "enabled", "N": "disabled"}.get(
                _first(small, "/sys/module/apparmor/parameters/enabled"), ""
            ),
            qemu_conf=_conf("/etc/libvirt/qemu.conf", text["/etc/libvirt/qemu.conf"]),
            libvirtd_conf=_conf("/etc/libvirt/libvirtd.conf", text["/etc/libvirt/libvirtd.conf"]),
            vulnerabilities=tuple(
                Vulnerability(p.rsplit("/", 1)[1], " ".join(lines).strip())
                for p, lines in sorted(small.items())
                if p.startswith("/sys/devices/system/cpu/vulnerabilities/")
            ),
            smt_control=_first(small, "/sys/devices/system/cpu/smt/control"),
            ksm_run=_int(_first(small, "/sys/kernel/mm/ksm/run")),
            ksm_pages_sharing=_int(_first(small, "/sys/kernel/mm/ksm/pages_sharing")),
            ksm_pages_shared=_int(_first(small, "/sys/kernel/mm/ksm/pages_shared")),
            kvm_nested=tuple(
                (m, _first(small, f"/sys/module/{m}/parameters/nested"))
                for m in ("kvm_intel", "kvm_amd")
                if f"/sys/module/{m}/parameters/nested" in small
            ),
            iommu_groups=parse_iommu(iommu.stdout),
            cmdline=cmdline,
            cgroup_controllers=parse_cgroups(_ok(text["/proc/cgroups"]), small),
            cap_last_cap=_int(_first(small, "/proc/sys/kernel/cap_last_cap")),
            cap_bnd_init=_cap_bnd(small.get("/proc/1/status", ())),
            libvirt_sockets=_dedupe(s for s in stats if "/libvirt/" in s.path),
            runtime_sockets=tuple(s for s in stats if s.path != "/dev/kvm" and "/libvirt/" not in s.path),
            tcp_listen_ports=parse_listen_ports(_ok(text["/proc/net/tcp"]) + _ok(text["/proc/net/tcp6"])),
            hypervisor_processes=procs,
            cpu_siblings=tuple(
                sorted(
                    (
                        CpuSiblings(int(m.group(1)), lines[0])
                        for p, lines in small.items()
                        if (
                            m := re.fullmatch(
                                r"/sys/devices/system/cpu/cpu(\d+)/topology/thread_siblings_list", p
                            )
                        )
                        and lines
                    ),
                    key=lambda c: c.cpu,
                )
            ),
            disk_stats=disks,
            sriov_vfs=vfs,
            updates=updates,
            missing=tuple(missing),
            errors=tuple(errors),
        )
        return facts

    def merge(self, state: HostState, result: HostFacts) -> HostState:
        # Remember the disk images of this host's VMs for the next run (VM-10).
        self._disk_paths = disk_paths(state)
        have = {s.path for s in result.disk_stats}
        self._pending = any(p not in have for p in self._disk_paths)
        return replace(state, facts=result)

    def wants_rerun(self, state: HostState) -> bool:
        """True when the host has disk images this probe has not stat'ed yet (and remember
        them for the next collect)."""
        have = {s.path for s in (state.facts.disk_stats if state.facts else ())}
        self._disk_paths = disk_paths(state)
        return any(p not in have for p in self._disk_paths)

    # -- SW-02

    def _cache_file(self, host: HostTransport) -> Path:
        base = self.cache_dir or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tenantscope"
        )
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", host.name)[:100]
        return Path(base) / f"updates-{safe}.json"

    async def _updates(self, host: HostTransport) -> PendingUpdates | None:
        cache = self._cache_file(host)
        if not self.updates:
            return await asyncio.to_thread(_load_cache, cache)
        result = await pending_updates(host)
        if not result.error:
            await asyncio.to_thread(_save_cache, cache, result)
        return result


# ---------------------------------------------------------------- helpers (pure where possible)


async def _none() -> tuple[()]:
    return ()


async def _read(host: HostTransport, path: str) -> str | Exception:
    try:
        return await host.read_text(path, limit=FILE_LIMIT)
    except (TimeoutError, OSError, HostError) as e:
        return e


def _ok(r: str | Exception) -> str:
    return r if isinstance(r, str) else ""


def _err(e: Exception) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


def _int(s: str) -> int | None:
    try:
        return int(s.strip())
    except ValueError:
        return None


def _first(small: dict[str, list[str]], path: str) -> str:
    lines = small.get(path)
    return lines[0].strip() if lines else ""


def _dedupe(stats: Iterable[PathStat]) -> tuple[PathStat, ...]:
    """/var/run is /run on every current distribution: keep one entry per socket name."""
    seen: dict[str, PathStat] = {}
    for st in stats:
        seen.setdefault(st.path.rsplit("/", 1)[-1], st)
    return tuple(seen.values())


def _cap_bnd(lines: Iterable[str]) -> int | None:
    for line in lines:
        if line.startswith("CapBnd:"):
            try:
                return int(line.split()[1], 16)
            except (IndexError, ValueError):
                return None
    return None


def parse_grep(out: str) -> dict[str, list[str]]:
    """`grep -H` output ("relpath:line") to {"/abs/path": [lines]}."""
    found: dict[str, list[str]] = {}
    for line in out.splitlines():
        path, sep, rest = line.partition(":")
        if sep:
            found.setdefault("/" + path.lstrip("./"), []).append(rest)
    return found


def parse_stat(out: str) -> tuple[PathStat, ...]:
    """Records of `stat --printf _STAT_FMT` (NUL-terminated, name last) to PathStats."""
    stats = []
    for rec in out.split("\0"):
        parts = rec.split("\t", 6)
        if len(parts) != 7:
            continue
        mode, uid, gid, user, group, kind, name = parts
        try:
            stats.append(
                PathStat(
                    path="/" + name.lstrip("/") if not name.startswith("/") else name,
                    exists=True,
                    mode=int(mode, 8),
                    uid=int(uid),
                    gid=int(gid),
                    user=user,
                    group=group,
                    kind=kind,
                )
            )
        except ValueError:
            continue
    return tuple(stats)


def parse_cpuinfo(text: str) -> tuple[str, tuple[str, ...]]:
    vendor, flags = "", ()
    for line in text.splitlines():
        k, _, v = line.partition(":")
        k = k.strip()
        if k == "vendor_id" and not vendor:
            vendor = v.strip()
        elif k in ("flags", "Features") and not flags:
            flags = tuple(sorted(set(v.split())))
        if vendor and flags:
            break
    return vendor, flags


def parse_conf(path: str, text: str) -> ConfFile:
    """libvirt's config syntax: `key = value`, `#` comments, strings in quotes, lists in [ ].

    Lists may span lines. Values keep their text (quotes removed); line numbers are 1-based.
    """
    settings: list[ConfSetting] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        raw = lines[i]
        line = _strip_comment(raw).strip()
        start = i + 1
        i += 1
        if not line or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if value.startswith("[") and "]" not in value:
            while i < len(lines) and "]" not in value:
                value += " " + _strip_comment(lines[i]).strip()
                i += 1
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        settings.append(ConfSetting(key.strip(), value, start))
    return ConfFile(path, True, tuple(settings))


def _strip_comment(line: str) -> str:
    out, quote = [], ""
    for ch in line:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        out.append(ch)
    return "".join(out)


def _conf(path: str, r: str | Exception) -> ConfFile:
    if isinstance(r, FileNotFoundError):
        return ConfFile(path, False)
    if isinstance(r, Exception):
        return ConfFile(path, False, error=_err(r))
    return parse_conf(path, r)


def parse_iommu(out: str) -> tuple[IommuGroup, ...]:
    groups: dict[str, list[str]] = {}
    for line in out.splitlines():
        parts = line.strip("./").split("/")
        # sys/kernel/iommu_groups/G/devices/ADDR
        if len(parts) == 6 and parts[:3] == ["sys", "kernel", "iommu_groups"] and parts[4] == "devices":
            groups.setdefault(parts[3], []).append(parts[5])
    return tuple(
        IommuGroup(g, tuple(sorted(d))) for g, d in sorted(groups.items(), key=lambda kv: (len(kv[0]), kv[0]))
    )


def parse_cgroups(proc_cgroups: str, small: dict[str, list[str]]) -> tuple[str, ...]:
    enabled: set[str] = set()
    for line in proc_cgroups.splitlines():
        if line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) >= 4 and parts[3] == "1":
            enabled.add(parts[0])
    for p in ("/sys/fs/cgroup/cgroup.controllers", "/sys/fs/cgroup/unified/cgroup.controllers"):
        for line in small.get(p, ()):
            enabled.update(line.split())
    return tuple(sorted(enabled))


def parse_listen_ports(text: str) -> tuple[int, ...]:
    ports: set[int] = set()
    for line in text.splitlines()[1:] if text else ():
        parts = line.split()
        if len(parts) > 3 and parts[3] == "0A":  # TCP_LISTEN
            _, _, port = parts[1].rpartition(":")
            try:
                ports.add(int(port, 16))
            except ValueError:
                continue
    return tuple(sorted(ports))


def parse_qemu_cmdline(argv: list[str]) -> tuple[str, str]:
    """(guest name, uuid) from a QEMU command line."""
    name = uuid = ""
    for i, a in enumerate(argv[:-1]):
        if a == "-name":
            v = argv[i + 1]
            opts = dict(o.partition("=")[::2] for o in v.split(",") if "=" in o)
            name = opts.get("guest") or v.split(",")[0]
        elif a == "-uuid":
            uuid = argv[i + 1]
    return name, uuid


async def _hypervisors(host: HostTransport, comms: dict[int, str]) -> tuple[HypervisorProcess, ...]:
    pids = sorted(p for p, c in comms.items() if c.startswith(HYPERVISOR_COMMS))[:MAX_PROCS]

    async def one(pid: int) -> HypervisorProcess | None:
        cmd, status = await asyncio.gather(
            _read(host, f"/proc/{pid}/cmdline"), _read(host, f"/proc/{pid}/status")
        )
        if isinstance(cmd, Exception) and isinstance(status, Exception):
            return None  # gone
        argv = [a for a in _ok(cmd).split("\0") if a]
        if not argv:
            return None  # a kernel thread (kvm-nx-lpage-recovery, kvm-pit, ...) or a zombie
        uid = -1
        for line in _ok(status).splitlines():
            if line.startswith("Uid:"):
                uid = _int(line.split()[1]) if len(line.split()) > 1 else -1
                uid = -1 if uid is None else uid
        name, uuid = parse_qemu_cmdline(argv)
        text = _SECRET_RE.sub(r"\1***", " ".join(argv))[:CMDLINE_LIMIT]
        return HypervisorProcess(pid, comms[pid], uid, name, uuid, text)

    found = await asyncio.gather(*(one(p) for p in pids))
    return tuple(p for p in found if p)


def disk_paths(state: HostState) -> tuple[str, ...]:
    paths = {
        d.source
        for w in state.workloads
        if w.kind == WorkloadKind.VM and w.vm
        for d in w.vm.disks
        if d.type in ("file", "block") and d.source.startswith("/")
    }
    return tuple(sorted(paths))[:MAX_DISKS]


def _local_scripts(rootdir: str) -> tuple[CommandResult, CommandResult, CommandResult]:
    """Blocking: the three scripts' answers from os calls (probes/hosts/localfs.py)."""
    from probes.hosts import localfs

    if not os.path.isdir(rootdir):
        fail = CommandResult(("sh",), 3, "", "")
        return fail, fail, fail
    return (
        CommandResult(("grep",), 0, localfs.grep_first_lines(rootdir, SMALL_FILES), ""),
        CommandResult(("ls",), 0, localfs.existing(rootdir, [IOMMU_DEVICES]), ""),
        CommandResult(
            ("stat",), 0, localfs.stat_existing(rootdir, ["dev/kvm", *SOCKETS, *RUNTIME_SOCKETS]), ""
        ),
    )


async def _stat_disks(host: HostTransport, paths: Iterable[str]) -> tuple[PathStat, ...]:
    paths = list(paths)
    if not paths:
        return ()
    root = host.root
    try:
        if host.is_local:
            from probes.hosts import localfs

            out, err = await asyncio.to_thread(localfs.stat_paths, [root + p for p in paths])
            r = CommandResult(("stat",), 1 if err else 0, out, err)
        else:
            r = await host.run(["stat", "--printf", _STAT_FMT, "--", *(root + p for p in paths)], timeout=10)
    except HostError as e:
        return tuple(PathStat(p, False, error=str(e)) for p in paths)
    seen = {
        s.path[len(root) :] if root and s.path.startswith(root) else s.path: s for s in parse_stat(r.stdout)
    }
    out = []
    for p in paths:
        s = seen.get(p)
        out.append(replace(s, path=p) if s else PathStat(p, False, error=_stat_error(r, root + p)))
    return tuple(out)


def _stat_error(r: CommandResult, path: str) -> str:
    for line in r.stderr.splitlines():
        if path in line:
            return line.rsplit(":", 1)[-1].strip()
    return "not found"


VersionCache = dict[str, tuple[tuple[str, int, int], list[tuple[str, str]]]]


async def _versions(host: HostTransport, cache: VersionCache | None = None) -> list[tuple[str, str]]:
    """(component, version) of the first executable found per component. With a `cache`
    (local hosts), `--version` runs again only when an executable changed (path, mtime,
    size): at idle nothing is spawned."""
    args = [f"{comp}={','.join(cands)}" for comp, cands in _VERSION_CANDIDATES]
    if cache is not None and host.is_local:
        key = await asyncio.to_thread(_executables)
        hit = cache.get("")
        if hit is not None and hit[0] == key:
            return list(hit[1])
        got = await _versions(host)
        cache[""] = (key, got)
        return got
    try:
        r = await host.run(["sh", "-c", _VERSION_SCRIPT, "sh", *args], timeout=10)
    except HostError:
        return []
    return parse_versions(r.stdout)


def parse_versions(out: str) -> list[tuple[str, str]]:
    """ "component<TAB>first line of --version" lines -> (component, version number)."""
    found = []
    for line in out.splitlines():
        comp, _, text = line.partition("\t")
        m = _VERSION_RE.search(text)
        if comp and m:
            found.append((comp, m.group(1)))
    return found


def parse_vfinfo(text: str) -> tuple[SriovVf, ...]:
    """SR-IOV VFs from `ip -j link show` (each PF lists its VFs in vfinfo_list)."""
    try:
        links = json.loads(text or "[]")
    except ValueError:
        return ()
    out = []
    for link in links if isinstance(links, list) else ():
        for vf in link.get("vfinfo_list") or ():
            vlans = vf.get("vlan_list") or ()
            out.append(
                SriovVf(
                    pf=str(link.get("ifname", "")),
                    vf=int(vf.get("vf", -1)),
                    mac=str(vf.get("address") or vf.get("mac") or "").lower(),
                    spoofchk=vf.get("spoofchk"),
                    trust=vf.get("trust"),
                    vlan=int(vlans[0].get("vlan", 0)) if vlans else int(vf.get("vlan", 0) or 0),
                )
            )
    return tuple(out)


def _executables() -> tuple[str, int, int]:
    """Blocking: a fingerprint of the executables _VERSION_SCRIPT would run (which, and
    their mtime and size), to know when their versions must be asked again."""
    import shutil

    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/libexec"
    found: list[str] = []
    mtime = size = 0
    for _, cands in _VERSION_CANDIDATES:
        for c in cands:
            p = shutil.which(c, path=path)
            if p:
                found.append(p)
                try:
                    s = os.stat(p)
                    mtime, size = mtime ^ int(s.st_mtime_ns), size + s.st_size
                except OSError:
                    pass
                break
    return ("\0".join(found), mtime, size)


def _has_vfs(root: str = "") -> bool:
    """Blocking: does any network device here have SR-IOV virtual functions enabled?"""
    for p in glob.glob(f"{root}/sys/class/net/*/device/sriov_numvfs"):
        try:
            with open(p) as f:
                if int(f.read().strip() or "0") > 0:
                    return True
        except (OSError, ValueError):
            continue
    return False


async def _sriov(host: HostTransport) -> tuple[SriovVf, ...]:
    if host.is_local and not await asyncio.to_thread(_has_vfs, host.root):
        return ()  # no VF anywhere: nothing to ask `ip` about (and nothing spawned)
    try:
        r = await host.run(["ip", "-j", "link", "show"], timeout=5)
    except HostError:
        return ()
    return parse_vfinfo(r.stdout) if r.ok else ()


# ---------------------------------------------------------------- SW-02


def parse_apt_simulation(out: str) -> tuple[tuple[str, ...], int]:
    """`apt-get -s dist-upgrade`: `Inst NAME [OLD] (NEW ORIGIN [ARCH])` lines."""
    security, total = [], 0
    for line in out.splitlines():
        if not line.startswith("Inst "):
            continue
        total += 1
        name = line.split()[1]
        if "security" in line.lower():
            security.append(name)
    return tuple(sorted(set(security))), total


def parse_dnf_security(out: str) -> tuple[str, ...]:
    """`dnf -q updateinfo list --security`: `ADVISORY TYPE PACKAGE` lines."""
    pkgs = [parts[-1] for line in out.splitlines() if len(parts := line.split()) >= 3]
    return tuple(sorted(set(pkgs)))


async def pending_updates(host: HostTransport) -> PendingUpdates:
    now = time.time()
    try:
        r = await host.run(
            ["apt-get", "-s", "-o", "Debug::NoLocking=1", "dist-upgrade"], timeout=UPDATES_TIMEOUT
        )
        if r.ok:
            sec, total = parse_apt_simulation(r.stdout)
            return PendingUpdates("apt", now, sec, total)
        return PendingUpdates("apt", now, error=(r.stderr.strip().splitlines() or ["failed"])[-1][:300])
    except HostError as e:
        if "not found" not in str(e):
            return PendingUpdates("apt", now, error=str(e))
    try:
        r = await host.run(
            ["dnf", "-q", "--cacheonly", "updateinfo", "list", "--security"], timeout=UPDATES_TIMEOUT
        )
        if r.ok:
            sec = parse_dnf_security(r.stdout)
            return PendingUpdates("dnf", now, sec, len(sec))
        return PendingUpdates("dnf", now, error=(r.stderr.strip().splitlines() or ["failed"])[-1][:300])
    except HostError as e:
        if "not found" not in str(e):
            return PendingUpdates("dnf", now, error=str(e))
    return PendingUpdates("", now, error="no apt-get or dnf on this host")


def _load_cache(path: Path) -> PendingUpdates | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    import msgspec  # only with a cache to decode: ~0.6 MiB for the console's life otherwise

    try:
        return replace(msgspec.json.decode(data, type=PendingUpdates), from_cache=True)
    except msgspec.DecodeError:
        return None


def _save_cache(path: Path, result: PendingUpdates) -> None:
    import msgspec

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(msgspec.json.encode(result))
        tmp.replace(path)
    except OSError:
        pass  # a cache we cannot write only costs a re-run
