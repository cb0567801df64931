"""A private userspace Open vSwitch for the lab: its own ovsdb-server and ovs-vswitchd, run dir,
database and sockets under the lab directory, so the host's own OVS (if any) is never touched.
The daemons' PIDs go into the lab record as soon as their pidfiles exist; `down` stops them by
those PIDs. The generated config points the topology probe at the private database
(`[network] ovsdb`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from probes.lab.record import LabError, Proc

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


def available() -> str:
    """'' when a private OVS can run here, else why not."""
    for tool in ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (apt-get install openvswitch-switch)"
    if not os.path.exists(SCHEMA):
        return f"{SCHEMA} missing"
    return ""


def env(d: Path) -> dict[str, str]:
    return {**os.environ, "OVS_RUNDIR": str(d), "OVS_DBDIR": str(d), "OVS_LOGDIR": str(d)}


def db(d: Path) -> str:
    return f"unix:{d}/db.sock"


def vsctl(d: Path, *args: str, check: bool = True) -> str:
    r = subprocess.run(
        ["ovs-vsctl", f"--db={db(d)}", "--timeout=10", *args], env=env(d), capture_output=True, text=True
    )
    if r.returncode and check:
        raise LabError(f"ovs-vsctl {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def _pid(d: Path, name: str) -> int | None:
    try:
        return int((d / f"{name}.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def start(d: Path, on_daemon) -> None:
    """Start both daemons in `d`; `on_daemon(Proc)` records each."""
    from probes.lab.proc import start_time

    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    e = env(d)
    conf = d / "conf.db"

    def run(argv: list[str]) -> None:
        r = subprocess.run(argv, env=e, capture_output=True, text=True)
        if r.returncode:
            raise LabError(f"{argv[0]}: {r.stderr.strip() or f'exit {r.returncode}'}")

    if not conf.exists():
        run(["ovsdb-tool", "create", str(conf), SCHEMA])
    for name, argv in (
        (
            "ovsdb-server",
            [
                "ovsdb-server",
                str(conf),
                f"--remote=punix:{d}/db.sock",
                "--pidfile",
                "--detach",
                f"--log-file={d}/ovsdb-server.log",
            ],
        ),
        (
            "ovs-vswitchd",
            ["ovs-vswitchd", db(d), "--pidfile", "--detach", f"--log-file={d}/ovs-vswitchd.log"],
        ),
    ):
        run(argv)
        pid = _pid(d, name)
        if pid is None:
            raise LabError(f"{name} started but wrote no pidfile in {d}")
        on_daemon(Proc(pid, start_time(pid) or 0, name))
        if name == "ovsdb-server":
            run(["ovs-vsctl", f"--db={db(d)}", "--no-wait", "init"])


def add_bridge(d: Path, name: str) -> None:
    vsctl(d, "--may-exist", "add-br", name, "--", "set", "Bridge", name, "datapath_type=netdev")


def stop(daemons: list[Proc], d: Path | None) -> list[Proc]:
    from probes.lab.proc import kill_all

    left = kill_all(list(reversed(daemons)), timeout=3.0)
    if d is not None and d.exists() and not left:
        shutil.rmtree(d, ignore_errors=True)
    return left


def wait_socket(d: Path, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not (d / "db.sock").exists():
        if time.monotonic() > end:
            raise LabError(f"ovsdb-server: no socket {d}/db.sock")
        time.sleep(0.02)
