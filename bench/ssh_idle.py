"""Idle cost of the console per SSH host: CPU and memory for 1, 10 and 30 hosts on one sshd.

The real console (`tenantscope --hosts-file F run`, the Textual app on a pseudo-terminal,
default interval) watches N host aliases of ONE real OpenSSH sshd on 127.0.0.1 (the test
fixture's, throwaway keys; an ssh_config names h1..hN), with a real libvirtd behind it (the
quiet view's own, 3 defined domains shut off; `--no-libvirtd`: none), whose read-only socket
each host forwards through its own SSH connection. After a warm-up, the
console's CPU time is measured over a window, and its memory (RSS and USS) at the end.
Baselines in the same run: the same console on the local host only (`--libvirt
test:///default`, itself in a quiet view: own mount, PID and network namespaces), and the
console with 1 SSH host. Per host = (cost with N hosts - local-only) / N, and per host added
beyond the first = (cost with N - cost with 1) / (N - 1). Target: at most 0.2% of one core and
3 MiB per idle host.

The hosts' quiet view: sshd runs in mount, PID and network namespaces of its own (empty
/run/netns, no libvirt logs, its own /proc, a network namespace with only lo), reached through
a loopback forwarder in this process (the same port on 127.0.0.1 of the machine): this machine
is shared, and other people's veths, namespaces and guests would be events for every host.

Also checked at the end of each run: one SSH connection per host (sshd's children), no `ssh`
process anywhere below the console, the header's "N hosts: ✓ N up", one forwarded libvirt
socket per host.

    .venv/bin/python -m bench.ssh_idle [--sizes 1 10 30] [--window 30] [--warmup 20] [--engine]
        [--no-libvirtd]

The warm-up is `--warmup` plus 1 s per host (WARMUP_PER_HOST). `--engine` measures the
console's engine (the same probes, transport and derive) without the TUI: the observation's
own cost per host, apart from drawing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pty
import re
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from tests.fixtures.sshd import Sshd, free_port, make_sshd, sshd_missing_reason

TENANTSCOPE = os.path.join(os.path.dirname(sys.executable), "tenantscope")
ANSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)")


@dataclass
class Run:
    label: str
    hosts: int
    cpu_pct: float  # of one core, over the window
    rss_mib: float
    uss_mib: float
    ssh_conns: int = 0
    ssh_children: int = 0
    sockets: int = 0
    header: str = ""


class Console:
    """The console on a pty; its output is drained (and kept) by a thread."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # child
            os.execve(argv[0], argv, env)
        import fcntl
        import struct
        import termios

        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 48, 160, 0, 0))
        os.kill(pid, signal.SIGWINCH)
        self.pid, self.fd = pid, fd
        self.out = bytearray()
        self._t = threading.Thread(target=self._drain, daemon=True)
        self._t.start()

    def _drain(self) -> None:
        while True:
            try:
                b = os.read(self.fd, 65536)
            except OSError:
                return
            if not b:
                return
            self.out += b
            if len(self.out) > 4 << 20:
                del self.out[: 2 << 20]

    def text(self) -> str:
        return ANSI.sub(b"", bytes(self.out[-(1 << 20) :])).decode("utf-8", "replace")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        for _ in range(50):
            if os.waitpid(self.pid, os.WNOHANG)[0]:
                break
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _env(home: str) -> dict[str, str]:
    # PYTHONPATH kept: a run of another tree's code (before/after in one sitting) reaches the children
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "PYTHONPATH")}
    env.update(
        TERM="xterm-256color",
        HOME=home,
        XDG_CONFIG_HOME=os.path.join(home, "config"),
        XDG_STATE_HOME=os.path.join(home, "state"),
        XDG_CACHE_HOME=os.path.join(home, "cache"),
        LANG=env.get("LANG", "C.UTF-8"),
    )
    return env


# sshd in a mount + PID namespace of its own whose view of the machine is quiet: no network
# namespaces (/run/netns empty), no libvirt logs (others' guests write them all the time), only
# its own processes in /proc. This machine is shared by tests that create namespaces, containers
# and guests all the time; the target is about an idle host.
QUIET = (
    "/usr/bin/unshare",
    "--mount",
    "--pid",
    "--net",
    "--fork",
    "--kill-child=SIGKILL",  # sshd (PID 1 there) dies with unshare, which dies with us
    "--mount-proc",
    "sh",
    "-c",
    "mkdir -p /run/netns /var/log/libvirt && mount -t tmpfs tsb-quiet /run/netns && "
    'mount -t tmpfs tsb-quiet /var/log/libvirt && ip link set lo up && exec "$@"',
    "sh",
)
# The hosts' libvirtd: a real system-mode libvirtd of the quiet view's own (its /run/libvirt,
# domain configs, state and cache on tmpfs there), with DOMAINS defined, shut off. It dies with
# the view (its PID namespace), and never meets the machine's own daemon, which tests start and
# stop all the time (two system daemons on one /run/libvirt take each other's sockets).
DOMAINS = 3
DOMAIN_XML = (
    "<domain type='qemu'><name>tsb-idle-{i}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
    "<os><type arch='x86_64' machine='pc'>hvm</type></os>"
    "<devices><emulator>{qemu}</emulator></devices></domain>"
)
WITH_LIBVIRTD = """
for d in /run/libvirt /etc/libvirt/qemu /var/lib/libvirt /var/cache/libvirt; do
  mkdir -p $d && mount -t tmpfs tsb-quiet $d || exit 1
done
{libvirtd} -d -p /run/libvirt/libvirtd.pid || exit 1
i=0
until {virsh} -q -c qemu:///system uri >/dev/null 2>&1; do
  i=$((i+1)); [ $i -gt 300 ] && echo 'bench: libvirtd did not answer' >&2 && exit 1; sleep 0.1
done
for x in {domains}/*.xml; do {virsh} -q -c qemu:///system define "$x" >/dev/null || exit 1; done
"""


def libvirtd_missing() -> str | None:
    from tests.fixtures.libvirtd import missing_tools

    missing = missing_tools()
    return f"needs {', '.join(missing)}" if missing else None


def quiet_view(tmp: str, libvirtd: bool) -> tuple[str, ...]:
    """QUIET, with a libvirtd of its own behind the hosts when `libvirtd`."""
    if not libvirtd:
        return QUIET
    from tests.fixtures.libvirtd import _which

    doms = os.path.join(tmp, "domains")
    os.makedirs(doms)
    qemu = _which("qemu-system-x86_64") or "qemu-system-x86_64"
    for i in range(1, DOMAINS + 1):
        with open(os.path.join(doms, f"d{i}.xml"), "w") as f:
            f.write(DOMAIN_XML.format(i=i, qemu=qemu))
    setup = WITH_LIBVIRTD.format(
        libvirtd=shlex.quote(_which("libvirtd") or "libvirtd"),
        virsh=shlex.quote(_which("virsh") or "virsh"),
        domains=shlex.quote(doms),
    )
    script = QUIET[-2]
    head, tail = script.split(' && exec "$@"')
    return (*QUIET[:-2], f'{head} || exit 1\n{setup}exec "$@"{tail}', QUIET[-1])


class Forwarder:
    """127.0.0.1:PORT here -> 127.0.0.1:PORT inside the network namespace of process `pid()`
    (the quiet sshd's): a socket made there stays there (setns in a fresh thread)."""

    def __init__(self, port: int, pid: Callable[[], int]) -> None:
        self.port, self.pid = port, pid
        self.lsock = socket.create_server(("127.0.0.1", port))
        self.lsock.settimeout(0.5)
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _inner(self) -> socket.socket:
        from probes.network.nsenter import in_netns

        out: list[socket.socket | BaseException] = []

        def make() -> None:
            try:
                out.append(in_netns(f"/proc/{self.pid()}/ns/net", lambda: socket.socket()))
            except BaseException as e:
                out.append(e)

        t = threading.Thread(target=make)
        t.start()
        t.join()
        if isinstance(out[0], BaseException):
            raise out[0]
        return out[0]

    def _accept(self) -> None:
        while not self.stopped:
            try:
                c, _ = self.lsock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket) -> None:
        for _ in range(100):  # sshd may not listen yet
            try:
                d = self._inner()
                d.connect(("127.0.0.1", self.port))
                break
            except OSError:
                time.sleep(0.05)
        else:
            c.close()
            return
        threading.Thread(target=self._pump, args=(d, c), daemon=True).start()
        self._pump(c, d)

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for x in (a, b):
                with contextlib.suppress(OSError):
                    x.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self.stopped = True
        self.lsock.close()


def quiet_sshd(tmp: str, libvirtd: bool = False) -> tuple[Sshd, Forwarder]:
    """The fixture's sshd in the quiet view (with its own libvirtd when `libvirtd`), reachable
    at 127.0.0.1:its port through a forwarder."""
    wrapper = quiet_view(tmp, libvirtd)
    s = Sshd(dir=tempfile.mkdtemp(prefix="tse-sshd-", dir=tmp), port=free_port(), wrapper=wrapper)
    s.setup()
    fwd = Forwarder(s.port, lambda: s.pid)
    s.start()
    if libvirtd:  # ready when its read-only socket is there (seen from the view's mounts)
        sock = f"/proc/{s.pid}/root/run/libvirt/libvirt-sock-ro"
        end = time.monotonic() + 60
        while not (os.path.exists(sock) and _defined(s.pid)):
            if (s.proc is not None and s.proc.poll() is not None) or time.monotonic() > end:
                raise RuntimeError(f"the quiet view's libvirtd did not start: {s.tail_log()}")
            time.sleep(0.2)
    return s, fwd


def _defined(pid: int) -> bool:
    """All DOMAINS defined in the view's libvirtd (their configs on its tmpfs)."""
    try:
        return sum(x.endswith(".xml") for x in os.listdir(f"/proc/{pid}/root/etc/libvirt/qemu")) >= DOMAINS
    except OSError:
        return False


def write_fleet(s: Sshd, n: int, d: str) -> list[str]:
    """ssh_config with aliases h1..hN for the one server, and a hosts file naming them."""
    import getpass

    cfg = os.path.join(d, f"ssh_config.{n}")
    with open(cfg, "w") as f:
        for i in range(1, n + 1):
            f.write(
                f"Host h{i}\n  HostName 127.0.0.1\n  Port {s.port}\n  User {getpass.getuser()}\n"
                f"  IdentityFile {s.client_key}\n"
            )
    hosts = os.path.join(d, f"hosts.{n}")
    with open(hosts, "w") as f:
        f.write("".join(f"h{i}\n" for i in range(1, n + 1)))
    return ["--hosts-file", hosts, "--ssh-config", cfg, "--known-hosts", s.known_hosts]


def _console_process(pid: int, wrapped: bool) -> psutil.Process:
    """The console itself (below the quiet view's unshare when `wrapped`)."""
    p = psutil.Process(pid)
    for _ in range(100 if wrapped else 0):
        for k in p.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                cmd = k.cmdline()
                if TENANTSCOPE in " ".join(cmd[:2]) or "--engine-child" in cmd:
                    return k
        time.sleep(0.1)
    return p


def measure(
    label: str,
    n: int,
    args: list[str],
    home: str,
    warmup: float,
    window: float,
    s: Sshd | None,
    wrapper: tuple[str, ...] = (),
) -> Run:
    if ENGINE_ONLY[0]:  # the engine without the TUI: what observing the hosts costs
        env = dict(_env(home), PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        c = Console([*wrapper, sys.executable, "-m", "bench.ssh_idle", "--engine-child", *args], env)
    else:
        c = Console([*wrapper, TENANTSCOPE, *args, "run"], _env(home))
    try:
        p = _console_process(c.pid, bool(wrapper))
        time.sleep(warmup)
        t0, cpu0 = time.monotonic(), p.cpu_times()
        time.sleep(window)
        t1, cpu1 = time.monotonic(), p.cpu_times()
        used = (cpu1.user + cpu1.system + cpu1.children_user + cpu1.children_system) - (
            cpu0.user + cpu0.system + cpu0.children_user + cpu0.children_system
        )
        mem = p.memory_full_info()
        r = Run(label, n, 100 * used / (t1 - t0), mem.rss / 2**20, mem.uss / 2**20)
        kids = p.children(recursive=True)
        r.ssh_children = sum(1 for k in kids if k.name() == "ssh")
        if s is not None:  # established TCP connections to the server: one per host
            r.ssh_conns = len(
                {
                    c.raddr.port
                    for c in psutil.net_connections("tcp")
                    if c.laddr and c.laddr.port == s.port and c.raddr and c.status == psutil.CONN_ESTABLISHED
                }
            )
        base = f"/tmp/tenantscope-{os.getuid()}"
        rd = os.environ.get("XDG_RUNTIME_DIR")
        for b in ([os.path.join(rd, "tenantscope")] if rd else []) + [base]:
            with contextlib.suppress(OSError):
                for e in os.listdir(b):
                    if e.startswith(f"fwd-{c.pid}-"):
                        r.sockets = len([x for x in os.listdir(os.path.join(b, e)) if x.endswith(".sock")])
        m = re.findall(r"\d+ hosts: [^│\n]*", c.text())
        r.header = m[-1].strip() if m else ""
        return r
    finally:
        c.stop()


ENGINE_ONLY = [False]
# warm-up added per host: every host's libvirt inventory arrived about 25 s after the start of
# a 30-host console at load 19 (findings rows move, the derive is busy until then): start-up,
# not idle
WARMUP_PER_HOST = 1.0


def engine_child(argv: list[str]) -> int:
    """`--engine-child [--libvirt URI | --hosts-file F --ssh-config C --known-hosts K]`: the
    console's engine (make_engine, the same probes and derive) without the TUI, until killed."""
    import asyncio

    from probes.session import Options, make_engine

    ap = argparse.ArgumentParser()
    for o in ("--libvirt", "--hosts-file", "--ssh-config", "--known-hosts"):
        ap.add_argument(o)
    a = ap.parse_args(argv)
    opts = Options(
        libvirt_uri=a.libvirt, hosts_file=a.hosts_file, ssh_config=a.ssh_config, known_hosts=a.known_hosts
    )

    async def run() -> None:
        engine = make_engine(opts)
        engine.start()
        await asyncio.Event().wait()

    asyncio.run(run())
    return 0


def main() -> int:
    if sys.argv[1:2] == ["--engine-child"]:
        return engine_child(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 30])
    ap.add_argument("--window", type=float, default=30.0)
    ap.add_argument("--warmup", type=float, default=20.0)
    ap.add_argument(
        "--busy", action="store_true", help="the hosts see this machine as it is (not a quiet view)"
    )
    ap.add_argument(
        "--engine",
        action="store_true",
        help="measure the console's engine without the TUI (what observing the hosts costs)",
    )
    ap.add_argument(
        "--no-libvirtd",
        action="store_true",
        help="no libvirtd behind the hosts (by default the quiet view runs its own, with "
        f"{DOMAINS} defined domains, shut off)",
    )
    args = ap.parse_args()
    ENGINE_ONLY[0] = args.engine
    libvirtd = not args.no_libvirtd and not args.busy
    if libvirtd and (why := libvirtd_missing()):
        print(f"no libvirtd behind the hosts: {why}")
        libvirtd = False
    reason = sshd_missing_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    sizes = sorted(set(args.sizes) | {1})
    tmp = tempfile.mkdtemp(prefix="tse-bench-idle-")
    fwd: Forwarder | None = None
    if args.busy:
        s = make_sshd(tmp)
    else:
        s, fwd = quiet_sshd(tmp, libvirtd)
    runs: list[Run] = []
    print(
        f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min)"
    )
    try:
        view = (
            "this machine as it is (busy)"
            if args.busy
            else "a quiet view (own mount, PID and network namespaces)"
        )
        what = "the engine without the TUI" if args.engine else "the console (TUI on a pty)"
        behind = (
            f"a libvirtd of the view's own with {DOMAINS} domains (shut off)" if libvirtd else "no libvirtd"
        )
        if args.busy:
            behind = "the machine's libvirtd, if one runs"
        print(
            f"sshd on 127.0.0.1:{s.port}, hosts see {view}, {behind}; {what}; "
            f"window {args.window:g} s after warm-up"
        )
        local = measure(
            "local only",
            0,
            ["--libvirt", "test:///default"],
            tmp,
            args.warmup,
            args.window,
            None,
            wrapper=() if args.busy else QUIET,
        )
        for n in sizes:
            runs.append(
                measure(
                    f"{n} SSH host(s)",
                    n,
                    write_fleet(s, n, tmp),
                    tmp,
                    args.warmup + n * WARMUP_PER_HOST,
                    args.window,
                    s,
                )
            )
    finally:
        s.kill()
        if fwd is not None:
            fwd.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min)"
    )
    base = runs[0]  # the console with one host: its fixed cost
    print(
        f"{'console':16} {'CPU % of a core':>16} {'RSS MiB':>8} {'USS MiB':>8}   per host beyond local-only | added per host beyond the first"
    )
    print(f"{local.label:16} {local.cpu_pct:16.2f} {local.rss_mib:8.1f} {local.uss_mib:8.1f}   (baseline)")
    for r in runs:
        avg = (
            f"{(r.cpu_pct - local.cpu_pct) / r.hosts:5.2f}% CPU, "
            f"{(r.uss_mib - local.uss_mib) / r.hosts:6.2f} MiB USS"
        )
        add = ""
        if r.hosts > 1:
            k = r.hosts - 1
            add = (
                f" | {(r.cpu_pct - base.cpu_pct) / k:5.2f}% CPU, {(r.uss_mib - base.uss_mib) / k:5.2f} MiB USS"
                f" ({(r.rss_mib - base.rss_mib) / k:5.2f} RSS)"
            )
        print(f"{r.label:16} {r.cpu_pct:16.2f} {r.rss_mib:8.1f} {r.uss_mib:8.1f}   {avg}{add}")
    for r in runs:
        print(
            f"  {r.hosts} host(s): {r.ssh_conns} SSH connection(s) at sshd, {r.ssh_children} `ssh` process(es) "
            f"below the console, {r.sockets} forwarded libvirt socket(s); header: {r.header or '(per host)'}"
        )
    last = runs[-1]
    cpu = (last.cpu_pct - local.cpu_pct) / last.hosts
    mem = (last.uss_mib - local.uss_mib) / last.hosts
    print(
        f"per idle host at {last.hosts} hosts (baseline: the local-only console, same run): {cpu:.2f}% of a core "
        f"(target <= 0.2%: {'met' if cpu <= 0.2 else 'MISSED'}), {mem:.2f} MiB USS "
        f"(target <= 3 MiB: {'met' if mem <= 3 else 'MISSED'}); ratio to the local-only console "
        f"{last.cpu_pct / max(local.cpu_pct, 0.01):.1f}x CPU, {last.uss_mib / max(local.uss_mib, 0.01):.2f}x USS"
    )
    if last.hosts > 1:
        k = last.hosts - 1
        cpu = (last.cpu_pct - base.cpu_pct) / k
        mem = (last.uss_mib - base.uss_mib) / k
        print(
            f"per added idle host at {last.hosts} hosts (baseline: the console with 1 host): {cpu:.2f}% of a core "
            f"(target <= 0.2%: {'met' if cpu <= 0.2 else 'MISSED'}), {mem:.2f} MiB USS "
            f"(target <= 3 MiB: {'met' if mem <= 3 else 'MISSED'})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
