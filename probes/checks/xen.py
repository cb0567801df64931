"""Xen isolation checks (XEN-01..XEN-07): pure functions of the Xen domains libvirt shows
(`VmDetails.xen_guest`, the device model) and of what the toolstack said (HostState.xen:
`xl info`, `xl list -l`, `xl getenforce`, `xenstore-ls -p`)."""

from __future__ import annotations

from collections.abc import Iterator

from probes.checks.base import CheckSpec, Skip, check, finding
from probes.model import Evidence, Finding, HostState, Severity, State, Status, Workload, WorkloadKind
from probes.xen.model import XenDomain, XenHost

UNPLACED = "(unplaced)"


def _xen_vms(hs: HostState) -> list[Workload]:
    return [w for w in hs.workloads if w.kind == WorkloadKind.VM and w.vm and w.vm.domain_type == "xen"]


def _xen_hosts(state: State) -> list[HostState]:
    hosts = [hs for hs in state.hosts if hs.xen is not None or _xen_vms(hs)]
    if not hosts:
        raise Skip("no Xen host or Xen domain observed")
    return hosts


def _toolstack(state: State) -> list[tuple[HostState, XenHost]]:
    got = [(hs, hs.xen) for hs in state.hosts if hs.xen is not None]
    if not got:
        raise Skip("no Xen toolstack read (not a Xen dom0, or xl not reachable)")
    return got


def _unmanaged(hs: HostState, xen: XenHost) -> list[XenDomain]:
    """Domains `xl list -l` shows that no libvirt domain of this host accounts for (dom0 aside)."""
    known = {w.name: w.uuid.lower() for w in _xen_vms(hs)}

    def managed(d: XenDomain) -> bool:  # the same name, and the same uuid where both have one
        return d.name in known and (not d.uuid or not known[d.name] or known[d.name] == d.uuid.lower())

    return [d for d in xen.domains if d.domid != 0 and not managed(d)]


@check(
    "XEN-01",
    "xen",
    "No PV guests where tenants share a Xen host",
    "A PV guest runs its kernel without hardware virtualization, talking to Xen through the full "
    "PV hypercall and page-table interface: Xen's own guidance is that PVH and HVM isolate "
    "better (XSA history, XPTI/L1TF costs), so PV suits only trusted guests, not a multi-tenant host.",
    Severity.HIGH,
    'convert the guest to PVH (type = "pvh" in xl.cfg, <os><type>xenpvh</type> in libvirt), or HVM',
    reads=("workloads", "xen"),
    scope="host",
)
def xen01_pv_guests_shared_host(state: State, spec: CheckSpec) -> Iterator[Finding]:
    for hs in _xen_hosts(state):
        tenants = {w.tenant or UNPLACED for w in hs.workloads}
        pv = [w for w in _xen_vms(hs) if w.vm and w.vm.xen_guest == "pv"]
        extra = [d for d in _unmanaged(hs, hs.xen) if d.guest_type == "pv"] if hs.xen else []
        if extra:
            tenants.add(UNPLACED)
        if not pv and not extra:
            continue
        names = [w.name for w in pv] + [f"{d.name} (domid {d.domid}, not in libvirt)" for d in extra]
        ev = [
            Evidence(f"domain XML of {w.name}", f"<os><type>{w.vm.os_type or '(none)'}</type>: PV")
            for w in pv
            if w.vm
        ]
        ev += [Evidence(f"xl list -l domid {d.domid}", "c_info.type pv") for d in extra]
        shared = len(tenants) > 1
        yield finding(
            spec,
            Status.FAIL if shared else Status.WARN,
            f"PV guests {', '.join(names)} on a host with tenants {', '.join(sorted(tenants))}"
            if shared
            else f"PV guests {', '.join(names)} (one tenant on this host for now)",
            host=hs.host.name,
            tenants=[w.tenant for w in pv if w.tenant],
            workloads=[w.key for w in pv],
            evidence=ev,
            severity=None if shared else Severity.LOW,
        )


@check(
    "XEN-02",
    "xen",
    "XSM/FLASK enforcing",
    "FLASK (Xen Security Modules) confines what each domain may ask of the hypervisor, the device "
    "models and xenstore; without it (or permissive) every guest has the full default interface, "
    "and a compromised service domain is trusted like dom0.",
    Severity.MEDIUM,
    "boot Xen with flask=enforcing and a policy (xsm_policy in the bootloader, or the built-in "
    "one); check with `xl getenforce`",
    reads=("xen",),
    scope="host",
)
def xen02_flask_enforcing(state: State, spec: CheckSpec) -> Iterator[Finding]:
    for hs, xen in _toolstack(state):
        ev = [Evidence(xen.flask_source or "xl getenforce", xen.flask or "no answer")]
        if xen.commandline:
            ev.append(Evidence("xl info: xen_commandline", xen.commandline))
        if xen.flask == "enforcing":
            yield finding(spec, Status.PASS, "FLASK enforcing", host=hs.host.name, evidence=ev)
        elif xen.flask == "permissive":
            yield finding(
                spec,
                Status.FAIL,
                "FLASK permissive: denials are logged, not enforced",
                host=hs.host.name,
                evidence=ev,
            )
        else:
            yield finding(
                spec, Status.WARN, f"FLASK {xen.flask or 'state unknown'}", host=hs.host.name, evidence=ev
            )


@check(
    "XEN-03",
    "xen",
    "HVM device models in stub domains, not in dom0",
    "An HVM guest's emulated devices run in QEMU; in dom0 that QEMU runs as root next to the "
    "toolstack, so a device-model escape (VENOM and its kin) owns the host and every tenant. A "
    "stub domain (or at least dm_restrict) keeps it inside a domain of its own.",
    Severity.MEDIUM,
    "device_model_stubdomain_override = 1 in the guest's xl.cfg (or dm_restrict = 1 with a "
    "device_model_user); libvirt's libxl driver has no stub domains: prefer PVH guests there",
    reads=("workloads", "xen"),
    scope="host",
)
def xen03_device_model_in_dom0(state: State, spec: CheckSpec) -> Iterator[Finding]:
    for hs in _xen_hosts(state):
        by_name = {d.name: d for d in hs.xen.domains} if hs.xen else {}
        seen: set[str] = set()
        for w in _xen_vms(hs):
            if not w.vm or w.vm.xen_guest != "hvm":
                continue
            d = by_name.get(w.name)
            seen.add(w.name)
            yield _dm_finding(spec, hs, w.name, d, w, w.vm.emulator)
        if hs.xen:
            for d in hs.xen.domains:
                if d.guest_type == "hvm" and d.domid != 0 and d.name not in seen:
                    yield _dm_finding(spec, hs, d.name, d, None, d.device_model)


def _dm_finding(
    spec: CheckSpec, hs: HostState, name: str, d: XenDomain | None, w: Workload | None, dm: str
) -> Finding:
    ev = [
        Evidence(
            f"domain XML of {name}" if w else f"xl list -l domid {d.domid if d else '?'}",
            f"HVM, device model {dm or '(default qemu-xen)'}",
        )
    ]
    tenants = [w.tenant] if w and w.tenant else []
    keys = [w.key] if w else []
    if d is not None:
        ev.append(
            Evidence(
                f"xl list -l domid {d.domid}",
                f"device_model_stubdomain={str(d.stubdomain).lower()} dm_restrict={str(d.dm_restrict).lower()}",
            )
        )
        if d.stubdomain:
            return finding(
                spec,
                Status.PASS,
                f"{name}: device model in a stub domain",
                host=hs.host.name,
                tenants=tenants,
                workloads=keys,
                evidence=ev,
            )
        if d.dm_restrict:
            return finding(
                spec,
                Status.WARN,
                f"{name}: device model in dom0, deprivileged (dm_restrict)",
                host=hs.host.name,
                tenants=tenants,
                workloads=keys,
                evidence=ev,
                severity=Severity.LOW,
            )
    return finding(
        spec,
        Status.FAIL,
        f"{name}: HVM device model runs in dom0",
        host=hs.host.name,
        tenants=tenants,
        workloads=keys,
        evidence=ev,
    )


@check(
    "XEN-04",
    "xen",
    "Every Xen domain is managed by libvirt",
    "A domain that `xl` shows and libvirt does not is a guest nobody audits here: no tenant, no "
    "labels or limits from libvirt, invisible to every VM check (as HOST-11 is for stray QEMU).",
    Severity.MEDIUM,
    "virsh -c xen:///system domxml-from-native xen-xl /etc/xen/DOMAIN.cfg > DOMAIN.xml && virsh define DOMAIN.xml, or shut the domain down",
    reads=("workloads", "xen", "connections"),
    scope="host",
)
def xen04_unmanaged_domains(state: State, spec: CheckSpec) -> Iterator[Finding]:
    for hs, xen in _toolstack(state):
        if not xen.domains_read:
            yield finding(
                spec,
                Status.SKIPPED,
                "xl list -l gave no domains: " + "; ".join(xen.errors[:2]),
                host=hs.host.name,
            )
            continue
        libvirt = hs.connection("libvirt")
        if not _xen_vms(hs) and (libvirt is None or not (hs.host.libvirt_uri or "").startswith("xen")):
            yield finding(
                spec,
                Status.SKIPPED,
                "no libvirt connection to Xen on this host: xl manages every domain",
                host=hs.host.name,
            )
            continue
        for d in _unmanaged(hs, xen):
            yield finding(
                spec,
                Status.WARN,
                f"domain {d.name} (domid {d.domid}, {d.guest_type or '?'}) is not managed by libvirt",
                host=hs.host.name,
                evidence=[
                    Evidence(
                        f"xl list -l domid {d.domid}",
                        f"name {d.name}, uuid {d.uuid or '?'}; no libvirt domain has it",
                    )
                ],
            )


_OFF = ("no", "0", "false", "off", "disable")


@check(
    "XEN-05",
    "xen",
    "Speculative-execution mitigations on in Xen",
    "Xen mitigates Spectre/Meltdown/L1TF/MDS-class flaws between guests itself; turning them off "
    "on the hypervisor command line (spec-ctrl=no, xpti=false, pv-l1tf=false) lets one guest read "
    "another's memory, and SMT siblings shared by two tenants leak through the core.",
    Severity.HIGH,
    "remove spec-ctrl=no / xpti=false / pv-l1tf=false from Xen's command line (GRUB_CMDLINE_XEN); "
    "consider smt=0 on hosts with untrusted guests",
    reads=("xen",),
    scope="host",
)
def xen05_mitigations(state: State, spec: CheckSpec) -> Iterator[Finding]:
    for hs, xen in _toolstack(state):
        if not xen.commandline and not xen.version:
            yield finding(spec, Status.SKIPPED, "xl info gave no xen_commandline", host=hs.host.name)
            continue
        ev = [Evidence("xl info: xen_commandline", xen.commandline or "(empty)")]
        off = []
        spec_ctrl = xen.option("spec-ctrl")
        if spec_ctrl is not None and any(p.strip() in _OFF + ("no-xen",) for p in spec_ctrl.split(",")):
            off.append(f"spec-ctrl={spec_ctrl}")
        for opt in ("xpti", "pv-l1tf"):
            v = xen.option(opt)
            if v is not None and v.split(",")[0] in _OFF:
                off.append(f"{opt}={v}")
        smt = xen.option("smt")
        if off:
            yield finding(
                spec, Status.FAIL, f"mitigations turned off: {', '.join(off)}", host=hs.host.name, evidence=ev
            )
        elif smt is None or smt not in _OFF:
            yield finding(
                spec,
                Status.WARN,
                "mitigations at Xen's defaults, SMT on (smt is true unless smt=0)",
                host=hs.host.name,
                evidence=ev,
                severity=Severity.LOW,
            )
        else:
            yield finding(
                spec, Status.PASS, "mitigations at Xen's defaults, SMT off", host=hs.host.name, evidence=ev
            )


@check(
    "XEN-06",
    "xen",
    "dom0 memory reserved (dom0_mem)",
    "Without dom0_mem, dom0 starts with all memory and balloons down as guests start: under "
    "pressure from tenants' guests the toolstack, backends and device models in dom0 starve, "
    "which stalls every tenant's I/O.",
    Severity.LOW,
    "boot Xen with dom0_mem=4G,max:4G (sized for dom0) and autoballoon=0 in /etc/xen/xl.conf",
    reads=("xen",),
    scope="host",
)
def xen06_dom0_memory(state: State, spec: CheckSpec) -> Iterator[Finding]:
    for hs, xen in _toolstack(state):
        if not xen.commandline and not xen.version:
            yield finding(spec, Status.SKIPPED, "xl info gave no xen_commandline", host=hs.host.name)
            continue
        v = xen.option("dom0_mem")
        ev = [Evidence("xl info: xen_commandline", xen.commandline or "(empty)")]
        if v:
            yield finding(spec, Status.PASS, f"dom0_mem={v}", host=hs.host.name, evidence=ev)
        else:
            yield finding(
                spec,
                Status.WARN,
                "no dom0_mem: dom0 balloons down as guests start",
                host=hs.host.name,
                evidence=ev,
            )


@check(
    "XEN-07",
    "xen",
    "No xenstore key writable by a guest other than its owner",
    "xenstore holds every guest's device and backend configuration; a key another guest (or every "
    "domain) may write lets one tenant rewire, stall or spoof another's devices.",
    Severity.HIGH,
    "xenstore-chmod PATH n0  (owner dom0, no access for others), then give each guest only its own home",
    reads=("xen",),
    scope="host",
)
def xen07_xenstore_writable(state: State, spec: CheckSpec) -> Iterator[Finding]:
    for hs, xen in _toolstack(state):
        if not xen.xenstore_read:
            yield finding(spec, Status.SKIPPED, "xenstore-ls -p could not be read", host=hs.host.name)
            continue
        for g in xen.xenstore_writable:
            who = "every domain" if -1 in g.writers else ", ".join(f"domain {d}" for d in g.writers)
            yield finding(
                spec,
                Status.FAIL,
                f"{g.path} (owner domain {g.owner}) is writable by {who}",
                host=hs.host.name,
                evidence=[Evidence(f"xenstore-ls -f -p {g.path}", f"({g.perms})")],
                fix=f"xenstore-chmod {g.path} n{g.owner}",
            )
