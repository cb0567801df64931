"""What the Xen toolstack says about a Xen host (dom0): owned by the Xen area.

Read through the host transport (`xl info`, `xl list -l`, `xl getenforce`, `xenstore-ls
-f -p`), so it is the same over SSH. Must not import probes.model (it imports this module).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class XenDomain:
    """One domain from `xl list -l` (libxl's domain configuration)."""

    domid: int
    name: str
    uuid: str = ""
    guest_type: str = ""  # pv, pvh, hvm
    device_model: str = ""  # b_info.device_model (qemu path), "" for the default or none
    device_model_version: str = ""  # qemu_xen, qemu_xen_traditional
    stubdomain: bool = False  # b_info.device_model_stubdomain: the device model runs in its own domain
    dm_restrict: bool = False  # b_info.dm_restrict: QEMU in dom0 deprivileged
    max_memkb: int = 0


@dataclass(frozen=True)
class XenstoreGrant:
    """A xenstore key that a guest other than its owner may write (from `xenstore-ls -p`)."""

    path: str
    owner: int
    perms: str  # as xenstore-ls prints them: n0,b5
    writers: tuple[int, ...] = ()  # domains other than the owner and dom0 with w or b; -1 = every domain


@dataclass(frozen=True)
class XenHost:
    version: str = ""  # xen_major.xen_minor + xen_extra
    commandline: str = ""  # xen_commandline: the hypervisor's boot options
    scheduler: str = ""
    total_memory_mb: int = 0
    free_memory_mb: int = 0
    virt_caps: str = ""
    flask: str = ""  # enforcing, permissive, disabled ("" when `xl getenforce` gave nothing)
    flask_source: str = ""  # "xl getenforce" or "xen_commandline flask=..."
    domains: tuple[XenDomain, ...] = ()
    domains_read: bool = False  # `xl list -l` answered (an empty list is then real)
    xenstore_read: bool = False
    xenstore_writable: tuple[XenstoreGrant, ...] = ()
    errors: tuple[str, ...] = ()  # commands that failed, with why

    def option(self, name: str) -> str | None:
        """The value of hypervisor boot option `name` (last one wins; "" for a bare flag)."""
        found: str | None = None
        for word in self.commandline.split():
            key, eq, value = word.partition("=")
            if key.replace("-", "_") == name.replace("-", "_"):
                found = value if eq else ""
        return found
