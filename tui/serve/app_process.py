"""One tenantscope console on its own PTY, started for a serve session.

What it takes (measured, see the notes): the child gets a new session with the PTY as its
controlling terminal (TIOCSCTTY; else no SIGWINCH on resize and no SIGHUP on close), stdin,
stdout AND stderr on the PTY (Textual draws on stderr), SIGUSR1 ignored until the app installs
its repaint handler (an early signal would kill it), an allow-listed environment built here
(never the client's: SetEnv could carry LD_PRELOAD), no COLUMNS/LINES (they would pin the size),
LANG=C.UTF-8, COLORTERM=truecolor (OpenSSH does not forward it). Stopping: close the PTY
master (SIGHUP), then SIGTERM and SIGKILL to the child's process group, each after a grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import struct
import sys
import termios
from collections.abc import Callable, Sequence

ENV_PASS = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "XDG_CONFIG_HOME",
    "XDG_RUNTIME_DIR",
    "TZ",
    "TENANTSCOPE_LAB_DIR",
    "SSH_AUTH_SOCK",
)


def child_env(term: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: os.environ[k] for k in ENV_PASS if k in os.environ}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    safe_term = (
        term
        if term and all(c.isalnum() or c in "-._+" for c in term) and len(term) < 64
        else "xterm-256color"
    )
    env.update(TERM=safe_term, LANG="C.UTF-8", LC_ALL="C.UTF-8", COLORTERM="truecolor", **extra)
    return env


def set_size(fd: int, cols: int, rows: int) -> None:
    cols = max(20, min(int(cols or 80), 1000))
    rows = max(5, min(int(rows or 24), 500))
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _preexec() -> None:
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # stays ignored across exec until the app handles it
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class AppProcess:
    """The console child and its PTY master; `on_output(bytes)` gets everything it draws."""

    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str],
        cols: int,
        rows: int,
        on_output: Callable[[bytes], None],
        on_exit: Callable[[int], None],
    ) -> None:
        self.argv = list(argv)
        self.env = env
        self.size = (cols, rows)
        self.on_output = on_output
        self.on_exit = on_exit
        self.master = -1
        self.proc: asyncio.subprocess.Process | None = None
        self._closed = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def start(self) -> None:
        import pty

        master, slave = pty.openpty()
        try:
            set_size(slave, *self.size)
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=self.env,
                cwd="/",
                start_new_session=True,
                preexec_fn=_preexec,
                close_fds=True,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        self.master = master
        os.set_blocking(master, False)
        asyncio.get_running_loop().add_reader(master, self._readable)
        self._waiter = asyncio.ensure_future(self._wait())

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: the child closed its side
            data = b""
        if not data:
            self._stop_reading()
            return
        self.on_output(data)

    def _stop_reading(self) -> None:
        if self.master >= 0:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self.master)

    async def _wait(self) -> None:
        assert self.proc is not None
        code = await self.proc.wait()
        # drain what is left before telling the session
        if self.master >= 0:
            with contextlib.suppress(OSError):
                while True:
                    data = os.read(self.master, 65536)
                    if not data:
                        break
                    self.on_output(data)
        self._close_master()
        self.on_exit(code)

    def write(self, data: bytes) -> None:
        """Keys to the app; a full PTY buffer drops input rather than block the server."""
        if self.master < 0 or not data:
            return
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self.master, data)

    def resize(self, cols: int, rows: int) -> None:
        if (cols, rows) == self.size or self.master < 0:
            return
        self.size = (cols, rows)
        with contextlib.suppress(OSError):
            set_size(self.master, cols, rows)  # the kernel sends SIGWINCH to the foreground group

    def repaint(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGUSR1)

    def _close_master(self) -> None:
        self._stop_reading()
        if self.master >= 0:
            with contextlib.suppress(OSError):
                os.close(self.master)
            self.master = -1

    async def stop(self, grace: float = 1.5) -> None:
        """Hang up, then terminate and kill the child's process group; returns when it is gone."""
        if self._closed:
            return
        self._closed = True
        self._close_master()  # SIGHUP to the session
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                await asyncio.wait_for(asyncio.shield(proc.wait()), grace)
                return
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, sig)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(proc.wait(), 5)


def app_argv(args) -> list[str]:  # type: ignore[no-untyped-def]
    """The command each session runs: this tenantscope with the server's app options."""
    argv = [sys.executable, "-m", "tui.cli"]
    for opt, attr in (
        ("--libvirt", "libvirt"),
        ("--config", "config"),
        ("--hosts-file", "hosts_file"),
        ("--inventory", "inventory"),
        ("--limit", "limit"),
        ("--known-hosts", "known_hosts"),
        ("--ssh-config", "ssh_config"),
    ):
        v = getattr(args, attr, None)
        if v:
            argv += [
                opt,
                os.path.abspath(v)
                if attr in ("config", "hosts_file", "inventory", "known_hosts", "ssh_config")
                else v,
            ]
    for h in getattr(args, "host", None) or ():
        argv += ["--host", h]
    for i in getattr(args, "identity", None) or ():
        argv += ["--identity", os.path.abspath(i)]
    if getattr(args, "accept_new_host_keys", False):
        argv.append("--accept-new-host-keys")
    if getattr(args, "interval", None) is not None:
        argv += ["--interval", str(args.interval)]
    argv.append("demo" if getattr(args, "demo", False) else "run")
    return argv + list(getattr(args, "app_arg", None) or ())
