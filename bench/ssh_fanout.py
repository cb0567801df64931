"""SSH fan-out: one reused connection vs a new connection per command; remote vs local refresh.

Runs a real OpenSSH sshd on 127.0.0.1 (the test fixture's, throwaway keys) and measures, in the
same run:

1. 50 probe commands (the /proc, /sys and `ip -j` reads the probes make):
   a. over ONE connection through SSHHost (the command server, sshmux: the default),
   b. over ONE connection, one SSH session per command (use_mux=False),
   c. a NEW connection per command (8 connects at once: sshd's MaxStartups drops bursts).
   Target: (c) at least 10x slower than (a).
2. A full refresh of every probe of one host (`make_engine(...).refresh_once()`), remote through
   SSHHost to 127.0.0.1 vs LocalHost on the same machine (libvirt through the test driver on
   both sides). Target: remote within 2x of local.

`--with-rc` lets root's login shell read ~/.bashrc for every session, as a stock root login
here does (pyenv init: 100+ ms of CPU per session): that is what (b) and (c) pay per command
and what the command server pays once per connection.

    .venv/bin/python -m bench.ssh_fanout [--with-rc] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time

import asyncssh

from probes.fleet import parse_target
from probes.hosts.ssh import SSHHost, remote_command
from probes.session import Options, make_engine
from tests.fixtures.sshd import Sshd, make_sshd, sshd_missing_reason

COMMANDS = [
    ["cat", "/proc/loadavg"],
    ["head", "-c", "262144", "--", "/proc/meminfo"],
    ["head", "-c", "262144", "--", "/proc/stat"],
    ["ip", "-j", "-d", "link", "show"],
    ["ip", "-j", "addr", "show"],
    ["ip", "-j", "netns", "list"],
    ["head", "-c", "262144", "--", "/proc/net/dev"],
    ["cat", "/proc/uptime"],
    ["head", "-c", "262144", "--", "/proc/diskstats"],
    ["cat", "/proc/sys/net/ipv4/ip_forward"],
]
N = 50


def _argvs() -> list[list[str]]:
    return [COMMANDS[i % len(COMMANDS)] for i in range(N)]


def _host(s: Sshd, **kw) -> SSHHost:
    return SSHHost(
        parse_target(s.target),
        known_hosts=s.known_hosts,
        client_keys=[s.client_key],
        agent_path=None,
        config=[],
        **kw,
    )


async def one_connection(s: Sshd, use_mux: bool) -> float:
    h = _host(s, use_mux=use_mux)
    try:
        await h.run(["true"])  # connect (and start the command server) outside the timing
        t = time.perf_counter()
        rs = await asyncio.gather(*(h.run(a, timeout=60) for a in _argvs()))
        d = time.perf_counter() - t
        assert all(r.ok for r in rs), [r.stderr for r in rs if not r.ok][:2]
        return d
    finally:
        await h.close()


async def new_connection_each(s: Sshd) -> float:
    sem = asyncio.Semaphore(8)

    async def one(argv: list[str]) -> None:
        async with (
            sem,
            asyncssh.connect(
                "127.0.0.1",
                port=s.port,
                username=parse_target(s.target).user,
                client_keys=[s.client_key],
                known_hosts=s.known_hosts,
                agent_path=None,
                config=[],
            ) as conn,
        ):
            r = await conn.run(remote_command(argv, wrap=False))
            assert r.exit_status == 0, r.stderr

    t = time.perf_counter()
    await asyncio.gather(*(one(a) for a in _argvs()))
    return time.perf_counter() - t


async def refresh_both(local_opts: Options, remote_opts: Options) -> dict[str, tuple[float, float]]:
    """{name: (first refresh including connecting, median of the following ones)}; the rounds
    alternate between the two so that load from elsewhere hits both alike."""
    engines = {"local": make_engine(local_opts), "remote": make_engine(remote_opts)}
    first: dict[str, float] = {}
    times: dict[str, list[float]] = {k: [] for k in engines}
    try:
        for k, e in engines.items():
            t = time.perf_counter()
            await e.refresh_once()
            first[k] = time.perf_counter() - t
        for _ in range(ROUNDS):
            for k, e in engines.items():
                t = time.perf_counter()
                await e.refresh_once()
                times[k].append(time.perf_counter() - t)
        for k, e in engines.items():
            errors = [f"{p.probe}: {p.message}" for h in e.state.hosts for p in h.probe_errors]
            if errors:
                print(f"  {k} probe errors:", *errors[:5], sep="\n    ")
        return {k: (first[k], statistics.median(times[k])) for k in engines}
    finally:
        for e in engines.values():
            await e.stop()


ROUNDS = 5


def main() -> int:
    global ROUNDS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--with-rc", action="store_true", help="let the login shell read ~/.bashrc")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    ROUNDS = args.rounds
    reason = sshd_missing_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    s = make_sshd(tempfile.mkdtemp(prefix="tse-bench-"), login_rc=args.with_rc)
    try:
        print(f"sshd on 127.0.0.1:{s.port}; login shell reads ~/.bashrc: {'yes' if args.with_rc else 'no'}")
        runs = [
            (
                asyncio.run(one_connection(s, True)),
                asyncio.run(one_connection(s, False)),
                asyncio.run(new_connection_each(s)),
            )
            for _ in range(3)
        ]
        mux, sess, new = (statistics.median(r[i] for r in runs) for i in range(3))
        print(f"{N} probe commands (median of 3):")
        print(f"  1 connection, command server  {mux * 1000:8.0f} ms")
        print(f"  1 connection, session each    {sess * 1000:8.0f} ms  ({sess / mux:5.1f}x)")
        print(f"  new connection each (8 at once){new * 1000:7.0f} ms  ({new / mux:5.1f}x)")
        print(f"  ratio new-connection / reused: {new / mux:.1f}x (target >= 10x)")

        with tempfile.NamedTemporaryFile("w", suffix=".ssh_config") as cfg:
            r = asyncio.run(
                refresh_both(
                    Options(libvirt_uri="test:///default"),
                    Options(
                        libvirt_uri="test:///default",
                        hosts=(s.target,),
                        known_hosts=s.known_hosts,
                        identity=(s.client_key,),
                        ssh_config=cfg.name,
                    ),
                )
            )
            local, remote = r["local"], r["remote"]
        print(f"full refresh of one host's probes (median of {ROUNDS}; first incl. connect):")
        print(f"  LocalHost                     {local[1] * 1000:8.0f} ms  (first {local[0] * 1000:.0f} ms)")
        print(
            f"  SSHHost to 127.0.0.1          {remote[1] * 1000:8.0f} ms  (first {remote[0] * 1000:.0f} ms)"
        )
        print(f"  ratio remote / local: {remote[1] / local[1]:.2f}x (target <= 2x)")
    finally:
        s.kill()
        shutil.rmtree(os.path.dirname(s.dir), ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
