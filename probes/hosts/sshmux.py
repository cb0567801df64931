"""Many commands over ONE remote shell: what makes a remote refresh cost about what a local one does.

Each SSH session (channel) makes sshd fork and start the user's login shell, which reads the
shell's rc files: on root logins with a busy ~/.bashrc (pyenv, conda, ...) that alone is
100+ ms of CPU per command, so a refresh of 30-40 commands spent seconds in bashrc. Here one
session runs a small POSIX sh server (below) and every command becomes a line on its stdin:

    request   ID SHELL-QUOTED-ARGV\n          (shlex.join: each argument stays one word)
    cancel    KID\n                           (kill -9 the command of request ID)
    result    ID RC OUTLEN ERRLEN\n OUT ERR   (exact byte counts, so any bytes pass)

The server runs each command in the background (in a session of its own where `setsid`
exists, so that a cancel kills what it started too) with its output in a private temp dir; one
writer process serialises finished results onto stdout in completion order, so concurrent
commands never interleave. A result with output is put together in one file first and
written by one `cat` (one write, so mostly one SSH packet: an idle fleet's replies were two
packets each, header and output, and each received packet costs the console its decryption
and a pass through asyncssh). When the channel closes (tenantscope exits, the connection drops)
the server's stdin ends: it kills what is still running and removes its dir. An argument with
a newline cannot be framed as one line: such commands (and those with stdin input) use a
session of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import shlex
from collections.abc import Sequence

from probes.hosts.quiet_asyncssh import asyncssh

log = logging.getLogger(__name__)

READY = "tenantscope-mux 1"

SERVER = r"""
d=$(mktemp -d "${TMPDIR:-/tmp}/tenantscope-mux.XXXXXX") || exit 1
mkfifo "$d/q" || { rm -rf "$d"; exit 1; }
trap 'rm -rf "$d"' EXIT
trap 'exit 1' HUP INT TERM
trap '' PIPE
exec 5<>"$d/q"
S=; command -v setsid >/dev/null 2>&1 && S=setsid
(
  trap - EXIT
  n=0; old=
  while IFS=' ' read -r id rc o e <&5; do
    [ "$id" = . ] && exit 0
    if [ "$o" -gt 0 ] || [ "$e" -gt 0 ]; then cat "$d/$id.a"; else printf '%s %s %s %s\n' "$id" "$rc" "$o" "$e"; fi
    old="$old $id.o $id.e $id.p $id.a"; n=$((n + 1))
    if [ "$n" -ge 32 ]; then (cd "$d" && rm -f $old); n=0; old=; fi
  done
) &
w=$!
printf '%s\n' "__READY__"
while IFS= read -r line; do
  id=${line%% *}; cmd=${line#* }
  case $id in
    K*) id=${id#K}; p=$(cat "$d/$id.p" 2>/dev/null) && { kill -9 "-$p" || kill -9 "$p"; } 2>/dev/null; continue ;;
    *[!0-9]*|'') continue ;;
  esac
  (
    trap - EXIT
    eval "set -- $cmd"
    $S "$@" </dev/null >"$d/$id.o" 2>"$d/$id.e" &
    printf '%s\n' $! >"$d/$id.p"
    wait $!; rc=$?
    cd "$d" && set -- $(wc -c "$id.o" "$id.e") &&
      { [ "$1$3" = 00 ] || { printf '%s %s %s %s\n' "$id" "$rc" "$1" "$3"; cat "$id.o" "$id.e"; } >"$id.a"; } &&
      printf '%s %s %s %s\n' "$id" "$rc" "$1" "$3" >&5
  ) >/dev/null 2>&1 &
done
for f in "$d"/*.p; do [ -f "$f" ] && p=$(cat "$f") && { kill -9 "-$p" || kill -9 "$p"; } 2>/dev/null; done
printf '. 0 0 0\n' >&5
wait "$w"
""".replace("__READY__", READY)


class MuxClosed(Exception):
    """The mux session ended (connection lost, server exited); the message says why."""


def muxable(argv: Sequence[str]) -> bool:
    return not any("\n" in a for a in argv)


class Mux:
    """Client side of one mux session on an open connection."""

    def __init__(self, conn: asyncssh.SSHClientConnection, max_running: int = 32) -> None:
        self._conn = conn
        self._proc: asyncssh.SSHClientProcess[bytes] | None = None
        self._pending: dict[int, asyncio.Future[tuple[int, bytes, bytes]]] = {}
        self._ids = itertools.count(1)
        self._reader: asyncio.Task[None] | None = None
        self._running = asyncio.Semaphore(max_running)
        self.closed: str | None = None
        # lines written in one turn of the event loop go out as one write (one SSH packet,
        # one send): a probe's refresh starts its commands together
        self._out: list[bytes] = []

    async def start(self, timeout: float = 10.0) -> None:
        self._proc = await self._conn.create_process(shlex.join(["sh", "-c", SERVER]), encoding=None)
        line = await asyncio.wait_for(self._proc.stdout.readline(), timeout)
        if line.decode("utf-8", "replace").strip() != READY:
            self._proc.close()
            raise MuxClosed(f"remote shell did not start the command server: {line[:200]!r}")
        self._reader = asyncio.create_task(self._read(), name="ssh mux reader")

    async def _read(self) -> None:
        assert self._proc is not None
        out = self._proc.stdout
        why = "the remote command server ended"
        try:
            while True:
                hdr = await out.readline()
                if not hdr:
                    break
                parts = hdr.split()
                if len(parts) != 4:
                    why = f"garbled reply from the command server: {hdr[:100]!r}"
                    break
                rid, rc, olen, elen = (int(p) for p in parts)
                data = await out.readexactly(olen + elen)
                fut = self._pending.pop(rid, None)
                if fut is not None and not fut.done():
                    fut.set_result((rc, data[:olen], data[olen:]))
        except asyncio.CancelledError:
            why = "closed"
        except (asyncio.IncompleteReadError, asyncssh.Error, OSError, ValueError) as e:
            why = f"command server: {e or type(e).__name__}"
        self._fail(why)

    def _fail(self, why: str) -> None:
        self.closed = why
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(MuxClosed(why))
        self._pending.clear()

    async def run(self, argv: Sequence[str]) -> tuple[int, bytes, bytes]:
        """(exit status, stdout, stderr); cancelling kills the remote command."""
        if self.closed is not None or self._proc is None:
            raise MuxClosed(self.closed or "not started")
        async with self._running:
            rid = next(self._ids)
            fut: asyncio.Future[tuple[int, bytes, bytes]] = asyncio.get_running_loop().create_future()
            self._pending[rid] = fut
            try:
                self._send(f"{rid} {shlex.join(argv)}\n".encode())
                return await fut
            except asyncio.CancelledError:
                self._pending.pop(rid, None)
                if self.closed is None:
                    self._send(f"K{rid}\n".encode())
                raise

    def _send(self, line: bytes) -> None:
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(line)

    def _flush(self) -> None:
        data, self._out = b"".join(self._out), []
        if self._proc is not None and self.closed is None:
            try:
                self._proc.stdin.write(data)
            except Exception as e:  # the channel is gone: every command waiting on it fails
                self._fail(f"command server: {e or type(e).__name__}")

    async def close(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(Exception):
                self._proc.stdin.write_eof()
            self._proc.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        self._fail("closed")
