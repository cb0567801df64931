"""The transport interface every probe uses: local, SSH and replay hosts implement it.

Probes get data through `run`, `read_text` and `stream` only, with argv lists (never shell
strings), so the same probe runs locally and over SSH. Netlink and psutil exist only on the
local host; probes that need them check `host.is_local`.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from probes.model import Host


class HostError(Exception):
    """A transport failure with a message fit for the user (no traceback needed)."""


class CommandTimeout(HostError):
    pass


class LibvirtAbsent(HostError):
    """The host has no libvirt at all (a container host): a state, not an error."""


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class HostTransport(abc.ABC):
    """One host as the probes see it."""

    host: Host

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def is_local(self) -> bool:
        return False

    @property
    def root(self) -> str:
        """Prefix for host paths (a temp dir in tests); '' means the real root."""
        return ""

    @abc.abstractmethod
    async def run(
        self, argv: Sequence[str], *, timeout: float = 10.0, input: str | None = None
    ) -> CommandResult:
        """Run argv on the host; raises CommandTimeout past `timeout` seconds."""

    @abc.abstractmethod
    async def read_text(self, path: str, *, timeout: float = 5.0, limit: int = 4 << 20) -> str:
        """Read a text file on the host (at most `limit` bytes); raises FileNotFoundError,
        PermissionError or HostError."""

    @abc.abstractmethod
    def stream(self, argv: Sequence[str]) -> AsyncIterator[str]:
        """Lines of a long-running command's stdout; closing the iterator ends the command."""

    async def open_libvirt_uri(self) -> str | None:
        """The URI this process opens to reach the host's libvirt (`host.libvirt_uri` is what
        is shown); an SSH host answers with its forwarded socket (probes/hosts/libvirt_forward).
        Raises HostError when the host cannot be reached, LibvirtAbsent when it has no libvirt."""
        return self.host.libvirt_uri

    async def close(self) -> None:
        return None
