"""The container inventory on real namespaced processes (unshare, setpriv, a seccomp filter),
and, on a synthetic /proc tree, the recognition of runtimes that cannot run here."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from probes.hosts.local import LocalHost
from probes.inventory import procfs
from probes.inventory.containers import ContainerProbe, ContainerScan, discover
from probes.model import Host, HostState, Workload, WorkloadKind
from tests.fixtures.procs import HOST_NS, Procs, SyntheticProc, procs, seccomp_argv, synthetic_proc  # noqa: F401
from tests.helpers import needs_root, needs_tool

NO_CAPS = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]


def _holding(ws: tuple[Workload, ...], pid: int) -> Workload | None:
    return next((w for w in ws if w.container and pid in w.container.pids), None)


# ------------------------------------------------------------------ real processes


@needs_root
@needs_tool("unshare", "setpriv")
async def test_pid_uts_ipc_namespaces_with_dropped_caps_and_no_new_privs(procs: Procs):
    s = procs.start(
        [
            "unshare",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--uts",
            "--ipc",
            *NO_CAPS,
            "--no-new-privs",
            "sleep",
            "600",
        ]
    )
    w = _holding(await discover(LocalHost()), s.leaf)
    assert w is not None and w.kind == WorkloadKind.CONTAINER
    c = w.container
    assert c.init_pid == s.leaf  # not the unshare parent outside the new pid namespace
    assert s.leader in c.pids  # ... which is folded in as the launcher
    assert c.cap_eff == 0
    assert c.no_new_privs is True
    assert c.seccomp_mode == 0
    assert set(c.shared_namespaces) >= {"net", "user"}
    assert not {"pid", "uts", "ipc", "mnt"} & set(c.shared_namespaces)
    assert c.own_user_namespace is False and c.uid_map == ""
    assert c.runtime == "" and c.name_source == ""  # nothing recognised: a made-up name
    assert w.name == f"sleep[{s.leaf}]"
    assert any(m.target == "/proc" and m.fstype == "proc" for m in c.mounts)
    assert c.command == "sleep 600"
    assert w.state == "running"


@needs_root
@needs_tool("unshare")
async def test_own_user_namespace_keeps_capabilities_inside(procs: Procs):
    s = procs.start(["unshare", "--user", "--map-root-user", "--uts", "sleep", "600"])
    w = _holding(await discover(LocalHost()), s.leaf)
    assert w is not None
    c = w.container
    assert c.own_user_namespace is True
    assert "user" not in c.shared_namespaces and "uts" not in c.shared_namespaces
    assert c.uid_map == "0 0 1"  # root inside is root (uid 0) outside: the map says so
    assert c.cap_eff != 0  # all capabilities, within its user namespace
    assert c.no_new_privs is False
    assert "net" in c.shared_namespaces


@needs_root
@needs_tool("unshare")
async def test_seccomp_filter_is_reported(procs: Procs):
    s = procs.start(seccomp_argv(["unshare", "--uts", "--ipc", "sleep", "600"]))
    w = _holding(await discover(LocalHost()), s.leaf)
    assert w is not None
    assert w.container.seccomp_mode == 2
    assert w.container.cap_eff != 0  # caps kept: only seccomp differs from the first test


@needs_root
@needs_tool("unshare")
async def test_plain_netns_and_mount_only_processes_are_not_containers(procs: Procs):
    net = procs.start(["unshare", "--net", "sleep", "600"])
    mnt = procs.start(["unshare", "--mount", "sleep", "600"])
    ctr = procs.start(["unshare", "--uts", "sleep", "600"])
    ws = await discover(LocalHost())
    assert _holding(ws, net.leaf) is None
    assert _holding(ws, mnt.leaf) is None
    assert _holding(ws, ctr.leaf) is not None  # the control: the same call does see containers


@needs_root
@needs_tool("unshare")
async def test_one_container_per_namespace_set(procs: Procs):
    a = procs.start(["unshare", "--uts", "--ipc", "sh", "-c", "sleep 600 & sleep 601 & wait"])
    b = procs.start(["unshare", "--uts", "sleep", "600"])
    ws = await discover(LocalHost())
    wa, wb = _holding(ws, a.leaf), _holding(ws, b.leaf)
    assert wa is not None and wb is not None and wa.name != wb.name
    assert wa.container.init_pid == a.leader  # sh, the parent of both sleeps
    assert len(wa.container.pids) == 3 and a.leaf in wa.container.pids
    assert wb.container.pids == (b.leaf,)


@needs_root
@needs_tool("unshare", "setpriv", "base64")
async def test_batched_reads_equal_direct_reads(procs: Procs):
    """The remote path (all /proc files through one command) sees exactly what direct reads
    see, even for a process whose command line imitates the batch framing."""
    forged = "\n0\nQ2FwRWZmOgkwMDAwMDAwMDAwMDAwMDAw\n0\n"
    s1 = procs.start(
        ["unshare", "--pid", "--fork", "--kill-child", "--uts", *NO_CAPS, "--no-new-privs", "sleep", "600"]
    )
    s2 = procs.start(["unshare", "--user", "--map-root-user", "--ipc", "sh", "-c", "sleep 601; :", forged])
    h = LocalHost()
    direct, batched = await discover(h, batch=False), await discover(h, batch=True)
    # others' tests run too: only our processes; and their mounts are the host's (shared
    # mount namespace), which other tests' `ip netns add` change between the two reads
    mine = lambda ws: [  # noqa: E731
        replace(w, container=replace(w.container, mounts=()))
        for w in ws
        if {s1.leaf, s2.leaf} & set(w.container.pids)
    ]
    assert len(mine(direct)) == 2 and mine(direct) == mine(batched)
    assert all(w.container.mounts for w in batched if {s1.leaf, s2.leaf} & set(w.container.pids))
    assert _holding(batched, s1.leaf) is not None
    w2 = _holding(batched, s2.leaf)
    assert w2.container.init_pid == s2.leader and w2.container.command.endswith(forged)


def test_merge_replaces_only_containers():
    host = Host("h")
    vm = Workload(WorkloadKind.VM, "acme-vm", "h")
    ns = Workload(WorkloadKind.NETNS, "acme-ns", "h")
    old = Workload(WorkloadKind.CONTAINER, "gone", "h")
    new = Workload(WorkloadKind.CONTAINER, "new", "h")
    st = ContainerProbe().merge(HostState(host, workloads=(vm, ns, old)), ContainerScan((new,)))
    assert st.workloads == (vm, ns, new)


# ------------------------------------------------------------------ synthetic /proc tree (fake)

DOCKER_ID = "a" * 64
PODMAN_ID = "b" * 64
CRIO_ID = "c" * 64
CTRD_ID = "d" * 64
DOCKER2_ID = "e" * 64


@needs_tool("find", "stat", "base64")
@pytest.mark.parametrize("batch", [False, True], ids=["direct-reads", "batched-reads"])
async def test_runtime_recognition_on_synthetic_proc_tree(synthetic_proc: SyntheticProc, batch: bool):
    """A fake /proc: docker, containerd, cri-o, podman and lxc cannot run on this machine."""
    s = synthetic_proc

    def ctr(pid: int, cgroup: str, **kw):
        s.proc(pid, ns={"pid": s.new_ns(), "mnt": s.new_ns(), "uts": s.new_ns()}, cgroup=cgroup, **kw)

    ctr(
        101,
        f"0::/system.slice/docker-{DOCKER_ID}.scope\n",
        label="docker-default (enforce)\n",
        cap_eff=0xA80425FB,
        seccomp=2,
    )
    ctr(102, f"12:memory:/docker/{DOCKER2_ID}\n0::/\n")
    ctr(103, f"0::/machine.slice/libpod-{PODMAN_ID}.scope/container\n")
    ctr(
        104,
        f"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice/crio-{CRIO_ID}.scope\n",
    )
    ctr(
        105,
        f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod99.slice/cri-containerd-{CTRD_ID}.scope\n",
    )
    ctr(106, "0::/lxc.payload.web01\n")
    ctr(107, "4:memory:/lxc/db02\n0::/\n")
    ctr(108, "0::/machine.slice/machine-lxc\\x2d4242\\x2dshop\\x2dfront.scope\n")
    # A libvirt QEMU VM with a private mount namespace: excluded (the libvirt probe owns VMs)
    s.proc(
        109,
        ns={"mnt": s.new_ns()},
        cgroup="0::/machine.slice/machine-qemu\\x2d3\\x2dacme\\x2dvm.scope/libvirt/emulator\n",
        name="qemu-system-x86",
    )
    s.proc(110, ns={"mnt": s.new_ns()}, cgroup="4:memory:/machine/qemu-2-globex-vm.libvirt-qemu/emulator\n")
    # Runtime state on disk: names and labels
    s.file(
        f"/var/lib/docker/containers/{DOCKER_ID}/config.v2.json",
        {"Name": "/acme-web", "Config": {"Labels": {"com.example.tenant": "acme"}}},
    )
    s.file(
        f"/run/containers/storage/overlay-containers/{CRIO_ID}/userdata/config.json",
        {
            "annotations": {
                "io.kubernetes.pod.namespace": "globex",
                "io.kubernetes.pod.name": "api-0",
                "io.kubernetes.container.name": "app",
                "io.kubernetes.cri-o.Labels": '{"tenant": "globex"}',
            }
        },
    )
    s.file(
        "/var/lib/containers/storage/overlay-containers/containers.json",
        [{"id": PODMAN_ID, "names": ["initech-db"]}],
    )

    ws = await discover(LocalHost("fake", root=str(s.root)), batch=batch)
    by_pid = {w.container.init_pid: w for w in ws}
    assert set(by_pid) == {101, 102, 103, 104, 105, 106, 107, 108}  # no QEMU
    got = {
        pid: (w.container.runtime, w.container.container_id, w.name, w.container.name_source)
        for pid, w in by_pid.items()
    }
    assert got[101] == ("docker", DOCKER_ID, "acme-web", "docker")
    assert got[102] == ("docker", DOCKER2_ID, f"docker:{DOCKER2_ID[:12]}", "")
    assert got[103] == ("podman", PODMAN_ID, "initech-db", "oci")
    assert got[104] == ("cri-o", CRIO_ID, "globex/api-0/app", "oci")
    assert got[105] == ("containerd", CTRD_ID, f"containerd:{CTRD_ID[:12]}", "")
    assert got[106] == ("lxc", "", "web01", "cgroup")
    assert got[107] == ("lxc", "", "db02", "cgroup")
    assert got[108] == ("libvirt-lxc", "4242", "shop-front", "cgroup")
    d = by_pid[101].container
    assert d.labels == (("com.example.tenant", "acme"),)
    assert d.lsm_label == "docker-default (enforce)"
    assert (d.cap_eff, d.seccomp_mode) == (0xA80425FB, 2)
    assert d.cgroup == f"/system.slice/docker-{DOCKER_ID}.scope"
    assert ("tenant", "globex") in by_pid[104].container.labels
    assert by_pid[102].container.cgroup == f"/docker/{DOCKER2_ID}"
    assert all(w.host == "fake" for w in ws)


async def test_runtime_records_are_read_in_one_batch(synthetic_proc: SyntheticProc, monkeypatch):
    """The containers' names and labels from docker's config.v2.json and podman's
    containers.json come from the batched read of the /proc files (locally one worker-thread
    hop per discovery), not from one read per file: `read_text` is made to fail here. A
    record that is not JSON gives the made-up name, as an absent one does."""
    s = synthetic_proc
    ids = [f"{i:x}" * 64 for i in range(1, 5)]
    for n, cid in enumerate(ids):
        s.proc(
            201 + n,
            ns={"pid": s.new_ns(), "uts": s.new_ns()},
            cgroup=f"0::/system.slice/docker-{cid}.scope\n",
        )
        if n < 3:
            s.file(f"/var/lib/docker/containers/{cid}/config.v2.json", {"Name": f"/web-{n}", "Config": {}})
    (s.root / f"var/lib/docker/containers/{ids[2]}/config.v2.json").write_text("{not json")
    s.proc(
        205, ns={"pid": s.new_ns(), "uts": s.new_ns()}, cgroup=f"0::/machine.slice/libpod-{PODMAN_ID}.scope\n"
    )
    s.file(
        "/var/lib/containers/storage/overlay-containers/containers.json", [{"id": PODMAN_ID, "names": ["db"]}]
    )
    host = LocalHost("fake", root=str(s.root))

    async def refuse(path: str, **kw) -> str:
        raise AssertionError(f"read one by one: {path}")

    monkeypatch.setattr(host, "read_text", refuse)
    names = {w.container.init_pid: w.name for w in await discover(host)}
    assert names == {
        201: "web-0",
        202: "web-1",
        203: f"docker:{ids[2][:12]}",
        204: f"docker:{ids[3][:12]}",
        205: "db",
    }


@needs_tool("find", "stat")
async def test_unreadable_pid1_falls_back_to_kthreadd(synthetic_proc: SyntheticProc, tmp_path: Path):
    """Where PID 1's ns links cannot be read, PID 2 (a kernel thread) gives the host's set."""
    s = synthetic_proc
    for t in HOST_NS:
        os.unlink(s.root / "proc/1/ns" / t)  # like a PID 1 that holds more caps than we do
    s.proc(2, name="kthreadd", ppid=0)
    s.proc(300, ns={"uts": s.new_ns()})
    ws = await discover(LocalHost("fake", root=str(s.root)))
    assert [w.container.init_pid for w in ws] == [300]


def test_cgroup_and_status_parsers():
    cg = procfs.parse_cgroup("12:memory:/docker/x\n1:name=systemd:/init.scope\n0::/a/b\n")
    assert procfs.main_cgroup(cg) == "/a/b"
    assert procfs.main_cgroup(procfs.parse_cgroup("0::/\n3:cpu:/m/long/path\n2:pids:/m\n")) == "/m/long/path"
    mi = procfs.parse_mountinfo(
        "36 35 98:0 /var/run/docker.sock /run/docker.sock rw,relatime master:1 - tmpfs tmpfs rw\n"
        "37 35 98:0 / /data\\040dir ro,nosuid shared:2 - ext4 /dev/vd\\134a rw\n"
    )
    assert mi[0].root == "/var/run/docker.sock" and mi[0].writable
    assert mi[1].target == "/data dir" and mi[1].source == "/dev/vd\\a" and not mi[1].writable
    assert (
        procfs.command_line("app\0--password=hunter2\0--token\0abc\0DB_PASS=x\0-v\0")
        == "app --password=*** --token *** DB_PASS=*** -v"
    )


@pytest.mark.parametrize(
    "diff,rt,kind",
    [
        (frozenset(), None, "host"),
        (frozenset({"mnt"}), None, "sandbox"),
        (frozenset({"net"}), None, "netns"),
        (frozenset({"net", "mnt"}), None, "netns"),
        (frozenset({"pid", "mnt"}), None, "container"),
        (frozenset({"mnt"}), procfs.Runtime("docker", "x"), "container"),
        (frozenset({"mnt"}), procfs.Runtime("qemu", "1", "vm"), "vm"),
    ],
)
def test_classify(diff, rt, kind):
    assert procfs.classify(diff, rt) == kind


@needs_root
@needs_tool("unshare")
async def test_containers_sharing_a_mount_table_read_it_once(procs: Procs, monkeypatch):
    """Locally, containers in one mount namespace with one root (`unshare --uts`: the host's
    mounts) read /proc/PID/mountinfo once between them (the bench's 50 containers read the
    host's mount table 50 times at every safety poll); a container with a mount namespace of
    its own reads its own. Each gets the mounts its own file says."""
    a = procs.start(["unshare", "--uts", "sleep", "600"])
    b = procs.start(["unshare", "--ipc", "sleep", "601"])
    c = procs.start(["unshare", "--mount", "--uts", "sleep", "602"])
    read: list[str] = []
    real = procfs.read_many_local

    def recording(root: str, paths, limit: int = 4 << 20):  # type: ignore[no-untyped-def]
        read.extend(paths)
        return real(root, paths, limit)

    monkeypatch.setattr(procfs, "read_many_local", recording)
    ws = await discover(LocalHost())
    wa, wb, wc = (_holding(ws, p.leaf) for p in (a, b, c))
    assert wa is not None and wb is not None and wc is not None
    mine = {f"/proc/{w.container.init_pid}/mountinfo" for w in (wa, wb)} & set(read)
    assert len(mine) == 1, mine  # the host's mount table: once for both
    assert f"/proc/{wc.container.init_pid}/mountinfo" in read
    assert wa.container.mounts == wb.container.mounts and wa.container.mounts
    assert wc.container.mounts == procfs.parse_mountinfo(open(f"/proc/{c.leaf}/mountinfo").read())
