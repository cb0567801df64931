"""Host-level facts the host checks read: files under /proc, /sys, /etc, versions.

Owned by the check-catalog area. Must not import probes.model (it imports this module).
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
class HostFacts:
    kernel: str = ""
    files: tuple[FileFact, ...] = ()
    versions: tuple[tuple[str, str], ...] = ()  # (component, version): qemu, libvirt, ovs

    def file(self, path: str) -> FileFact | None:
        return next((f for f in self.files if f.path == path), None)
