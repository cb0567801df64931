"""A remote host over SSH (asyncssh): the same transport as LocalHost, for one host of a fleet.

Why it looks like this:
- One connection per host, shared by every probe; commands run concurrently over it as
  separate sessions (channels), bounded below sshd's MaxSessions (default 10). A new
  connection per command costs a TCP + key exchange + auth round trip (see bench/ssh_fanout).
- Every call has a deadline. A command past its deadline has its channel closed, and the
  wrapper below kills it on the remote side: signals sent over SSH do nothing for root
  sessions (no privilege separation), so the wrapper watches its stdin and kills the command
  when the channel closes. The same wrapper ends `stream()` commands when the iterator closes.
- Commands are argv lists joined with `shlex.join` and passed as "$@" to the wrapper: a name
  from a host (`x;touch /tmp/pwned`, `$(id)`) is always one argument, never shell text.
- Connection attempts are shared (one in flight per host), bounded across the fleet (sshd's
  MaxStartups drops bursts of unauthenticated connections, e.g. through a jump host), and
  retried with exponential back-off and jitter; while backing off, calls fail at once with the
  last error, so a dead host never holds anyone up.
- Host keys are checked against ~/.ssh/known_hosts (or --known-hosts FILE). An unknown key is
  refused with its fingerprint unless the user said --accept-new-host-keys (then it is recorded);
  a CHANGED key is always refused. ~/.ssh/config is honoured (aliases, User, Port, IdentityFile,
  ProxyJump) because asyncssh reads it.
- `connection` is the user-facing state (connecting, up, unreachable, auth failed, host key
  refused) with a one-line detail and the time it began; probes/hosts/connection.py puts it
  into the HostState.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import glob
import logging
import os
import random
import re
import secrets
import shlex
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from probes.fleet import Target, targets_from_options
from probes.hosts.base import CommandResult, CommandTimeout, HostError, HostTransport
from probes.hosts.libvirt_forward import LibvirtForward
from probes.hosts.libvirt_uri import DEFAULT_URI
from probes.hosts.quiet_asyncssh import asyncssh
from probes.hosts.sshmux import Mux, MuxClosed, muxable
from probes.model import Connection, ConnState, Host, HostKind

log = logging.getLogger(__name__)

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"

# Runs "$@" with stdin from /dev/null and kills it when our stdin (the channel) reaches EOF,
# i.e. when tenantscope closed the channel (deadline passed, stream closed, connection lost).
# `read` is a builtin, so killing the watcher leaves no child behind. POSIX sh only.
# The command gets a session (process group) of its own where `setsid` exists, so that the
# kill reaches what it started too.
WRAPPER = (
    "S=; command -v setsid >/dev/null 2>&1 && S=setsid; "
    'exec 3<&0; $S "$@" </dev/null 3<&- & p=$!; '
    '{ while read -r _; do :; done; kill -9 "-$p" || kill -9 "$p"; } <&3 >/dev/null 2>&1 & w=$!; '
    'exec 3<&-; wait "$p"; r=$?; kill "$w" 2>/dev/null; exit "$r"'
)


# Reads many files in one command: each file's bytes (at most LIMIT), then a line with a random
# marker and the outcome. Checks are builtins; `head` is the only process per file.
READ_SCRIPT = (
    "m=$1; shift; while [ $# -ge 2 ]; do l=$1; f=$2; shift 2; "
    'if [ -d "$f" ]; then r=EISDIR; elif [ ! -e "$f" ]; then r=ENOENT; '
    'elif [ ! -r "$f" ]; then r=EACCES; elif head -c "$l" -- "$f" 2>/dev/null; then r=0; '
    'else r=EIO; fi; printf \'\\n%s %s\\n\' "$m" "$r"; done'
)
READ_BATCH = 64
# A batch answers when its last file is read, so files that can block for long stay out of it:
# those of a process (/proc/PID/cmdline waits on a process stuck in D state).
_PER_PROCESS = re.compile(r"^/proc/(\d+|self|thread-self)/")


# Ciphers offered first unless the user's ssh_config names its own (`Ciphers`): asyncssh
# makes three cipher objects per packet for chacha20-poly1305, its first choice (~40 us a
# packet here), and one AEAD per key for AES-GCM (~2-5 us): an idle fleet's connections each
# carry a few packets a second (pushed totals, command replies, libvirt's keepalives), and at
# 30 hosts that was ~10% of the console's CPU. Both are in OpenSSH's default list; the rest of
# asyncssh's defaults follow, so a server without AES-GCM negotiates as before.
PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
_CONFIG_KEY = re.compile(r"\s*([A-Za-z]+)\s*(?:=\s*|\s+)(.*)")


def cipher_preference(
    config: Sequence[str] | None, read: list[tuple[str, Stamp]] | None = None
) -> list[str] | None:
    """The encryption algorithms to offer, AES-GCM first; None (asyncssh decides from the
    config) when the ssh_config files asyncssh reads (`config`, or ~/.ssh/config when None)
    name Ciphers anywhere, in any Host block or included file: the user's choice stands.
    `read` gets each file read and folder globbed, stamped before it was read."""
    from asyncssh.encryption import get_default_encryption_algs

    paths = list(config) if config is not None else ["~/.ssh/config"]
    if _names_ciphers(paths, 0, read if read is not None else []):
        return None
    default = [a.decode("ascii") for a in get_default_encryption_algs()]
    first = [c for c in PREFERRED_CIPHERS if c in default]
    return first + [a for a in default if a not in first]


# what a file or folder looked like: (inode, size, mtime in ns); None when missing; ALWAYS for
# what cannot be watched by a stat (a glob with a wildcard in its folder part)
Stamp = tuple[int, int, int] | None | str
ALWAYS = "always"


def _stamp(path: str) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class CipherChoice:
    """cipher_preference for every SSH host of a session, decided again only when a file it
    read, or a folder an Include globbed, changed: each connect read and parsed the user's
    ssh_config (~100 us for 180 lines; a stat each is ~2 us). A Ciphers line the user adds
    while the console runs still wins at the next connect."""

    def __init__(self, config: Sequence[str] | None) -> None:
        self._config = list(config) if config is not None else None
        self._read: tuple[tuple[str, Stamp], ...] | None = None
        self._algs: list[str] | None = None

    def __call__(self) -> list[str] | None:
        if self._read is not None and all(s != ALWAYS and _stamp(p) == s for p, s in self._read):
            return self._algs
        read: list[tuple[str, Stamp]] = []
        self._algs = cipher_preference(self._config, read)
        self._read = tuple(read)
        return self._algs


def _names_ciphers(paths: Sequence[str], depth: int, read: list[tuple[str, Stamp]]) -> bool:
    for path in paths:
        path = os.path.expanduser(path)
        read.append((path, _stamp(path)))
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            m = _CONFIG_KEY.match(line)
            if m is None:
                continue
            key = m.group(1).lower()
            if key == "ciphers":
                return True
            if key == "include" and depth < 8:  # relative to ~/.ssh, as OpenSSH's user config
                pats = [
                    os.path.join(os.path.expanduser("~/.ssh"), os.path.expanduser(p))
                    for p in m.group(2).split()
                ]
                for p in pats:  # a file added to or removed from an included folder
                    folder = os.path.dirname(p)
                    read.append((folder, ALWAYS if glob.has_magic(folder) else _stamp(folder)))
                if _names_ciphers([x for p in pats for x in sorted(glob.glob(p))], depth + 1, read):
                    return True
    return False


class HostUnreachable(HostError):
    state = ConnState.UNREACHABLE


class AuthFailed(HostError):
    state = ConnState.AUTH_FAILED


class HostKeyRefused(HostError):
    state = ConnState.HOST_KEY_REFUSED


def remote_command(argv: Sequence[str], *, wrap: bool = True) -> str:
    """The command line sent to the remote shell: argv stays argv whatever it contains."""
    argv = [str(a) for a in argv]
    if not argv:
        raise ValueError("empty argv")
    return shlex.join(["sh", "-c", WRAPPER, "sh", *argv]) if wrap else shlex.join(argv)


def known_hosts_name(host: str, port: int | None) -> str:
    """How OpenSSH names a host in known_hosts."""
    return host if port in (None, 22) else f"[{host}]:{port}"


class _Client(asyncssh.SSHClient):
    """Decides about host keys asyncssh did not find trusted, and reports a lost connection."""

    def __init__(self, owner: SSHHost, known: asyncssh.SSHKnownHosts, path: str) -> None:
        self._owner = owner
        self._known = known
        self._path = path
        self.refusal: str | None = None

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        fp = key.get_fingerprint("sha256")
        alg = key.get_algorithm()
        p = None if port == 22 else port
        name = known_hosts_name(host, p)
        trusted = asyncssh.match_known_hosts(self._known, host, addr, p)[0]
        if trusted:
            self.refusal = (
                f"host key CHANGED for {name}: it offered {alg} {fp}, but {self._path} holds a "
                f"different key; refusing (possible man-in-the-middle). If the host was reinstalled, "
                f"check the new key, then remove the old one: ssh-keygen -R '{name}' -f {self._path}"
            )
            return False
        if self._owner.accept_new_host_keys:
            try:
                _record_host_key(self._path, name, key)
            except OSError as e:
                self.refusal = f"new host key for {name} ({alg} {fp}) could not be recorded in {self._path}: {e.strerror}"
                return False
            log.warning("trusted new host key for %s: %s %s (recorded in %s)", name, alg, fp, self._path)
            self._owner.accepted_key = f"{alg} {fp}"
            return True
        self.refusal = (
            f"unknown host key for {name}: {alg} {fp} is not in {self._path}; check the "
            f"fingerprint, then run with --accept-new-host-keys to trust and record it"
        )
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._lost(self, exc)


def _record_host_key(path: str, name: str, key: asyncssh.SSHKey) -> None:
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, mode=0o700, exist_ok=True)
    alg, b64 = key.export_public_key("openssh").decode().split()[:2]
    line = f"{name} {alg} {b64}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


class SSHHost(HostTransport):
    def __init__(
        self,
        target: Target,
        *,
        known_hosts: str | None = None,
        accept_new_host_keys: bool = False,
        client_keys: Sequence[str] | None = None,
        agent_path: str | tuple[()] | None = (),
        config: Sequence[str] | None = None,
        libvirt_uri: str | None = None,
        forward_libvirt: bool = False,
        connect_timeout: float = 10.0,
        keepalive_interval: float = 10.0,
        keepalive_count_max: int = 3,
        max_sessions: int = 10,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        connect_limit: asyncio.Semaphore | None = None,
        ciphers: CipherChoice | None = None,
        use_mux: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.target = target
        self.host = Host(
            name=target.name, kind=HostKind.SSH, address=target.ssh_address, libvirt_uri=libvirt_uri
        )
        self.known_hosts = os.path.expanduser(known_hosts or DEFAULT_KNOWN_HOSTS)
        self.accept_new_host_keys = accept_new_host_keys
        self.accepted_key: str | None = None
        self._client_keys = list(client_keys) if client_keys else None
        self._agent_path = agent_path
        self._config = list(config) if config is not None else None
        self._connect_timeout = connect_timeout
        self._keepalive = (keepalive_interval, keepalive_count_max)
        self._backoff = (backoff_base, backoff_max)
        self._connect_limit = connect_limit
        self._ciphers = ciphers or CipherChoice(self._config)
        self._clock = clock
        # sshd's MaxSessions (10) bounds channels per connection: one is the command server
        # (sshmux), the rest are sessions of their own, two of them kept for streams
        self._sessions = asyncio.Semaphore(max(1, max_sessions - 1))
        self._runs = asyncio.Semaphore(max(1, max_sessions - 3))
        self._streams = asyncio.Semaphore(max(1, max_sessions - 3))
        self._max_sessions = max_sessions
        self._conn: asyncssh.SSHClientConnection | None = None
        self._client: _Client | None = None
        self._connecting: asyncio.Future[asyncssh.SSHClientConnection] | None = None
        self._failures = 0
        self._retry_at = 0.0  # monotonic
        self._last_error: HostError | None = None
        self._closed = False
        self._use_mux = use_mux
        self._mux: Mux | None = None
        self._mux_lock = asyncio.Lock()
        self._reads: list[tuple[str, int, float, asyncio.Future[tuple[str, str]]]] = []
        self._reads_scheduled = False
        self._read_tasks: set[asyncio.Task[None]] = set()
        self._watchers: list[Callable[[], None]] = []
        self.connection = Connection("ssh", ConnState.CONNECTING, target.ssh_address, clock())
        # libvirt through this connection (a forwarded socket), unless the user gave a URI
        self._libvirt: LibvirtForward | None = LibvirtForward(self) if forward_libvirt else None

    # -- connection

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def _set(self, state: ConnState, detail: str) -> None:
        if self.connection.state != state or self.connection.detail != detail:
            since = self.connection.since if self.connection.state == state else self._clock()
            self.connection = Connection("ssh", state, detail, since)
            for fn in list(self._watchers):
                try:
                    fn()
                except Exception:
                    log.exception("connection state watcher")

    def on_state_change(self, fn: Callable[[], None]) -> None:
        """`fn()` whenever `connection` changes (the connection probe: no poll while up)."""
        if fn not in self._watchers:
            self._watchers.append(fn)

    async def ensure_connected(self) -> asyncssh.SSHClientConnection:
        """The live connection, connecting (once, shared by all callers) if needed."""
        if self._closed:
            raise HostError(f"{self.name}: connection closed")
        if self._conn is not None:
            return self._conn
        if self._connecting is None:
            wait = self._retry_at - time.monotonic()
            if wait > 0 and self._last_error is not None:
                # the same failure, worded the same: a headless run makes no next attempt, and
                # a console's probe error that changed with the countdown was news each time
                raise type(self._last_error)(str(self._last_error))
            self._connecting = asyncio.ensure_future(self._connect())
            self._connecting.add_done_callback(self._connect_done)
        return await asyncio.shield(self._connecting)

    def _connect_done(self, fut: asyncio.Future[Any]) -> None:
        self._connecting = None
        if not fut.cancelled():
            fut.exception()  # mark retrieved: callers may all have gone

    async def _connect(self) -> asyncssh.SSHClientConnection:
        # the state stays what it was while retrying: "unreachable since T" is the outage's start
        t = self.target
        known = self._load_known_hosts()
        client = _Client(self, known, self.known_hosts)
        kw: dict[str, Any] = dict(
            known_hosts=known,
            client_factory=lambda: client,
            connect_timeout=self._connect_timeout,
            keepalive_interval=self._keepalive[0],
            keepalive_count_max=self._keepalive[1],
        )
        if t.port:
            kw["port"] = t.port
        if t.user:
            kw["username"] = t.user
        if self._client_keys is not None:
            kw["client_keys"] = self._client_keys
        if self._agent_path != ():
            kw["agent_path"] = self._agent_path
        if self._config is not None:
            kw["config"] = self._config
        ciphers = self._ciphers()
        if ciphers is not None:
            kw["encryption_algs"] = ciphers
        try:
            async with self._connect_limit or contextlib.nullcontext():
                async with asyncio.timeout(self._connect_timeout + 2):
                    conn = await asyncssh.connect(t.address, **kw)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            err = self._classify(e, client)
            self._failures += 1
            base, cap = self._backoff
            delay = min(cap, base * 2 ** (self._failures - 1))
            self._retry_at = time.monotonic() + delay / 2 + random.uniform(0, delay / 2)
            self._last_error = err
            self._set(err.state, self._reason(err))
            log.info("ssh %s: %s", self.name, err)
            raise err from None
        if self._closed:
            conn.close()
            raise HostError(f"{self.name}: connection closed")
        self._failures = 0
        self._last_error = None
        self._conn, self._client = conn, client
        self._set(ConnState.UP, t.ssh_address)
        return conn

    def _load_known_hosts(self) -> asyncssh.SSHKnownHosts:
        try:
            return asyncssh.read_known_hosts(self.known_hosts)
        except FileNotFoundError:
            return asyncssh.import_known_hosts("")
        except (OSError, ValueError) as e:
            raise HostKeyRefused(f"{self.known_hosts}: cannot read known hosts: {e}") from None

    def _classify(self, e: BaseException, client: _Client) -> HostError:
        who = self.target.ssh_address
        if isinstance(e, HostError):
            return e
        if isinstance(e, asyncssh.HostKeyNotVerifiable):
            return HostKeyRefused(f"{who}: {client.refusal or _first_line(e)}")
        if isinstance(e, asyncssh.PermissionDenied):
            how = (
                ("key files " + ", ".join(self._client_keys))
                if self._client_keys
                else "agent and default key files"
            )
            return AuthFailed(f"{who}: authentication failed (tried {how}): {_first_line(e)}")
        if isinstance(e, asyncssh.KeyExchangeFailed) and self._host_is_known():
            return HostKeyRefused(
                f"{who}: host key refused: {self.known_hosts} has a key of "
                f"another type for this host ({_first_line(e)})"
            )
        if isinstance(e, (asyncssh.KeyImportError, asyncssh.KeyEncryptionError)):
            return AuthFailed(f"{who}: cannot load the client key: {_first_line(e)}")
        if isinstance(e, asyncssh.ConfigParseError):
            return HostUnreachable(f"{who}: bad ssh config: {_first_line(e)}")
        if isinstance(e, asyncio.TimeoutError):
            return HostUnreachable(f"{who}: unreachable: no answer within {self._connect_timeout:g} s")
        if isinstance(e, ConnectionRefusedError):
            return HostUnreachable(f"{who}: unreachable: connection refused")
        if isinstance(e, UnicodeError):  # the resolver's IDNA encoding ('a..b', a 64+ label)
            return HostUnreachable(f"{who}: unreachable: not a valid host name (an empty or too long label)")
        if isinstance(e, OSError):
            return HostUnreachable(f"{who}: unreachable: {e.strerror or _first_line(e)}")
        if isinstance(e, asyncssh.Error):
            return HostUnreachable(f"{who}: unreachable: {_first_line(e)}")
        return HostUnreachable(f"{who}: unreachable: {type(e).__name__}: {_first_line(e)}")

    def _reason(self, err: HostError) -> str:
        """The error without the address and state the UI shows next to it anyway."""
        text = str(err)
        who = self.target.ssh_address + ": "
        text = text[len(who) :] if text.startswith(who) else text
        state = str(getattr(err, "state", "")) + ": "
        return text[len(state) :] if text.startswith(state) else text

    def _host_is_known(self) -> bool:
        try:
            return bool(
                asyncssh.match_known_hosts(
                    self._load_known_hosts(), self.target.address, "", self.target.port
                )[0]
            )
        except (HostError, ValueError):
            return False

    def _lost(self, client: _Client, exc: Exception | None) -> None:
        if client is not self._client:
            return
        self._conn = self._client = None
        self._mux = None
        if self._libvirt is not None:
            self._libvirt.connection_lost()
        if self._closed:
            return
        why = _first_line(exc) if exc else "closed by the remote side"
        err = HostUnreachable(f"{self.target.ssh_address}: connection lost: {why}")
        self._last_error = err
        self._set(ConnState.UNREACHABLE, self._reason(err))
        log.info("ssh %s: %s", self.name, err)

    async def close(self) -> None:
        self._closed = True
        conn, self._conn, self._client = self._conn, None, None
        mux, self._mux = self._mux, None
        if self._connecting is not None:
            self._connecting.cancel()
        if mux is not None:
            await mux.close()
        if self._libvirt is not None:
            await self._libvirt.close()
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 2)

    # -- HostTransport

    async def open_libvirt_uri(self) -> str | None:
        if self._libvirt is not None:
            return await self._libvirt.uri()
        return self.host.libvirt_uri

    @property
    def libvirt_forward(self) -> LibvirtForward | None:
        return self._libvirt

    def use_libvirt_uri(self, uri: str) -> None:
        """Open libvirt at the user's URI for this host (`--libvirt qemu+tls://HOST/system` with
        several targets), not through the forwarded socket; before the first use only."""
        self.host = dataclasses.replace(self.host, libvirt_uri=uri, libvirt_uri_given=True)
        self._libvirt = None

    async def run(
        self, argv: Sequence[str], *, timeout: float = 10.0, input: str | None = None
    ) -> CommandResult:
        argv = tuple(str(a) for a in argv)
        try:
            async with asyncio.timeout(timeout):  # not wait_for: it can swallow a cancel (3.11)
                return await self._run(argv, input)
        except TimeoutError:
            raise CommandTimeout(f"{self.name}: {argv[0]}: no answer within {timeout:g} s") from None

    async def _run(self, argv: tuple[str, ...], input: str | None) -> CommandResult:
        conn = await self.ensure_connected()
        if self._use_mux and input is None and muxable(argv):
            mux = await self._get_mux(conn)
            if mux is not None:
                try:
                    rc, out_b, err_b = await mux.run(argv)
                except MuxClosed as e:
                    raise HostUnreachable(f"{self.target.ssh_address}: {e}") from None
                return self._result(
                    argv, rc, out_b.decode("utf-8", "replace"), err_b.decode("utf-8", "replace")
                )
        cmd = remote_command(argv, wrap=input is None)
        async with self._runs, self._sessions:
            proc = await self._open(conn, cmd, input=input, encoding="utf-8", errors="replace")
            try:
                done = await proc.wait()
            finally:
                proc.close()  # a no-op when done; else ends the remote command (wrapper)
        if done.returncode is None:  # no exit status: the channel or the connection went away
            if self._conn is not conn:
                raise HostUnreachable(f"{self.target.ssh_address}: connection lost while running {argv[0]}")
            raise HostError(f"{self.name}: {argv[0]}: ended without an exit status")
        rc = done.returncode
        out = done.stdout if isinstance(done.stdout, str) else ""
        err = done.stderr if isinstance(done.stderr, str) else ""
        return self._result(argv, rc, out, err)

    async def _open(self, conn: asyncssh.SSHClientConnection, cmd: str, **kw: Any) -> Any:
        """A new session; sshd may refuse one for a moment while it tears a closed one down."""
        for attempt in range(4):
            try:
                return await conn.create_process(cmd, **kw)
            except asyncssh.ChannelOpenError as e:
                if attempt == 3 or self._conn is not conn:
                    raise HostUnreachable(
                        f"{self.target.ssh_address}: cannot open a session: {_first_line(e)}"
                    ) from None
                await asyncio.sleep(0.05 * (attempt + 1))
            except (asyncssh.ConnectionLost, asyncssh.DisconnectError) as e:
                raise HostUnreachable(f"{self.target.ssh_address}: {_first_line(e)}") from None

    async def _get_mux(self, conn: asyncssh.SSHClientConnection) -> Mux | None:
        """The connection's command server, started on first use; None (use a session per
        command) where it cannot run."""
        if self._mux is not None and self._mux.closed is None:
            return self._mux
        async with self._mux_lock:
            if self._mux is not None and self._mux.closed is None:
                return self._mux
            if self._conn is not conn:
                raise HostUnreachable(f"{self.target.ssh_address}: connection lost")
            mux = Mux(conn)
            try:
                await mux.start()
            except MuxClosed as e:  # the remote side cannot run it: one session per command
                log.warning("ssh %s: no command server (%s); one session per command", self.name, e)
                self._use_mux = False
                return None
            except TimeoutError:
                raise HostError(
                    f"{self.target.ssh_address}: the remote shell did not start "
                    "within 10 s (a slow login script?)"
                ) from None
            except (asyncssh.Error, OSError) as e:
                raise HostUnreachable(f"{self.target.ssh_address}: {_first_line(e)}") from None
            self._mux = mux
            return mux

    def _result(self, argv: tuple[str, ...], rc: int, out: str, err: str) -> CommandResult:
        if rc == 127 and ("not found" in err or "No such file" in err) and argv[0] in err:
            raise HostError(f"{argv[0]}: command not found on {self.name}")
        return CommandResult(argv, rc, out, err)

    async def read_text(self, path: str, *, timeout: float = 5.0, limit: int = 4 << 20) -> str:
        full = self.root + path
        if self._use_mux and muxable([full]) and not _PER_PROCESS.match(path):
            fut = self._queue_read(full, int(limit), timeout)
            try:
                async with asyncio.timeout(timeout):
                    rc, text = await asyncio.shield(fut)
            except TimeoutError:
                raise CommandTimeout(f"{self.name}: reading {path}: no answer within {timeout:g} s") from None
            if rc == "0":
                return text
            err = {"ENOENT": "No such file", "EACCES": "Permission denied", "EISDIR": "Is a directory"}.get(
                rc, f"read error ({rc})"
            )
        else:
            r = await self.run(["head", "-c", str(int(limit)), "--", full], timeout=timeout)
            if r.ok:
                return r.stdout
            err = r.stderr.strip()
        return self._read_error(path, err)

    def _queue_read(self, full: str, limit: int, timeout: float) -> asyncio.Future[tuple[str, str]]:
        """Reads asked for in the same turn of the event loop go out as ONE command (a probe
        reading 50 files costs one round trip and one process per file, not four). The
        price: the batch answers when its slowest file is read (see _PER_PROCESS)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[str, str]] = loop.create_future()
        fut.add_done_callback(_retrieve)  # its reader may have given up (deadline)
        self._reads.append((full, limit, timeout, fut))
        if not self._reads_scheduled:
            self._reads_scheduled = True
            loop.call_soon(self._flush_reads)
        return fut

    def _flush_reads(self) -> None:
        self._reads_scheduled = False
        batch, self._reads = self._reads, []
        for i in range(0, len(batch), READ_BATCH):
            task = asyncio.ensure_future(self._read_batch(batch[i : i + READ_BATCH]))
            self._read_tasks.add(task)
            task.add_done_callback(self._read_tasks.discard)

    async def _read_batch(self, batch: list[tuple[str, int, float, asyncio.Future[tuple[str, str]]]]) -> None:
        marker = secrets.token_hex(16)
        args = [a for full, limit, _, _ in batch for a in (str(limit), full)]
        try:
            r = await self.run(
                ["sh", "-c", READ_SCRIPT, "sh", marker, *args], timeout=max(t for _, _, t, _ in batch) + 1
            )
            parts = r.stdout.split(f"\n{marker} ")
            if len(parts) != len(batch) + 1:
                raise HostError(f"{self.name}: reading {len(batch)} files: garbled answer")
        except BaseException as e:
            for *_, fut in batch:
                if not fut.done():
                    fut.set_exception(e if isinstance(e, Exception) else HostError("cancelled"))
            if not isinstance(e, Exception):
                raise
            return
        for i, (*_, fut) in enumerate(batch):
            text = parts[0] if i == 0 else parts[i].split("\n", 1)[1]
            rc = parts[i + 1].split("\n", 1)[0]
            if not fut.done():
                fut.set_result((rc, text))

    def _read_error(self, path: str, err: str) -> str:
        if "No such file" in err or "Not a directory" in err:
            raise FileNotFoundError(2, "No such file or directory", path)
        if "Permission denied" in err or "Operation not permitted" in err:
            raise PermissionError(13, "Permission denied", path)
        if "Is a directory" in err:
            raise IsADirectoryError(21, "Is a directory", path)
        raise HostError(f"{self.name}: cannot read {path}: {_first_line(err) or 'failed'}")

    async def stream(self, argv: Sequence[str]) -> AsyncIterator[str]:
        conn = await self.ensure_connected()
        if self._streams.locked():  # each stream holds a session for its whole life
            raise HostError(
                f"{self.name}: no SSH session left for another stream: sshd allows "
                f"{self._max_sessions} per connection and {self._max_sessions - 3} "
                f"streams are open (follow several files with one command)"
            )
        async with self._streams, self._sessions:
            proc = await self._open(
                conn, remote_command(argv), encoding="utf-8", errors="replace", stderr=asyncssh.DEVNULL
            )
            try:
                async for line in proc.stdout:
                    yield line.rstrip("\n")
            finally:
                proc.close()  # channel closed -> stdin EOF -> the wrapper kills the command


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def _first_line(e: object) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def hosts_from_targets(opts: Any) -> list[HostTransport]:
    """The hosts of `--host`, `--hosts-file` and `--inventory` (probes.session.Options)."""
    from probes.hosts.local import LocalHost

    targets = targets_from_options(opts)
    limit = asyncio.Semaphore(int(getattr(opts, "max_connects", 8) or 8))
    user_uri = getattr(opts, "libvirt_uri", None)
    ssh_config = getattr(opts, "ssh_config", None)
    ciphers = CipherChoice([ssh_config] if ssh_config else None)  # one ssh_config for all hosts
    out: list[HostTransport] = []
    for t in targets:
        uri = t.libvirt_uri or (user_uri if len(targets) == 1 else None)
        if t.local:
            out.append(
                LocalHost(
                    t.name,
                    libvirt_uri=uri or DEFAULT_URI,
                    root=getattr(opts, "root", ""),
                    libvirt_uri_given=bool(uri),
                )
            )
            continue
        keys = tuple(getattr(opts, "identity", ()) or ()) + ((t.identity,) if t.identity else ())
        # an explicit URI is the user's (opened as given); else libvirt goes through our connection
        out.append(
            SSHHost(
                t,
                known_hosts=getattr(opts, "known_hosts", None),
                accept_new_host_keys=bool(getattr(opts, "accept_new_host_keys", False)),
                client_keys=keys or None,
                config=[ssh_config] if ssh_config else None,
                libvirt_uri=uri or t.default_libvirt_uri(),
                forward_libvirt=not uri,
                connect_limit=limit,
                ciphers=ciphers,
            )
        )
        if uri:  # the user's: one that does not answer is an error, not "no libvirt there"
            out[-1].host = dataclasses.replace(out[-1].host, libvirt_uri_given=True)
    return out
