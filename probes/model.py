"""The observed state: frozen, typed, JSON-round-trippable (see probes/snapshot.py).

Everything a probe learns about a host ends up here, and everything the checks and the TUI
read comes from here. Rules for this module and the area models it imports:
tuples, never lists; no dicts of dicts (a small dataclass or a tuple of pairs instead);
enums are StrEnum so JSON stays readable. Text that came from a host is stored raw: it is made
safe where it is shown (probes/untrusted.py), never here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property


class WorkloadKind(StrEnum):
    VM = "vm"
    CONTAINER = "container"
    NETNS = "netns"


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"
    SKIPPED = "skipped"


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


SEVERITY_ORDER = {s: i for i, s in enumerate(Severity)}  # the one severity rank: higher is worse

# The one status order, worst first: how findings are sorted (panes, reports, `check`), which
# status a check shows when its results differ, and the fleet's worst status per area. ERROR
# before WARN: an error means a check could not answer, and the unanswered question may hide a
# FAIL, while a WARN is a known, bounded weakness (monitoring systems rank UNKNOWN the same way).
STATUS_ORDER = {Status.FAIL: 0, Status.ERROR: 1, Status.WARN: 2, Status.SKIPPED: 3, Status.PASS: 4}


class HostKind(StrEnum):
    LOCAL = "local"
    SSH = "ssh"
    REPLAY = "replay"
    DEMO = "demo"
    LIBVIRT = "libvirt"  # libvirt's view only: a remote or simulated hypervisor's API, no kernel/files/logs


@dataclass(frozen=True)
class Host:
    """Where observations came from. `name` is the key used everywhere else."""

    name: str
    kind: HostKind = HostKind.LOCAL
    address: str = ""  # ssh: user@host:port; empty for local
    libvirt_uri: str | None = None
    # the user named the URI (--libvirt for the local host, a libvirt view's own): one that
    # cannot be opened is an error to show, never "no libvirt on this host" (decided once, here)
    libvirt_uri_given: bool = False


# ---------------------------------------------------------------- libvirt domains (VMs)


@dataclass(frozen=True)
class Disk:
    type: str  # file, block, network, volume, dir
    device: str  # disk, cdrom, floppy, lun
    bus: str  # virtio, sata, ide, scsi, usb, ...
    target: str  # vda, sda, ...
    source: str = ""  # file path, block dev, pool/volume or protocol:name
    shareable: bool = False
    readonly: bool = False
    encrypted: bool = False  # <encryption> on the disk or its source
    driver_type: str = ""  # raw, qcow2, ...


@dataclass(frozen=True)
class Nic:
    type: str  # network, bridge, direct, hostdev, user, ethernet, vhostuser
    mac: str = ""
    source: str = ""  # network name, bridge name, direct dev
    bridge: str = ""  # the bridge it is on, where known (live XML of real libvirt)
    target_dev: str = ""  # tap name on the host
    model: str = ""  # virtio, e1000, rtl8139, ...
    vlan_tags: tuple[int, ...] = ()
    vlan_trunk: bool = False
    virtualport_type: str = ""  # openvswitch, 802.1Qbh, ...
    virtualport_interfaceid: str = ""
    filterref: str = ""  # nwfilter name, "" when none
    filter_params: tuple[tuple[str, str], ...] = ()
    port_isolated: bool = False  # <port isolated='yes'/>: no traffic to other isolated ports
    portgroup: str = ""
    bandwidth_in_kbps: int | None = None  # <bandwidth><inbound average=...> (KiB/s as libvirt says)
    bandwidth_out_kbps: int | None = None


@dataclass(frozen=True)
class Graphics:
    type: str  # vnc, spice, rdp, sdl, egl-headless, dbus
    listen: str = (
        ""  # address; "" when not given (libvirt's default: 127.0.0.1 unless qemu.conf says otherwise)
    )
    listen_type: str = ""  # address, network, socket, none
    port: int = -1
    autoport: bool = False
    passwd_set: bool = False  # never store the password itself
    # libvirt shows `passwd` only in secure XML, which read-only connections cannot get:
    # False means "not known", and then passwd_set says nothing.
    passwd_known: bool = False
    tls: bool = False  # spice defaultMode/channel secure, or vnc tls where known


@dataclass(frozen=True)
class Hostdev:
    type: str  # pci, usb, scsi, mdev
    mode: str = "subsystem"
    address: str = ""  # 0000:03:00.1 for pci, bus.device for usb
    managed: bool = False


@dataclass(frozen=True)
class SecLabel:
    type: str  # dynamic, static, none
    model: str = ""  # selinux, apparmor, dac, "" for the default driver
    relabel: bool = True
    label: str = ""
    imagelabel: str = ""


@dataclass(frozen=True)
class CpuTune:
    shares: int | None = None
    period: int | None = None
    quota: int | None = None
    emulator_period: int | None = None
    emulator_quota: int | None = None
    vcpupin: tuple[tuple[int, str], ...] = ()  # (vcpu, cpuset)
    emulatorpin: str = ""


@dataclass(frozen=True)
class MemTune:
    hard_limit_kib: int | None = None
    soft_limit_kib: int | None = None
    swap_hard_limit_kib: int | None = None
    min_guarantee_kib: int | None = None


@dataclass(frozen=True)
class MetadataItem:
    """One element under <metadata>: namespace URI, the element path and its text/attributes."""

    namespace: str
    path: str  # e.g. "owner/project" (local names, '/' separated)
    text: str = ""
    attrs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class VmDetails:
    domain_type: str = ""  # kvm, qemu, xen, lxc, test
    vcpus: int = 0
    cpuset: str = ""  # <vcpu cpuset=...>
    memory_kib: int = 0
    cpu_mode: str = ""  # host-passthrough, host-model, custom
    cpu_features: tuple[tuple[str, str], ...] = ()  # (name, policy) e.g. ("vmx", "require")
    memtune: MemTune = field(default_factory=MemTune)
    cputune: CpuTune = field(default_factory=CpuTune)
    numatune_mode: str = ""
    numatune_nodeset: str = ""
    disks: tuple[Disk, ...] = ()
    nics: tuple[Nic, ...] = ()
    graphics: tuple[Graphics, ...] = ()
    hostdevs: tuple[Hostdev, ...] = ()
    seclabels: tuple[SecLabel, ...] = ()
    metadata: tuple[MetadataItem, ...] = ()
    has_guest_agent: bool = False
    emulator: str = ""
    current_memory_kib: int = 0
    nosharepages: bool = False  # <memoryBacking><nosharepages/>: KSM may not merge its pages
    hugepages: bool = False
    locked_memory: bool = False
    launch_security: str = ""  # sev, sev-snp, s390-pv: memory encrypted from the host
    blkio_weight: int | None = None
    os_type: str = ""  # <os><type>: hvm, linux/xen (Xen PV), xenpvh, exe (LXC)
    xen_guest: str = ""  # Xen domains: pv, pvh or hvm (the isolation model); "" for others
    parse_error: str = ""  # the XML could not be read: the rest is empty, not "healthy"
    stale: bool = False  # libvirt unreachable: this is the last picture seen


# ---------------------------------------------------------------- containers


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    fstype: str = ""
    options: str = ""  # comma-separated, as in /proc/PID/mountinfo
    root: str = "/"  # the directory of the source filesystem that is mounted (bind mounts)

    @property
    def writable(self) -> bool:
        return "rw" in self.options.split(",")


@dataclass(frozen=True)
class ContainerDetails:
    runtime: str = ""  # docker, containerd, cri-o, podman, lxc, libvirt-lxc, "" unknown
    container_id: str = ""
    cgroup: str = ""  # cgroup path of its init process
    pids: tuple[int, ...] = ()
    init_pid: int = 0
    command: str = ""  # of the init process, secrets stripped
    shared_namespaces: tuple[
        str, ...
    ] = ()  # ns types shared with the host: net, pid, ipc, uts, mnt, user, cgroup
    own_user_namespace: bool = False
    uid_map: str = ""
    cap_eff: int = 0  # CapEff bitmask of the init process
    seccomp_mode: int = 0  # 0 off, 1 strict, 2 filter
    no_new_privs: bool = False
    lsm_label: str = ""  # /proc/PID/attr/current ("unconfined" or "" when none)
    mounts: tuple[Mount, ...] = ()
    name_source: str = ""  # where the name came from: api, docker, oci, cgroup; "" = made up (pid)
    labels: tuple[tuple[str, str], ...] = ()  # runtime labels/annotations, where readable
    # from the runtime's API (Docker, Podman), where its socket was readable:
    image: str = ""
    networks: tuple[ContainerNetwork, ...] = ()
    ports: tuple[PublishedPort, ...] = ()
    restart_policy: str = ""  # no, always, unless-stopped, on-failure[:N]
    network_mode: str = ""  # bridge/default, host, none, container:ID, a network name
    daemon: str = ""  # the API socket of the runtime that runs it


@dataclass(frozen=True)
class ContainerNetwork:
    """One network a container is attached to, as its runtime names it."""

    name: str  # bridge, host, a user network's name
    network_id: str = ""
    address: str = ""  # CIDR ("" on host/none networks)
    mac: str = ""
    gateway: str = ""


@dataclass(frozen=True)
class PublishedPort:
    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""  # "" or 0.0.0.0: every host address
    host_port: int = 0


@dataclass(frozen=True)
class RuntimeNetwork:
    """A network of a container runtime (docker network ls), with what isolates it."""

    name: str
    network_id: str = ""
    driver: str = ""  # bridge, macvlan, ipvlan, host, null, overlay
    bridge: str = ""  # the Linux bridge of a bridge network: docker0, br-<id12>, cni-podman0
    parent: str = ""  # the host interface under a macvlan/ipvlan network
    icc: bool | None = None  # com.docker.network.bridge.enable_icc (None: not a bridge / unknown)
    internal: bool = False
    subnets: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DaemonSetting:
    """One effective daemon setting and where it was read (a flag, daemon.json, the API)."""

    key: str  # daemon.json's spelling: icc, live-restore, userns-remap, ...
    value: str
    source: str  # "dockerd --icc=false", "/etc/docker/daemon.json", "API /info"


@dataclass(frozen=True)
class RuntimeDaemon:
    """A container runtime daemon (dockerd, `podman system service`) and its configuration."""

    runtime: str  # docker, podman
    socket: str = ""  # its API socket on the host ("" when it serves none we know)
    pid: int = 0
    uid: int = 0  # the daemon process's user on the host: not 0 means rootless
    version: str = ""
    api: str = ""  # "ok", or why the API was not read (no socket, permission denied, ...)
    rootless: bool = False
    hosts: tuple[str, ...] = ()  # every endpoint it listens on: unix://..., tcp://..., fd://
    settings: tuple[DaemonSetting, ...] = ()
    security_options: tuple[str, ...] = ()  # API /info SecurityOptions: name=seccomp, name=userns
    socket_owner: str = ""
    socket_group: str = ""
    socket_mode: int | None = None  # permission bits of the socket
    networks: tuple[RuntimeNetwork, ...] = ()
    containers: int = 0  # running containers the API listed

    def setting(self, key: str) -> DaemonSetting | None:
        return next((s for s in self.settings if s.key == key), None)


# ---------------------------------------------------------------- network namespaces


@dataclass(frozen=True)
class NetnsDetails:
    path: str = ""  # /run/netns/NAME or /proc/PID/ns/net
    inode: int = 0
    pids: tuple[int, ...] = ()  # processes inside, where known
    interfaces: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()  # CIDR strings
    named: bool = True  # False: a namespace only processes hold (no /run/netns name)


# ---------------------------------------------------------------- workloads and tenants


class Placement(StrEnum):
    CONFIG = "config"  # a selector in the user's config
    NOVA = "nova"  # OpenStack Nova metadata
    PREFIX = "prefix"  # the name-prefix rule
    UNPLACED = "unplaced"


@dataclass(frozen=True)
class Workload:
    kind: WorkloadKind
    name: str
    host: str
    uuid: str = ""  # libvirt uuid; container id; netns inode as text
    state: str = ""  # running, shut off, paused, crashed, ...
    tenant: str = ""  # "" when unplaced
    placed_by: Placement = Placement.UNPLACED
    placed_rule: str = ""  # the selector or rule text that placed it
    vm: VmDetails | None = None
    container: ContainerDetails | None = None
    netns: NetnsDetails | None = None

    @cached_property
    def key(self) -> str:
        """Unique within a State: host, kind and name. Kept once made (read everywhere, at
        every State: panes, tenancy, checks; formatting the kind took ~1.8 us a time);
        `replace` makes a new Workload, and equality and encoding see only the fields."""
        return f"{self.host}/{self.kind.value}/{self.name}"


@dataclass(frozen=True)
class Tenant:
    name: str
    workloads: tuple[str, ...] = ()  # Workload.key
    hosts: tuple[str, ...] = ()


# ---------------------------------------------------------------- findings and errors


@dataclass(frozen=True)
class Evidence:
    """What a check looked at: where (file and line, XML path, /proc field) and what it saw."""

    where: str
    detail: str = ""


@dataclass(frozen=True)
class Finding:
    check_id: str  # stable: VM-01, NET-05, ...
    area: str  # host, vm, container, network, resources, logs, software
    title: str
    status: Status
    severity: Severity
    host: str = ""
    summary: str = ""  # one line, what was found
    why: str = ""
    tenants: tuple[str, ...] = ()
    workloads: tuple[str, ...] = ()  # Workload.key
    evidence: tuple[Evidence, ...] = ()
    fix: str = ""
    related: tuple[str, ...] = ()  # ids of checks whose findings corroborate this one (LOG-02 <-> VM-09)

    @property
    def key(self) -> str:
        return f"{self.check_id}|{self.host}|{','.join(self.workloads)}|{self.summary}"


@dataclass(frozen=True)
class ProbeError:
    probe: str
    host: str
    message: str
    at: float  # unix time
    since: float = 0.0  # first failure of the current streak


class ConnState(StrEnum):
    CONNECTING = "connecting"
    UP = "up"
    UNREACHABLE = "unreachable"
    AUTH_FAILED = "auth failed"
    HOST_KEY_REFUSED = "host key refused"
    ABSENT = "absent"  # e.g. no libvirt on this host


@dataclass(frozen=True)
class Connection:
    """State of one connection of a host (ssh, libvirt)."""

    what: str  # "ssh", "libvirt"
    state: ConnState
    detail: str = ""  # URI, error message
    since: float = 0.0


# ---------------------------------------------------------------- the whole picture


@dataclass(frozen=True)
class Feed:
    """How one area (a probe) learns of changes on a host, shown in the UI: from events
    (netlink, inotify, OVSDB, libvirt), with a slow safety poll for what events can miss, or
    by polling, and why (e.g. no event source over SSH)."""

    probe: str
    mode: str  # "events" or "polled"
    detail: str = ""  # which events, or why polled
    every: float = 0.0  # seconds between (safety) polls


@dataclass(frozen=True)
class HostState:
    """Everything observed on one host. Each probe owns some fields (see engine.Probe)."""

    host: Host
    workloads: tuple[Workload, ...] = ()
    connections: tuple[Connection, ...] = ()
    probe_errors: tuple[ProbeError, ...] = ()
    refreshed_at: float = 0.0  # last time any probe finished
    facts: HostFacts | None = None
    topology: Topology | None = None
    samples: ResourceSnapshot | None = None
    logs: LogView | None = None
    reach: ReachMatrix | None = None
    runtimes: tuple[RuntimeDaemon, ...] = ()  # container runtime daemons (Docker, Podman)
    feeds: tuple[Feed, ...] = ()  # per probe: event-driven or polled, and why
    xen: XenHost | None = None  # the Xen toolstack's view, where this host is a Xen dom0

    def connection(self, what: str) -> Connection | None:
        return next((c for c in self.connections if c.what == what), None)


class RequestState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"  # it ran and every host failed (the reason says which and why)
    REFUSED = "refused"  # the session's policy (read-only)
    UNAVAILABLE = "unavailable"  # this source cannot run it (replay, a static State)


REQUEST_FINISHED = frozenset(RequestState) - {RequestState.RUNNING}


@dataclass(frozen=True)
class RequestStatus:
    id: int
    kind: str  # probes.requests.kind_of(request)
    state: RequestState
    done: int = 0
    total: int = 0  # 0: not known yet
    message: str = ""  # why it failed, was refused or is unavailable; per-host problems
    started_at: float = 0.0
    finished_at: float = 0.0
    findings: tuple[Finding, ...] = ()  # Audit: what the checks found (also when cancelled)

    @property
    def finished(self) -> bool:
        return self.state in REQUEST_FINISHED


@dataclass(frozen=True)
class State:
    hosts: tuple[HostState, ...] = ()
    tenants: tuple[Tenant, ...] = ()
    findings: tuple[Finding, ...] = ()
    taken_at: float = 0.0
    source: str = "live"  # live, demo, replay of FILE
    drift: Drift | None = None  # what changed since the baseline (--baseline); derived, like findings
    requests: tuple[RequestStatus, ...] = ()  # what was asked of the session (probes/requests.py)

    def workloads(self) -> tuple[Workload, ...]:
        return tuple(w for h in self.hosts for w in h.workloads)

    def workload(self, key: str) -> Workload | None:
        return next((w for w in self.workloads() if w.key == key), None)


# Area models live in their own modules, owned by their areas; imported here so that
# HostState's annotations resolve (for msgspec and typing.get_type_hints).
from probes.drift.model import Drift  # noqa: E402
from probes.facts.model import HostFacts  # noqa: E402
from probes.logs.model import LogView  # noqa: E402
from probes.network.model import ReachMatrix, Topology  # noqa: E402
from probes.resources.model import ResourceSnapshot  # noqa: E402
from probes.xen.model import XenHost  # noqa: E402

__all__ = [
    "SEVERITY_ORDER",
    "STATUS_ORDER",
    "ConnState",
    "Connection",
    "ContainerDetails",
    "ContainerNetwork",
    "CpuTune",
    "DaemonSetting",
    "Disk",
    "Drift",
    "Evidence",
    "Finding",
    "Graphics",
    "Host",
    "HostFacts",
    "HostKind",
    "HostState",
    "Hostdev",
    "LogView",
    "MemTune",
    "MetadataItem",
    "Mount",
    "NetnsDetails",
    "Nic",
    "Placement",
    "ProbeError",
    "PublishedPort",
    "ReachMatrix",
    "RequestState",
    "RequestStatus",
    "ResourceSnapshot",
    "RuntimeDaemon",
    "RuntimeNetwork",
    "SecLabel",
    "Severity",
    "State",
    "Status",
    "Tenant",
    "Topology",
    "VmDetails",
    "Workload",
    "WorkloadKind",
    "XenHost",
]
