"""CTR-* checks on real processes: started with `unshare` (with and without their own user, net,
pid, mount namespaces), capabilities dropped with `setpriv` or not, no_new_privs and a real
seccomp filter or not; found by the real container inventory (probes/inventory/containers.py)
from this machine's /proc, then judged by the checks."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from probes.checks.container import _mount_problem, caps
from probes.hosts.local import LocalHost
from probes.inventory.containers import discover
from probes.model import (
    ContainerDetails,
    Host,
    HostState,
    Mount,
    State,
    Status,
    Workload,
    WorkloadKind,
)
from tests.fixtures.checks import bad, results
from tests.helpers import needs_root, needs_tool

# Installs an allow-all seccomp filter (mode 2) and execs sleep: a real filter, as runtimes do.
SECCOMP = r"""
import ctypes, os, struct
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(struct.pack("HBBI", 0x06, 0, 0, 0x7fff0000))  # BPF_RET|BPF_K, ALLOW
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
prog = Prog(1, ctypes.cast(buf, ctypes.c_void_p))
assert libc.prctl(22, 2, ctypes.byref(prog), 0, 0) == 0, ctypes.get_errno()  # PR_SET_SECCOMP, FILTER
os.execvp("sleep", ["sleep", "60"])
"""

SCENARIOS = {
    # root with every capability, own pid/uts/ipc only: the host's net and mounts
    "privileged": ["unshare", "--pid", "--fork", "--uts", "--ipc", "sleep", "60"],
    # own pid/uts/ipc/net/mnt, every capability dropped, no_new_privs, a seccomp filter
    "dropped": [
        "unshare",
        "--pid",
        "--fork",
        "--uts",
        "--ipc",
        "--net",
        "--mount",
        "setpriv",
        "--no-new-privs",
        "--bounding-set=-all",
        "--inh-caps=-all",
        sys.executable,
        "-c",
        SECCOMP,
    ],
    # its own user namespace (root inside, mapped to root outside only inside the namespace)
    "userns": [
        "unshare",
        "--user",
        "--map-root-user",
        "--pid",
        "--fork",
        "--net",
        "--mount",
        "--uts",
        "--ipc",
        "sleep",
        "60",
    ],
}


@dataclass
class Started:
    launcher: subprocess.Popen
    pid: int  # the sleep inside


def _child_sleep(parent: int) -> int:
    for _ in range(300):
        try:
            kids = open(f"/proc/{parent}/task/{parent}/children").read().split()
        except OSError:
            kids = []
        for k in kids:
            try:
                if open(f"/proc/{k}/comm").read().strip() == "sleep":
                    return int(k)
            except OSError:
                pass
        time.sleep(0.01)
    raise AssertionError(f"no sleep under pid {parent}")


@pytest.fixture(scope="module")
def fleet():
    """The three real 'containers', the container inventory's view of them, and a State."""
    # only tests marked needs_root use it: as a user they are skipped before this runs
    started: dict[str, Started] = {}
    try:
        for name, argv in SCENARIOS.items():
            p = subprocess.Popen(
                argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            started[name] = Started(p, _child_sleep(p.pid))
        workloads = asyncio.run(discover(LocalHost("hv1", root="")))
        mine: dict[str, Workload] = {}
        for name, s in started.items():
            w = next((w for w in workloads if w.container and s.pid in w.container.pids), None)
            assert w is not None, f"{name}: pid {s.pid} not found as a container"
            mine[name] = w
        state = State(hosts=(HostState(host=Host("hv1"), workloads=tuple(mine.values())),), taken_at=1.0)
        yield mine, state
    finally:
        for s in started.values():
            try:
                os.killpg(s.launcher.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            s.launcher.wait()


def _for(state: State, cid: str, w: Workload) -> list[Status]:
    return [f.status for f in results(state, cid) if w.key in f.workloads]


@needs_root
@needs_tool("unshare", "setpriv")
def test_the_inventory_sees_what_was_started(fleet):
    mine, _ = fleet
    priv, drop, user = mine["privileged"].container, mine["dropped"].container, mine["userns"].container
    assert priv and drop and user
    assert priv.cap_eff >> 21 & 1 and drop.cap_eff == 0  # CAP_SYS_ADMIN
    assert drop.no_new_privs and not priv.no_new_privs
    assert drop.seccomp_mode == 2 and priv.seccomp_mode == 0
    assert user.own_user_namespace and not priv.own_user_namespace
    assert {"net", "mnt"} <= set(priv.shared_namespaces)


@needs_root
@needs_tool("unshare", "setpriv")
def test_privileged_process_fails_ctr_01_to_05_and_09(fleet):
    mine, state = fleet
    w = mine["privileged"]
    assert _for(state, "CTR-01", w) == [Status.FAIL]
    f2 = [f for f in bad(state, "CTR-02") if w.key in f.workloads][0]
    assert "CAP_SYS_ADMIN" in f2.summary and "CAP_SYS_MODULE" in f2.summary
    f3 = [f for f in bad(state, "CTR-03") if w.key in f.workloads][0]
    assert f3.status == Status.FAIL and "net" in f3.summary and "mnt" in f3.summary
    assert "pid" not in f3.summary.split("shares")[1]  # it has its own pid namespace
    assert _for(state, "CTR-04", w) == [Status.WARN]
    assert _for(state, "CTR-05", w) == [Status.FAIL]
    assert _for(state, "CTR-09", w) == [Status.WARN]
    assert f"/proc/{w.container.init_pid}/status: CapEff" in results(state, "CTR-01")[0].evidence[0].where  # type: ignore[union-attr]


@needs_root
@needs_tool("unshare", "setpriv")
def test_dropped_process_passes_what_it_dropped(fleet):
    mine, state = fleet
    w = mine["dropped"]
    for cid in ("CTR-01", "CTR-02", "CTR-03", "CTR-05", "CTR-09"):
        assert _for(state, cid, w) == [], cid  # no finding for this container
    assert _for(state, "CTR-04", w) == [Status.WARN]  # still no user namespace
    # its mount namespace is a copy of the host's: the host's /sys is there, writable
    assert any("/sys writable" in f.summary for f in bad(state, "CTR-08") if w.key in f.workloads)


@needs_root
@needs_tool("unshare")
def test_user_namespace_makes_full_caps_harmless(fleet):
    mine, state = fleet
    w = mine["userns"]
    assert w.container and w.container.cap_eff  # root inside its namespace
    for cid in ("CTR-01", "CTR-02", "CTR-03", "CTR-04"):
        assert _for(state, cid, w) == [], cid


def test_no_containers_is_skipped():
    st = State(hosts=(HostState(host=Host("hv1")),))
    assert [f.status for f in results(st, "CTR-01")] == [Status.SKIPPED]


def test_mount_rules():
    def m(src, tgt, fs, opts="rw", root="/"):  # type: ignore[no-untyped-def]
        return _mount_problem(Mount(source=src, target=tgt, fstype=fs, options=opts, root=root))

    assert m("/dev/sda1", "/var/run/docker.sock", "ext4", root="/run/docker.sock")[0] == Status.FAIL  # type: ignore[index]
    assert m("sysfs", "/sys", "sysfs", "ro") is None
    assert m("sysfs", "/sys", "sysfs", "rw")[0] == Status.FAIL  # type: ignore[index]
    assert m("proc", "/host/proc", "proc")[0] == Status.FAIL  # type: ignore[index]
    assert m("/dev/sda1", "/host-etc", "ext4", root="/etc")[0] == Status.FAIL  # type: ignore[index]
    assert m("/dev/sda1", "/data", "ext4", "ro", root="/srv/tenant-a") is None
    assert m("overlay", "/", "overlay") is None
    assert m("/dev/sda1", "/etc/hosts", "ext4", root="/var/lib/docker/containers/abc/hosts") is None
    assert caps(1 << 21 | 1) == ["CHOWN", "SYS_ADMIN"]


def test_lsm_label_judged():
    c = ContainerDetails(
        lsm_label="docker-default (enforce)",
        seccomp_mode=2,
        no_new_privs=True,
        own_user_namespace=True,
        init_pid=5,
        pids=(5,),
    )
    w = Workload(kind=WorkloadKind.CONTAINER, name="web", host="hv1", tenant="acme", container=c)
    st = State(hosts=(HostState(host=Host("hv1"), workloads=(w,)),))
    assert [f.status for f in results(st, "CTR-06")] == [Status.PASS]
    from dataclasses import replace

    un = replace(w, container=replace(c, lsm_label="unconfined"))
    st2 = State(hosts=(HostState(host=Host("hv1"), workloads=(un,)),))
    f = results(st2, "CTR-06")[0]
    assert f.status == Status.FAIL and f.tenants == ("acme",)
    spc = replace(w, container=replace(c, lsm_label="system_u:system_r:spc_t:s0"))
    assert (
        results(State(hosts=(HostState(host=Host("hv1"), workloads=(spc,)),)), "CTR-06")[0].status
        == Status.FAIL
    )


@needs_root
@needs_tool("unshare", "setpriv")
def test_privileged_means_the_hosts_whole_bounding_set(fleet):
    """Facts give PID 1's CapBnd: a process holding all of it is privileged, one lacking some
    of what the host grants is not (CTR-02 still names its dangerous capabilities)."""
    from dataclasses import replace

    from probes.facts.model import HostFacts

    mine, state = fleet
    w = mine["privileged"]
    hs = state.hosts[0]
    same = replace(state, hosts=(replace(hs, facts=HostFacts(cap_bnd_init=w.container.cap_eff)),))  # type: ignore[union-attr]
    assert _for(same, "CTR-01", w) == [Status.FAIL]
    wider = replace(state, hosts=(replace(hs, facts=HostFacts(cap_bnd_init=(1 << 41) - 1)),))
    if w.container.cap_eff != (1 << 41) - 1:  # type: ignore[union-attr]
        assert _for(wider, "CTR-01", w) == []
    assert _for(wider, "CTR-02", w) == [Status.FAIL]
