"""Tiny diskless VMs for the lab, where libvirtd and QEMU run: one transient domain per tenant
on a Linux bridge (the first two tenants), 64 MiB, no disk, no display, a virtio NIC on the
tenant's bridge with the anti-spoofing nwfilter, a CPU quota in the XML and a memory hard limit
set live after start (a hard_limit in the XML makes the start fail on some hosts). They exist so
the VM checks have something real to judge and `unconfined-vm` has a VM to unconfine.

Each domain is recorded (name and UUID) before it is created and destroyed by UUID, so a
domain of the same name that is not the lab's is never touched. Should libvirtd be gone at
`down`, the recorded QEMU process is killed by PID (with its start time).
"""

from __future__ import annotations

import os
import uuid as uuidlib
from contextlib import closing
from typing import Any

from probes.lab.plan import CPU_PERIOD_US, CPU_QUOTA_US, CPU_SHARES, LabPlan
from probes.lab.record import LabError

URI = "qemu:///system"
MEM_KIB = 64 * 1024
HARD_LIMIT_KIB = MEM_KIB + 256 * 1024


class _Unavailable(Exception):
    """libvirt cannot be used here; the message says why."""


def _open(*, read_only: bool = False) -> Any:
    """A libvirt connection to URI (the lab's own changes need read-write; close it after use),
    or _Unavailable with the reason."""
    try:
        import libvirt
    except ImportError:
        raise _Unavailable("libvirt-python is not installed") from None
    libvirt.registerErrorHandler(lambda *_: None, None)  # errors are returned, not printed
    try:
        return libvirt.openReadOnly(URI) if read_only else libvirt.open(URI)
    except libvirt.libvirtError as e:
        raise _Unavailable(f"libvirtd is not reachable at {URI} ({str(e).splitlines()[0][:120]})") from None


def available() -> str:
    """'' when VMs can be built here, else why not."""
    try:
        with closing(_open()) as conn:
            caps = conn.getCapabilities()
    except _Unavailable as e:
        return str(e)
    if "<domain type='qemu'" not in caps and "<domain type='kvm'" not in caps:
        return "libvirt has no QEMU emulator"
    return ""


def vm_names(plan: LabPlan) -> list[tuple[str, str, str]]:
    """(domain name, tenant bridge, tap name) for the lab's VMs."""
    out = []
    for t in [t for t in plan.tenants if t.ovs_tag is None][:2]:
        name = f"{plan.prefix}{t.name}-vm"
        if len(name.encode()) <= 15:
            out.append((name, t.bridge, name))
    return out


def domain_xml(name: str, uid: str, bridge: str, tap: str, mac: str, *, kind: str, unconfined: bool) -> str:
    sec = "<seclabel type='none' model='dac'/>" if unconfined else ""
    return f"""<domain type='{kind}'>
  <name>{name}</name>
  <uuid>{uid}</uuid>
  <description>tenantscope training lab VM (removed by `tenantscope lab down`)</description>
  <memory unit='KiB'>{MEM_KIB}</memory>
  <vcpu>1</vcpu>
  <cputune><shares>{CPU_SHARES}</shares><period>{CPU_PERIOD_US}</period><quota>{CPU_QUOTA_US}</quota></cputune>
  <os><type arch='x86_64'>hvm</type></os>
  <on_reboot>destroy</on_reboot>
  <devices>
    <interface type='bridge'>
      <source bridge='{bridge}'/>
      <mac address='{mac}'/>
      <target dev='{tap}'/>
      <model type='virtio'/>
      <filterref filter='clean-traffic'/>
    </interface>
    <memballoon model='none'/>
  </devices>
  {sec}
</domain>"""


def _mac(i: int) -> str:
    return f"52:54:00:7a:{(i >> 8) & 0xFF:02x}:{i & 0xFF:02x}"


def create(name: str, uid: str, bridge: str, tap: str, index: int, *, unconfined: bool = False) -> int:
    """Start the domain; returns its QEMU PID (0 when unknown)."""
    import libvirt

    try:
        conn = _open()
    except _Unavailable as e:
        raise LabError(f"{name}: {e}") from None
    with closing(conn):
        last: Exception | None = None
        for kind in ("kvm", "qemu"):
            try:
                dom = conn.createXML(
                    domain_xml(name, uid, bridge, tap, _mac(index), kind=kind, unconfined=unconfined), 0
                )
                break
            except libvirt.libvirtError as e:
                last = e
        else:
            raise LabError(f"{name}: libvirt could not start it: {str(last).splitlines()[0][:200]}")
        try:
            dom.setMemoryParameters({"hard_limit": HARD_LIMIT_KIB}, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        except libvirt.libvirtError:
            pass
        return _qemu_pid(name)


def _qemu_pid(name: str) -> int:
    try:
        return int(open(f"/run/libvirt/qemu/{name}.pid").read().strip())
    except (OSError, ValueError):
        return 0


def destroy(uid: str) -> str:
    """Destroy the lab's domain with this UUID; '' when gone (or never started), else why not."""
    try:
        with closing(_open()) as conn:
            import libvirt

            try:
                dom = conn.lookupByUUIDString(uid)
            except libvirt.libvirtError:
                return ""
            try:
                dom.destroy()
            except libvirt.libvirtError as e:
                if dom.isActive():
                    return str(e).splitlines()[0][:200]
            return ""
    except _Unavailable as e:
        return str(e)


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def domain_exists(name: str) -> bool:
    try:
        with closing(_open(read_only=True)) as conn:
            import libvirt

            try:
                conn.lookupByName(name)
                return True
            except libvirt.libvirtError:
                return False
    except _Unavailable:
        return False


def kvm_usable() -> bool:
    return os.path.exists("/dev/kvm")
