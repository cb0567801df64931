"""A host known only through a libvirt connection: `--libvirt qemu+ssh://hv2/system` (or
qemu+tcp/tls, or a test:// fleet file) without `--host hv2`.

Its domains, libvirt networks, OVS virtualport parameters and nwfilter bindings come from that
libvirt; its kernel, files and logs cannot be read from here. This transport refuses every
command and file read, so no probe can mix this machine's bridges, facts or log lines into
the other host's picture (the defect of issue 14 item 1).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from urllib.parse import urlsplit

from probes.hosts.base import CommandResult, HostError, HostTransport
from probes.hosts.libvirt_uri import uri_host, why_not_read
from probes.model import Host, HostKind


def view_name(uri: str) -> str:
    """The host's name: the URI's host, or for a test driver fleet file its file name."""
    host = uri_host(uri)
    if host:
        return host
    stem = os.path.splitext(os.path.basename(urlsplit(uri).path))[0]
    return f"test-{stem or 'default'}"


class LibvirtViewHost(HostTransport):
    def __init__(self, uri: str, name: str | None = None) -> None:
        self.host = Host(
            name=name or view_name(uri), kind=HostKind.LIBVIRT, libvirt_uri=uri, libvirt_uri_given=True
        )

    def _refuse(self, what: str) -> HostError:
        return HostError(why_not_read(self.host.name, self.host.libvirt_uri, what))

    async def run(
        self, argv: Sequence[str], *, timeout: float = 10.0, input: str | None = None
    ) -> CommandResult:
        raise self._refuse("commands")

    async def read_text(self, path: str, *, timeout: float = 5.0, limit: int = 4 << 20) -> str:
        raise self._refuse("files")

    async def stream(self, argv: Sequence[str]) -> AsyncIterator[str]:
        raise self._refuse("commands")
        yield ""  # pragma: no cover - makes this an async generator
