"""`tenantscope serve`: an asyncssh server that gives each authenticated SSH client its own
tenantscope console on a PTY of its terminal's size, or, with `--presenter`, one shared console
that the presenter drives and everyone else follows.

- Authentication: public keys only, from --authorized-keys, read again on every connection
  (tui/serve/keys.py). A key with the `tenantscope-write` option gets a writable session
  (TENANTSCOPE_READONLY=0); every other key a read-only one (TENANTSCOPE_READONLY=1, which the
  app must honour: no action that changes a host).
- Nothing but a session with a PTY: no exec of other commands (the command is ignored), no
  port/agent/X11 forwarding, no SFTP/SCP.
- --max-sessions bounds concurrent sessions (followers count); one over gets a line and exit 1.
- A client that goes away takes its console with it: PTY closed (SIGHUP), then SIGTERM and
  SIGKILL to the console's process group.

Presenter mode: the first writable session is the presenter and starts the one shared console;
sessions that join later follow: they get its output with the terminal modes and queries that
would change their terminals filtered out (tui/serve/filter.py), their keys are ignored (`q` or
Ctrl-C leaves), and the console repaints fully when one joins (SIGUSR1), so late joiners see the
current screen. The shared PTY takes the smallest size among presenter and followers (as tmux
does), so no follower's terminal scrolls. The number of followers is written to the file named
by TENANTSCOPE_FOLLOWERS_FILE in the console's environment (for its header). When the presenter
leaves, followers are told and disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import tempfile
from dataclasses import dataclass, field

from probes.hosts.quiet_asyncssh import asyncssh
from tui.serve import ServeError, keys
from tui.serve.app_process import AppProcess, app_argv, child_env
from tui.serve.filter import JOIN, LEAVE, FollowerFilter

log = logging.getLogger(__name__)

LEAVE_KEYS = (b"q", b"Q", b"\x03", b"\x04")
MIN_UNAUTHENTICATED = 10  # connections allowed to be authenticating at once (or 2x --max-sessions)
LOGIN_TIMEOUT = 30  # seconds to authenticate


class _Server(asyncssh.SSHServer):
    """One per connection: public-key auth against the file as it is now."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.write = False
        self._grants: dict[bytes, keys.Grant] = {}
        self.peer = ""
        self._unauthenticated = False

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        peer = conn.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        # connections that have not authenticated yet are bounded too: a flood of idle TCP
        # connects must not hold the server's memory until each one's login timeout
        if self.hub.unauthenticated >= self.hub.max_unauthenticated:
            log.warning(
                "refusing %s: %d connections are still authenticating", self.peer, self.hub.unauthenticated
            )
            conn.abort()
            return
        self.hub.unauthenticated += 1
        self._unauthenticated = True

    def _authenticated_or_gone(self) -> None:
        if self._unauthenticated:
            self._unauthenticated = False
            self.hub.unauthenticated -= 1

    def auth_completed(self) -> None:
        self._authenticated_or_gone()

    def connection_lost(self, exc: Exception | None) -> None:
        self._authenticated_or_gone()

    def begin_auth(self, username: str) -> bool:
        self._grants = {g.key_data: g for g in keys.load(self.hub.authorized_keys)}
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        g = self._grants.get(key.public_data)
        if g is None:
            return False
        self.write = g.write
        return True


@dataclass
class Follower:
    process: asyncssh.SSHServerProcess
    size: tuple[int, int]
    filter: FollowerFilter = field(default_factory=FollowerFilter)


class Hub:
    """The server's sessions, and in presenter mode the shared console."""

    def __init__(self, args) -> None:  # type: ignore[no-untyped-def]
        self.args = args
        self.authorized_keys = os.path.abspath(args.authorized_keys)
        self.max_sessions = args.max_sessions
        self.max_unauthenticated = max(MIN_UNAUTHENTICATED, 2 * args.max_sessions)
        self.unauthenticated = 0
        self.presenter_mode = bool(args.presenter)
        self.sessions = 0
        self.argv = app_argv(args)
        self.rundir = tempfile.mkdtemp(prefix="tenantscope-serve-")
        self.followers_file = os.path.join(self.rundir, "followers")
        self._write_followers(0)
        # presenter mode
        self.shared: AppProcess | None = None
        self.presenter: asyncssh.SSHServerProcess | None = None
        self.presenter_size = (80, 24)
        self.followers: list[Follower] = []
        self.presenter_ready = asyncio.Event()
        self.children: set[AppProcess] = set()

    # -- bookkeeping

    def _write_followers(self, n: int) -> None:
        tmp = self.followers_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{n}\n")
        os.replace(tmp, self.followers_file)

    def env(self, write: bool) -> dict[str, str]:
        extra = {"TENANTSCOPE_READONLY": "0" if write else "1", "TENANTSCOPE_SERVE": "1"}
        if self.presenter_mode:
            extra["TENANTSCOPE_FOLLOWERS_FILE"] = self.followers_file
        return extra

    async def close(self) -> None:
        for c in list(self.children):
            await c.stop()
        with contextlib.suppress(OSError):
            os.unlink(self.followers_file)
            os.rmdir(self.rundir)

    # -- a session

    async def handle(self, process: asyncssh.SSHServerProcess) -> None:
        server: _Server = process.get_extra_info("connection").get_owner()
        if process.get_terminal_type() is None:
            process.stderr.write(b"tenantscope serve: this is a terminal console: connect with `ssh -t`\r\n")
            process.exit(1)
            return
        if self.sessions >= self.max_sessions:
            process.stdout.write(
                f"tenantscope serve: {self.sessions} sessions already, the limit "
                f"(--max-sessions {self.max_sessions}): try again later\r\n".encode()
            )
            process.exit(1)
            return
        self.sessions += 1
        log.info("session from %s (%s)", server.peer, "write" if server.write else "read-only")
        try:
            w, h, _, _ = process.get_terminal_size()
            if self.presenter_mode:
                if server.write and self.presenter is None:
                    await self._present(process, (w, h))
                else:
                    await self._follow(process, (w, h))
            else:
                await self._own(process, (w, h), server.write)
        finally:
            self.sessions -= 1

    async def _own(self, process: asyncssh.SSHServerProcess, size: tuple[int, int], write: bool) -> None:
        done = asyncio.get_running_loop().create_future()

        def out(data: bytes) -> None:
            with contextlib.suppress(Exception):
                process.stdout.write(data)

        def exited(code: int) -> None:
            if not done.done():
                done.set_result(code)

        app = AppProcess(
            self.argv,
            child_env(process.get_terminal_type() or "", self.env(write)),
            size[0],
            size[1],
            out,
            exited,
        )
        await app.start()
        self.children.add(app)
        pump = asyncio.ensure_future(self._input(process, app.write, app.resize))
        try:
            await asyncio.wait([done, pump], return_when=asyncio.FIRST_COMPLETED)
        finally:
            pump.cancel()
            await app.stop()
            self.children.discard(app)
        code = done.result() if done.done() else 0
        with contextlib.suppress(Exception):
            process.exit(code if 0 <= code < 256 else 1)

    async def _input(self, process: asyncssh.SSHServerProcess, write, resize) -> None:
        """Keys and window size changes from the client, until it goes away."""
        while True:
            try:
                data = await process.stdin.read(4096)
            except asyncssh.TerminalSizeChanged as e:
                resize(e.width, e.height)
                continue
            except (asyncssh.BreakReceived, asyncssh.SignalReceived):
                continue
            except (asyncssh.DisconnectError, asyncssh.ConnectionLost, BrokenPipeError, ConnectionError):
                return
            if not data:
                return
            write(data)

    # -- presenter mode

    def _shared_size(self) -> tuple[int, int]:
        sizes = [self.presenter_size] + [f.size for f in self.followers]
        return min(s[0] for s in sizes), min(s[1] for s in sizes)

    def _resize_shared(self) -> None:
        """Size the shared PTY to the smallest terminal; on a change, clear every screen first
        (the app redraws only its new area: a larger terminal would keep stale columns)."""
        if self.shared is None:
            return
        size = self._shared_size()
        if size == self.shared.size:
            return
        self.shared.resize(*size)
        app = self.shared

        def clear_and_repaint() -> None:  # once the app has taken the new size
            if self.shared is app:
                self._broadcast(b"\x1b[2J")
                app.repaint()

        asyncio.get_running_loop().call_later(0.4, clear_and_repaint)

    def _broadcast(self, data: bytes) -> None:
        if self.presenter is not None:
            with contextlib.suppress(Exception):
                self.presenter.stdout.write(data)
        for f in list(self.followers):
            out = f.filter.feed(data)
            if out:
                with contextlib.suppress(Exception):
                    f.process.stdout.write(out)

    async def _present(self, process: asyncssh.SSHServerProcess, size: tuple[int, int]) -> None:
        self.presenter, self.presenter_size = process, size
        done = asyncio.get_running_loop().create_future()

        def exited(code: int) -> None:
            if not done.done():
                done.set_result(code)

        app = AppProcess(
            self.argv,
            child_env(process.get_terminal_type() or "", self.env(True)),
            *self._shared_size(),
            self._broadcast,
            exited,
        )
        await app.start()
        self.shared = app
        self.children.add(app)
        self.presenter_ready.set()

        def resize(w: int, h: int) -> None:
            self.presenter_size = (w, h)
            self._resize_shared()

        pump = asyncio.ensure_future(self._input(process, app.write, resize))
        try:
            await asyncio.wait([done, pump], return_when=asyncio.FIRST_COMPLETED)
        finally:
            pump.cancel()
            self.presenter = None
            self.presenter_ready.clear()
            self.shared = None
            await app.stop()
            self.children.discard(app)
            for f in list(self.followers):
                with contextlib.suppress(Exception):
                    f.process.stdout.write(LEAVE + b"tenantscope serve: the presenter has left\r\n")
                    f.process.exit(0)
            self.followers.clear()
            self._write_followers(0)
        with contextlib.suppress(Exception):
            process.exit(0)

    async def _follow(self, process: asyncssh.SSHServerProcess, size: tuple[int, int]) -> None:
        if self.shared is None:
            process.stdout.write(b"tenantscope serve: waiting for the presenter (q to leave)...\r\n")
        waiting = asyncio.ensure_future(self.presenter_ready.wait())
        keys_task = asyncio.ensure_future(self._follower_keys(process, None))
        await asyncio.wait([waiting, keys_task], return_when=asyncio.FIRST_COMPLETED)
        if keys_task.done():
            waiting.cancel()
            with contextlib.suppress(Exception):
                process.exit(0)
            return
        keys_task.cancel()
        f = Follower(process, size)
        self.followers.append(f)
        self._write_followers(len(self.followers))
        process.stdout.write(JOIN)
        self._resize_shared()
        if self.shared is not None:
            self.shared.repaint()
        try:
            await self._follower_keys(process, f)
        finally:
            if f in self.followers:
                self.followers.remove(f)
                self._write_followers(len(self.followers))
                self._resize_shared()
                with contextlib.suppress(Exception):
                    process.stdout.write(LEAVE)
                    process.exit(0)

    async def _follower_keys(self, process: asyncssh.SSHServerProcess, f: Follower | None) -> None:
        """A follower's keys change nothing; `q` or Ctrl-C leaves; its size counts."""
        while True:
            try:
                data = await process.stdin.read(4096)
            except asyncssh.TerminalSizeChanged as e:
                if f is not None:
                    f.size = (e.width, e.height)
                    self._resize_shared()
                continue
            except (asyncssh.BreakReceived, asyncssh.SignalReceived):
                continue
            except (asyncssh.DisconnectError, asyncssh.ConnectionLost, BrokenPipeError, ConnectionError):
                return
            if not data or (any(k in data for k in LEAVE_KEYS) and not data.startswith(b"\x1b")):
                return


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ServeError(f"--listen {text!r}: expected ADDRESS:PORT, e.g. 127.0.0.1:2222")
    if not 0 < int(port) < 65536:
        raise ServeError(f"--listen {text!r}: port {port} out of range (1-65535)")
    return host.strip("[]") or "127.0.0.1", int(port)


def default_host_key_path() -> str:
    """Where serve keeps the host key it made itself: the state directory, as sshd keeps its
    own in /etc/ssh."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "tenantscope", "ssh_host_ed25519_key")


def load_host_key(args) -> asyncssh.SSHKey:  # type: ignore[no-untyped-def]
    """--host-key FILE, or the state directory's key, created (ed25519, mode 0600) on first use.

    Sets args.host_key to the file used and args.host_key_created when it was made now, so
    the start-up line can print its fingerprint for clients to verify."""
    path = getattr(args, "host_key", None)
    args.host_key_created = False
    if not path:
        path = args.host_key = default_host_key_path()
        if not os.path.exists(path):
            key = asyncssh.generate_private_key("ssh-ed25519", comment="tenantscope serve")
            try:
                os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(key.export_private_key())
                key.write_public_key(path + ".pub")
            except FileExistsError:
                pass  # another serve made it at the same moment: read theirs
            except OSError as e:
                raise ServeError(f"cannot create a host key at {path}: {e.strerror or e}") from None
            else:
                args.host_key_created = True
    try:
        return asyncssh.read_private_key(path)
    except (OSError, asyncssh.KeyImportError) as e:
        raise ServeError(f"--host-key {path}: {getattr(e, 'strerror', None) or e}") from None


def host_key_fingerprint(path: str) -> str:
    """SHA256:... of the host key at `path`, as `ssh-keygen -lf` prints it."""
    return str(asyncssh.read_private_key(path).get_fingerprint("sha256"))


async def start(args) -> tuple[asyncssh.SSHAcceptor, Hub]:  # type: ignore[no-untyped-def]
    host, port = parse_listen(args.listen)
    if args.max_sessions < 1:
        raise ServeError("--max-sessions: at least 1")
    host_key = load_host_key(args)
    if not os.path.isfile(args.authorized_keys):
        raise ServeError(f"--authorized-keys {args.authorized_keys}: no such file")
    if not keys.load(args.authorized_keys):
        log.warning("%s: no usable key: every client will be refused", args.authorized_keys)
    hub = Hub(args)
    try:
        acceptor = await asyncssh.listen(
            host,
            port,
            server_host_keys=[host_key],
            server_factory=lambda: _Server(hub),
            process_factory=hub.handle,
            encoding=None,
            line_editor=False,
            allow_scp=False,
            agent_forwarding=False,
            x11_forwarding=False,
            sftp_factory=None,
            keepalive_interval=15,
            login_timeout=LOGIN_TIMEOUT,
        )
    except OSError as e:
        await hub.close()
        raise ServeError(f"--listen {args.listen}: {e.strerror or e}") from None
    return acceptor, hub


def main(args) -> int:  # type: ignore[no-untyped-def]
    async def run() -> int:
        acceptor, hub = await start(args)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        addr = acceptor.sockets[0].getsockname() if acceptor.sockets else args.listen
        mode = "presenter mode" if args.presenter else "one console per client"
        made = "created now" if args.host_key_created else "from"
        print(
            f"tenantscope serve: listening on {addr[0]}:{addr[1]} ({mode}, at most {args.max_sessions} "
            f"sessions); Ctrl-C stops\n"
            f"host key {host_key_fingerprint(args.host_key)} ({made} {args.host_key}): clients "
            f"verify it with `ssh-keygen -lf` on their known_hosts entry",
            flush=True,
        )
        await stop.wait()
        acceptor.close()
        await hub.close()
        return 0

    return asyncio.run(run())
