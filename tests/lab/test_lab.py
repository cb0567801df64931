"""The training lab end to end (root): `lab up` builds tenants the console places; each fault's
`break` makes its documented findings appear (engine and `check --json`), `fix` makes them go;
`down` leaves no namespace, link, cgroup or process; `down` after a killed `up` cleans up;
names already taken make `up` refuse and stay untouched."""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from probes.lab import faults as labfaults
from probes.lab.plan import make_plan
from tests.fixtures.lab import (
    REPO,
    Lab,
    check_json,
    ids,
    lab_taken,
    listing,
    observe,
    tenantscope,
    tenantscope_here,
)
from tests.helpers import needs_root, needs_tool

# the lab's names are held by one test session at a time (lab_lock waits up to 4 minutes for
# another session's lab tests): the bound covers that wait
pytestmark = [needs_root, needs_tool("ip"), pytest.mark.timeout(300)]


def test_up_shows_tenants_and_services(lab: Lab) -> None:
    rec = lab.record()
    assert rec["complete"] and len(rec["netns"]) == 8
    st = tenantscope("lab", "--dir", lab.dir, "status", "--json")
    assert st.returncode == 0, st.stdout
    # the services answer over the tenant's own bridge: acme's web reaches acme's db
    r = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            "tsl-acme-web",
            sys.executable,
            "-c",
            "import socket; s = socket.create_connection(('10.213.1.2', 8080), 3); print(s.recv(64).decode())",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert r.stdout.strip() == "tsl-acme-db", r.stderr
    # ... and the engine places every lab workload in its tenant
    import asyncio

    from probes.config import load
    from probes.netns_fold import namespace_name
    from probes.session import Options, make_engine

    async def placed() -> dict[str, tuple[str, str]]:
        eng = make_engine(Options(config=load(lab.config), config_path=lab.config))
        try:
            s = await eng.refresh_once()
            return {
                w.name: (w.tenant or "", namespace_name(w))
                for w in s.workloads()
                if w.name.startswith("tsl-")
            }
        finally:
            await eng.stop()

    got = asyncio.run(placed())
    for w in make_plan(3).workloads():
        # one service, one workload: its container, placed in its tenant, its namespace named on it
        assert w.name not in got, f"{w.name}: the namespace is shown beside its container"
        assert any(n.startswith(w.name + "[") and v == (w.tenant, w.name) for n, v in got.items()), (
            w.name,
            got,
        )


# what a fault's part of the lab needs installed: missing, the fault's test skips (decided at
# collection); installed, the lab must have built that part, or the test fails
NEEDS = {
    "ovs": ("ovs-vsctl", "ovsdb-server", "ovs-vswitchd", "ovsdb-tool"),
    "vms": ("libvirtd", "virtlogd", "virsh", "qemu-system-x86_64"),
}
FAULTS = [
    pytest.param(f, marks=needs_tool(*NEEDS.get(f.needs, ())), id=f.name) for f in labfaults.FAULTS.values()
]


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_break_and_fix(lab: Lab, fault: labfaults.Fault) -> None:
    why = labfaults.available(fault, labfaults.context(labfaults.Store(lab.dir)).rec)
    assert not why, f"{fault.name}: {why} (its tools are installed: the lab should have built it)"
    want = set(fault.findings)
    # the fault's findings are the ones that were not there before (VM-01 warns about DAC-only
    # confinement on a host without SELinux/AppArmor before any fault)
    before = observe(lab.config)
    before_cli = check_json(lab.config, sorted(want))
    r = lab.run("break", fault.name)
    assert r.returncode == 0, r.stderr
    try:
        noisy = fault.name == "noisy-neighbour"  # rates need two samples of one engine
        during = observe(lab.config, refreshes=8 if noisy else 1, until=fault.findings[0] if noisy else None)
        assert want <= ids(during - before), f"{fault.name}: expected {want}, engine found {during - before}"
        if not noisy:  # a fresh `check` has no rate yet: one sample
            via_cli = check_json(lab.config, sorted(want))
            assert want <= ids(via_cli - before_cli), f"{fault.name}: check --json found {via_cli}"
        assert lab.record()["faults"] == [fault.name]
    finally:
        r = lab.run("fix", fault.name)
    assert r.returncode == 0, r.stderr
    after = observe(lab.config, refreshes=3 if fault.name == "noisy-neighbour" else 1)
    assert not want & ids(after - before), f"{fault.name}: still present after fix: {after - before}"
    if fault.name != "noisy-neighbour":
        assert not want & ids(check_json(lab.config, sorted(want)) - before_cli)
    assert lab.record()["faults"] == []


def test_fault_refusals(lab: Lab) -> None:
    r = lab.run("break", "no-such-fault")
    assert r.returncode == 2 and "unknown fault 'no-such-fault'" in r.stderr
    assert lab.run("fix", "shared-bridge").stdout.strip() == "shared-bridge: shared-bridge is not broken"
    r = tenantscope("lab", "--dir", lab.dir + "-other", "up")  # a second lab: every name collides
    assert r.returncode == 2 and "exist already" in r.stderr and "tsl-acme-web" in r.stderr
    assert lab.run("status").returncode == 0  # the first lab untouched


def test_baseline_and_diff_report_the_fault_and_nothing_else(lab: Lab, tmp_path) -> None:
    """A snapshot of the real lab, a real fault, then `check --baseline` and `diff` (issue 18)."""
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    r = tenantscope_here("snapshot", "--config", lab.config, "-o", str(good))
    assert r.returncode == 0, r.stderr
    r = lab.run("break", "shared-bridge")
    assert r.returncode == 0, r.stderr
    try:
        r = tenantscope_here(
            "check", "--config", lab.config, "--baseline", str(good), "--fail-on", "new", "--format", "json"
        )
        assert r.returncode == 1, r.stderr  # a fail new since the baseline
        drift = json.loads(r.stdout)["drift"]
        assert tenantscope_here("snapshot", "--config", lab.config, "-o", str(bad)).returncode == 0
        d = tenantscope_here("diff", str(good), str(bad), "--config", lab.config, "--format", "json")
        assert d.returncode == 1, d.stderr
        via_diff = json.loads(d.stdout)
    finally:
        assert lab.run("fix", "shared-bridge").returncode == 0
    for got in (drift, via_diff):
        # the lab's own objects (other namespaces may come and go on a shared machine)
        others = [
            (c["kind"], c["summary"])
            for c in got["changes"]
            if c["area"] != "findings" and "tsl-" in c["summary"]
        ]
        # the fault re-plugs globex's first workload's host-side veth into acme's bridge
        assert [k for k, _ in others] == ["port-joined"], others
        assert "joined bridge tsl-b-acme (left tsl-b-globex)" in others[0][1], others
        new = {c["summary"].split()[0] for c in got["changes"] if c["kind"] == "finding-new"}
        assert {"NET-02", "NET-04"} <= new, new
        assert not [
            c["summary"] for c in got["changes"] if c["kind"] == "finding-cleared" and "tsl-" in c["summary"]
        ]
    # the baseline itself is no drift: a check against it exits 0 with --fail-on new
    r = tenantscope_here(
        "check",
        "--config",
        lab.config,
        "--baseline",
        str(good),
        "--fail-on",
        "new",
        "--check",
        "NET-02",
        "--check",
        "NET-04",
    )  # the fault's checks, fixed again
    assert r.returncode == 0, r.stdout[-2000:]
    assert not [line for line in r.stdout.splitlines() if " NEW " in line and "tsl-" in line], r.stdout[
        -2000:
    ]


def test_down_leaves_nothing(lab: Lab) -> None:
    pids = [p["pid"] for p in lab.record()["procs"] + lab.record()["ovs_daemons"]]
    vm_logs = [f"/var/log/libvirt/qemu/{name}.log" for name, _ in lab.record()["vms"]]
    assert all(os.path.exists(f) for f in vm_logs), vm_logs  # libvirt wrote them at start
    r = lab.run("down")
    assert r.returncode == 0, r.stderr
    after = listing(lab.dir)
    for kind, items in after.items():
        assert items <= lab.before[kind], f"{kind} left behind: {items - lab.before[kind]}"
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z", pid
    assert not os.path.exists(os.path.join(lab.dir, "state.json"))
    assert not [f for f in vm_logs if os.path.exists(f)], "the lab's VM logs were left behind"
    again = lab.run("down")
    assert again.returncode == 0 and "nothing to remove" in again.stdout


def test_down_after_killed_up(lab_lock, tmp_path) -> None:
    assert not lab_taken(), lab_taken()  # the lab tests before this one removed theirs
    d = str(tmp_path / "lab")
    before = listing(d)
    p = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "lab", "--dir", d, "up", "--tenants", "4"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    state = os.path.join(d, "state.json")
    killed_at = ""
    for _ in range(400):  # kill it part-way: once namespaces are recorded
        try:
            text = open(state).read()
        except OSError:
            text = ""
        if '"tsl-globex-' in text or p.poll() is not None:
            os.kill(p.pid, signal.SIGKILL)
            killed_at = text
            break
        time.sleep(0.005)
    p.wait()
    assert killed_at, "up never recorded anything"
    r = tenantscope("lab", "--dir", d, "status")
    assert "half-built" in r.stdout and r.returncode == 1, r.stdout
    r = tenantscope("lab", "--dir", d, "down")
    assert r.returncode == 0, r.stdout + r.stderr
    after = listing(d)
    for kind, items in after.items():
        assert items <= before[kind], f"{kind} left behind after a killed up: {items - before[kind]}"
    assert tenantscope("lab", "--dir", d, "down").returncode == 0


def test_up_refuses_taken_names_and_leaves_them(lab_lock, tmp_path) -> None:
    assert not lab_taken(), lab_taken()  # the lab tests before this one removed theirs
    subprocess.run(["ip", "netns", "add", "tsl-globex-db"], check=True)  # not the lab's
    try:
        r = tenantscope("lab", "--dir", str(tmp_path / "lab"), "up")
        assert r.returncode == 2 and "network namespace tsl-globex-db" in r.stderr
        assert "tsl-globex-db" in os.listdir("/run/netns")
        assert not [n for n in os.listdir("/run/netns") if n.startswith("tsl-") and n != "tsl-globex-db"]
        d = tenantscope("lab", "--dir", str(tmp_path / "lab"), "down")
        assert d.returncode == 0 and "tsl-globex-db" in os.listdir("/run/netns")  # never the lab's to remove
    finally:
        subprocess.run(["ip", "netns", "del", "tsl-globex-db"])


def test_needs_root() -> None:
    """`lab up` as a non-root user refuses on one line. The user is really `nobody`: a forked
    child of this test drops to uid/gid 65534 and runs the CLI's main() on modules imported
    before the drop. A new interpreter would have to read the checkout and its venv, which
    `nobody` cannot do in a private directory (a clone under /root or `mktemp -d`: "No module
    named 'tui'"); the refusal under test does not depend on where the code lives."""
    from tui import cli

    importlib.import_module("probes.lab.command")  # now: the child cannot read the checkout

    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 99
        try:
            os.close(rfd)
            os.dup2(wfd, 1)
            os.dup2(wfd, 2)
            sys.stdout = sys.stderr = open(wfd, "w", closefd=False)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            code = cli.main(["lab", "--dir", "/tmp/tsi-nobody", "up"])
        except BaseException as e:  # reported to the parent, which asserts
            os.write(wfd, f"child: {type(e).__name__}: {e}".encode())
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(wfd)
    out = b""
    end = time.monotonic() + 30
    with os.fdopen(rfd, "rb") as r:
        while time.monotonic() < end:
            ready, _, _ = select.select([r], [], [], 0.5)
            chunk = r.read1(65536) if ready else b""
            if ready and not chunk:
                break
            out += chunk
        else:
            os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 2, text
    assert "run it as root" in text and "tenantscope: lab:" in text, text
