"""Benchmark of the resources area: one refresh of 500 real cgroups, and the idle cost.

Run as root: `.venv/bin/python -m bench.resources [--groups 500] [--window 60] [--skip-idle] [--quiet-host]`.

1. Refresh cost. 500 real cgroups (`tsh-bench-<pid>-<i>` in every v1 controller, or in v2
   where the host has controllers there) are read by ResourcesProbe.collect, counters only
   and with limits, and, as the baseline in the same run, by the generic transport
   (`LocalHost.read_text`, one worker-thread hop per file). Target: <= 100 ms.
2. Idle cost. 50 docker-like containers (a process in its own UTS+IPC namespaces, in a cgroup
   `tsh-bench-<pid>/docker-<id>.scope`) are started; then, side by side in one tmux server
   (`tmux -L tsh-bench-<pid>`), each at a 2 s refresh: tenantscope (`tenantscope run`, all
   panes, default interval), the resources probe + pane alone (same interval), `htop -d 20`, `btop`, `glances -t 2`, and a minimal Textual app
   that clears and refills a 50-row DataTable every 2 s. After a warm-up, their CPU time
   (process tree, from /proc) is measured over the window, and their RSS at the end. Tools
   that are not installed are skipped with a message (install them for the benchmark only:
   `apt-get install -y --no-install-recommends htop btop glances`).

With --quiet-host the whole bench runs again in private PID, mount and network namespaces
(QUIET_HIDE: other namespaces, libvirt, docker, the journal hidden): on a shared machine the
console otherwise measures its reactions to other people's changes, which are real events.

Everything created is removed by name or PID at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

from probes.hosts.local import LocalHost
from probes.model import ContainerDetails, HostState, Workload, WorkloadKind
from probes.resources import cgroups
from probes.resources.probe import ResourcesProbe

PREFIX = "tsh-bench-"
CLK = os.sysconf("SC_CLK_TCK")
# This run's own name for its cgroups and tmux socket: the PID outside --quiet-host's PID
# namespace (inside, every run is PID 1, and two concurrent runs took each other's names).
RUN_ENV = "TSH_BENCH_RUN"


def run_id() -> str:
    return os.environ.get(RUN_ENV) or str(os.getpid())


# ------------------------------------------------------------------ cgroups


def hierarchies() -> list[str]:
    """Directories under which to make a group: each v1 controller mount, or the v2 root."""
    lay = cgroups.parse_mounts(open("/proc/mounts").read())
    v1 = sorted({m for c, m in lay.v1 if c in ("cpu", "cpuacct", "memory", "blkio", "pids")})
    return v1 or ([lay.v2] if lay.v2 else [])


def make_groups(names: Sequence[str]) -> None:
    for root in hierarchies():
        for n in names:
            os.makedirs(os.path.join(root, n), exist_ok=True)


def remove_groups(names: Sequence[str]) -> None:
    """Deepest first; only names with our prefix."""
    for root in hierarchies():
        for n in sorted(names, key=lambda s: -s.count("/")):
            if not n.split("/")[0].startswith(PREFIX):
                continue
            d = os.path.join(root, n)
            for _ in range(100):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)


async def bench_refresh(n: int, repeats: int = 15) -> None:
    names = [f"{PREFIX}{run_id()}-{i}" for i in range(n)]
    print(f"== one refresh of {n} real cgroups ({', '.join(hierarchies())})")
    make_groups(names)
    try:
        host = LocalHost("bench", libvirt_uri=None)
        wls = tuple(
            Workload(WorkloadKind.CONTAINER, nm, host.name, container=ContainerDetails(cgroup="/" + nm))
            for nm in names
        )

        async def timed(probe: ResourcesProbe) -> list[float]:
            probe.merge(HostState(host.host, workloads=wls), await probe.collect(host))  # warm
            out = []
            for _ in range(repeats):
                t = time.perf_counter()
                snap = await probe.collect(host)
                out.append((time.perf_counter() - t) * 1000)
            assert len(snap.samples) == n and all(s.source for s in snap.samples), "groups not read"
            return out

        counters = await timed(ResourcesProbe(libvirt=False, host_totals=False, limits_every=10**9))
        limits = await timed(ResourcesProbe(libvirt=False, host_totals=False, limits_every=1))
        default = await timed(ResourcesProbe(libvirt=False, host_totals=False))
        lay = await cgroups.detect_layout(host)
        refs = [cgroups.GroupRef.same_everywhere(w.key, "/" + w.name) for w in wls]
        paths = [p for r in refs for _, _, p in cgroups._plan(lay, r, True)]
        base = []
        for _ in range(3):
            t = time.perf_counter()
            for p in paths:
                with contextlib.suppress(OSError):
                    await host.read_text(p)
            base.append((time.perf_counter() - t) * 1000)
        med = statistics.median
        print(f"  files per refresh with limits: {len(paths)} ({len(paths) / n:.0f} per group)")
        print(f"  counters only          : median {med(counters):7.1f} ms  (min {min(counters):.1f})")
        print(f"  counters + limits      : median {med(limits):7.1f} ms  (min {min(limits):.1f})")
        print(f"  default (limits 1 in 5): median {med(default):7.1f} ms")
        print(f"  baseline read_text/file: median {med(base):7.1f} ms")
        print(
            f"  ratio baseline / ours (with limits): {med(base) / med(limits):.1f}x; "
            f"target 100 ms: {'met' if med(default) <= 100 else 'MISSED'} "
            f"({med(default) / 100:.2f} of the budget)"
        )
    finally:
        remove_groups(names)


# ------------------------------------------------------------------ idle cost


MINIMAL_APP = r"""
from textual.app import App
from textual.widgets import DataTable
import random
class M(App):
    def compose(self):
        yield DataTable()
    def on_mount(self):
        t = self.query_one(DataTable)
        for c in ("name", "cpu", "mem", "disk", "net"):
            t.add_column(c)
        self.fill()
        self.set_interval(2.0, self.fill)
    def fill(self):
        t = self.query_one(DataTable)
        t.clear()
        for i in range(50):
            t.add_row(f"w{i}", f"{random.random():.1f}%", "12M", "0B/s", "0B/s")
M().run()
"""


# The resources area alone: its probe (which finds the containers itself on its first pass)
# feeding the Resources pane, without the other probes, the checks and the other panes.
PANE_ONLY_APP = r"""
import sys
sys.path.insert(0, %r)
from textual.app import App
from probes.engine import Engine
from probes.hosts.local import LocalHost
from probes.resources.probe import ResourcesProbe
from tui.panes.resources import ResourcesPane
engine = Engine([LocalHost()], lambda h: [ResourcesProbe(interval=2.0)])
class PaneOnly(App):
    def compose(self):
        yield ResourcesPane()
    def on_mount(self):
        self._source = engine
        engine.subscribe(lambda st: self.call_later(self.query_one(ResourcesPane).show, st))
        engine.start()
    async def on_unmount(self):
        await engine.stop()
PaneOnly().run()
"""


class SpawnCounter:
    """Processes forked by given process trees, counted by the kernel's process events
    connector (NETLINK_CONNECTOR, CN_IDX_PROC; root): every fork on the machine is reported
    with its parent, so nothing is missed however short-lived, and the measured tools are not
    slowed down (strace would be). A thread reads the events during the window."""

    PROC_EVENT_FORK = 0x1
    PROC_EVENT_EXEC = 0x2

    def __init__(self, roots: dict[str, int]) -> None:
        import socket
        import threading

        self.roots = roots
        self.trees = {k: set(tree_pids(v)) for k, v in roots.items()}
        self.spawned = {k: 0 for k in roots}
        self.commands: dict[str, dict[str, int]] = {}  # what the spawned processes ran
        self._children: dict[int, str] = {}
        self.lost = False
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 11)  # NETLINK_CONNECTOR
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self._sock.bind((0, 1))  # CN_IDX_PROC
        op = (1).to_bytes(4, "little")  # PROC_CN_MCAST_LISTEN
        import struct

        cn = struct.pack("=IIIIHH", 1, 1, 0, 0, len(op), 0) + op
        self._sock.send(struct.pack("=IHHII", 16 + len(cn), 3, 0, 0, 0) + cn)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import struct

        by_pid = {p: k for k, pids in self.trees.items() for p in pids}
        while not self._stop.is_set():
            try:
                data = self._sock.recv(1 << 16)
            except TimeoutError:
                continue
            except OSError:  # ENOBUFS: events were dropped on a busy machine
                self.lost = True
                continue
            off = 0
            while off + 16 <= len(data):
                length = struct.unpack_from("=I", data, off)[0]
                ev = off + 16 + 20  # nlmsghdr, cn_msg
                if length < 16 + 20 + 16:
                    off += max(length, 16)
                    continue
                what = struct.unpack_from("=I", data, ev)[0]
                if what == self.PROC_EVENT_EXEC:
                    pid = struct.unpack_from("=I", data, ev + 16)[0]
                    k = self._children.get(pid)
                    if k is not None:
                        try:
                            with open(f"/proc/{pid}/cmdline", "rb") as f:
                                argv = f.read().split(b"\0")
                            cmd = " ".join(a.decode(errors="replace") for a in argv[:3])[:60]
                        except OSError:
                            cmd = "?"
                        self.commands.setdefault(k, {}).setdefault(cmd, 0)
                        self.commands[k][cmd] += 1
                if what == self.PROC_EVENT_FORK:
                    ppid, ptgid, cpid, ctgid = struct.unpack_from("=IIII", data, ev + 16)
                    k = by_pid.get(ptgid)
                    if k is not None and cpid == ctgid:  # a process, not a thread
                        self.spawned[k] += 1
                        by_pid[ctgid] = k  # its own children count too
                        self._children[ctgid] = k
                off += (length + 3) & ~3

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()
        return self.spawned


def tree_pids(root: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_ticks(pids: Sequence[int]) -> int:
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, ValueError, IndexError):
            pass
    return total


def rss_kib(pids: Sequence[int]) -> int:
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class Containers:
    """N processes in their own UTS+IPC namespaces, in docker-like cgroups under tsh-bench-PID."""

    def __init__(self, n: int) -> None:
        self.parent = f"{PREFIX}{run_id()}"
        self.names = [f"{self.parent}/docker-{secrets.token_hex(32)}.scope" for _ in range(n)]
        self.procs: list[subprocess.Popen[bytes]] = []
        make_groups([self.parent] + self.names)
        unshare = shutil.which("unshare") or "unshare"
        for name in self.names:
            targets = [os.path.join(h, name, "cgroup.procs") for h in hierarchies()]

            def join(targets: list[str] = targets) -> None:
                for t in targets:
                    with open(t, "w") as f:
                        f.write("0")

            self.procs.append(
                subprocess.Popen(
                    [unshare, "--uts", "--ipc", "sleep", "infinity"],
                    preexec_fn=join,
                    stdin=subprocess.DEVNULL,
                )
            )

    def close(self) -> None:
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
        for p in self.procs:
            with contextlib.suppress(Exception):
                p.wait(10)
        remove_groups(self.names + [self.parent])


def tool_commands() -> list[tuple[str, list[str]]]:
    py = sys.executable
    tenantscope = os.path.join(os.path.dirname(py), "tenantscope")
    out = [
        (
            "tenantscope",
            [tenantscope, "run"] if os.path.exists(tenantscope) else [py, "-m", "tui.cli", "run"],
        ),
        ("resources probe + pane only", [py, "-c", PANE_ONLY_APP % os.getcwd()]),
        ("minimal Textual table app", [py, "-c", MINIMAL_APP]),
    ]
    for name, argv in (
        ("htop -d 20", ["htop", "-d", "20"]),
        ("btop", ["btop"]),
        ("glances -t 2", ["glances", "-t", "2"]),
    ):
        if shutil.which(argv[0]):
            out.append((name, argv))
        else:
            print(
                f"  skipped {name}: {argv[0]} not installed "
                f"(apt-get install -y --no-install-recommends {argv[0]})"
            )
    return out


async def count_workloads() -> str:
    from probes.session import Options, make_engine

    engine = make_engine(Options())
    try:
        state = await engine.refresh_once()
        state = await engine.refresh_once()
    finally:
        await engine.stop()
    kinds: dict[str, int] = {}
    for w in state.workloads():
        kinds[w.kind.value] = kinds.get(w.kind.value, 0) + 1
    samples = sum(len(h.samples.samples) for h in state.hosts if h.samples)
    return ", ".join(f"{v} {k}" for k, v in sorted(kinds.items())) + f"; {samples} sampled"


def bench_idle(n: int, window: float, warmup: float) -> None:
    print(
        f"\n== idle cost with {n} container workloads: warm-up {warmup:g} s, window {window:g} s"
        + (" (shorter than the issue's 60 s)" if window < 60 else "")
    )
    tmux = shutil.which("tmux")
    if not tmux:
        print("  skipped: tmux not installed")
        return
    sock = f"tsh-bench-{run_id()}"
    cont = Containers(n)
    try:
        print("  tenantscope sees:", asyncio.run(count_workloads()))
        tools = tool_commands()
        env = dict(os.environ, TERM="xterm-256color", LANG="C.UTF-8", COLORTERM="truecolor")
        env.pop("NO_COLOR", None)
        roots: dict[str, int] = {}
        for i, (name, argv) in enumerate(tools):
            s = f"t{i}"
            subprocess.run(
                [
                    tmux,
                    "-L",
                    sock,
                    "-f",
                    "/dev/null",
                    "new-session",
                    "-d",
                    "-s",
                    s,
                    "-x",
                    "160",
                    "-y",
                    "48",
                    "exec " + " ".join(_q(a) for a in argv),
                ],
                check=True,
                env=env,
                cwd=os.getcwd(),
            )
            pid = subprocess.run(
                [tmux, "-L", sock, "list-panes", "-t", s, "-F", "#{pane_pid}"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()[0]
            roots[name] = int(pid)
        time.sleep(warmup)
        pids = {k: tree_pids(v) for k, v in roots.items()}
        try:
            counter: SpawnCounter | None = SpawnCounter(roots)
        except OSError as e:
            print(f"  (processes spawned: not counted, no process events connector: {e})")
            counter = None
        t0, c0 = time.monotonic(), {k: cpu_ticks(v) for k, v in pids.items()}
        time.sleep(window)
        spawned = counter.stop() if counter is not None else {}
        pids = {k: tree_pids(v) for k, v in roots.items()}
        dt = time.monotonic() - t0
        c1 = {k: cpu_ticks(v) for k, v in pids.items()}
        res = {k: (100.0 * (c1[k] - c0[k]) / CLK / dt, rss_kib(pids[k]) / 1024) for k in roots}
        ours = res["tenantscope"][0]
        area = res["resources probe + pane only"][0]
        print(
            f"  {'tool':28} {'CPU % of one core':>18} {'RSS MiB':>9} {'app / tool':>11} "
            f"{'resources / tool':>17} {'spawned':>8}"
        )
        for k, (cpu, rss) in res.items():
            r1 = f"{ours / cpu:.2f}x" if cpu > 0 else "n/a"
            r2 = f"{area / cpu:.2f}x" if cpu > 0 else "n/a"
            n = str(spawned[k]) if k in spawned else "?"
            print(f"  {k:28} {cpu:18.2f} {rss:9.1f} {r1:>11} {r2:>17} {n:>8}")
        if counter is not None:
            ts = spawned.get("tenantscope", -1)
            print(
                f"  processes spawned by tenantscope in the window: {ts} (target 0: "
                f"{'met' if ts == 0 else 'MISSED'})" + (" (some events were dropped)" if counter.lost else "")
            )
            top = sorted(counter.commands.get("tenantscope", {}).items(), key=lambda x: -x[1])[:8]
            for cmd, n in top:
                print(f"    {n:5} x {cmd}")
        rss_ours = res["tenantscope"][1]
        print(f"  RSS target <= 60 MiB: {'met' if rss_ours <= 60 else 'MISSED'} ({rss_ours:.1f} MiB)")
        for anchor in ("glances -t 2", "btop", "htop -d 20"):
            if anchor in res:
                print(
                    f"  below {anchor}{' (stretch)' if anchor.startswith('htop') else ''}: "
                    f"{'yes' if ours < res[anchor][0] else 'NO'} ({ours:.2f}% vs {res[anchor][0]:.2f}%)"
                )
        g = res.get("glances -t 2")
        print(
            f"  target <= 1% of one core: whole app {'met' if ours <= 1.0 else 'MISSED'} "
            f"({ours:.2f}%); resources probe + pane {'met' if area <= 1.0 else 'MISSED'} ({area:.2f}%)"
            + (
                f"; below glances: app {'yes' if ours < g[0] else 'NO'}, "
                f"resources {'yes' if area < g[0] else 'NO'}"
                if g
                else ""
            )
        )
        print(f"  (CPU resolution: 1 tick = {100.0 / CLK / dt:.3f}% over this window)")
    finally:
        subprocess.run([tmux, "-L", sock, "kill-server"], capture_output=True)
        cont.close()


def _q(a: str) -> str:
    import shlex

    return shlex.quote(a)


# --quiet-host: what is hidden from the console (and every other tool measured) so that the
# machine's own churn (other people's namespaces, VMs, containers, journal) is not measured
QUIET_HIDE = (
    "/run/netns",
    "/run/libvirt",
    "/var/log/libvirt",  # libvirtd.log too: the shared machine's daemon writes it all the time
    "/run/docker",
    "/run/containerd",
    "/var/log/journal",
    "/var/log/audit",
)
QUIET_ENV = "TSH_BENCH_QUIET_HOST"


def enter_quiet_host(argv: Sequence[str]) -> int | None:
    """Run this bench again in new PID, mount and network namespaces (None: we are inside).

    Inside, /proc shows only the bench's processes, the directories of QUIET_HIDE are empty
    tmpfs mounts and the network namespace has only `lo`: the idle figures are then the
    tools' own cost, not their reactions to whatever else the machine is doing. The process
    events connector exists only in the initial network namespace: spawns are not counted."""
    if os.environ.get(QUIET_ENV):
        for d in QUIET_HIDE:
            if os.path.isdir(d):
                subprocess.run(["mount", "-t", "tmpfs", "tsh-bench-quiet", d], check=True)
        for sock in ("/run/docker.sock", "/var/run/docker.sock"):
            if os.path.exists(sock) and not os.path.islink(sock):
                subprocess.run(["mount", "--bind", "/dev/null", sock], check=True)
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return None
    unshare = shutil.which("unshare")
    if not unshare:
        print("bench.resources: --quiet-host needs unshare (util-linux)", file=sys.stderr)
        return 2
    cmd = [unshare, "--pid", "--fork", "--mount-proc", "--mount", "--net", "--propagation", "private"]
    cmd += [sys.executable, "-m", "bench.resources", *argv]
    return subprocess.run(cmd, env=dict(os.environ, **{QUIET_ENV: "1", RUN_ENV: run_id()})).returncode


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.resources", description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=500)
    ap.add_argument("--workloads", type=int, default=50)
    ap.add_argument("--window", type=float, default=60.0, help="idle measurement window, s")
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--skip-idle", action="store_true")
    ap.add_argument(
        "--quiet-host",
        action="store_true",
        help="measure the idle cost in private PID/mount/network namespaces (the machine's churn hidden)",
    )
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench.resources: needs root (creates cgroups)", file=sys.stderr)
        return 2
    if args.quiet_host:
        rc = enter_quiet_host(sys.argv[1:] if argv is None else list(argv))
        if rc is not None:
            return rc
        print(
            "(quiet host: every tool runs in private PID, mount and network namespaces with "
            + ", ".join(QUIET_HIDE)
            + " hidden)"
        )
    asyncio.run(bench_refresh(args.groups))
    if not args.skip_idle:
        bench_idle(args.workloads, args.window, args.warmup)
    return 0


if __name__ == "__main__":
    sys.exit(main())
