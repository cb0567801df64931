"""Tiny VMs for the lab, where libvirtd and QEMU are installed: one transient domain per tenant
on a Linux bridge (the first two tenants), no disk, no display, a virtio NIC on the tenant's
bridge with the anti-spoofing nwfilter, a CPU quota in the XML and a memory hard limit set live
after start (a hard_limit in the XML makes the start fail on some hosts).

Each boots a real Linux guest (probes/lab/guestimage.py: Debian's cloud kernel, busybox and
qemu-guest-agent, about 2 s under TCG) with the address TENANT-SUBNET.100, an HTTP service on
the lab's service port and a guest agent, so the Reachability pane can probe it (from its
segment, from inside it). Where the image cannot be built (no network for apt, no cpio) the VM
is the old diskless one that idles in SeaBIOS (still good for the VM checks), and `up` says so.
If libvirtd is installed but not running, `up` starts it (virtlogd + libvirtd, recorded like
every process of the lab, so `down` stops exactly those).

Each domain is recorded (name and UUID) before it is created and destroyed by UUID, so a
domain of the same name that is not the lab's is never touched. Should libvirtd be gone at
`down`, the recorded QEMU process is killed by PID (with its start time).
"""

from __future__ import annotations

import os
import uuid as uuidlib
from collections.abc import Callable
from contextlib import closing
from typing import Any

from probes.lab.plan import CPU_PERIOD_US, CPU_QUOTA_US, CPU_SHARES, LabPlan
from probes.lab.record import LabError

URI = "qemu:///system"
QEMU_LOG_DIR = "/var/log/libvirt/qemu"
MEM_KIB = 96 * 1024  # the guest's initramfs (kernel modules, qemu-ga and its libraries) needs it
GUEST_HOST = 100  # the VM's address in its tenant's /24
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


def vm_address(plan: LabPlan, name: str) -> str:
    """The VM's address (CIDR) in its tenant's subnet."""
    t = next(t for t in plan.tenants if name == f"{plan.prefix}{t.name}-vm")
    return f"{t.subnet.rsplit('.', 1)[0]}.{GUEST_HOST}/24"


def domain_xml(
    name: str,
    uid: str,
    bridge: str,
    tap: str,
    mac: str,
    *,
    kind: str,
    unconfined: bool,
    address: str = "",
    port: int = 8080,
) -> str:
    """With a guest image and an address: a direct-kernel boot of the lab's guest (with a
    guest-agent channel); otherwise a diskless domain."""
    from probes.lab.guestimage import cached, cmdline

    sec = "<seclabel type='none' model='dac'/>" if unconfined else ""
    image = cached() if address else None
    boot = ""
    agent = ""
    if image is not None:
        boot = (
            f"<kernel>{image.kernel}</kernel><initrd>{image.initrd}</initrd>"
            f"<cmdline>{cmdline(name, address=address, port=port)}</cmdline>"
        )
        agent = "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
    return f"""<domain type='{kind}'>
  <name>{name}</name>
  <uuid>{uid}</uuid>
  <description>tenantscope training lab VM (removed by `tenantscope lab down`)</description>
  <memory unit='KiB'>{MEM_KIB}</memory>
  <vcpu>1</vcpu>
  <cputune><shares>{CPU_SHARES}</shares><period>{CPU_PERIOD_US}</period><quota>{CPU_QUOTA_US}</quota></cputune>
  <os><type arch='x86_64'>hvm</type>{boot}</os>
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
    {agent}
  </devices>
  {sec}
</domain>"""


def _mac(i: int) -> str:
    return f"52:54:00:7a:{(i >> 8) & 0xFF:02x}:{i & 0xFF:02x}"


def create(
    name: str, uid: str, bridge: str, tap: str, index: int, *, unconfined: bool = False, address: str = ""
) -> int:
    """Start the domain (a real guest when `address` is given and the image is built); returns
    its QEMU PID (0 when unknown). A guest boots under TCG ('qemu'): nested KVM does not boot it
    on some hosts, and TCG boots it in about 2 s anyway."""
    import libvirt

    from probes.lab.guestimage import cached
    from probes.lab.plan import SERVICE_PORT

    try:
        conn = _open()
    except _Unavailable as e:
        raise LabError(f"{name}: {e}") from None
    with closing(conn):
        last: Exception | None = None
        kinds = ("qemu",) if address and cached() is not None else ("kvm", "qemu")
        for kind in kinds:
            try:
                xml = domain_xml(
                    name,
                    uid,
                    bridge,
                    tap,
                    _mac(index),
                    kind=kind,
                    unconfined=unconfined,
                    address=address,
                    port=SERVICE_PORT,
                )
                dom = conn.createXML(xml, 0)
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


def remove_log(name: str) -> None:
    """The log libvirt keeps of a lab domain after it is gone (QEMU's command line and stderr)."""
    try:
        os.unlink(os.path.join(QEMU_LOG_DIR, f"{name}.log"))
    except OSError:
        pass


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


def find_daemon(name: str) -> str:
    import shutil

    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), ""
    )


def startable() -> str:
    """'' when libvirtd is installed (with QEMU) but not answering: `up` may start it."""
    missing = [n for n in ("libvirtd", "virtlogd", "qemu-system-x86_64") if not find_daemon(n)]
    if missing:
        return f"not installed: {', '.join(missing)}"
    return ""


def start_daemons(run_dir: str, on_start: Callable[[str, int], None]) -> str:
    """Start virtlogd (when its socket is missing) and libvirtd, each reported to `on_start`
    (what, pid) as soon as its pidfile names it; '' when libvirtd then answers, else why not."""
    import subprocess
    import time

    os.makedirs(run_dir, mode=0o700, exist_ok=True)
    for what, pidfile, needed in (
        ("virtlogd", os.path.join(run_dir, "virtlogd.pid"), not os.path.exists("/run/libvirt/virtlogd-sock")),
        ("libvirtd", os.path.join(run_dir, "libvirtd.pid"), True),
    ):
        if not needed:
            continue
        r = subprocess.run(
            [find_daemon(what), "-d", "-p", pidfile],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=20,
        )
        pid = 0
        end = time.monotonic() + 5
        while time.monotonic() < end and not pid:
            try:
                pid = int(open(pidfile).read().strip() or 0)
            except (OSError, ValueError):
                time.sleep(0.05)
        if not pid:
            return f"{what} did not start ({r.stderr.strip()[:200] or f'exit {r.returncode}'})"
        on_start(what, pid)
    end = time.monotonic() + 20
    while time.monotonic() < end:
        if not available():
            return ""
        time.sleep(0.1)
    return f"libvirtd did not answer at {URI} within 20 s"


def open_kvm() -> str | None:
    """/dev/kvm for the kvm group (without udev it stays root-only and libvirtd re-probes QEMU
    on every call: minutes per domain); returns "MODE UID GID" to restore, None if unchanged."""
    import grp

    try:
        st = os.stat("/dev/kvm")
        gid = grp.getgrnam("kvm").gr_gid
    except (OSError, KeyError):
        return None
    mode = st.st_mode & 0o7777
    if st.st_gid == gid and mode & 0o060 == 0o060:
        return None
    os.chown("/dev/kvm", -1, gid)
    os.chmod("/dev/kvm", mode | 0o060)
    return f"{mode} {st.st_uid} {st.st_gid}"


def restore_kvm(saved: str) -> None:
    mode, uid, gid = (int(x) for x in saved.split())
    try:
        os.chown("/dev/kvm", uid, gid)
        os.chmod("/dev/kvm", mode)
    except OSError:
        pass
