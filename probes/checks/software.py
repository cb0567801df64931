"""Software checks: SW-01 lists the versions of the virtualization stack; SW-02 reports
pending security updates (only when asked: it runs the package manager, see FactsProbe)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from probes.checks.base import CheckSpec, check, finding
from probes.checks.common import passed, per_host
from probes.facts.model import HostFacts
from probes.model import Evidence, Finding, HostState, Severity, State, Status

COMPONENTS = ("kernel", "qemu", "libvirt", "ovs", "cloud-hypervisor", "firecracker")
STALE_AFTER = 7 * 24 * 3600  # an updates answer older than this is flagged as old


@check(
    "SW-01",
    "software",
    "Versions of kernel, QEMU, libvirt and OVS",
    "Isolation bugs are fixed in these four components; knowing exactly what runs is the first "
    "step of every advisory check.",
    Severity.INFO,
    fix="Compare with your distribution's security tracker (e.g. security-tracker.debian.org).",
    reads=("probe_errors", "facts", "source"),
    scope="host",
)
def sw01_versions(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState, f: HostFacts) -> Iterator[Finding]:
        found = [(c, f.version(c)) for c in COMPONENTS if f.version(c)]
        if not found:
            yield finding(spec, Status.ERROR, "no version could be read", host=hs.host.name)
            return
        absent = [c for c in ("qemu", "libvirt", "ovs") if not f.version(c)]
        yield finding(
            spec,
            Status.PASS,
            ", ".join(f"{c} {v}" for c, v in found)
            + (f" (not found: {', '.join(absent)})" if absent else ""),
            host=hs.host.name,
            evidence=[
                Evidence("/proc/sys/kernel/osrelease" if c == "kernel" else f"{c} --version", v)
                for c, v in found
            ],
        )

    yield from per_host(state, spec, body, facts=True)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{int(seconds)} s"
    if seconds < 7200:
        return f"{int(seconds // 60)} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


@check(
    "SW-02",
    "software",
    "No pending security updates",
    "A known, fixed hole in the kernel, QEMU, libvirt or a container runtime is the cheapest way "
    "from one tenant to another; pending security updates are exactly those holes.",
    Severity.HIGH,
    fix="apt-get update && apt-get upgrade (or dnf upgrade --security), then restart QEMU "
    "processes (migrate or reboot guests) and reboot for a new kernel.",
    reads=("probe_errors", "facts", "source"),
    scope="host",
)
def sw02_updates(state: State, spec: CheckSpec) -> Iterator[Finding]:
    def body(hs: HostState, f: HostFacts) -> Iterator[Finding]:
        u = f.updates
        if u is None:
            yield finding(
                spec,
                Status.SKIPPED,
                "not checked: pending updates are looked up only when asked (tenantscope check --updates)",
                host=hs.host.name,
            )
            return
        # the age is relative to when the facts were collected: a pure function of State
        age = _age(max(0.0, (f.collected_at or time.time()) - u.checked_at))
        src = f"{u.manager or 'package manager'}, checked {age} ago" + (" (cached)" if u.from_cache else "")
        if u.error:
            yield finding(spec, Status.ERROR, f"{src}: {u.error}", host=hs.host.name)
            return
        ev = [
            Evidence(
                f"{u.manager} simulation",
                f"{u.total} upgradable, {len(u.security)} security: "
                + " ".join(u.security[:40])
                + (" ..." if len(u.security) > 40 else ""),
            )
        ]
        old = (f.collected_at or 0) - u.checked_at > STALE_AFTER
        if u.security:
            yield finding(
                spec,
                Status.FAIL,
                f"{len(u.security)} security update(s) pending ({src})",
                host=hs.host.name,
                evidence=ev,
            )
        elif old:
            yield finding(
                spec,
                Status.WARN,
                f"no security update pending, but the answer is old ({src})",
                host=hs.host.name,
                evidence=ev,
                severity=Severity.LOW,
                fix="tenantscope check --updates",
            )
        else:
            yield passed(spec, hs, f"no security update pending ({src}; {u.total} other upgradable)")

    yield from per_host(state, spec, body, facts=True)
