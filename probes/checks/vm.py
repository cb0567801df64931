"""VM checks (libvirt domains): confinement, labels, limits, pinning, devices, graphics,
disks, passthrough, encryption.

Each check is a pure function of State: the domain XML parsed into VmDetails (probes/inventory/
domxml.py), the tenant of each workload, and host facts where a check needs the host's side
(qemu.conf defaults, IOMMU groups, SMT siblings, image file modes), and the live limits the
resources probe read (HostState.samples) for VM-04, VM-05 and VM-12. Evidence names the
domain and the XML element; a fix is the command to paste, one a line, what to change in
`virsh edit NAME` (the XML) or why as a shell comment after it (`  # ...`).
"""

from __future__ import annotations

import os
import shlex
from collections import defaultdict
from collections.abc import Iterator

from probes.checks.base import CheckSpec, Skip, check, finding
from probes.checks.common import (
    cpulist,
    cross_tenant,
    dom,
    is_loopback,
    keys,
    limits_of,
    live_limits,
    parse_cpuset,
    passed,
    per_host,
    qemu_running,
    tenants_of,
    vms,
    who,
)
from probes.facts.model import HostFacts
from probes.hosts.libvirt_uri import display_uri, is_simulated
from probes.logs.classify import DISK_LOCK
from probes.logs.model import LogEvent, evidence_ref
from probes.model import Disk, Evidence, Finding, HostState, Severity, State, Status, Workload
from probes.units import fmt_bytes

MAC_MODELS = ("selinux", "apparmor")
TRUSTED_IMAGE_GROUPS = ("kvm", "qemu", "libvirt-qemu", "disk", "libvirt")
VIRTIO_NICS = ("virtio", "virtio-transitional", "virtio-non-transitional", "virtio-net")
EMULATED_BUSES = ("ide", "sata", "fdc", "usb", "sd")


# ---------------------------------------------------------------- VM-01


@check(
    "VM-01",
    "vm",
    "Domain is confined by sVirt (SELinux/AppArmor)",
    "An unconfined QEMU that a guest breaks out of can read every other tenant's disk images "
    "and memory on this host: sVirt confinement is what separates one QEMU from the next.",
    Severity.HIGH,
    fix="Remove <seclabel type='none'/> from the domain (virsh edit NAME) so libvirt applies "
    'a dynamic label, set security_driver to "selinux" or "apparmor" in '
    "/etc/libvirt/qemu.conf, and restart the domain.",
    reads=("workloads", "connections", "probe_errors", "facts"),
    scope="host",
)
def vm01_unconfined(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState) -> Iterator[Finding]:
        qconf = hs.facts.qemu_conf if hs.facts else None
        driver_none = bool(qconf and qconf.present and qconf.value("security_driver") == "none")
        bad = 0
        for w in hs.workloads:
            if w.vm and w.vm.parse_error:
                yield finding(
                    spec,
                    Status.ERROR,
                    f"{dom(w)}: XML unreadable, not checked: {w.vm.parse_error}",
                    host=hs.host.name,
                    tenants=[w.tenant] if w.tenant else [],
                    workloads=[w.key],
                )
        for w in vms(hs):
            assert w.vm
            labels = w.vm.seclabels
            # type none of any model: no sVirt label, or (model dac) QEMU keeps the daemon's uid: root
            none = [i for i, s in enumerate(labels) if s.type == "none"]
            ev: list[Evidence] = []
            if none:
                for i in none:
                    s = labels[i]
                    ev.append(
                        Evidence(
                            f"{dom(w)}: /domain/seclabel[{i + 1}]",
                            "type='none'" + (f" model='{s.model}'" if s.model else ""),
                        )
                    )
                yield finding(
                    spec,
                    Status.FAIL,
                    f"{who(w)} runs unconfined (seclabel type none)",
                    host=hs.host.name,
                    tenants=[w.tenant] if w.tenant else [],
                    workloads=[w.key],
                    evidence=ev,
                    fix=_virsh("edit", w.name) + "  # delete the <seclabel type='none'/> element "
                    "(libvirt then applies a dynamic sVirt label); restart the domain",
                )
                bad += 1
                continue
            if driver_none and qemu_running(w) and not any(s.model in MAC_MODELS for s in labels):
                yield finding(
                    spec,
                    Status.FAIL,
                    f'{who(w)} runs unconfined: qemu.conf security_driver = "none"',
                    host=hs.host.name,
                    tenants=[w.tenant] if w.tenant else [],
                    workloads=[w.key],
                    evidence=[Evidence(qconf.where("security_driver"), 'security_driver = "none"')]
                    if qconf
                    else [],
                    fix='In /etc/libvirt/qemu.conf set security_driver = [ "selinux" ] or '
                    '[ "apparmor" ], restart libvirtd, then restart the domains',
                )
                bad += 1
                continue
            models = {s.model for s in labels if s.type != "none"}
            if w.state == "running" and labels and models and not (models & set(MAC_MODELS)):
                yield finding(
                    spec,
                    Status.WARN,
                    f"{who(w)} is separated by DAC only (uid/gid), no SELinux/AppArmor label",
                    host=hs.host.name,
                    tenants=[w.tenant] if w.tenant else [],
                    workloads=[w.key],
                    severity=Severity.MEDIUM,
                    evidence=[
                        Evidence(
                            f"{dom(w)}: /domain/seclabel",
                            "models: " + ", ".join(sorted(m or "default" for m in models)),
                        )
                    ],
                    fix="Enable SELinux or AppArmor on the host (see HOST-02) and let libvirt's "
                    "security_driver use it; restart the domain",
                )
                bad += 1
        if not bad:
            yield passed(spec, hs, f"{len(vms(hs))} domain(s): none unconfined")

    yield from per_host(state, spec, body, libvirt=True)


# ---------------------------------------------------------------- VM-02


def _label_key(model: str, label: str) -> str:
    if model == "selinux":
        parts = label.split(":")
        return ":".join(parts[3:]) if len(parts) > 3 else label  # the MCS level: s0:c1,c2
    return label


@check(
    "VM-02",
    "vm",
    "Security labels are unique across tenants",
    "sVirt keeps QEMUs apart by giving each a unique MCS category pair or profile; two domains "
    "of different tenants with the same label can read each other's images and memory.",
    Severity.HIGH,
    fix="Use dynamic labels (<seclabel type='dynamic' model='selinux'/>) or give each domain "
    "its own static label (a unique category pair, e.g. s0:c101,c202).",
    reads=("workloads", "connections", "probe_errors"),
    scope="host",
)
def vm02_shared_label(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState) -> Iterator[Finding]:
        by_label: dict[tuple[str, str], list[tuple[Workload, int, str]]] = defaultdict(list)
        for w in vms(hs):
            assert w.vm
            for i, s in enumerate(w.vm.seclabels):
                if s.type == "none" or s.model == "dac" or not s.label:
                    continue
                by_label[(s.model, _label_key(s.model, s.label))].append((w, i, s.label))
        bad = 0
        for (model, key), users in sorted(by_label.items()):
            ws = [w for w, _, _ in users]
            status = cross_tenant(ws)
            if status is None:
                continue
            bad += 1
            what = "MCS level" if model == "selinux" else "label"
            yield finding(
                spec,
                status,
                f"{len(ws)} domains share {model or 'default'} {what} {key}: "
                + ", ".join(who(w) for w in ws),
                host=hs.host.name,
                tenants=tenants_of(ws),
                workloads=keys(ws),
                evidence=[
                    Evidence(f"{dom(w)}: /domain/seclabel[{i + 1}]", f"model='{model}' label='{label}'")
                    for w, i, label in users
                ],
            )
        if not bad:
            yield passed(
                spec,
                hs,
                f"{sum(len(v) for v in by_label.values())} label(s) seen, none shared across tenants",
            )

    yield from per_host(state, spec, body, libvirt=True)


# ---------------------------------------------------------------- VM-03


@check(
    "VM-03",
    "vm",
    "Static labels let libvirt relabel the images",
    "A static seclabel with relabel='no' leaves the disk images with whatever label they had: "
    "images copied or shared from another domain stay readable by it.",
    Severity.MEDIUM,
    fix="Set relabel='yes' on the static <seclabel> (or use type='dynamic'), or label the "
    "images by hand with the domain's imagelabel (chcon).",
    reads=("workloads", "connections", "probe_errors"),
    scope="host",
)
def vm03_static_norelabel(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState) -> Iterator[Finding]:
        bad = 0
        for w in vms(hs):
            assert w.vm
            for i, s in enumerate(w.vm.seclabels):
                if s.type == "static" and not s.relabel and s.model != "dac":
                    bad += 1
                    yield finding(
                        spec,
                        Status.WARN,
                        f"{who(w)} has a static {s.model or 'default'} label without relabel",
                        host=hs.host.name,
                        tenants=[w.tenant] if w.tenant else [],
                        workloads=[w.key],
                        evidence=[
                            Evidence(
                                f"{dom(w)}: /domain/seclabel[{i + 1}]",
                                f"type='static' relabel='no' label='{s.label}'",
                            )
                        ],
                        fix=_virsh("edit", w.name)
                        + f"  # <seclabel type='static' model='{s.model or 'selinux'}' "
                        f"relabel='yes'><label>{s.label or '...'}</label></seclabel>",
                    )
        if not bad:
            yield passed(spec, hs, "no static label without relabel")

    yield from per_host(state, spec, body, libvirt=True)


# ---------------------------------------------------------------- VM-04, VM-05 (limits; the live values come from the resources probe)


def _virsh(*argv: str) -> str:
    return shlex.join(["virsh", *argv])


@check(
    "VM-04",
    "vm",
    "VM without a CPU limit",
    "A VM without a CPU quota can use every host core it has vCPUs for; shares only weigh "
    "tenants against each other when the host is full, they never cap anyone.",
    Severity.MEDIUM,
    "virsh schedinfo DOMAIN --live --config vcpu_quota=50000 vcpu_period=100000",
    reads=("workloads", "samples", "connections", "probe_errors"),
    figures=limits_of,
    scope="host",
)
def vm04_no_cpu_limit(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState) -> Iterator[Finding]:
        for w in vms(hs):
            assert w.vm is not None
            ct = w.vm.cputune
            xml_cap = bool((ct.quota and ct.quota > 0) or (ct.emulator_quota and ct.emulator_quota > 0))
            live = live_limits(hs, w.key)
            if live is not None and qemu_running(w) and live.cpu_known:
                capped = live.cpu_quota_cores is not None
                where = f"live: {live.where}"
            else:
                capped = bool(ct.quota and ct.quota > 0)
                where = "XML /domain/cputune/quota"
            if capped:
                continue
            shares = ct.shares or (live.cpu_shares if live else None)
            weight = f"; only a relative weight (shares {ct.shares})" if ct.shares else ""
            drifted = " (the XML has a quota, the live cgroup does not)" if xml_cap else ""
            yield finding(
                spec,
                Status.WARN if ct.shares else Status.FAIL,
                f"{w.name}: no CPU quota{drifted}{weight}; it can use {w.vm.vcpus or '?'} full core(s)",
                host=hs.host.name,
                tenants=[w.tenant] if w.tenant else [],
                workloads=[w.key],
                evidence=[Evidence(where, f"quota={ct.quota} period={ct.period} shares={shares}")],
                fix=_virsh(
                    "schedinfo", w.name, "--live", "--config", "vcpu_quota=50000", "vcpu_period=100000"
                ),
            )

    yield from per_host(state, spec, body, libvirt=True)


@check(
    "VM-05",
    "vm",
    "VM without a memory limit",
    "<memory> sizes the guest, but QEMU's own allocations on the host are unbounded without "
    "memtune hard_limit: a runaway VM can push the host into swap or the OOM killer, which "
    "then kills other tenants' VMs.",
    Severity.MEDIUM,
    "virsh memtune DOMAIN --hard-limit KIB --live --config (guest memory + ~256 MiB)",
    reads=("workloads", "samples", "connections", "probe_errors"),
    figures=limits_of,
    scope="host",
)
def vm05_no_memory_limit(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState) -> Iterator[Finding]:
        for w in vms(hs):
            assert w.vm is not None
            if w.vm.domain_type == "xen":  # Xen caps a domain at its maximum memory; no QEMU owns it
                continue
            xml = w.vm.memtune.hard_limit_kib
            live = live_limits(hs, w.key)
            if live is not None and qemu_running(w) and live.mem_known:
                limited = live.mem_limit_bytes is not None
                where = f"live: {live.where}"
            else:
                limited = xml is not None
                where = "XML /domain/memtune/hard_limit"
            if limited:
                continue
            suggest = (w.vm.memory_kib or 0) + 256 * 1024
            yield finding(
                spec,
                Status.WARN,
                f"{w.name}: no memory hard limit (guest memory "
                f"{(w.vm.memory_kib or 0) // 1024} MiB, QEMU overhead unbounded)",
                host=hs.host.name,
                tenants=[w.tenant] if w.tenant else [],
                workloads=[w.key],
                evidence=[Evidence(where, f"hard_limit_kib={xml}")],
                fix=_virsh("memtune", w.name, "--hard-limit", str(suggest), "--live", "--config"),
            )

    yield from per_host(state, spec, body, libvirt=True)


# ---------------------------------------------------------------- VM-06


def _pins(
    w: Workload, seen: dict[str, frozenset[int]] | None = None
) -> tuple[frozenset[int], frozenset[int], str]:
    """(vCPU host CPUs, emulator host CPUs, where): empty sets when unpinned. `seen`: the
    cpusets parsed so far (a fleet repeats a few dozen cpusets over thousands of pins)."""
    assert w.vm
    memo: dict[str, frozenset[int]] = {} if seen is None else seen

    def cpuset(text: str) -> frozenset[int]:
        got = memo.get(text)
        if got is None:
            got = memo[text] = parse_cpuset(text)
        return got

    ct = w.vm.cputune
    default = cpuset(w.vm.cpuset) if w.vm.cpuset else frozenset()
    vcpu: set[int] = set()
    for _, cs in ct.vcpupin:
        vcpu |= cpuset(cs)
    pinned_vcpus = {v for v, _ in ct.vcpupin}
    if default and (not ct.vcpupin or len(pinned_vcpus) < max(w.vm.vcpus, 1)):
        vcpu |= default
    emu = cpuset(ct.emulatorpin) if ct.emulatorpin else default
    return frozenset(vcpu), frozenset(emu), ""


@check(
    "VM-06",
    "vm",
    "No host CPU or SMT sibling shared across tenants",
    "vCPUs of different tenants on the same host CPU or on SMT siblings of one core share "
    "caches and execution units: the path of L1TF, MDS and other side channels.",
    Severity.HIGH,
    fix="Pin each tenant's vCPUs and emulator threads to whole cores of its own "
    "(<cputune><vcpupin vcpu='0' cpuset='4'/><emulatorpin cpuset='5'/></cputune>), and "
    "pin every domain on a host where some are pinned.",
    reads=("workloads", "connections", "probe_errors", "facts"),
    scope="host",
)
def vm06_cpu_sharing(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState) -> Iterator[Finding]:
        siblings: dict[int, frozenset[int]] = {}
        if hs.facts:
            for s in hs.facts.cpu_siblings:
                try:
                    siblings[s.cpu] = parse_cpuset(s.siblings)
                except ValueError:
                    continue
        pins: dict[str, tuple[Workload, frozenset[int]]] = {}
        unpinned: list[Workload] = []
        errors = 0
        cpusets: dict[str, frozenset[int]] = {}
        for w in vms(hs):
            try:
                vcpu, emu, _ = _pins(w, cpusets)
            except ValueError as e:
                errors += 1
                yield finding(
                    spec,
                    Status.ERROR,
                    f"{dom(w)}: unreadable cpuset: {e}",
                    host=hs.host.name,
                    workloads=[w.key],
                )
                continue
            cpus = vcpu | emu
            if cpus:
                pins[w.key] = (w, cpus)
            else:
                unpinned.append(w)

        # Work per CPU and per owner (tenant, or the domain itself when unplaced), not per
        # domain pair: a fleet of 1,000 pinned domains stays linear in CPUs x owners.
        def owner(w: Workload) -> str:
            return w.tenant or f"unplaced:{w.name}"

        by_cpu: dict[int, dict[str, list[Workload]]] = defaultdict(lambda: defaultdict(list))
        by_owner: dict[str, list[tuple[Workload, frozenset[int]]]] = defaultdict(list)
        for w, cpus in pins.values():
            by_owner[owner(w)].append((w, cpus))
            for c in cpus:
                by_cpu[c][owner(w)].append(w)

        same: dict[tuple[str, str], set[int]] = defaultdict(set)
        smt: dict[tuple[str, str], set[int]] = defaultdict(set)
        for c, owners in by_cpu.items():
            names = sorted(owners)
            for i, oa in enumerate(names):
                for ob in names[i + 1 :]:
                    same[(oa, ob)].add(c)
            for sib in siblings.get(c, frozenset()):
                if sib <= c or sib not in by_cpu:
                    continue
                for oa in owners:
                    for ob in by_cpu[sib]:
                        if oa != ob:
                            pair = smt[(oa, ob) if oa < ob else (ob, oa)]
                            pair.add(c)
                            pair.add(sib)
        evidence: dict[str, Evidence] = {}  # a domain is an example of many pairs

        def pin_evidence(w: Workload) -> Evidence:
            got = evidence.get(w.key)
            if got is None:
                got = evidence[w.key] = _pin_evidence(w)
            return got

        bad = 0
        for kind, found in (("same", same), ("smt", smt)):
            for (oa, ob), cpuset in sorted(found.items()):
                if kind == "smt" and (oa, ob) in same:
                    continue  # already reported as the stronger finding
                # the domains of the two owners on the CPUs concerned, and example pairs
                wa = [(w, cs) for w, cs in by_owner[oa] if not cs.isdisjoint(cpuset)]
                wb = [(w, cs) for w, cs in by_owner[ob] if not cs.isdisjoint(cpuset)]
                ws = [w for w, _ in wa + wb]
                status = cross_tenant(ws) or Status.WARN
                examples: list[tuple[Workload, Workload]] = []
                for x, xs in wa:
                    near = xs | {n for c in xs for n in siblings.get(c, ())} if kind == "smt" else xs
                    examples += [(x, y) for y, ys in wb if not ys.isdisjoint(near)][: 5 - len(examples)]
                    if len(examples) >= 5:
                        break
                pairs_txt = ", ".join(f"{who(x)} + {who(y)}" for x, y in examples) + (
                    f" (and more: {len(ws)} domains)" if len(ws) > 2 * len(examples) else ""
                )
                ev = [e for x, y in examples for e in (pin_evidence(x), pin_evidence(y))]
                if kind == "same":
                    summary = f"{pairs_txt} are pinned to the same host CPUs {cpulist(cpuset)}"
                else:
                    summary = f"{pairs_txt} run on SMT siblings of one core (CPUs {cpulist(cpuset)})"
                    ev.append(
                        Evidence(
                            "/sys/devices/system/cpu/cpu*/topology/thread_siblings_list",
                            ", ".join(
                                f"cpu{c}: siblings {cpulist(siblings[c])}"
                                for c in sorted(cpuset)
                                if c in siblings
                            ),
                        )
                    )
                bad += 1
                yield finding(
                    spec,
                    status,
                    summary,
                    host=hs.host.name,
                    tenants=tenants_of(ws),
                    workloads=keys(ws),
                    evidence=ev,
                )
        if pins and unpinned:
            pinned_ws = [w for w, _ in pins.values()]
            if cross_tenant(pinned_ws + unpinned) is not None:
                bad += 1
                yield finding(
                    spec,
                    Status.WARN,
                    f"{len(unpinned)} domain(s) float over all host CPUs while {len(pins)} are pinned: "
                    + ", ".join(who(w) for w in unpinned[:10])
                    + (" ..." if len(unpinned) > 10 else ""),
                    host=hs.host.name,
                    tenants=tenants_of(pinned_ws + unpinned),
                    workloads=keys(unpinned),
                    severity=Severity.MEDIUM,
                    evidence=[
                        Evidence(f"{dom(w)}: /domain/cputune", "no vcpupin, emulatorpin or vcpu cpuset")
                        for w in unpinned[:10]
                    ],
                    fix="Pin the unpinned domains to CPUs no other tenant uses "
                    "(virsh vcpupin NAME VCPU CPULIST --live --config; virsh emulatorpin NAME CPULIST "
                    "--live --config)",
                )
        if not bad and not errors:
            yield passed(
                spec,
                hs,
                f"{len(pins)} pinned and {len(unpinned)} unpinned domain(s): no CPU shared across tenants",
            )

    yield from per_host(state, spec, body, libvirt=True)


def _pin_evidence(w: Workload) -> Evidence:
    assert w.vm
    ct = w.vm.cputune
    parts = [f"vcpupin vcpu={v} cpuset={c}" for v, c in ct.vcpupin]
    if ct.emulatorpin:
        parts.append(f"emulatorpin cpuset={ct.emulatorpin}")
    if w.vm.cpuset:
        parts.append(f"vcpu cpuset={w.vm.cpuset}")
    return Evidence(f"{dom(w)}: /domain/cputune", "; ".join(parts))


# ---------------------------------------------------------------- VM-07


@check(
    "VM-07",
    "vm",
    "Paravirtual (virtio) disks and NICs",
    "Emulated IDE/SATA/floppy controllers and e1000/rtl8139 NICs are large, old device models "
    "in QEMU: the attack surface guests have used to escape (VENOM was the floppy controller).",
    Severity.MEDIUM,
    fix="Use bus='virtio' for disks and <model type='virtio'/> for NICs (the guest needs virtio drivers).",
    reads=("workloads", "connections", "probe_errors"),
    scope="host",
)
def vm07_emulated_devices(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState) -> Iterator[Finding]:
        bad = 0
        for w in vms(hs):
            assert w.vm
            ev: list[Evidence] = []
            for d in w.vm.disks:
                if (d.device == "disk" and d.bus in EMULATED_BUSES) or d.device == "floppy":
                    ev.append(
                        Evidence(
                            f"{dom(w)}: /domain/devices/disk[target='{d.target}']/target",
                            f"device='{d.device}' bus='{d.bus}'",
                        )
                    )
            for n in w.vm.nics:
                if n.model and n.model not in VIRTIO_NICS and n.type not in ("hostdev", "vhostuser"):
                    ev.append(
                        Evidence(
                            f"{dom(w)}: /domain/devices/interface[mac='{n.mac}']/model", f"type='{n.model}'"
                        )
                    )
            if ev:
                bad += 1
                yield finding(
                    spec,
                    Status.WARN,
                    f"{who(w)} uses emulated devices: " + ", ".join(e.detail for e in ev),
                    host=hs.host.name,
                    tenants=[w.tenant] if w.tenant else [],
                    workloads=[w.key],
                    evidence=ev,
                    fix=_virsh("edit", w.name) + "  # <target dev='vda' bus='virtio'/> for disks, "
                    "<model type='virtio'/> for interfaces",
                )
        if not bad:
            yield passed(spec, hs, "all disks and NICs are virtio (or unspecified)")

    yield from per_host(state, spec, body, libvirt=True)


# ---------------------------------------------------------------- VM-08


@check(
    "VM-08",
    "vm",
    "Graphics consoles: loopback only, with a password",
    "A VNC/SPICE console is the guest's keyboard and screen: listening beyond loopback without "
    "a password hands any tenant on the network (or any local user) another tenant's VM.",
    Severity.HIGH,
    fix="<graphics type='vnc' listen='127.0.0.1' autoport='yes' passwd='A-SECRET'/> and reach it "
    "through an SSH tunnel; or <listen type='socket'/>.",
    reads=("workloads", "connections", "probe_errors", "facts"),
    scope="host",
)
def vm08_graphics(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState) -> Iterator[Finding]:
        q = hs.facts.qemu_conf if hs.facts and hs.facts.qemu_conf and hs.facts.qemu_conf.present else None
        bad = 0
        for w in vms(hs):
            assert w.vm
            for i, g in enumerate(w.vm.graphics):
                if g.type not in ("vnc", "spice", "rdp"):
                    continue  # sdl, egl-headless, dbus: no network listener
                if g.listen_type in ("socket", "none"):
                    continue
                listen, listen_from = g.listen, f"{dom(w)}: /domain/devices/graphics[{i + 1}]"
                if not listen and g.listen_type != "network":
                    conf_key = f"{g.type}_listen"
                    listen = (q.value(conf_key) if q else "") or "127.0.0.1"
                    if q and q.get(conf_key):
                        listen_from = q.where(conf_key)
                pw = g.passwd_set or bool(q and q.value(f"{g.type}_password"))
                # read-only connections never see `passwd`: then "no password" is not known
                pw_known = pw or g.passwd_known
                beyond = g.listen_type == "network" or not is_loopback(listen)
                where_txt = f"network {g.listen or '?'}" if g.listen_type == "network" else listen
                ev = [
                    Evidence(
                        f"{dom(w)}: /domain/devices/graphics[{i + 1}]",
                        f"type='{g.type}' listen='{where_txt}' port={g.port} passwd="
                        + ("set" if pw else "none" if pw_known else "not visible (read-only connection)"),
                    )
                ]
                if listen_from != ev[0].where:
                    ev.append(Evidence(listen_from, f'{g.type}_listen = "{listen}"'))
                fix = (
                    _virsh("edit", w.name)
                    + f"  # <graphics type='{g.type}' autoport='yes' listen='127.0.0.1' "
                    "passwd='A-SECRET'/>; reach it with ssh -L"
                )
                if beyond and not pw and not pw_known:
                    status, sev, what = (
                        Status.WARN,
                        Severity.HIGH,
                        f"listens on {where_txt}; whether it has "
                        "a password is not visible read-only (virsh dumpxml --security-info)",
                    )
                elif beyond and not pw:
                    status, sev, what = (
                        Status.FAIL,
                        Severity.HIGH,
                        f"listens on {where_txt} without a password",
                    )
                elif beyond:
                    status, sev, what = (
                        Status.WARN,
                        Severity.MEDIUM,
                        f"listens on {where_txt} (password set; VNC passwords are weak)",
                    )
                elif not pw and pw_known:
                    status, sev, what = (
                        Status.WARN,
                        Severity.LOW,
                        f"on {listen} without a password: any local user can attach",
                    )
                else:
                    continue
                bad += 1
                yield finding(
                    spec,
                    status,
                    f"{who(w)}: {g.type.upper()} console {what}",
                    host=hs.host.name,
                    tenants=[w.tenant] if w.tenant else [],
                    workloads=[w.key],
                    evidence=ev,
                    fix=fix,
                    severity=sev,
                )
        if not bad:
            yield passed(spec, hs, "no console beyond loopback or without a password")

    yield from per_host(state, spec, body, libvirt=True)


# ---------------------------------------------------------------- VM-09


def _disk_key(source: str, dtype: str) -> str:
    return os.path.normpath(source) if source.startswith("/") else source


def _lock_failures(hs: HostState, src: str) -> list[LogEvent]:
    """The host's qemu image-lock failures naming disk `src` (logs area, tag disk-lock)."""
    if hs.logs is None:
        return []
    return [
        e
        for e in hs.logs.signals
        if DISK_LOCK in e.tags and e.field("disk") and _disk_key(e.field("disk"), "file") == src
    ]


def _detach_fix(us: list[tuple[Workload, str, bool, bool]]) -> str:
    """One `virsh detach-disk` a line for the domains of every tenant but the first user's, the
    why as a shell comment (as the other fixes to paste: command, then `  # ...`)."""

    def owner(w: Workload) -> str:
        return w.tenant or w.key  # an unplaced domain is nobody else's

    keep = owner(us[0][0])
    kept = ", ".join(dict.fromkeys(w.name for w, *_ in us if owner(w) == keep))
    lines = [_virsh("detach-disk", w.name, t, "--config") for w, t, _, _ in us if owner(w) != keep]
    whose = f"tenant {keep}" if us[0][0].tenant else "its one domain"
    lines[0] += f"  # the disk stays with {whose} ({kept}) only"
    return "\n".join(lines)


@check(
    "VM-09",
    "vm",
    "No disk attached to domains of more than one tenant",
    "A disk image or volume attached to two tenants' domains is a direct channel between them: "
    "one writes, the other reads, and a writable shared disk can be corrupted by either.",
    Severity.CRITICAL,
    fix="Give each tenant its own copy (qemu-img create -f qcow2 -b BASE -F qcow2 COPY) and detach "
    "the shared disk (virsh detach-disk NAME TARGET --config).",
    reads=("workloads", "connections", "probe_errors", "logs"),
    scope="host",
)
def vm09_shared_disk(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState) -> Iterator[Finding]:
        users: dict[str, list[tuple[Workload, str, bool, bool]]] = defaultdict(list)
        for w in vms(hs):
            assert w.vm
            for d in w.vm.disks:
                if d.source and d.type != "dir":
                    users[_disk_key(d.source, d.type)].append((w, d.target, d.readonly, d.shareable))
        bad = 0
        for src, us in sorted(users.items()):
            ws = [u[0] for u in us]
            status = cross_tenant(ws)
            if status is None:
                continue
            writable = [u for u in us if not u[2]]
            sev = Severity.CRITICAL if writable else Severity.LOW
            if not writable:
                status = Status.WARN
            marks = " (marked shareable)" if any(u[3] for u in us) else ""
            locks = _lock_failures(hs, src)  # qemu refused to lock it: the sharing is live
            bad += 1
            yield finding(
                spec,
                status,
                f"{src} is attached to {len({w.key for w in ws})} domains{marks}: "
                + ", ".join(who(w) for w in dict.fromkeys(ws))
                + ("" if writable else " (read-only everywhere)"),
                host=hs.host.name,
                tenants=tenants_of(ws),
                workloads=keys(ws),
                severity=sev,
                evidence=[
                    Evidence(
                        f"{dom(w)}: /domain/devices/disk[target='{t}']/source",
                        f"{src}" + (" readonly" if ro else "") + (" shareable" if sh else ""),
                    )
                    for w, t, ro, sh in us
                ]
                + [
                    Evidence(
                        evidence_ref(e),  # the log line itself (the finding jumps to it)
                        f"LOG-02: qemu could not lock it, another domain has it open now: {e.message[:200]}",
                    )
                    for e in locks[-3:]
                ],
                fix=_detach_fix(us),
                related=("LOG-02",) if locks else (),
            )
        if not bad:
            yield passed(spec, hs, f"{len(users)} disk source(s), none attached across tenants")

    yield from per_host(state, spec, body, libvirt=True)


# ---------------------------------------------------------------- VM-10


@check(
    "VM-10",
    "vm",
    "Disk images are not readable or writable by other users",
    "An image file with world (or foreign group) read or write bits exposes a tenant's disk to "
    "every local account and to any process that escaped its confinement.",
    Severity.HIGH,
    fix="chmod 0600 IMAGE (libvirt's dynamic_ownership gives it to the QEMU user while the domain runs).",
    reads=("workloads", "connections", "probe_errors", "facts", "source"),
    scope="host",
)
def vm10_image_modes(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState, facts: HostFacts) -> Iterator[Finding]:
        bad = checked = unknown = 0
        for w in vms(hs):
            assert w.vm
            for d in w.vm.disks:
                if d.type not in ("file", "block") or not d.source.startswith("/"):
                    continue
                st = facts.stat(d.source)
                if st is None:
                    unknown += 1
                    continue
                if not st.exists:
                    continue
                checked += 1
                ev = [
                    Evidence(
                        f"stat {d.source}",
                        f"mode {st.mode:04o} owner {st.user or st.uid}:{st.group or st.gid} ({st.kind})",
                    ),
                    Evidence(f"{dom(w)}: /domain/devices/disk[target='{d.target}']/source", d.source),
                ]
                if st.mode & 0o006:
                    rw = "writable" if st.mode & 0o002 else "readable"
                    bad += 1
                    yield finding(
                        spec,
                        Status.FAIL,
                        f"{d.source} of {who(w)} is world-{rw} ({st.mode:04o})",
                        host=hs.host.name,
                        tenants=[w.tenant] if w.tenant else [],
                        workloads=[w.key],
                        evidence=ev,
                        fix=f"chmod o-rwx {d.source}",
                    )
                elif st.mode & 0o060 and st.group not in TRUSTED_IMAGE_GROUPS:
                    bad += 1
                    yield finding(
                        spec,
                        Status.WARN,
                        f"{d.source} of {who(w)} is open to group {st.group or st.gid} ({st.mode:04o})",
                        host=hs.host.name,
                        tenants=[w.tenant] if w.tenant else [],
                        workloads=[w.key],
                        evidence=ev,
                        severity=Severity.MEDIUM,
                        fix=f"chmod g-rwx {d.source}",
                    )
        if not bad:
            if unknown and not checked:
                yield finding(spec, Status.SKIPPED, f"{unknown} image(s) not stat'ed yet", host=hs.host.name)
            else:
                yield passed(
                    spec,
                    hs,
                    f"{checked} image file(s) checked, none open to other users"
                    + (f" ({unknown} not stat'ed yet)" if unknown else ""),
                )

    yield from per_host(state, spec, body, libvirt=True, facts=True)


# ---------------------------------------------------------------- VM-11 / VM-14 (passthrough)


def _pci_hostdevs(w: Workload) -> list[str]:
    assert w.vm
    return [h.address for h in w.vm.hostdevs if h.type == "pci" and h.address]


@check(
    "VM-11",
    "vm",
    "PCI passthrough only with the IOMMU on",
    "Without an IOMMU a passed-through device can DMA anywhere in host memory: the guest that "
    "owns it can read and write every other tenant and the host.",
    Severity.CRITICAL,
    fix="Enable VT-d/AMD-Vi in the firmware and boot with intel_iommu=on (or amd_iommu=on) "
    "iommu=pt; until then detach the device (virsh detach-device NAME FILE --config).",
    reads=("workloads", "connections", "probe_errors", "facts"),
    scope="host",
)
def vm11_passthrough_without_iommu(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState) -> Iterator[Finding]:
        users = [(w, a) for w in vms(hs) for a in _pci_hostdevs(w)]
        if not users:
            yield passed(spec, hs, "no PCI passthrough")
            return
        if hs.facts is None:
            yield finding(
                spec, Status.SKIPPED, "IOMMU state unknown: host facts not collected", host=hs.host.name
            )
            return
        if hs.facts.iommu_groups:
            yield passed(
                spec,
                hs,
                f"{len(users)} passed-through device(s), IOMMU on ({len(hs.facts.iommu_groups)} groups)",
            )
            return
        ws = [w for w, _ in users]
        yield finding(
            spec,
            Status.FAIL,
            f"{len(users)} PCI device(s) passed through with no IOMMU: "
            + ", ".join(f"{a} to {who(w)}" for w, a in users),
            host=hs.host.name,
            tenants=tenants_of(ws),
            workloads=keys(ws),
            evidence=[
                Evidence("/sys/kernel/iommu_groups", "empty (IOMMU off)"),
                Evidence("/proc/cmdline", hs.facts.cmdline[:300]),
            ]
            + [Evidence(f"{dom(w)}: /domain/devices/hostdev/source/address", a) for w, a in users],
        )

    yield from per_host(state, spec, body, libvirt=True)


@check(
    "VM-14",
    "vm",
    "Passthrough devices of different tenants are in different IOMMU groups",
    "Devices in one IOMMU group can reach each other by peer-to-peer DMA: splitting a group "
    "between tenants lets one tenant's device touch the other's.",
    Severity.HIGH,
    fix="Give a whole IOMMU group to one tenant (see /sys/kernel/iommu_groups/N/devices), or move "
    "the card to a slot with its own group; avoid pcie_acs_override.",
    reads=("workloads", "connections", "probe_errors", "facts", "source"),
    scope="host",
)
def vm14_iommu_group_split(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState, facts: HostFacts) -> Iterator[Finding]:
        group_of = {d: g.group for g in facts.iommu_groups for d in g.devices}
        by_group: dict[str, list[tuple[Workload, str]]] = defaultdict(list)
        for w in vms(hs):
            for a in _pci_hostdevs(w):
                g = group_of.get(a)
                if g is not None:
                    by_group[g].append((w, a))
        bad = 0
        for g, us in sorted(by_group.items()):
            ws = [w for w, _ in us]
            status = cross_tenant(ws)
            if status is None:
                continue
            bad += 1
            yield finding(
                spec,
                status,
                f"IOMMU group {g} is split between " + ", ".join(f"{a} ({who(w)})" for w, a in us),
                host=hs.host.name,
                tenants=tenants_of(ws),
                workloads=keys(ws),
                evidence=[
                    Evidence(
                        f"/sys/kernel/iommu_groups/{g}/devices",
                        " ".join(next(x.devices for x in facts.iommu_groups if x.group == g)),
                    )
                ]
                + [Evidence(f"{dom(w)}: /domain/devices/hostdev/source/address", a) for w, a in us],
            )
        if not bad:
            yield passed(
                spec,
                hs,
                f"{sum(len(v) for v in by_group.values())} passed-through device(s), "
                "no IOMMU group split across tenants",
            )

    yield from per_host(state, spec, body, libvirt=True, facts=True)


# ---------------------------------------------------------------- VM-12


DRIFT_TOLERANCE = 0.01


@check(
    "VM-12",
    "vm",
    "Limits in the XML differ from the live cgroup",
    "What libvirt's XML promises and what the kernel enforces have drifted apart (someone "
    "wrote the cgroup directly, or a change was applied --config only): the reviewed "
    "configuration is not the one in force.",
    Severity.MEDIUM,
    "Re-apply the XML values live (`virsh schedinfo` / `virsh memtune` with --live), or "
    "update the XML to what is intended.",
    reads=("workloads", "samples"),
    figures=limits_of,
)
def vm12_limits_drift(state: State, spec: CheckSpec) -> Iterator[Finding]:
    seen = False
    simulated: list[str] = []
    for hs in state.hosts:
        if is_simulated(hs.host.libvirt_uri):  # the test driver's live values are made up
            simulated.append(hs.host.libvirt_uri or "")
            continue
        for w in vms(hs):
            assert w.vm is not None
            live = live_limits(hs, w.key)
            if live is None or not qemu_running(w) or live.source != "libvirt live":
                continue
            seen = True
            ct, mt = w.vm.cputune, w.vm.memtune
            diffs: list[tuple[str, str, str]] = []
            xml_cores = None
            if ct.quota and ct.quota > 0:
                xml_cores = ct.quota / (ct.period or 100000) * max(1, w.vm.vcpus or 1)
            if live.cpu_known and not _close(xml_cores, live.cpu_quota_cores):
                diffs.append(("CPU quota (cores)", _cores(xml_cores), _cores(live.cpu_quota_cores)))
            if ct.shares is not None and live.cpu_shares is not None and ct.shares != live.cpu_shares:
                diffs.append(("cpu shares", str(ct.shares), str(live.cpu_shares)))
            xml_mem = mt.hard_limit_kib * 1024 if mt.hard_limit_kib else None
            if live.mem_known and not _close(xml_mem, live.mem_limit_bytes):
                diffs.append(
                    ("memory hard limit", _bytes_or_none(xml_mem), _bytes_or_none(live.mem_limit_bytes))
                )
            if diffs:
                yield finding(
                    spec,
                    Status.WARN,
                    f"{w.name}: " + "; ".join(f"{what} XML {x} vs live {lv}" for what, x, lv in diffs),
                    host=hs.host.name,
                    tenants=[w.tenant] if w.tenant else [],
                    workloads=[w.key],
                    evidence=[
                        Evidence(
                            "XML /domain/cputune, /domain/memtune",
                            f"quota={ct.quota} period={ct.period} shares={ct.shares} "
                            f"hard_limit_kib={mt.hard_limit_kib}",
                        ),
                        Evidence(
                            f"live: {live.where}",
                            f"cpu_quota_cores={live.cpu_quota_cores} "
                            f"shares={live.cpu_shares} mem_limit={live.mem_limit_bytes}",
                        ),
                    ],
                )
    if not seen and simulated:
        raise Skip(
            f"libvirt test driver ({display_uri(simulated[0])}): a simulated hypervisor's live values are "
            "made up, not evidence of drift"
        )
    if not seen and not any(True for hs in state.hosts for _ in vms(hs)):
        return
    if not seen:
        raise Skip("no live limits read yet for any running VM")


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= DRIFT_TOLERANCE * max(abs(a), abs(b), 1e-9)


def _cores(v: float | None) -> str:
    return "none" if v is None else f"{v:.2f}"


def _bytes_or_none(v: float | None) -> str:
    return "none" if v is None else fmt_bytes(v)


# ---------------------------------------------------------------- VM-13


@check(
    "VM-13",
    "vm",
    "Tenant disks are encrypted at rest",
    "A disk without LUKS encryption is readable by whoever gets the image file or the storage "
    "under it: a copied image, a shared pool, a decommissioned drive.",
    Severity.LOW,
    fix="Use LUKS volumes: qemu-img create --object secret,id=s0,file=KEYFILE -f luks "
    "-o key-secret=s0 IMAGE SIZE and <encryption format='luks'><secret type='passphrase' "
    "uuid='...'/></encryption> in the disk's <source>.",
    reads=("workloads", "connections", "probe_errors"),
    scope="host",
)
def vm13_unencrypted(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState) -> Iterator[Finding]:
        # one warning per tenant (what the config silences), unplaced domains one each
        by_owner: dict[str, list[tuple[Workload, list[Disk]]]] = defaultdict(list)
        for w in vms(hs):
            assert w.vm
            plain = [d for d in w.vm.disks if d.device == "disk" and not d.readonly and not d.encrypted]
            if plain:
                by_owner[w.tenant or f"unplaced:{w.name}"].append((w, plain))
        for owner, items in sorted(by_owner.items()):
            ws = [w for w, _ in items]
            n = sum(len(p) for _, p in items)
            names = ", ".join(f"{w.name} ({', '.join(d.target for d in p)})" for w, p in items[:10])
            more = f" and {len(items) - 10} more domain(s)" if len(items) > 10 else ""
            label = ws[0].tenant or "unplaced"
            yield finding(
                spec,
                Status.WARN,
                f"{label}: {n} disk(s) not encrypted at rest in {len(ws)} domain(s): {names}{more}",
                host=hs.host.name,
                tenants=tenants_of(ws),
                workloads=keys(ws),
                evidence=[
                    Evidence(
                        f"{dom(w)}: /domain/devices/disk[target='{d.target}']",
                        f"{d.source or d.type}: no <encryption>",
                    )
                    for w, p in items[:10]
                    for d in p
                ][:20],
            )
        if not by_owner:
            yield passed(spec, hs, "all writable disks encrypted")

    yield from per_host(state, spec, body, libvirt=True)
