"""Starting the workload services (probes/lab/service.py, run as `python -I -S service.py
JSON`) and stopping recorded processes safely.

A process is named by (PID, start time): `signal_proc` and `kill_all` signal only a process
that is still the one the lab started, never a later process that reused its PID. Services
start concurrently; each says `ready` on a pipe once it listens, and its PID is recorded (via
`on_start`) before the wait.
"""

from __future__ import annotations

import json
import os
import platform
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from probes.lab.record import LabError, Proc

# x86_64 syscall numbers refused with EPERM by the service's seccomp filter.
DENIED_X86_64 = (
    101,
    155,
    163,
    165,
    166,
    167,
    168,
    169,
    175,
    176,
    246,
    248,
    249,
    250,
    272,
    298,
    304,
    308,
    313,
    320,
    321,
    323,
)

SERVICE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "service.py")


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks after boot), None when gone."""
    try:
        raw = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    return int(raw[raw.rindex(")") + 2 :].split()[19])


def alive(p: Proc) -> bool:
    return start_time(p.pid) == p.start


def signal_proc(p: Proc, sig: int) -> bool:
    """Signal the recorded process only if it is still the one we started."""
    if not alive(p):
        return False
    try:
        os.kill(p.pid, sig)
        return True
    except ProcessLookupError:
        return False


def spawn_services(
    items: Sequence[tuple[str, str, list[str], int]], on_start, timeout: float = 15.0
) -> list[Proc]:
    """Start one service per (name, netns path, cgroup dirs, port) concurrently; `on_start`
    records each Proc as soon as its PID is known; wait until every one says it listens."""
    deny = list(DENIED_X86_64) if platform.machine() == "x86_64" else []
    started: list[tuple[subprocess.Popen[bytes], Proc]] = []
    for name, netns, cgroups, port in items:
        arg = json.dumps({"name": name, "netns": netns, "cgroups": cgroups, "port": port, "deny": deny})
        p = subprocess.Popen(
            [sys.executable, "-I", "-S", SERVICE, arg],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd="/",
            start_new_session=True,
            close_fds=True,
        )
        rec = Proc(p.pid, start_time(p.pid) or 0, f"service {name}")
        on_start(rec)
        started.append((p, rec))
    end = time.monotonic() + timeout
    problems = []
    for (p, rec), (name, *_rest) in zip(started, items):
        assert p.stdout is not None and p.stderr is not None
        line = b""
        os.set_blocking(p.stdout.fileno(), True)
        left = max(0.1, end - time.monotonic())
        r, _, _ = select.select([p.stdout], [], [], left)
        if r:
            line = p.stdout.readline()
        if line.strip() != b"ready":
            err = b""
            if p.poll() is not None:
                err = p.stderr.read()
            problems.append(
                f"{name}: the service did not start ({err.decode(errors='replace').strip() or 'no answer'})"
            )
        p.stdout.close()
        p.stderr.close()
        p.returncode = 0  # not our child to wait for after this: init reaps it (Popen's __del__ quiet)
    if problems:
        raise LabError("; ".join(problems))
    return [rec for _, rec in started]


def kill_all(procs: Sequence[Proc], timeout: float = 3.0) -> list[Proc]:
    """SIGTERM, then SIGKILL after `timeout`; returns those that could not be stopped."""
    live = [p for p in procs if signal_proc(p, signal.SIGTERM)]
    end = time.monotonic() + timeout
    while live and time.monotonic() < end:
        _reap(procs)
        live = [p for p in live if alive(p) and not _zombie(p.pid)]
        if live:
            time.sleep(0.02)
    for p in live:
        signal_proc(p, signal.SIGKILL)
    time.sleep(0.01 if live else 0)
    _reap(procs)
    return [p for p in live if alive(p) and not _zombie(p.pid)]


def _zombie(pid: int) -> bool:
    try:
        raw = open(f"/proc/{pid}/stat").read()
    except OSError:
        return True
    return raw[raw.rindex(")") + 2] == "Z"


def _reap(procs: Sequence[Proc]) -> None:
    """Reap those of `procs` that are this process's own children (an in-process `up`), by PID
    only: other children of the caller are not ours to wait for."""
    for p in procs:
        try:
            os.waitpid(p.pid, os.WNOHANG)
        except ChildProcessError:
            pass
