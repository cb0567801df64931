"""/proc parsing shared by the netns and container inventories, through the host transport.

Everything here works over `HostTransport.run` / `read_text` only (and `host.root` for test
trees), so the same code reads the local /proc, a remote one over SSH, or a directory in a
test. Namespace links are read for all processes with ONE command over SSH (`find ... -printf
%l`, one round trip); on the local host with os calls in one worker-thread hop (no process is
spawned for reading). Files are then read only for the few processes whose namespaces differ
from the host's.

The host's namespace set is PID 1's. Where PID 1's links cannot be read (a PID 1 holding
capabilities the reader lacks, as in some micro-VMs), kthreadd's (PID 2) are used: kernel
threads always live in the initial namespaces.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from probes.hosts.base import HostError, HostTransport
from probes.model import Mount

NS_TYPES = ("cgroup", "ipc", "mnt", "net", "pid", "user", "uts")

# A constant script: the only data it gets is the /proc directory as $1 (argv, never spliced).
# Processes entirely in PID 1's namespaces are left out on the host (awk, where there is one):
# nothing reads them (containers, process-held namespaces and named namespaces' holders all
# differ somewhere), and over SSH they were most of the table (thousands of lines a poll).
_NS_SCRIPT = (
    "cd -- \"$1\" || exit 1; F() { find [0-9]*/ns -mindepth 1 -maxdepth 1 -printf '%h %f %l\\n' 2>/dev/null; }; "
    "command -v awk >/dev/null 2>&1 || { F; exit; }; F | awk '"
    'function out() { if (buf != "" && (keep || cur == "1" || cur == "2")) printf "%s", buf; buf = ""; keep = 0 } '
    '{ split($1, a, "/"); if (a[1] != cur) { out(); cur = a[1] } '
    'if (cur == "1") h[$2] = $3; else if (!($2 in h) || h[$2] != $3) keep = 1; buf = buf $0 "\\n" } '
    "END { out() }'"
)
_NS_LINE = re.compile(r"^(\d+)/ns (\w+) (\w+):\[(\d+)\]$")
_NS_LINES = re.compile(_NS_LINE.pattern, re.M)

NsSet = Mapping[str, int]
T = TypeVar("T")
READ_CONCURRENCY = 32  # reads in flight: threads locally, channels over SSH


_NS_LINK = re.compile(r"^(\w+):\[(\d+)\]$")
_NS_WANTED = frozenset(NS_TYPES) | {"pid_for_children"}
_NS_ORDER = tuple(sorted(_NS_WANTED))


def ns_table_local(proc: str) -> dict[int, dict[str, int]]:
    """Blocking: ns_table of a local /proc (or a test tree) with os calls; the same answers
    as the `find` script (unreadable links left out)."""
    try:
        entries = os.listdir(proc)
    except OSError as e:
        raise HostError(f"cannot list namespaces under {proc}: {e.strerror or e}") from None
    table: dict[int, dict[str, int]] = {}
    readlink = os.readlink
    match = _NS_LINK.match
    for d in entries:
        if not d.isdigit():
            continue
        base = f"{proc}/{d}/ns/"
        ns: dict[str, int] = {}
        # each wanted link read directly (a type this kernel lacks: ENOENT, left out as when
        # it was listed first: a listdir per process was a fifth of the table's cost)
        for t in _NS_ORDER:
            try:
                m = match(readlink(base + t))
            except OSError:
                continue
            if m:
                ns[t] = int(m.group(2))
        if ns:
            table[int(d)] = ns
    return table


def parse_ns_lines(text: str) -> dict[int, dict[str, int]]:
    """The `find` script's lines, `PID/ns TYPE TYPE:[INODE]`, as {pid: {type: inode}}: one
    findall over the whole text (an SSH host's table, thousands of lines, was matched line by
    line at every poll: about twice the cost)."""
    table: dict[int, dict[str, int]] = {}
    for pid, kind, _name, ino in _NS_LINES.findall(text):
        if kind in _NS_WANTED:
            table.setdefault(int(pid), {})[kind] = int(ino)
    return table


async def ns_table(
    host: HostTransport, *, timeout: float = 10.0, native: bool | None = None
) -> dict[int, dict[str, int]]:
    """{pid: {ns type: inode}} for every process the reader may inspect (NS_TYPES, plus
    pid_for_children: the pid namespace a process's children will be born in).

    Processes whose links are unreadable appear without those types; processes that exit
    while being listed are simply missing. `native` (default: local hosts) reads with os
    calls in one worker-thread hop; otherwise one command lists them all.
    """
    if native is None:
        native = host.is_local
    if native:
        return await asyncio.wait_for(
            asyncio.to_thread(lambda: outside_host(ns_table_local(f"{host.root}/proc"))), timeout
        )
    res = await host.run(["sh", "-c", _NS_SCRIPT, "sh", f"{host.root}/proc"], timeout=timeout)
    table = parse_ns_lines(res.stdout)
    if not table and not res.ok:
        raise HostError(
            f"cannot list namespaces under {host.root}/proc: "
            f"{(res.stderr or 'find failed').strip().splitlines()[0][:200]}"
        )
    return table


def outside_host(table: dict[int, dict[str, int]]) -> dict[int, dict[str, int]]:
    """`table` without the processes entirely in PID 1's namespaces (PIDs 1 and 2 stay): the
    same rule as the remote script's awk, so both paths give the same table."""
    h = table.get(1)
    if not h:
        return table
    return {p: ns for p, ns in table.items() if p in (1, 2) or any(h.get(t) != v for t, v in ns.items())}


def host_namespaces(table: Mapping[int, Mapping[str, int]]) -> dict[str, int]:
    """The initial namespace set: PID 1's, else kthreadd's (PID 2)."""
    for pid in (1, 2):
        ns = table.get(pid, {})
        if all(t in ns for t in ("mnt", "net", "pid", "user")):
            return dict(ns)
    raise HostError("cannot read the host's namespaces (/proc/1/ns and /proc/2/ns unreadable)")


def differing(ns: Mapping[str, int], host_ns: Mapping[str, int]) -> frozenset[str]:
    """Namespace types in which a process differs from the host (unknown types: not counted)."""
    return frozenset(t for t in NS_TYPES if t in ns and t in host_ns and host_ns[t] != ns[t])


# ------------------------------------------------------------------ reading files


async def gather_limited(aws: Iterable[Awaitable[T]], limit: int = READ_CONCURRENCY) -> list[T]:
    """asyncio.gather with at most `limit` awaitables in flight."""
    sem = asyncio.Semaphore(limit)

    async def one(a: Awaitable[T]) -> T:
        async with sem:
            return await a

    return list(await asyncio.gather(*(one(a) for a in aws)))


async def read_file(host: HostTransport, path: str) -> str | None:
    """A host file as text, or None when it is gone, unreadable or unsupported (attr/current
    without an LSM answers EINVAL)."""
    try:
        return await host.read_text(path)
    except (OSError, HostError, ValueError):
        return None


# Reads many files in ONE command (for remote hosts: one round trip instead of one per file).
# Each file becomes two lines: its bytes in base64 (no newlines) and the exit status, so no
# file content (a hostile cmdline, say) can forge the framing. Paths come in as argv.
_READ_MANY = 'for f; do base64 -w0 -- "$f" 2>/dev/null; printf \'\\n%s\\n\' "$?"; done'
BATCH = 200


def read_many_local(root: str, paths: Sequence[str], limit: int = 4 << 20) -> dict[str, str | None]:
    """Blocking: local files as text, None for each one gone or unreadable (EINVAL included)."""
    out: dict[str, str | None] = {}
    for p in paths:
        try:
            with open(root + p, "rb") as f:
                out[p] = f.read(limit).decode("utf-8", "replace")
        except (OSError, ValueError):
            out[p] = None
    return out


async def read_many(
    host: HostTransport, paths: Sequence[str], *, batch: bool | None = None
) -> dict[str, str | None]:
    """{path: text, or None when gone or unreadable} for host paths (`host.root` applies).

    Locally all files are read directly in ONE worker-thread hop (cheapest there); elsewhere,
    or with batch=True, all of them go through one command per BATCH files. Both give the same
    answers.
    """
    if not paths:
        return {}
    if batch is None:
        batch = not host.is_local
    if not batch:
        if host.is_local:
            return await asyncio.to_thread(read_many_local, host.root, list(paths))
        texts = await gather_limited(read_file(host, p) for p in paths)
        return dict(zip(paths, texts))
    out: dict[str, str | None] = {}
    for i in range(0, len(paths), BATCH):
        chunk = list(paths[i : i + BATCH])
        res = await host.run(["sh", "-c", _READ_MANY, "sh", *(host.root + p for p in chunk)], timeout=30.0)
        lines = res.stdout.split("\n")
        for n, p in enumerate(chunk):
            data, rc = (lines[2 * n], lines[2 * n + 1]) if 2 * n + 1 < len(lines) else ("", "1")
            try:
                out[p] = (
                    base64.b64decode(data, validate=True).decode("utf-8", "replace") if rc == "0" else None
                )
            except ValueError:
                out[p] = None
    return out


# ------------------------------------------------------------------ status


@dataclass(frozen=True)
class ProcStatus:
    name: str = ""
    ppid: int = 0
    uid: int = -1
    cap_eff: int = 0
    cap_prm: int = 0
    cap_bnd: int = 0
    seccomp: int = 0  # 0 off, 1 strict, 2 filter
    no_new_privs: bool = False


def parse_status(text: str) -> ProcStatus:
    f: dict[str, str] = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            f[k] = v.strip()

    def hexint(k: str) -> int:
        try:
            return int(f.get(k, "0"), 16)
        except ValueError:
            return 0

    def dec(k: str, default: int = 0) -> int:
        try:
            return int(f.get(k, "").split()[0])
        except (ValueError, IndexError):
            return default

    return ProcStatus(
        name=f.get("Name", ""),
        ppid=dec("PPid"),
        uid=dec("Uid", -1),
        cap_eff=hexint("CapEff"),
        cap_prm=hexint("CapPrm"),
        cap_bnd=hexint("CapBnd"),
        seccomp=dec("Seccomp"),
        no_new_privs=dec("NoNewPrivs") == 1,
    )


# ------------------------------------------------------------------ cgroup


def parse_cgroup(text: str) -> tuple[tuple[str, str], ...]:
    """(controllers, path) per line of /proc/PID/cgroup; v2's line has controllers ''."""
    out: list[tuple[str, str]] = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            out.append((parts[1], parts[2]))
    return tuple(out)


def main_cgroup(lines: Sequence[tuple[str, str]]) -> str:
    """The most telling cgroup path: v2's, else systemd's, else the longest v1 path."""
    by = dict(lines)
    for key in ("", "name=systemd"):
        p = by.get(key, "/")
        if p not in ("/", ""):
            return p
    paths = sorted((p for _, p in lines if p not in ("/", "")), key=len, reverse=True)
    return paths[0] if paths else "/"


@dataclass(frozen=True)
class Runtime:
    """What a cgroup path says about its owner. `runtime` 'qemu' marks a libvirt VM."""

    runtime: str
    id: str = ""
    name: str = ""  # where the path carries a name (lxc, libvirt-lxc, nspawn, qemu)


_HEX = r"([0-9a-f]{64})"
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    # VMs first: they are excluded from containers, never mistaken for them.
    ("qemu", re.compile(r"/machine-qemu\\x2d(\d+)\\x2d(.+?)\.scope(?:/|$)")),
    ("qemu", re.compile(r"/machine/qemu-(\d+)-(.+?)\.libvirt-qemu(?:/|$)")),
    ("libvirt-lxc", re.compile(r"/machine-lxc\\x2d(\d+)\\x2d(.+?)\.scope(?:/|$)")),
    ("libvirt-lxc", re.compile(r"/machine/(?:lxc-(\d+)-)?(.+?)\.libvirt-lxc(?:/|$)")),
    ("podman", re.compile(r"/libpod-(?!conmon-)" + _HEX + r"(?:\.scope)?(?:/|$)")),
    ("cri-o", re.compile(r"/crio-(?!conmon-)" + _HEX + r"(?:\.scope)?(?:/|$)")),
    ("containerd", re.compile(r"/cri-containerd-" + _HEX + r"\.scope(?:/|$)")),
    ("containerd", re.compile(r"/nerdctl-" + _HEX + r"\.scope(?:/|$)")),
    ("docker", re.compile(r"/docker-" + _HEX + r"\.scope(?:/|$)")),
    ("docker", re.compile(r"/docker/" + _HEX + r"(?:/|$)")),
    ("containerd", re.compile(r"/kubepods\b.*?/pod[0-9a-f_-]+/" + _HEX + r"(?:/|$)")),
    ("lxc", re.compile(r"/lxc\.payload[./]([^/]+)(?:/|$)")),
    ("lxc", re.compile(r"^/lxc/([^/]+)(?:/|$)")),
    ("nspawn", re.compile(r"/machine\.slice/systemd-nspawn@([^/]+)\.service(?:/|$)")),
)


def _unescape_systemd(s: str) -> str:
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), s)


def recognise(lines: Sequence[tuple[str, str]]) -> Runtime | None:
    """The runtime (and container id or name) that a process's cgroup paths reveal."""
    paths = [p for _, p in lines if p not in ("/", "")]
    for runtime, rx in _RULES:
        for p in paths:
            m = rx.search(p)
            if not m:
                continue
            if runtime in ("qemu", "libvirt-lxc"):
                return Runtime(runtime, m.group(1) or "", _unescape_systemd(m.group(2)))
            if runtime in ("lxc", "nspawn"):
                return Runtime(runtime, "", _unescape_systemd(m.group(1)))
            return Runtime(runtime, m.group(1))
    return None


# ------------------------------------------------------------------ classification

CONTAINER_RUNTIMES = frozenset({"docker", "containerd", "cri-o", "podman", "lxc", "libvirt-lxc", "nspawn"})
# Namespaces beyond net and mnt mark an isolated process tree ("a container"); net (+ the
# private mount namespace that `ip netns exec` makes) alone is a plain network namespace;
# mnt alone is service sandboxing (systemd PrivateTmp, QEMU's private /dev) and is ignored.
_CONTAINER_NS = frozenset({"pid", "user", "uts", "ipc"})


def classify(diff: frozenset[str], runtime: Runtime | None) -> str:
    """'vm', 'container', 'netns', 'host' or 'sandbox' for one process."""
    if runtime is not None and runtime.runtime == "qemu":
        return "vm"
    if not diff:
        return "host"
    if runtime is not None and runtime.runtime in CONTAINER_RUNTIMES:
        return "container"
    if diff & _CONTAINER_NS:
        return "container"
    if "net" in diff:
        return "netns"
    return "sandbox"


# ------------------------------------------------------------------ mountinfo, cmdline


def _unoctal(s: str) -> str:
    if "\\" not in s:  # nearly every field: no escape to undo
        return s
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def parse_mountinfo(text: str) -> tuple[Mount, ...]:
    """Mounts from /proc/PID/mountinfo: source, target, fstype, per-mount options, fs root."""
    out: list[Mount] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lf = left.split(" ")
        rf = right.split(" ")
        if len(lf) < 6 or len(rf) < 2:
            continue
        out.append(
            Mount(
                source=_unoctal(rf[1]),
                target=_unoctal(lf[4]),
                fstype=rf[0],
                options=lf[5],
                root=_unoctal(lf[3]),
            )
        )
    return tuple(out)


_SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|api[-_]?key|credential|private[-_]?key|auth)", re.IGNORECASE
)


def command_line(raw: str, limit: int = 512) -> str:
    """/proc/PID/cmdline as one line, with the values of secret-looking options replaced.

    `--password=x`, `--token x`, `PASSWORD=x` become `...=***`: command lines are shown to a
    room and saved in snapshots.
    """
    args = [a for a in raw.split("\0") if a]
    out: list[str] = []
    hide_next = False
    for a in args:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        k, eq, _ = a.partition("=")
        if eq and _SECRET_KEY.search(k):
            out.append(f"{k}=***")
        elif a.startswith("-") and _SECRET_KEY.search(a):
            out.append(a)
            hide_next = True
        else:
            out.append(a)
    return " ".join(out)[:limit]
