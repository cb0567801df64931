"""Host-level facts the host, VM and software checks read: files under /proc, /sys, /etc, versions.

Owned by the check-catalog area and filled by probes/facts/probe.py. Values are parsed just
enough for the checks, and each keeps where it came from (file and line) so that a finding can
show its evidence. A field that could not be read is told apart from one that says "no":
`missing` lists the paths that were absent and `errors` the ones that failed, so a check says
"skipped: not readable" rather than "passed".

Must not import probes.model (it imports this module).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FileFact:
    """A host file as read: path, whether it could be read, and its text (bounded)."""

    path: str
    readable: bool
    text: str = ""
    error: str = ""


@dataclass(frozen=True)
class ConfSetting:
    """One `key = value` line of a libvirt config file (qemu.conf, libvirtd.conf)."""

    key: str
    value: str  # as written, quotes removed for strings ("none", "0", "[ ... ]")
    line: int


@dataclass(frozen=True)
class ConfFile:
    path: str
    present: bool
    settings: tuple[ConfSetting, ...] = ()
    error: str = ""

    def get(self, key: str) -> ConfSetting | None:
        """The last assignment of `key` (libvirt keeps the last one)."""
        found = [s for s in self.settings if s.key == key]
        return found[-1] if found else None

    def value(self, key: str, default: str = "") -> str:
        s = self.get(key)
        return s.value if s else default

    def where(self, key: str) -> str:
        s = self.get(key)
        return f"{self.path}:{s.line}" if s else f"{self.path} (no {key}: default)"


@dataclass(frozen=True)
class PathStat:
    """`stat` of a host path: mode bits, owner, kind. exists=False when it is not there."""

    path: str
    exists: bool
    mode: int = 0  # permission bits (0o7777)
    uid: int = -1
    gid: int = -1
    user: str = ""
    group: str = ""
    kind: str = ""  # regular file, socket, directory, block special file, ...
    error: str = ""


@dataclass(frozen=True)
class Vulnerability:
    name: str  # file name under /sys/devices/system/cpu/vulnerabilities
    status: str  # its text: "Not affected", "Mitigation: ...", "Vulnerable: ..."


@dataclass(frozen=True)
class IommuGroup:
    group: str
    devices: tuple[str, ...]  # PCI addresses 0000:03:00.1


@dataclass(frozen=True)
class CpuSiblings:
    cpu: int
    siblings: str  # thread_siblings_list: "0,4" or "0-1"


@dataclass(frozen=True)
class HypervisorProcess:
    """A QEMU, Firecracker or cloud-hypervisor process found in /proc."""

    pid: int
    comm: str
    uid: int = -1
    guest_name: str = ""  # QEMU -name guest=NAME (or the first word of -name)
    uuid: str = ""  # QEMU -uuid
    cmdline: str = ""  # bounded, arguments joined by spaces


@dataclass(frozen=True)
class SriovVf:
    """One SR-IOV virtual function as `ip -j link` reports it under its physical function."""

    pf: str
    vf: int
    mac: str = ""
    spoofchk: bool | None = None
    trust: bool | None = None
    vlan: int = 0


@dataclass(frozen=True)
class PendingUpdates:
    """SW-02: what the package manager would upgrade. Only gathered when asked (`--updates`)."""

    manager: str  # apt, dnf, "" none found
    checked_at: float  # unix time of the package-manager run (the cache's age comes from it)
    security: tuple[str, ...] = ()  # package names with a security update
    total: int = 0
    error: str = ""
    from_cache: bool = False


@dataclass(frozen=True)
class HostFacts:
    kernel: str = ""
    files: tuple[FileFact, ...] = ()  # raw files kept for evidence (cmdline, ...)
    versions: tuple[tuple[str, str], ...] = ()  # (component, version): kernel, qemu, libvirt, ovs
    collected_at: float = 0.0
    kvm_device: PathStat | None = None
    cpu_flags: tuple[str, ...] = ()
    cpu_vendor: str = ""
    selinux: str = ""  # enforcing, permissive, "" not present
    apparmor: str = ""  # enabled, disabled, "" not present
    qemu_conf: ConfFile | None = None
    libvirtd_conf: ConfFile | None = None
    vulnerabilities: tuple[Vulnerability, ...] = ()
    smt_control: str = ""  # on, off, forceoff, notsupported, notimplemented, "" unknown
    ksm_run: int | None = None
    ksm_pages_sharing: int | None = None
    ksm_pages_shared: int | None = None
    kvm_nested: tuple[tuple[str, str], ...] = ()  # (module, parameter value): ("kvm_intel", "Y")
    iommu_groups: tuple[IommuGroup, ...] = ()
    cmdline: str = ""
    cgroup_controllers: tuple[str, ...] = ()  # enabled controllers (/proc/cgroups, cgroup.controllers)
    cap_last_cap: int | None = None
    cap_bnd_init: int | None = None  # CapBnd of PID 1: every capability this host grants at all
    libvirt_sockets: tuple[PathStat, ...] = ()
    runtime_sockets: tuple[PathStat, ...] = ()  # docker, containerd, podman, cri-o, lxd sockets
    tcp_listen_ports: tuple[int, ...] = ()  # listening TCP ports of the host (libvirt: 16509, 16514)
    hypervisor_processes: tuple[HypervisorProcess, ...] = ()
    cpu_siblings: tuple[CpuSiblings, ...] = ()
    disk_stats: tuple[PathStat, ...] = ()
    sriov_vfs: tuple[SriovVf, ...] = ()
    updates: PendingUpdates | None = None
    missing: tuple[str, ...] = ()  # paths that do not exist on the host
    errors: tuple[tuple[str, str], ...] = ()  # (what, error): could not be read

    def file(self, path: str) -> FileFact | None:
        return next((f for f in self.files if f.path == path), None)

    def version(self, component: str) -> str:
        return next((v for c, v in self.versions if c == component), "")

    def error(self, what: str) -> str:
        return next((e for w, e in self.errors if w == what), "")

    def stat(self, path: str) -> PathStat | None:
        return next((s for s in self.disk_stats if s.path == path), None)

    @property
    def mac_enabled(self) -> bool:
        """A mandatory access control LSM that libvirt can use is on."""
        return self.selinux == "enforcing" or self.apparmor == "enabled"
