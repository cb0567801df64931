"""Container checks: what a container's init process really has, and the limits on its cgroup.

The container inventory (probes/inventory/containers.py) reads each container's init process
from /proc: CapEff, Seccomp, NoNewPrivs, the LSM label, the namespaces it shares with the host,
whether it has its own user namespace, and its mounts. These checks judge those fields, in the
spirit of amicontained and docker-bench-security; evidence names the /proc field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from probes.checks.base import CheckSpec, Skip, check, finding
from probes.checks.common import containers, limits_of, live_limits, passed, per_host
from probes.hosts.libvirt_uri import why_not_read
from probes.model import (
    SEVERITY_ORDER,
    ConnState,
    Evidence,
    Finding,
    HostKind,
    HostState,
    Mount,
    Severity,
    State,
    Status,
    Workload,
    WorkloadKind,
)

CAP_NAMES = (
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
)
CAP = {n: i for i, n in enumerate(CAP_NAMES)}
DANGEROUS = ("SYS_ADMIN", "SYS_MODULE", "SYS_PTRACE", "DAC_READ_SEARCH", "NET_ADMIN", "SYS_RAWIO")
# Every capability up to AUDIT_READ (37) exists on any kernel that runs containers today; a
# process with all of them (and all the host knows of, when facts say cap_last_cap) is
# privileged: docker --privileged, lxc without dropping, a root shell in unshare.
BASE_FULL = (1 << 38) - 1
HOST_NS = ("net", "pid", "ipc", "uts", "mnt")
NS_SEVERITY = {
    "net": Severity.HIGH,
    "pid": Severity.HIGH,
    "mnt": Severity.HIGH,
    "ipc": Severity.MEDIUM,
    "uts": Severity.LOW,
}
RUNTIME_SOCKETS = (
    "docker.sock",
    "containerd.sock",
    "crio.sock",
    "podman.sock",
    "libvirt-sock",
    "virtqemud-sock",
    "lxd.socket",
    "unix.socket",
    "cri-dockerd.sock",
)
SENSITIVE_ROOTS = (
    "/etc",
    "/root",
    "/boot",
    "/var/run",
    "/run",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/var/lib/libvirt",
    "/var/lib/kubelet",
    "/home",
    "/usr",
    "/lib",
    "/proc",
    "/sys",
    "/dev",
)
PSEUDO_FS = (
    "proc",
    "sysfs",
    "tmpfs",
    "devpts",
    "mqueue",
    "cgroup",
    "cgroup2",
    "overlay",
    "securityfs",
    "debugfs",
    "tracefs",
    "bpf",
    "hugetlbfs",
    "pstore",
    "configfs",
    "fusectl",
    "nsfs",
    "autofs",
    "binfmt_misc",
    "rpc_pipefs",
    "efivarfs",
    "shm",
    "fuse.lxcfs",
    "ramfs",
)


Judge = Callable[[HostState, Workload], Iterable[Finding]]


def caps(mask: int) -> list[str]:
    return [n for i, n in enumerate(CAP_NAMES) if mask >> i & 1] + [
        f"cap{i}" for i in range(len(CAP_NAMES), 64) if mask >> i & 1
    ]


def _gap(hs: HostState, source: str) -> tuple[Status, str] | None:
    if containers(hs):
        return None
    err = next((e for e in hs.probe_errors if e.probe == "containers"), None)
    if err:
        return Status.ERROR, f"container inventory failed: {err.message}"
    c = hs.connection("ssh")
    if c is not None and c.state != ConnState.UP:
        return Status.ERROR, f"host {c.state}"
    if source == "demo":
        return Status.SKIPPED, "demo fleet: no containers"
    if hs.host.kind == HostKind.LIBVIRT:
        return Status.SKIPPED, why_not_read(hs.host.name, hs.host.libvirt_uri, "containers")
    return Status.SKIPPED, "no containers on this host"


def _each(state: State, spec: CheckSpec, judge: Judge) -> Iterator[Finding]:
    """Run `judge(hs, w)` -> findings for every container (per_host; a host without
    containers gets the reason); PASS for a host where no container was judged bad."""

    def body(hs: HostState) -> Iterator[Finding]:
        cs = containers(hs)
        bad = 0
        for w in cs:
            for f in judge(hs, w):
                bad += 1
                yield f
        if not bad:
            yield passed(spec, hs, f"{len(cs)} container(s) checked")

    yield from per_host(state, spec, body, gap=lambda hs: _gap(hs, state.source))


def _f(
    spec: CheckSpec,
    hs: HostState,
    w: Workload,
    status: Status,
    summary: str,
    ev: list[Evidence],
    fix: str | None = None,
    severity: Severity | None = None,
) -> Finding:
    assert w.container
    runtime = w.container.runtime or "unknown runtime"
    return finding(
        spec,
        status,
        f"container {w.name} ({w.tenant or 'unplaced'}, {runtime}, pid {w.container.init_pid}): {summary}",
        host=hs.host.name,
        tenants=[w.tenant] if w.tenant else [],
        workloads=[w.key],
        evidence=ev,
        fix=fix,
        severity=severity,
    )


def _status_ev(w: Workload, field: str, value: str) -> Evidence:
    assert w.container
    return Evidence(f"/proc/{w.container.init_pid}/status: {field}", value)


def _full_mask(hs: HostState) -> int:
    """What "every capability" means on this host: the bounding set of PID 1 when the facts
    know it (a host or sandbox may have dropped some for everyone), else all up to AUDIT_READ."""
    if hs.facts and hs.facts.cap_bnd_init:
        return hs.facts.cap_bnd_init
    last = hs.facts.cap_last_cap if hs.facts and hs.facts.cap_last_cap else None
    return (1 << (last + 1)) - 1 if last and last >= 37 else BASE_FULL


def _privileged(hs: HostState, cap_eff: int) -> bool:
    full = _full_mask(hs)
    if cap_eff & full == full:
        return True
    # without the host's bounding set: all but at most two of the classic 38, SYS_ADMIN among them
    return (
        not (hs.facts and hs.facts.cap_bnd_init)
        and cap_eff >> CAP["SYS_ADMIN"] & 1 == 1
        and bin(cap_eff & BASE_FULL).count("1") >= 36
    )


@check(
    "CTR-01",
    "container",
    "Container is not privileged (full capability set)",
    "A container holding every capability without its own user namespace can load kernel "
    "modules, mount the host's disks and reach every other tenant: it is the host.",
    Severity.CRITICAL,
    fix="Run it without --privileged; drop all capabilities and add back only what it needs "
    "(docker run --cap-drop ALL --cap-add NET_BIND_SERVICE ...).",
    reads=("workloads", "connections", "probe_errors", "facts", "source"),
    scope="host",
)
def ctr01_privileged(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def judge(hs: HostState, w: Workload) -> Iterator[Finding]:
        c = w.container
        assert c
        if _privileged(hs, c.cap_eff):
            ev = [
                _status_ev(
                    w,
                    "CapEff",
                    f"{c.cap_eff:016x} ({bin(c.cap_eff).count('1')} capabilities, "
                    f"host bounding set {_full_mask(hs):016x})",
                )
            ]
            if c.own_user_namespace:
                return  # capabilities of a user namespace act only on what that namespace owns
            yield _f(
                spec, hs, w, Status.FAIL, "privileged: full capability set in the host's user namespace", ev
            )

    yield from _each(state, spec, judge)


@check(
    "CTR-02",
    "container",
    "No dangerous capabilities",
    "SYS_ADMIN, SYS_MODULE, SYS_PTRACE, DAC_READ_SEARCH, NET_ADMIN and SYS_RAWIO each open a "
    "known way out of a container (mounts, modules, ptrace of host processes, open_by_handle, "
    "host network changes, raw I/O).",
    Severity.HIGH,
    fix="docker run --cap-drop ALL --cap-add ONLY_WHAT_IT_NEEDS (never SYS_ADMIN); in Kubernetes "
    "securityContext.capabilities.drop: [ALL].",
    reads=("workloads", "connections", "probe_errors", "source"),
    scope="host",
)
def ctr02_dangerous_caps(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def judge(hs: HostState, w: Workload) -> Iterator[Finding]:
        c = w.container
        assert c
        if c.own_user_namespace:
            return
        bad = [n for n in DANGEROUS if c.cap_eff >> CAP[n] & 1]
        if bad:
            yield _f(
                spec,
                hs,
                w,
                Status.FAIL,
                "holds " + ", ".join(f"CAP_{n}" for n in bad),
                [_status_ev(w, "CapEff", f"{c.cap_eff:016x}: " + " ".join(caps(c.cap_eff)))],
                fix="--cap-drop " + " --cap-drop ".join(bad),
            )

    yield from _each(state, spec, judge)


@check(
    "CTR-03",
    "container",
    "No host namespace shared (net, pid, ipc, uts, mnt)",
    "A container in the host's network, PID, IPC, UTS or mount namespace sees and touches the "
    "host's (and other tenants') interfaces, processes, shared memory or files.",
    Severity.HIGH,
    fix="Do not run with --net=host, --pid=host, --ipc=host, --uts=host (hostNetwork/hostPID/"
    "hostIPC in Kubernetes).",
    reads=("workloads", "connections", "probe_errors", "source"),
    scope="host",
)
def ctr03_host_namespaces(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def judge(hs: HostState, w: Workload) -> Iterator[Finding]:
        c = w.container
        assert c
        shared = [n for n in HOST_NS if n in c.shared_namespaces]
        if shared:
            sev = max((NS_SEVERITY[n] for n in shared), key=SEVERITY_ORDER.__getitem__)
            status = Status.WARN if sev == Severity.LOW else Status.FAIL
            yield _f(
                spec,
                hs,
                w,
                status,
                "shares the host's " + ", ".join(shared) + " namespace(s)",
                [Evidence(f"/proc/{c.init_pid}/ns/{n}", "same inode as /proc/1/ns/" + n) for n in shared],
                fix="Run it without "
                + " ".join(f"--{'network' if n == 'net' else n}=host" for n in shared if n != "mnt")
                if any(n != "mnt" for n in shared)
                else spec.fix,
                severity=sev,
            )

    yield from _each(state, spec, judge)


@check(
    "CTR-04",
    "container",
    "Container has its own user namespace",
    "Without a user namespace, root in the container is root on the host: any escape (a kernel "
    "bug, a bad mount) lands with full host privileges.",
    Severity.MEDIUM,
    fix="Enable user namespace remapping (dockerd --userns-remap=default; podman --userns=auto; "
    "Kubernetes hostUsers: false).",
    reads=("workloads", "connections", "probe_errors", "source"),
    scope="host",
)
def ctr04_no_userns(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def judge(hs: HostState, w: Workload) -> Iterator[Finding]:
        c = w.container
        assert c
        if not c.own_user_namespace:
            yield _f(
                spec,
                hs,
                w,
                Status.WARN,
                "no user namespace: uid 0 inside is uid 0 on the host",
                [Evidence(f"/proc/{c.init_pid}/ns/user", "same inode as /proc/1/ns/user")],
            )

    yield from _each(state, spec, judge)


@check(
    "CTR-05",
    "container",
    "seccomp filter on",
    "seccomp removes the system calls containers never need (kexec, bpf, keyctl, ...): most "
    "container escapes through kernel bugs go through one of them.",
    Severity.HIGH,
    fix="Run with the runtime's default seccomp profile (do not pass --security-opt "
    "seccomp=unconfined; Kubernetes seccompProfile: RuntimeDefault).",
    reads=("workloads", "connections", "probe_errors", "source"),
    scope="host",
)
def ctr05_seccomp(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def judge(hs: HostState, w: Workload) -> Iterator[Finding]:
        c = w.container
        assert c
        if c.seccomp_mode == 0:
            yield _f(spec, hs, w, Status.FAIL, "seccomp is off", [_status_ev(w, "Seccomp", "0 (disabled)")])

    yield from _each(state, spec, judge)


def _unconfined(label: str) -> bool:
    lab = label.strip().lower()
    return (
        not lab
        or lab.startswith("unconfined")
        or ":unconfined_t:" in lab
        or ":spc_t:" in lab
        or lab == "kernel"
    )


@check(
    "CTR-06",
    "container",
    "Container confined by AppArmor or SELinux",
    "The runtime's AppArmor profile or SELinux type (container_t with unique categories) is what "
    "stops a container from writing to /proc, /sys and other containers' files after a breakout.",
    Severity.MEDIUM,
    fix="Keep the runtime's default profile (no --security-opt apparmor=unconfined or "
    "label=disable); enable AppArmor/SELinux on the host (HOST-02).",
    reads=("workloads", "connections", "probe_errors", "facts", "source"),
    scope="host",
)
def ctr06_lsm(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def judge(hs: HostState, w: Workload) -> Iterator[Finding]:
        c = w.container
        assert c
        if _unconfined(c.lsm_label):
            no_lsm = bool(hs.facts and not hs.facts.mac_enabled)
            yield _f(
                spec,
                hs,
                w,
                Status.FAIL,
                "unconfined" + (" (the host has no SELinux or AppArmor)" if no_lsm else ""),
                [Evidence(f"/proc/{c.init_pid}/attr/current", c.lsm_label or "(no LSM label)")],
            )

    yield from _each(state, spec, judge)


@check(
    "CTR-07",
    "container",
    "Container without pids, memory or CPU limits",
    "A container without a pids limit can fork-bomb the host, without a memory limit it "
    "can push the host into the OOM killer, and without a CPU cap it can take every core: "
    "each starves the other tenants.",
    Severity.MEDIUM,
    "Set limits in the runtime (e.g. `docker update --pids-limit 512 --memory 1g --cpus 1 "
    "NAME`) or on the cgroup (pids.max, memory.max / memory.limit_in_bytes, cpu.max / "
    "cpu.cfs_quota_us).",
    reads=("workloads", "samples"),
    figures=limits_of,
)
def ctr07_no_limits(state: State, spec: CheckSpec) -> Iterator[Finding]:
    containers = [(hs, w) for hs in state.hosts for w in hs.workloads if w.kind == WorkloadKind.CONTAINER]
    if not containers:
        return
    read = 0
    for hs, w in containers:
        live = live_limits(hs, w.key)
        if live is None:
            continue
        read += 1
        missing = [
            what
            for what, v, known in (
                ("pids", live.pids_limit, live.pids_known),
                ("memory", live.mem_limit_bytes, live.mem_known),
                ("cpu", live.cpu_quota_cores, live.cpu_known),
            )
            if known and v is None
        ]
        if not missing:
            continue
        sev = Severity.MEDIUM if "memory" in missing or "pids" in missing else Severity.LOW
        yield finding(
            spec,
            Status.FAIL if ("memory" in missing and "pids" in missing) else Status.WARN,
            f"{w.name}: no {', '.join(missing)} limit",
            host=hs.host.name,
            tenants=[w.tenant] if w.tenant else [],
            workloads=[w.key],
            evidence=[
                Evidence(
                    f"{live.source}: {live.where}",
                    f"pids.max={live.pids_limit or 'max'} "
                    f"memory={live.mem_limit_bytes or 'max'} "
                    f"cpu quota={live.cpu_quota_cores or 'max'} cores",
                )
            ],
            severity=sev,
        )
    if read == 0:
        raise Skip("no cgroup limits read yet for any container")


def _mount_problem(m: Mount) -> tuple[Status, Severity, str] | None:
    names = {m.source.rsplit("/", 1)[-1], m.target.rsplit("/", 1)[-1], m.root.rsplit("/", 1)[-1]}
    if names & set(RUNTIME_SOCKETS):
        return (
            Status.FAIL,
            Severity.CRITICAL,
            f"container runtime socket {m.root if m.root != '/' else m.source} at {m.target}",
        )
    if m.fstype == "devtmpfs":
        return Status.FAIL, Severity.HIGH, f"the host's /dev (devtmpfs) at {m.target}"
    if m.fstype == "sysfs" and m.writable:
        return Status.FAIL, Severity.HIGH, f"/sys writable at {m.target}"
    if m.fstype == "proc" and m.target != "/proc" and not m.target.startswith("/proc/"):
        return Status.FAIL, Severity.HIGH, f"a host /proc at {m.target}"
    if m.fstype not in PSEUDO_FS and m.target != "/":
        root = m.root.rstrip("/") or "/"
        if root == "/":
            if m.writable and m.target not in ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf"):
                return Status.WARN, Severity.MEDIUM, f"a whole filesystem ({m.source}) writable at {m.target}"
        elif any(root == s or root.startswith(s + "/") for s in SENSITIVE_ROOTS) and not root.startswith(
            ("/var/lib/docker/containers/", "/var/lib/containers/")
        ):
            rw = "writable" if m.writable else "read-only"
            return (
                (Status.FAIL if m.writable else Status.WARN),
                Severity.HIGH,
                f"host path {root} ({rw}) at {m.target}",
            )
    return None


@check(
    "CTR-08",
    "container",
    "No sensitive host path mounted",
    "A container runtime socket, the host's /, /etc, /dev or a writable /sys inside a container "
    "is a way out: the socket alone starts a privileged container.",
    Severity.CRITICAL,
    fix="Remove the bind mount (-v /var/run/docker.sock:... and the like); mount only the "
    "directories the workload owns, read-only where possible.",
    reads=("workloads", "connections", "probe_errors", "source"),
    scope="host",
)
def ctr08_mounts(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def judge(hs: HostState, w: Workload) -> Iterator[Finding]:
        c = w.container
        assert c
        if "mnt" in c.shared_namespaces:
            return  # it sees the host's mounts as they are: CTR-03 reports that
        for m in c.mounts[:2000]:
            p = _mount_problem(m)
            if p:
                status, sev, what = p
                yield _f(
                    spec,
                    hs,
                    w,
                    status,
                    what,
                    [
                        Evidence(
                            f"/proc/{c.init_pid}/mountinfo",
                            f"{m.root} {m.target} {m.options} - {m.fstype} {m.source}",
                        )
                    ],
                    severity=sev,
                )

    yield from _each(state, spec, judge)


@check(
    "CTR-09",
    "container",
    "no_new_privs set",
    "Without no_new_privs a process in the container can gain privileges through setuid "
    "binaries or file capabilities, undoing the capabilities the runtime dropped.",
    Severity.LOW,
    fix="docker run --security-opt no-new-privileges (Kubernetes allowPrivilegeEscalation: false).",
    reads=("workloads", "connections", "probe_errors", "source"),
    scope="host",
)
def ctr09_no_new_privs(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def judge(hs: HostState, w: Workload) -> Iterator[Finding]:
        c = w.container
        assert c
        if not c.no_new_privs:
            yield _f(spec, hs, w, Status.WARN, "no_new_privs is off", [_status_ev(w, "NoNewPrivs", "0")])

    yield from _each(state, spec, judge)
