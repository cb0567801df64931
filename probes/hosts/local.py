"""The machine tenantscope runs on: files and commands directly, off the event loop."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Sequence

from probes.hosts.base import CommandResult, CommandTimeout, HostError, HostTransport, LibvirtAbsent
from probes.hosts.libvirt_uri import DEFAULT_URI
from probes.model import Host, HostKind

LIBVIRT_RUN = "/run/libvirt"


def libvirt_daemon_present(uri: str, run_dir: str = LIBVIRT_RUN) -> bool:
    """For a local `DRIVER:///system` URI: is a socket of a daemon that answers it there
    (libvirtd's, or the modular `virtDRIVERd`)? Without one libvirt cannot connect, so there is
    nothing to import libvirt for (~16 MiB) nor to retry every poll. Other URIs (test:, a
    session daemon, a transport such as qemu+ssh): assume yes and let libvirt answer."""
    scheme, sep, rest = uri.partition(":///")
    if not sep or "+" in scheme or rest.split("?", 1)[0].rstrip("/") != "system":
        return True
    names = ("libvirt-sock", "libvirt-sock-ro", f"virt{scheme}d-sock", f"virt{scheme}d-sock-ro")
    return any(os.path.exists(f"{run_dir}/{n}") for n in names)


class LocalHost(HostTransport):
    def __init__(
        self,
        name: str | None = None,
        *,
        libvirt_uri: str | None = DEFAULT_URI,
        root: str = "",
        libvirt_uri_given: bool = False,
    ) -> None:
        self.host = Host(
            name=name or os.uname().nodename,
            kind=HostKind.LOCAL,
            libvirt_uri=libvirt_uri,
            libvirt_uri_given=libvirt_uri_given,
        )
        self._root = root.rstrip("/")

    @property
    def is_local(self) -> bool:
        return True

    @property
    def root(self) -> str:
        return self._root

    async def open_libvirt_uri(self) -> str | None:
        uri = self.host.libvirt_uri
        if uri and not libvirt_daemon_present(uri, self._root + LIBVIRT_RUN):
            raise LibvirtAbsent(f"no libvirt daemon socket for {uri} in {self._root + LIBVIRT_RUN}")
        return uri

    async def run(
        self, argv: Sequence[str], *, timeout: float = 10.0, input: str | None = None
    ) -> CommandResult:
        argv = tuple(argv)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError as e:
            raise HostError(f"{argv[0]}: command not found") from e
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(input.encode() if input is not None else None), timeout
            )
        except (TimeoutError, asyncio.CancelledError) as e:
            _kill_group(proc.pid)
            await proc.wait()
            if isinstance(e, asyncio.CancelledError):
                raise
            raise CommandTimeout(f"{argv[0]}: no answer within {timeout:g} s") from None
        return CommandResult(
            argv, proc.returncode or 0, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        )

    async def read_text(self, path: str, *, timeout: float = 5.0, limit: int = 4 << 20) -> str:
        full = self._root + path

        def _read() -> str:
            with open(full, "rb") as f:
                return f.read(limit).decode("utf-8", "replace")

        return await asyncio.wait_for(asyncio.to_thread(_read), timeout)

    async def stream(self, argv: Sequence[str]) -> AsyncIterator[str]:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
            limit=1 << 20,
        )
        assert proc.stdout is not None
        try:
            while True:
                line = await proc.stdout.readline()
                if not line:
                    break
                yield line.decode("utf-8", "replace").rstrip("\n")
        finally:
            if proc.returncode is None:
                _kill_group(proc.pid)
                await proc.wait()


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
