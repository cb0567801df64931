"""Host checks (HOST-01..11): what the hypervisor host itself does for isolation.

They read HostFacts (probes/facts/probe.py: /dev/kvm, CPU flags, LSMs, libvirt's config files,
/sys/devices/system/cpu/vulnerabilities, KSM, kvm nested, IOMMU groups, cgroups, sockets,
processes) and, where a rule depends on the guests, the host's VMs. A host without facts (the
demo fleet, a failed read) is skipped or errored with the reason, never passed.
"""

from __future__ import annotations

from collections.abc import Iterator

from probes.checks.base import CheckSpec, check, finding
from probes.checks.common import dom, is_loopback, keys, passed, per_host, tenants_of, vms, who
from probes.facts.model import HostFacts
from probes.model import Evidence, Finding, HostState, Severity, State, Status, WorkloadKind

KVM_FLAGS = ("vmx", "svm")


def _no_libvirt(facts: HostFacts) -> bool:
    q, d = facts.qemu_conf, facts.libvirtd_conf
    return not (q and q.present) and not (d and d.present) and not facts.libvirt_sockets


def _truthy(v: str) -> bool:
    return v.strip().lower() in ("1", "yes", "true", "on")


# ---------------------------------------------------------------- HOST-01


@check(
    "HOST-01",
    "host",
    "Hardware virtualization present and usable",
    "Without KVM every guest runs under QEMU's TCG emulator: slow, and a much larger body of "
    "emulation code exposed to guests; domains of type 'qemu' on a KVM host are a mistake.",
    Severity.MEDIUM,
    fix="Enable VT-x/AMD-V in the firmware, load the module (modprobe kvm_intel or kvm_amd), "
    "and use <domain type='kvm'>.",
    reads=("workloads", "probe_errors", "facts", "source"),
    scope="host",
)
def host01_kvm(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState, f: HostFacts) -> Iterator[Finding]:
        kvm = f.kvm_device
        flags = [x for x in KVM_FLAGS if x in f.cpu_flags]
        ev = [
            Evidence(
                "/dev/kvm",
                f"{kvm.kind}, mode {kvm.mode:04o} {kvm.user}:{kvm.group}" if kvm and kvm.exists else "absent",
            ),
            Evidence("/proc/cpuinfo: flags", " ".join(flags) if flags else "no vmx or svm"),
        ]
        if not (kvm and kvm.exists):
            if flags:
                yield finding(
                    spec,
                    Status.FAIL,
                    f"CPU has {'/'.join(flags)} but /dev/kvm is missing (kvm module not loaded?)",
                    host=hs.host.name,
                    evidence=ev,
                    fix="modprobe kvm_intel (or kvm_amd); check dmesg for 'disabled by bios'",
                )
            else:
                yield finding(
                    spec,
                    Status.FAIL,
                    "no hardware virtualization: no /dev/kvm, no vmx/svm flag",
                    host=hs.host.name,
                    evidence=ev,
                )
            return
        if not kvm.mode & 0o066 and kvm.uid == 0:
            q = f.qemu_conf
            user = (q.value("user") if q and q.present else "") or "the QEMU user"
            if user not in ("root", "+0", "0"):
                yield finding(
                    spec,
                    Status.WARN,
                    f"/dev/kvm is {kvm.mode:04o} {kvm.user}:{kvm.group}: only root can "
                    f"open it, not {user}; KVM domains fail to start",
                    host=hs.host.name,
                    evidence=ev,
                    severity=Severity.MEDIUM,
                    fix="chgrp kvm /dev/kvm && chmod 0660 /dev/kvm (udev's 65-kvm.rules does this at boot)",
                )
                return
        tcg = [w for w in vms(hs) if w.vm and w.vm.domain_type == "qemu"]
        if tcg:
            yield finding(
                spec,
                Status.WARN,
                f"{len(tcg)} domain(s) of type 'qemu' (TCG emulation) on a KVM host: "
                + ", ".join(who(w) for w in tcg[:10]),
                host=hs.host.name,
                tenants=tenants_of(tcg),
                workloads=keys(tcg),
                severity=Severity.LOW,
                evidence=ev + [Evidence(f"{dom(w)}: /domain/@type", "qemu") for w in tcg[:10]],
                fix="virsh edit NAME  # <domain type='kvm'>",
            )
            return
        yield passed(spec, hs, "/dev/kvm present" + (f", CPU flags {' '.join(flags)}" if flags else ""))

    yield from per_host(state, spec, body, facts=True)


# ---------------------------------------------------------------- HOST-02


@check(
    "HOST-02",
    "host",
    "SELinux enforcing or AppArmor enabled",
    "sVirt (libvirt's per-domain SELinux/AppArmor confinement) needs a mandatory access "
    "control LSM on the host; without one a QEMU escape reaches every other tenant.",
    Severity.HIGH,
    fix="Debian/Ubuntu: apt-get install apparmor apparmor-utils and boot with apparmor=1 "
    "security=apparmor; RHEL: set SELINUX=enforcing in /etc/selinux/config and reboot.",
    reads=("probe_errors", "facts", "source"),
    scope="host",
)
def host02_lsm(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState, f: HostFacts) -> Iterator[Finding]:
        ev = [
            Evidence(
                "/sys/fs/selinux/enforce", {"enforcing": "1", "permissive": "0"}.get(f.selinux, "absent")
            ),
            Evidence(
                "/sys/module/apparmor/parameters/enabled",
                {"enabled": "Y", "disabled": "N"}.get(f.apparmor, "absent"),
            ),
        ]
        if f.mac_enabled:
            yield passed(spec, hs, "SELinux enforcing" if f.selinux == "enforcing" else "AppArmor enabled")
        elif f.selinux == "permissive":
            yield finding(
                spec,
                Status.WARN,
                "SELinux is permissive: denials are logged, not enforced",
                host=hs.host.name,
                evidence=ev,
                fix="setenforce 1; SELINUX=enforcing in /etc/selinux/config",
            )
        else:
            yield finding(
                spec, Status.FAIL, "neither SELinux nor AppArmor is enabled", host=hs.host.name, evidence=ev
            )

    yield from per_host(state, spec, body, facts=True)


# ---------------------------------------------------------------- HOST-03


@check(
    "HOST-03",
    "host",
    "qemu.conf confines QEMU and does not run it as root",
    'security_driver = "none" turns sVirt off for every domain; without '
    "security_require_confined a domain may still start unconfined; QEMU running as root makes "
    "any guest escape a host compromise.",
    Severity.HIGH,
    fix='In /etc/libvirt/qemu.conf: security_driver = [ "selinux" ] (or "apparmor"), '
    'security_require_confined = 1, user = "libvirt-qemu" (or "qemu"), group = "kvm"; '
    "restart libvirtd.",
    reads=("probe_errors", "facts", "source"),
    scope="host",
)
def host03_qemu_conf(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState, f: HostFacts) -> Iterator[Finding]:
        q = f.qemu_conf
        root_qemu = [p for p in f.hypervisor_processes if p.uid == 0 and p.comm.startswith(("qemu", "kvm"))]
        if not (q and q.present):
            if q and q.error:
                yield finding(spec, Status.ERROR, f"{q.path}: {q.error}", host=hs.host.name)
                return
            if not root_qemu:
                yield finding(
                    spec,
                    Status.SKIPPED,
                    "no libvirt on this host (no /etc/libvirt/qemu.conf)",
                    host=hs.host.name,
                )
                return
        bad = 0
        if q and q.present:
            drv = q.value("security_driver")
            if drv.strip("[] \"'") == "none":
                bad += 1
                yield finding(
                    spec,
                    Status.FAIL,
                    'security_driver = "none": sVirt is off for every domain',
                    host=hs.host.name,
                    evidence=[Evidence(q.where("security_driver"), f"security_driver = {drv}")],
                )
            user = q.value("user")
            if user in ("root", "+0", "0"):
                bad += 1
                yield finding(
                    spec,
                    Status.FAIL,
                    f'QEMU is configured to run as root (user = "{user}")',
                    host=hs.host.name,
                    evidence=[Evidence(q.where("user"), f'user = "{user}"')],
                    fix=f'user = "libvirt-qemu" in {q.path}, restart libvirtd',
                )
            if not _truthy(q.value("security_require_confined", "0")):
                bad += 1
                yield finding(
                    spec,
                    Status.WARN,
                    "security_require_confined is off: a domain may start unconfined",
                    host=hs.host.name,
                    severity=Severity.LOW,
                    evidence=[
                        Evidence(
                            q.where("security_require_confined"),
                            q.value("security_require_confined", "0 (default)"),
                        )
                    ],
                    fix=f"security_require_confined = 1 in {q.path}, restart libvirtd",
                )
        if root_qemu:
            bad += 1
            yield finding(
                spec,
                Status.FAIL,
                f"{len(root_qemu)} QEMU process(es) run as root: "
                + ", ".join(f"pid {p.pid} ({p.guest_name or p.comm})" for p in root_qemu[:10]),
                host=hs.host.name,
                evidence=[Evidence(f"/proc/{p.pid}/status: Uid", "0") for p in root_qemu[:10]],
            )
        if not bad:
            yield passed(spec, hs, "security_driver set, confinement required, QEMU not root")

    yield from per_host(state, spec, body, facts=True)


# ---------------------------------------------------------------- HOST-04


REQUIRED_CGROUPS = (
    ("cpu", Status.FAIL),
    ("memory", Status.FAIL),
    ("pids", Status.WARN),
    ("cpuset", Status.WARN),
)


@check(
    "HOST-04",
    "host",
    "cgroup controllers for per-tenant limits are present",
    "libvirt and container runtimes limit each tenant's CPU, memory, I/O and process count "
    "through cgroups; without the controller the limit silently does not exist.",
    Severity.HIGH,
    fix="Remove cgroup_disable=... from the kernel command line; on cgroup v2 enable the "
    "controller: echo +memory > /sys/fs/cgroup/cgroup.subtree_control.",
    reads=("probe_errors", "facts", "source"),
    scope="host",
)
def host04_cgroups(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState, f: HostFacts) -> Iterator[Finding]:
        have = set(f.cgroup_controllers)
        if not have:
            yield finding(
                spec,
                Status.ERROR,
                "no cgroup controller list could be read",
                host=hs.host.name,
                evidence=[Evidence("/proc/cgroups", "unreadable or empty")],
            )
            return
        ev = [Evidence("/proc/cgroups (enabled) + cgroup.controllers", " ".join(sorted(have)))]
        bad = 0
        for c, status in REQUIRED_CGROUPS:
            if c not in have:
                bad += 1
                yield finding(
                    spec,
                    status,
                    f"cgroup controller '{c}' is not available",
                    host=hs.host.name,
                    evidence=ev,
                    severity=Severity.HIGH if status == Status.FAIL else Severity.MEDIUM,
                )
        if not ({"blkio", "io"} & have):
            bad += 1
            yield finding(
                spec,
                Status.WARN,
                "no block I/O controller (blkio or io)",
                host=hs.host.name,
                evidence=ev,
                severity=Severity.MEDIUM,
            )
        if not bad:
            yield passed(spec, hs, "cpu, memory, pids, cpuset and block I/O controllers present")

    yield from per_host(state, spec, body, facts=True)


# ---------------------------------------------------------------- HOST-05


@check(
    "HOST-05",
    "host",
    "IOMMU on where devices are passed through",
    "Device passthrough is only isolated by the IOMMU; a host that passes devices through "
    "without one gives the guest DMA access to all memory.",
    Severity.CRITICAL,
    fix="Enable VT-d/AMD-Vi in the firmware and add intel_iommu=on (or amd_iommu=on) iommu=pt "
    "to the kernel command line.",
    reads=("workloads", "probe_errors", "facts", "source"),
    scope="host",
)
def host05_iommu(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState, f: HostFacts) -> Iterator[Finding]:
        pt = [(w, h.address) for w in vms(hs) for h in (w.vm.hostdevs if w.vm else ()) if h.type == "pci"]
        on = bool(f.iommu_groups)
        ev = [
            Evidence("/sys/kernel/iommu_groups", f"{len(f.iommu_groups)} group(s)"),
            Evidence(
                "/proc/cmdline", " ".join(a for a in f.cmdline.split() if "iommu" in a) or "no iommu option"
            ),
        ]
        if on:
            yield passed(spec, hs, f"IOMMU on ({len(f.iommu_groups)} groups)")
        elif pt:
            ws = [w for w, _ in pt]
            yield finding(
                spec,
                Status.FAIL,
                f"IOMMU off while {len(pt)} PCI device(s) are passed through",
                host=hs.host.name,
                tenants=tenants_of(ws),
                workloads=keys(ws),
                evidence=ev,
            )
        else:
            yield passed(spec, hs, "IOMMU off, and no PCI device is passed through")

    yield from per_host(state, spec, body, facts=True)


# ---------------------------------------------------------------- HOST-06


@check(
    "HOST-06",
    "host",
    "No CPU vulnerability left unmitigated; SMT state",
    "Spectre/MDS/L1TF-class flaws let one guest read another's data through the CPU; the kernel "
    "reports each as Vulnerable or mitigated. With SMT on, siblings share a core's buffers.",
    Severity.HIGH,
    fix="Update the kernel and CPU microcode; do not boot with mitigations=off; consider "
    "mitigations=auto,nosmt or echo off > /sys/devices/system/cpu/smt/control.",
    reads=("probe_errors", "facts", "source"),
    scope="host",
)
def host06_cpu_vulns(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState, f: HostFacts) -> Iterator[Finding]:
        if not f.vulnerabilities:
            yield finding(
                spec,
                Status.SKIPPED,
                "the kernel does not report CPU vulnerabilities "
                "(/sys/devices/system/cpu/vulnerabilities absent)",
                host=hs.host.name,
            )
            return
        bad = 0
        vuln = [v for v in f.vulnerabilities if v.status.lower().startswith("vulnerable")]
        if vuln:
            bad += 1
            yield finding(
                spec,
                Status.FAIL,
                "CPU vulnerable: " + ", ".join(v.name for v in vuln),
                host=hs.host.name,
                evidence=[
                    Evidence(f"/sys/devices/system/cpu/vulnerabilities/{v.name}", v.status) for v in vuln
                ]
                + (
                    [Evidence("/proc/cmdline", "mitigations=off")]
                    if "mitigations=off" in f.cmdline.split()
                    else []
                ),
            )
        smt_vuln = [v for v in f.vulnerabilities if "smt vulnerable" in v.status.lower()]
        if f.smt_control == "on" and smt_vuln:
            bad += 1
            yield finding(
                spec,
                Status.WARN,
                "SMT is on and the kernel reports SMT-dependent exposure: "
                + ", ".join(v.name for v in smt_vuln),
                host=hs.host.name,
                severity=Severity.MEDIUM,
                evidence=[Evidence("/sys/devices/system/cpu/smt/control", "on")]
                + [Evidence(f"/sys/devices/system/cpu/vulnerabilities/{v.name}", v.status) for v in smt_vuln],
                fix="Pin tenants to whole cores (VM-06), or echo off > /sys/devices/system/cpu/smt/control",
            )
        if not bad:
            yield passed(
                spec,
                hs,
                f"{len(f.vulnerabilities)} vulnerabilities reported, none Vulnerable; "
                f"SMT {f.smt_control or 'unknown'}",
            )

    yield from per_host(state, spec, body, facts=True)


# ---------------------------------------------------------------- HOST-07


@check(
    "HOST-07",
    "host",
    "libvirt's control sockets are not open to everyone",
    "Whoever can write to libvirt's socket (or reach its TCP port without auth) controls every "
    "domain of every tenant: it is root on the host.",
    Severity.CRITICAL,
    fix='In /etc/libvirt/libvirtd.conf: unix_sock_rw_perms = "0770", unix_sock_group = "libvirt" '
    '(or auth_unix_rw = "polkit"), listen_tcp = 0, auth_tcp = "sasl"; restart libvirtd.',
    reads=("probe_errors", "facts", "source"),
    scope="host",
)
def host07_libvirt_access(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState, f: HostFacts) -> Iterator[Finding]:
        d = f.libvirtd_conf
        if _no_libvirt(f):
            yield finding(spec, Status.SKIPPED, "no libvirt on this host", host=hs.host.name)
            return
        bad = 0
        auth_rw = d.value("auth_unix_rw") if d and d.present else ""
        for s in f.libvirt_sockets:
            if s.kind != "socket" or s.path.endswith("-ro") or "admin" in s.path:
                continue
            if s.mode & 0o002 and auth_rw == "none":
                bad += 1
                yield finding(
                    spec,
                    Status.FAIL,
                    f'{s.path} is writable by every user and auth_unix_rw = "none"',
                    host=hs.host.name,
                    evidence=[
                        Evidence(f"stat {s.path}", f"mode {s.mode:04o} {s.user}:{s.group}"),
                        Evidence(d.where("auth_unix_rw") if d else "libvirtd.conf", 'auth_unix_rw = "none"'),
                    ],
                )
        if d and d.present and _truthy(d.value("listen_tcp", "0")):
            auth = d.value("auth_tcp", "sasl")
            listening = 16509 in f.tcp_listen_ports
            ev = [
                Evidence(d.where("listen_tcp"), f"listen_tcp = {d.value('listen_tcp')}"),
                Evidence(d.where("auth_tcp"), f'auth_tcp = "{auth}"'),
                Evidence(
                    "/proc/net/tcp", "port 16509 listening" if listening else "port 16509 not listening"
                ),
            ]
            if auth == "none":
                bad += 1
                yield finding(
                    spec,
                    Status.FAIL,
                    "libvirt accepts TCP connections without authentication",
                    host=hs.host.name,
                    evidence=ev,
                    severity=Severity.CRITICAL,
                )
        if not bad:
            yield passed(spec, hs, f"{len(f.libvirt_sockets)} libvirt socket(s); no unauthenticated access")

    yield from per_host(state, spec, body, facts=True)


# ---------------------------------------------------------------- HOST-08


@check(
    "HOST-08",
    "host",
    "Data in transit is encrypted (remote libvirt, migration, consoles)",
    "Plain-TCP libvirt, migration streams and consoles carry guest memory, disk blocks and "
    "keystrokes: anyone on the path, including another tenant on a shared segment, reads them.",
    Severity.MEDIUM,
    fix="libvirtd.conf: listen_tcp = 0, listen_tls = 1; qemu.conf: migrate_tls_force = 1, "
    "vnc_tls = 1, spice_tls = 1 (with certificates under /etc/pki/libvirt-*).",
    reads=("workloads", "probe_errors", "facts", "source"),
    scope="host",
)
def host08_transit(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState, f: HostFacts) -> Iterator[Finding]:
        if _no_libvirt(f):
            yield finding(spec, Status.SKIPPED, "no libvirt on this host", host=hs.host.name)
            return
        d, q = f.libvirtd_conf, f.qemu_conf
        bad = 0
        if d and d.present and _truthy(d.value("listen_tcp", "0")):
            bad += 1
            yield finding(
                spec,
                Status.FAIL,
                "libvirt listens on plain TCP (listen_tcp = 1)",
                host=hs.host.name,
                evidence=[Evidence(d.where("listen_tcp"), f"listen_tcp = {d.value('listen_tcp')}")]
                + (
                    [Evidence("/proc/net/tcp", "port 16509 listening")] if 16509 in f.tcp_listen_ports else []
                ),
                fix=f"listen_tcp = 0 and listen_tls = 1 in {d.path}; restart libvirtd",
            )
        elif 16509 in f.tcp_listen_ports:
            bad += 1
            yield finding(
                spec,
                Status.WARN,
                "TCP port 16509 (libvirt plain TCP) is listening",
                host=hs.host.name,
                evidence=[Evidence("/proc/net/tcp", "port 16509 listening")],
            )
        if q and q.present:
            if not _truthy(q.value("migrate_tls_force", "0")):
                bad += 1
                yield finding(
                    spec,
                    Status.WARN,
                    "migration may run without TLS (migrate_tls_force is off)",
                    host=hs.host.name,
                    severity=Severity.LOW,
                    evidence=[
                        Evidence(q.where("migrate_tls_force"), q.value("migrate_tls_force", "0 (default)"))
                    ],
                    fix=f"migrate_tls_force = 1 in {q.path} (needs migrate TLS certificates)",
                )
            for kind in ("vnc", "spice"):
                listen = q.value(f"{kind}_listen")
                if listen and not is_loopback(listen) and not _truthy(q.value(f"{kind}_tls", "0")):
                    bad += 1
                    yield finding(
                        spec,
                        Status.FAIL,
                        f"{kind.upper()} consoles listen on {listen} without TLS",
                        host=hs.host.name,
                        evidence=[
                            Evidence(q.where(f"{kind}_listen"), f'{kind}_listen = "{listen}"'),
                            Evidence(q.where(f"{kind}_tls"), q.value(f"{kind}_tls", "0 (default)")),
                        ],
                        fix=f'{kind}_tls = 1 in {q.path}, or {kind}_listen = "127.0.0.1"',
                    )
        # consoles a domain opens beyond loopback itself, on a host without console TLS
        exposed = []
        for w in vms(hs):
            for g in w.vm.graphics if w.vm else ():
                if (
                    g.type in ("vnc", "spice")
                    and g.listen
                    and not is_loopback(g.listen)
                    and not g.tls
                    and not (q and _truthy(q.value(f"{g.type}_tls", "0")))
                ):
                    exposed.append((w, g))
        if exposed:
            ws = [w for w, _ in exposed]
            bad += 1
            yield finding(
                spec,
                Status.FAIL,
                f"{len(exposed)} console(s) beyond loopback without TLS: "
                + ", ".join(f"{who(w)} {g.type} on {g.listen}" for w, g in exposed[:10]),
                host=hs.host.name,
                tenants=tenants_of(ws),
                workloads=keys(ws),
                evidence=[
                    Evidence(f"{dom(w)}: /domain/devices/graphics", f"type='{g.type}' listen='{g.listen}'")
                    for w, g in exposed[:10]
                ],
            )
        if not bad:
            yield passed(spec, hs, "no plain-TCP libvirt, migration TLS forced, consoles local or TLS")

    yield from per_host(state, spec, body, facts=True)


# ---------------------------------------------------------------- HOST-09


@check(
    "HOST-09",
    "host",
    "KSM does not merge memory across tenants",
    "Kernel same-page merging shares identical pages between guests; the copy-on-write timing "
    "difference tells one tenant what another has in memory (a known side channel).",
    Severity.MEDIUM,
    fix="echo 2 > /sys/kernel/mm/ksm/run (unmerge and stop), disable ksmtuned, or add "
    "<memoryBacking><nosharepages/></memoryBacking> to each domain.",
    reads=("workloads", "probe_errors", "facts", "source"),
    scope="host",
)
def host09_ksm(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState, f: HostFacts) -> Iterator[Finding]:
        if f.ksm_run is None:
            yield finding(
                spec,
                Status.SKIPPED,
                "KSM not built into this kernel (/sys/kernel/mm/ksm absent)",
                host=hs.host.name,
            )
            return
        tenants = {w.tenant for w in hs.workloads if w.tenant}
        sharing = [w for w in vms(hs) if w.vm and not w.vm.nosharepages]
        ev = [
            Evidence("/sys/kernel/mm/ksm/run", str(f.ksm_run)),
            Evidence("/sys/kernel/mm/ksm/pages_sharing", str(f.ksm_pages_sharing)),
        ]
        if f.ksm_run != 1:
            yield passed(spec, hs, f"KSM not running (run = {f.ksm_run})")
        elif len(tenants) < 2:
            yield passed(spec, hs, f"KSM running, but the host serves {len(tenants)} tenant(s)")
        elif not sharing:
            yield passed(spec, hs, "KSM running; every domain has <nosharepages/>")
        elif (f.ksm_pages_sharing or 0) > 0:
            yield finding(
                spec,
                Status.FAIL,
                f"KSM is merging {f.ksm_pages_sharing} pages on a host of {len(tenants)} tenants",
                host=hs.host.name,
                tenants=tenants_of(sharing),
                workloads=keys(sharing),
                evidence=ev,
            )
        else:
            yield finding(
                spec,
                Status.WARN,
                f"KSM runs on a host of {len(tenants)} tenants (no pages merged yet)",
                host=hs.host.name,
                tenants=tenants_of(sharing),
                workloads=keys(sharing),
                evidence=ev,
            )

    yield from per_host(state, spec, body, facts=True)


# ---------------------------------------------------------------- HOST-10


@check(
    "HOST-10",
    "host",
    "Nested virtualization not exposed to tenants",
    "A guest given vmx/svm runs its own hypervisor on the host's KVM: a large, complex "
    "interface (nested VMX/SVM emulation) that has had guest-to-host escapes.",
    Severity.MEDIUM,
    fix="echo 'options kvm_intel nested=0' > /etc/modprobe.d/kvm-nested.conf (kvm_amd for AMD) "
    "and reload the module, or give guests <feature policy='disable' name='vmx'/> "
    "(svm on AMD) instead of host-passthrough.",
    reads=("workloads", "probe_errors", "facts", "source"),
    scope="host",
)
def host10_nested(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState, f: HostFacts) -> Iterator[Finding]:
        on = [(m, v) for m, v in f.kvm_nested if v.strip().upper() in ("Y", "1")]
        if not on:
            yield passed(
                spec,
                hs,
                "nested virtualization off"
                if f.kvm_nested
                else "no kvm nested parameter (module not loaded)",
            )
            return
        given = []
        for w in vms(hs):
            assert w.vm
            feats = {n: p for n, p in w.vm.cpu_features}
            if any(feats.get(x) in ("require", "force") for x in KVM_FLAGS):
                given.append(
                    (w, "cpu feature " + ", ".join(f"{x}={feats[x]}" for x in KVM_FLAGS if x in feats))
                )
            elif w.vm.cpu_mode in ("host-passthrough", "maximum") and not any(
                feats.get(x) in ("disable", "forbid") for x in KVM_FLAGS
            ):
                given.append((w, f"cpu mode='{w.vm.cpu_mode}'"))
        ev = [Evidence(f"/sys/module/{m}/parameters/nested", v) for m, v in on]
        if given:
            ws = [w for w, _ in given]
            yield finding(
                spec,
                Status.WARN,
                f"nested virtualization on and {len(given)} domain(s) get vmx/svm: "
                + ", ".join(who(w) for w in ws[:10]),
                host=hs.host.name,
                tenants=tenants_of(ws),
                workloads=keys(ws),
                evidence=ev + [Evidence(f"{dom(w)}: /domain/cpu", why) for w, why in given[:10]],
            )
        else:
            yield passed(spec, hs, "nested virtualization on, but no domain is given vmx/svm")

    yield from per_host(state, spec, body, facts=True)


# ---------------------------------------------------------------- HOST-11


@check(
    "HOST-11",
    "host",
    "Every hypervisor process is managed by libvirt",
    "A QEMU, Firecracker or cloud-hypervisor process that no libvirt domain accounts for is a VM "
    "nobody audits: no labels, no limits, no tenant, invisible to every other check.",
    Severity.MEDIUM,
    fix="Identify it (ps -o user,lstart,args -p PID), then define it in libvirt or stop it.",
    reads=("workloads", "probe_errors", "facts", "source"),
    scope="host",
)
def host11_unmanaged(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState, f: HostFacts) -> Iterator[Finding]:
        names = {w.name for w in hs.workloads if w.kind == WorkloadKind.VM}
        uuids = {w.uuid.lower() for w in hs.workloads if w.kind == WorkloadKind.VM and w.uuid}
        stray = [
            p
            for p in f.hypervisor_processes
            if not (p.guest_name and p.guest_name in names) and not (p.uuid and p.uuid.lower() in uuids)
        ]
        if not stray:
            yield passed(
                spec, hs, f"{len(f.hypervisor_processes)} hypervisor process(es), all libvirt domains"
            )
            return
        for p in stray:
            yield finding(
                spec,
                Status.WARN,
                f"{p.comm} pid {p.pid}"
                + (f" (guest '{p.guest_name}')" if p.guest_name else "")
                + " is not a libvirt domain on this host",
                host=hs.host.name,
                evidence=[
                    Evidence(f"/proc/{p.pid}/cmdline", p.cmdline[:500] or "(empty)"),
                    Evidence(f"/proc/{p.pid}/status: Uid", str(p.uid)),
                ],
                fix=f"ps -o user,lstart,args -p {p.pid}; then define it in libvirt or kill {p.pid}",
            )

    yield from per_host(state, spec, body, facts=True)


# ---------------------------------------------------------------- HOST-12


@check(
    "HOST-12",
    "host",
    "Container runtime sockets are not open to everyone",
    "Write access to the docker, containerd, podman, cri-o or LXD socket starts a privileged "
    "container with the host's / mounted: it is root on the host and over every tenant.",
    Severity.CRITICAL,
    fix="chmod 0660 SOCKET and keep its group (docker, lxd) empty of tenant accounts; prefer "
    "rootless runtimes for tenants.",
    reads=("probe_errors", "facts", "source"),
    scope="host",
)
def host12_runtime_sockets(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState, f: HostFacts) -> Iterator[Finding]:
        socks = [s for s in f.runtime_sockets if s.exists]
        if not socks:
            yield passed(spec, hs, "no container runtime socket on this host")
            return
        bad = 0
        for s in socks:
            ev = [Evidence(f"stat {s.path}", f"{s.kind}, mode {s.mode:04o} {s.user}:{s.group}")]
            if s.mode & 0o002:
                bad += 1
                yield finding(
                    spec,
                    Status.FAIL,
                    f"{s.path} is writable by every user",
                    host=hs.host.name,
                    evidence=ev,
                    fix=f"chmod o-rwx {s.path}",
                )
            elif s.mode & 0o020 and s.gid != 0:
                bad += 1
                yield finding(
                    spec,
                    Status.WARN,
                    f"{s.path} is writable by group {s.group or s.gid}: its members are root on this host",
                    host=hs.host.name,
                    evidence=ev,
                    severity=Severity.LOW,
                    fix=f"getent group {s.group or s.gid}  # keep tenant accounts out of it",
                )
        if not bad:
            yield passed(spec, hs, f"{len(socks)} runtime socket(s), root only")

    yield from per_host(state, spec, body, facts=True)
