"""A read-only HTTP client for container runtimes' REST APIs on a unix socket (Docker, Podman).

Why not docker-py or aiodocker: both open the socket themselves, so they cannot reach a
remote host's socket through the host transport (SSH), and they bring requests/aiohttp for
what is here four GET requests. This client sends GET only (nothing here can change a
runtime), HTTP/1.1 with `Connection: close`, and reads Content-Length or chunked bodies up to
a size limit. Locally it connects with asyncio; on other hosts one constant python3 program
does all requests of a poll in one command (socket and paths as argv, answers as JSON lines),
with `curl --unix-socket` per path where there is no python3.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from probes.hosts.base import HostError, HostTransport

MAX_BODY = 8 << 20  # bytes per answer: a runtime with thousands of containers fits
CONCURRENCY = 8  # requests in flight on one socket (locally)


@dataclass(frozen=True)
class ApiReply:
    """One GET: the HTTP status and body, or why there is none (status 0)."""

    path: str
    status: int = 0
    body: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> object:
        """The body as JSON, or None when it is not JSON (or there is no body)."""
        if not self.ok:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class ApiError(HostError):
    """The socket cannot be used at all (absent, refused, permission denied)."""


def _request(path: str) -> bytes:
    if not path.startswith("/") or any(c in path for c in "\r\n "):
        raise ValueError(f"bad API path {path!r}")
    return f"GET {path} HTTP/1.1\r\nHost: runtime\r\nUser-Agent: tenantscope\r\nConnection: close\r\n\r\n".encode()


def parse_response(path: str, raw: bytes) -> ApiReply:
    """An HTTP/1.x response (all of it, as read until the server closed) as an ApiReply."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return ApiReply(path, error="incomplete HTTP answer")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return ApiReply(path, error=f"not an HTTP answer: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    body = rest
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(rest)
    elif headers.get("content-length", "").isdigit():
        body = rest[: int(headers["content-length"])]
    return ApiReply(path, int(parts[1]), body.decode("utf-8", "replace"))


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, sep, data = data.partition(b"\r\n")
        if not sep:
            break
        try:
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
        except ValueError:
            break
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)


async def _get_local(socket_path: str, path: str, timeout: float) -> ApiReply:
    async def go() -> ApiReply:
        reader, writer = await asyncio.open_unix_connection(socket_path)
        try:
            writer.write(_request(path))
            await writer.drain()
            chunks: list[bytes] = []
            total = 0
            while chunk := await reader.read(65536):
                chunks.append(chunk)
                total += len(chunk)
                if total > MAX_BODY + 65536:
                    return ApiReply(path, error=f"answer larger than {MAX_BODY >> 20} MiB")
            return parse_response(path, b"".join(chunks))
        finally:
            writer.close()

    try:
        return await asyncio.wait_for(go(), timeout)
    except TimeoutError:
        return ApiReply(path, error=f"no answer within {timeout:g} s")
    except FileNotFoundError as e:
        raise ApiError(f"{socket_path}: no such socket") from e
    except PermissionError as e:
        raise ApiError(f"{socket_path}: permission denied") from e
    except ConnectionRefusedError as e:
        raise ApiError(f"{socket_path}: connection refused (daemon not running?)") from e
    except OSError as e:
        return ApiReply(path, error=f"{socket_path}: {e.strerror or e}")


# One constant program; the socket and the paths arrive as argv, answers leave as JSON lines.
_REMOTE = r"""
import json, socket, sys
sock, paths = sys.argv[1], sys.argv[2:]
for p in paths:
    out = {"path": p}
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(sock)
        s.sendall(("GET %s HTTP/1.1\r\nHost: runtime\r\nUser-Agent: tenantscope\r\nConnection: close\r\n\r\n" % p).encode())
        buf = b""
        while len(buf) < (8 << 20) + 65536:
            b = s.recv(65536)
            if not b:
                break
            buf += b
        s.close()
        out["raw"] = buf.decode("latin-1")
    except OSError as e:
        out["errno"] = e.errno or 0
        out["error"] = e.strerror or str(e)
    print(json.dumps(out), flush=True)
"""


async def _get_remote(
    host: HostTransport, socket_path: str, paths: Sequence[str], timeout: float
) -> list[ApiReply]:
    for p in paths:
        _request(p)  # validates
    res = await host.run(["python3", "-c", _REMOTE, socket_path, *paths], timeout=timeout)
    if res.returncode == 127 or "python3: not found" in res.stderr or "No such file" in res.stderr:
        return [await _get_curl(host, socket_path, p, timeout) for p in paths]
    got: dict[str, ApiReply] = {}
    for line in res.stdout.splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if not isinstance(d, dict) or not isinstance(d.get("path"), str):
            continue
        p = d["path"]
        if "raw" in d:
            got[p] = parse_response(p, str(d["raw"]).encode("latin-1"))
        else:
            err, no = str(d.get("error", "")), int(d.get("errno") or 0)
            if no in (2, 13, 111):  # ENOENT, EACCES, ECONNREFUSED: the socket is unusable
                raise ApiError(f"{socket_path}: {err}")
            got[p] = ApiReply(p, error=f"{socket_path}: {err}")
    return [got.get(p, ApiReply(p, error=(res.stderr.strip() or "no answer")[:200])) for p in paths]


async def _get_curl(host: HostTransport, socket_path: str, path: str, timeout: float) -> ApiReply:
    res = await host.run(
        [
            "curl",
            "-s",
            "-i",
            "--raw",
            "--max-time",
            f"{timeout:g}",
            "--unix-socket",
            socket_path,
            f"http://runtime{path}",
        ],
        timeout=timeout + 1,
    )
    if res.returncode == 7:
        raise ApiError(f"{socket_path}: cannot connect")
    if not res.ok:
        return ApiReply(path, error=f"curl failed ({res.returncode}): {res.stderr.strip()[:200]}")
    return parse_response(path, res.stdout.encode("utf-8", "replace"))


async def get_many(
    host: HostTransport, socket_path: str, paths: Sequence[str], *, timeout: float = 10.0
) -> list[ApiReply]:
    """GET each of `paths` from the API on `socket_path` (a path on `host`), in order.

    Raises ApiError when the socket cannot be used at all; a failed request is an ApiReply
    with status 0 and the error.
    """
    if not paths:
        return []
    if not host.is_local:
        return await _get_remote(host, socket_path, paths, timeout)
    sem = asyncio.Semaphore(CONCURRENCY)
    full = host.root + socket_path

    async def one(p: str) -> ApiReply:
        async with sem:
            return await _get_local(full, p, timeout)

    return list(await asyncio.gather(*(one(p) for p in paths)))


async def follow(socket_path: str, path: str, on_data: Callable[[], object]) -> None:
    """GET a streaming endpoint (Docker's and Podman's /events) on a local socket and call
    `on_data()` for every chunk of the body that arrives, until the server closes or the task
    is cancelled. Read-only like every request here; what the events say is not parsed: any
    event means "look again"."""
    reader, writer = await asyncio.open_unix_connection(socket_path)
    try:
        writer.write(_request(path))
        await writer.drain()
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await reader.read(4096)
            if not chunk:
                return
            head += chunk
            if len(head) > 65536:
                raise ApiError(f"{socket_path}: no end of HTTP headers")
        first = head.split(b"\r\n", 1)[0]
        status = first.split(b" ")
        if len(status) < 2 or not status[1].startswith(b"2"):
            raise ApiError(f"{socket_path}: GET {path}: {first.decode('latin-1')[:80]}")
        if head.partition(b"\r\n\r\n")[2].strip():
            on_data()
        while await reader.read(65536):
            on_data()
    finally:
        writer.close()


# Follows /events of several sockets on another host in ONE command (one SSH stream): a thread
# per socket sends the GET and prints "event N" (N: the socket's index in argv) for each chunk
# of the answer. The sockets and the path arrive as argv; nothing from the answers is printed.
_REMOTE_EVENTS = r"""
import socket, sys, threading
path, socks = sys.argv[1], sys.argv[2:]
lock = threading.Lock()
def say(s):
    with lock:
        sys.stdout.write(s + "\n")
        sys.stdout.flush()
def follow(i, sock):
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock)
        s.sendall(("GET %s HTTP/1.1\r\nHost: runtime\r\nUser-Agent: tenantscope\r\nConnection: close\r\n\r\n" % path).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            b = s.recv(4096)
            if not b:
                return
            head += b
        say("ready %d" % i)
        if head.partition(b"\r\n\r\n")[2].strip():
            say("event %d" % i)
        while s.recv(65536):
            say("event %d" % i)
    except OSError as e:
        say("error %d %s" % (i, e.strerror or e))
ts = [threading.Thread(target=follow, args=(i, s), daemon=True) for i, s in enumerate(socks)]
for t in ts:
    t.start()
for t in ts:
    t.join()
"""


def remote_events_argv(path: str, sockets: Sequence[str]) -> list[str]:
    """The one command that follows `path` (/events) on every socket of another host."""
    _request(path)  # validates
    return ["python3", "-c", _REMOTE_EVENTS, path, *sockets]
