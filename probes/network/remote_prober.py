"""Active probes on an SSH host at local speed: the local prober's own measurement, run by one
remote python3 helper per host over one SSH session.

`ip netns exec NS ping` per pair costs a process (and a login-shell round trip) per probe and
can only tell a reply from silence. Instead, as the remote log follower does
(probes/logs/remote_follow.py):

- PROGRAM is constant text: the sources of probes/network/nsenter.py, neigh.py, icmp.py and
  measure.py (their `from probes...` lines dropped: the names live in one program) plus a
  loop. So the remote host runs the very code the local prober runs: one raw ICMP socket per
  source namespace entered with setns, TCP connects, traced hops, neighbour states.
- The requests travel in ONE JSON argv element (data, never code): the same `SourceProbe`
  dataclasses the local prober builds, with the addresses as indices into one shared table
  (a 100-namespace matrix fits in sshd's 128 KiB per argument; bigger runs are split into
  several helpers, each its own stream).
- Answers come back as one JSON array per line, ASCII only: `["M", index, SourceMeasurement]`
  as each source finishes, `["X", why]` when the helper itself failed, `["D"]` at the end.
  They are decoded with msgspec into the same `SourceMeasurement` dataclass, which validates
  them: a hostile host can only produce error cells, never an exception or markup.
- Where python3 (>= 3.8) is missing, the caller falls back to `ip netns exec ... ping`
  (probes/network/remote.py) and says why in the matrix's errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict

import msgspec

from probes.hosts.base import HostError, HostTransport
from probes.network import icmp, measure, neigh, nsenter
from probes.network.measure import SourceMeasurement, SourceProbe

MAX_ARG = 100_000  # bytes of JSON per helper (Linux: 128 KiB per argument)
MAX_HELPERS = 3  # helpers (SSH sessions) at once for a big run
MIN_PYTHON = (3, 8)

_IMPORT = re.compile(
    r"^(from probes\.[\w.]+ import \((?:.|\n)*?\)\n|from probes\.[^\n]*\n|from __future__[^\n]*\n)", re.M
)


def _module_source(mod: object) -> str:
    return _IMPORT.sub("", inspect.getsource(mod))  # type: ignore[arg-type]


_LOOP = r"""
import dataclasses, json, sys


def _req(d, table):
    return SourceProbe(
        str(d["path"]), int(d["inode"]), tuple(table[i] for i in d["addresses"]),
        tuple(int(p) for p in d["ports"]), float(d["timeout"]), bool(d["trace"]),
        tuple(table[i] for i in d["first_hops"]), int(d["tcp_budget"]))


def _emit(*frame):
    sys.stdout.write(json.dumps(frame, ensure_ascii=True, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def _main():
    cfg = json.loads(sys.argv[1])
    table = cfg["table"]
    sem = asyncio.Semaphore(int(cfg["concurrency"]))

    async def one(i, d):
        async with sem:
            try:
                m = await measure_source(_req(d, table))
            except Exception as e:  # one source's trouble is its own
                m = SourceMeasurement(error="%s: %s" % (d.get("path"), e or type(e).__name__))
        _emit("M", i, dataclasses.asdict(m))

    await asyncio.gather(*(one(i, d) for i, d in enumerate(cfg["requests"])))
    _emit("D")


try:
    asyncio.run(_main())
except Exception as e:
    _emit("X", "%s: %s" % (type(e).__name__, e))
"""

PROGRAM = (
    "from __future__ import annotations\n"
    + "\n".join(_module_source(m) for m in (nsenter, neigh, icmp, measure))
    + _LOOP
)

# exit 0: a python3 that runs PROGRAM; 1: too old; 127: none (an answer, not a failure)
_PYTHON_CHECK = (
    'command -v "$1" >/dev/null 2>&1 || exit 127; '
    'exec "$1" -c "import sys; sys.exit(sys.version_info < (%d, %d))"' % MIN_PYTHON
)


def config_args(reqs: Sequence[SourceProbe], concurrency: int = 256) -> list[str]:
    """The helpers' JSON arguments: one per chunk of at most MAX_ARG bytes, each with its own
    address table. Each request carries its index in `reqs`."""
    out: list[str] = []
    table: dict[str, int] = {}
    chunk: list[dict[str, object]] = []
    size = 0

    def flush() -> None:
        nonlocal table, chunk, size
        if chunk:
            out.append(json.dumps({"table": list(table), "requests": chunk, "concurrency": concurrency}))
        table, chunk, size = {}, [], 0

    def index(a: str) -> int:
        return table.setdefault(a, len(table))

    for i, r in enumerate(reqs):
        grow = sum(len(a) + 4 for a in set(r.addresses) | set(r.first_hops)) + 6 * len(r.addresses) + 200
        if chunk and size + grow > MAX_ARG:
            flush()
        d = asdict(r)
        d["i"] = i
        d["addresses"] = [index(a) for a in r.addresses]
        d["first_hops"] = [index(a) for a in r.first_hops]
        chunk.append(d)
        size += grow
    flush()
    return out


_DECODE = msgspec.json.Decoder(SourceMeasurement)


class RemoteProber:
    """The helper of one SSH host (see the module doc)."""

    def __init__(self, host: HostTransport, python: str = "python3") -> None:
        self.host = host
        self.python = python

    async def unavailable(self) -> str:
        """Why the helper cannot run on the host ('' when it can)."""
        try:
            r = await self.host.run(["sh", "-c", _PYTHON_CHECK, "sh", self.python], timeout=15)
        except HostError as e:
            return f"cannot check for {self.python}: {e}"
        if r.returncode == 127:
            return f"no {self.python} on the host"
        if not r.ok:
            return f"{self.python} on the host is older than {MIN_PYTHON[0]}.{MIN_PYTHON[1]}"
        return ""

    async def measure_all(self, reqs: Sequence[SourceProbe]) -> AsyncIterator[tuple[int, SourceMeasurement]]:
        """(index, measurement) as each source finishes; one helper per chunk of requests."""
        args = config_args(reqs)
        q: asyncio.Queue[tuple[int, SourceMeasurement] | None] = asyncio.Queue()
        sem = asyncio.Semaphore(MAX_HELPERS)

        async def run(arg: str) -> None:
            order = [int(d["i"]) for d in json.loads(arg)["requests"]]
            why = "the remote prober ended without an answer"
            try:
                async with sem:
                    async for line in self.host.stream([self.python, "-c", PROGRAM, arg]):
                        kind, body = _frame(line)
                        if kind == "M" and isinstance(body, tuple) and 0 <= body[0] < len(order):
                            await q.put((order[body[0]], body[1]))
                        elif kind == "X":
                            why = f"the remote prober failed: {body}"
                        elif kind == "D":
                            return
            except HostError as e:
                why = f"the remote prober stopped: {e}"
            for i in order:  # what did not come back, with the reason (measure_all's caller
                await q.put((i, SourceMeasurement(error=why)))  # keeps the first answer)

        tasks = [asyncio.ensure_future(run(a)) for a in args]
        done = asyncio.ensure_future(asyncio.gather(*tasks, return_exceptions=True))
        done.add_done_callback(lambda _: q.put_nowait(None))
        try:
            while (item := await q.get()) is not None:
                yield item
        finally:
            for t in tasks:
                t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await done


def _frame(line: str) -> tuple[str, object]:
    """A frame of the helper: ('M', (index, SourceMeasurement)), ('X', why), ('D', None), or
    ('', None) for anything else (a malformed frame is dropped; its source becomes an error)."""
    if line.startswith('["M",'):
        head, sep, rest = line[5:].partition(",")
        if sep and head.isdigit() and rest.endswith("]"):
            try:
                return "M", (int(head), _DECODE.decode(rest[:-1]))
            except (msgspec.ValidationError, msgspec.DecodeError):
                return "", None
        return "", None
    try:
        f = json.loads(line)
    except ValueError:
        return "", None
    if isinstance(f, list) and f and f[0] == "X" and len(f) == 2:
        return "X", str(f[1])[:300]
    if f == ["D"]:
        return "D", None
    return "", None
