"""The machine tenantscope runs on: files and commands directly, off the event loop."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Sequence

from probes.hosts.base import CommandResult, CommandTimeout, HostError, HostTransport
from probes.model import Host, HostKind


class LocalHost(HostTransport):
    def __init__(
        self, name: str | None = None, *, libvirt_uri: str | None = "qemu:///system", root: str = ""
    ) -> None:
        self.host = Host(name=name or os.uname().nodename, kind=HostKind.LOCAL, libvirt_uri=libvirt_uri)
        self._root = root.rstrip("/")

    @property
    def is_local(self) -> bool:
        return True

    @property
    def root(self) -> str:
        return self._root

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
