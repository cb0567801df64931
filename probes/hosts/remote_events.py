"""Network change events of an SSH host, streamed by one persistent remote helper
(probes/hosts/remote_helper.py, shipped as source to the host's python3): the remote
counterpart of probes/network/events.LocalNetEvents, with the same interface, so the topology
and netns probes re-read an SSH host's namespace when it changed instead of every few seconds.

- One helper per host, one SSH session for its whole life (started by the first probe that
  needs it, on the host's existing connection, through `HostTransport.stream`: argv joined
  with shlex.join, the config as one JSON argument).
- Its frames are untrusted text: anything that is not a well-formed frame is dropped; a
  namespace name only ever selects what is re-read.
- When the stream ends (connection lost, helper killed), the probes are woken once (they fall
  back to their poll interval until the helper is back) and the helper is started again; when
  it is back, everything counts as changed (events may have been missed meanwhile).
- A host without python3 (>= 3.8) keeps today's polls, and `error` says why (shown in the
  probe-errors screen's "how each probe is fed" table).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from probes.hosts import remote_helper
from probes.hosts.base import HostError, HostTransport
from probes.network.events import ALL, OVS
from probes.network.rtnl import TOPOLOGY_GROUPS

log = logging.getLogger(__name__)

PROGRAM = inspect.getsource(remote_helper)
MIN_PYTHON = (3, 8)
# the places distributions keep the OVSDB database: ovsdb-server appends every transaction
OVS_DB_FILES = (
    "/etc/openvswitch/conf.db",
    "/var/lib/openvswitch/conf.db",
    "/usr/local/etc/openvswitch/conf.db",
)
HEARTBEAT = 30.0  # seconds between the helper's heartbeats when nothing changes
PROC_SCAN = 2.0  # seconds between the helper's /proc scans (on the host: new PIDs only)
RESTART_MAX = 5.0  # seconds at most between attempts to start the helper again
# areas of the helper whose absence leaves the rest live (said in the feed, polled instead)
OPTIONAL = ("procs", "totals", "nftables")
MAX_COUNTED = 1000  # names counted in `received` (a hostile host could send endless new ones)

# exit 0: a python3 that runs PROGRAM; 1: too old; 127: none (an answer, not a failure)
_PYTHON_CHECK = (
    'command -v "$1" >/dev/null 2>&1 || exit 127; '
    'exec "$1" -c "import sys; sys.exit(sys.version_info < (%d, %d))"' % MIN_PYTHON
)


def helper_argv(
    python: str = "python3",
    *,
    netns_dir: str = "/run/netns",
    files: Sequence[str] = OVS_DB_FILES,
    heartbeat: float = HEARTBEAT,
    settle: float = 0.02,
    proc_scan: float = PROC_SCAN,
    totals: float = 0.0,
) -> list[str]:
    """The helper's argv: constant program text, the configuration as one JSON argument."""
    cfg = {"netns_dir": netns_dir, "groups": TOPOLOGY_GROUPS, "settle": settle, "heartbeat": heartbeat}
    cfg["files"] = list(files)
    cfg["nft"] = True  # nftables rule changes too (the topology then reads that namespace's filters)
    cfg["proc_scan"] = proc_scan
    cfg["totals"] = totals
    return [python, "-c", PROGRAM, json.dumps(cfg)]


TOTALS_FIELDS = 10  # the T frame's numbers (remote_helper.host_totals)
_MAX_COUNTER = 2.0**64


def _totals(body: object) -> tuple[float, ...] | None:
    """The T frame's ten numbers, or None when they are not ten finite non-negative numbers
    (a hostile or broken host: dropped)."""
    if not isinstance(body, list) or len(body) != TOTALS_FIELDS:
        return None
    out = []
    for x in body:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 <= x < _MAX_COUNTER:
            return None  # (NaN fails the comparison too)
        out.append(x)
    return tuple(out) if out[0] >= 1 else None


def parse_frame(line: str) -> tuple[str, object]:
    """('R', {area: why}), ('F', names), ('C', what), ('T', totals), ('H', None), ('X', why),
    or ('', None) for anything malformed (dropped)."""
    try:
        f = json.loads(line)
    except ValueError:
        return "", None
    if not isinstance(f, list) or not f or not isinstance(f[0], str):
        return "", None
    kind = f[0]
    if kind == "H" and len(f) == 1:
        return "H", None
    if kind == "R" and len(f) == 3 and isinstance(f[2], dict):
        return "R", {str(k)[:40]: str(v)[:200] for k, v in f[2].items()}
    if kind in ("F", "C") and len(f) == 2 and isinstance(f[1], list):
        return kind, tuple(str(x) for x in f[1] if isinstance(x, str))
    if kind == "X" and len(f) == 2:
        return "X", str(f[1])[:300]
    if kind == "T" and len(f) == 2:
        totals = _totals(f[1])
        return ("T", totals) if totals is not None else ("", None)
    return "", None


class RemoteNetEvents:
    """Owned by the session, one per SSH host, shared by the netns and topology probes."""

    remote = True

    def __init__(
        self,
        host: HostTransport,
        *,
        python: str = "python3",
        netns_dir: str = "/run/netns",
        files: Sequence[str] = OVS_DB_FILES,
        heartbeat: float = HEARTBEAT,
        restart: float = RESTART_MAX,
        totals: float = 0.0,
    ) -> None:
        self.host = host
        # the host's totals pushed every `totals` s (0: not asked for): the newest, when it
        # came (time.time()) and how many came (a reader takes each one once)
        self.totals_every = totals
        self.totals: tuple[float, ...] | None = None
        self.totals_at = 0.0
        self.totals_seq = 0
        self.python = python
        self.netns_dir = netns_dir
        self.files = tuple(files)
        self.heartbeat = heartbeat
        self.restart = restart
        self._subs: list[Callable[[str], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._live = False
        self._names: tuple[str, ...] = ()
        self._procs = False  # the helper's /proc scan runs
        self.nft = False  # nftables rule changes come as events (else: at the safety poll)
        self.error = "starting the remote event helper"  # why events are not (all) available
        self.no_python = False  # the host cannot run the helper: polled (say so)
        self.received: dict[str, int] = {}  # frames per namespace ('' the host's): tests, bench
        self.streams = 0  # helpers started (tests: rebuilt after a reconnect)

    # -- the interface of LocalNetEvents

    def subscribe(self, fn: Callable[[str], None]) -> None:
        if fn not in self._subs:
            self._subs.append(fn)

    @property
    def live(self) -> bool:
        return self._live

    @property
    def procs(self) -> bool:
        """Whether processes' namespaces and runtime daemons come as events (PROCS)."""
        return self._live and self._procs

    @property
    def notifications(self) -> int:
        return sum(self.received.values())

    @property
    def namespaces(self) -> tuple[str, ...]:
        return self._names

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"remote events@{self.host.name}")

    async def sync(self, named: Iterable[str]) -> None:
        """The helper follows every namespace of netns_dir by itself."""

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._live = False
        self._subs.clear()

    async def stop_stream(self) -> None:
        """End the helper's stream now (tests: a missed event); restarted `restart` s later."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._set_down("stopped")
            self._task = asyncio.create_task(self._run(first_delay=self.restart))

    # -- internals

    def _fire(self, what: str) -> None:
        for fn in list(self._subs):
            try:
                fn(what)
            except Exception:
                log.exception("remote network event subscriber")

    def fresh_totals(self, seen: int) -> tuple[int, tuple[float, ...], float] | None:
        """(seq, totals, received at) of pushed totals newer than `seen` while the helper
        runs (a stream that ends forgets them); None: none new (the reader asks the host)."""
        if self.totals is None or self.totals_seq == seen:
            return None
        return self.totals_seq, self.totals, self.totals_at

    def _set_down(self, why: str) -> None:
        was = self._live
        self._live = False
        self.totals = None
        self.error = why
        if was:
            self._fire(ALL)  # the probes run once and go back to their polls meanwhile

    async def _unavailable(self) -> str:
        """Why the helper cannot run on the host ('' when it can); raises HostError when the
        host cannot be asked (connection down): not an answer."""
        r = await self.host.run(["sh", "-c", _PYTHON_CHECK, "sh", self.python], timeout=15)
        if r.returncode == 127:
            return f"no {self.python} on the host: the event helper cannot run"
        if not r.ok:
            return f"{self.python} on the host is older than {MIN_PYTHON[0]}.{MIN_PYTHON[1]}: the event helper cannot run"
        return ""

    async def _run(self, first_delay: float = 0.0) -> None:
        delay = first_delay
        started = self.streams > 0
        while True:
            if delay:
                await asyncio.sleep(delay)
            delay = min(max(delay * 2, 1.0), self.restart)
            try:
                why = await self._unavailable()
            except HostError as e:
                self._set_down(f"connection down: {str(e)[:200]}")
                continue
            if why:
                self.no_python = True
                self._set_down(why)
                delay = 60.0  # python3 may be installed later: ask again now and then
                continue
            self.no_python = False
            self.streams += 1
            why = "the event helper ended"
            try:
                argv = helper_argv(
                    self.python,
                    netns_dir=self.netns_dir,
                    files=self.files,
                    heartbeat=self.heartbeat,
                    totals=self.totals_every,
                )
                async for line in self.host.stream(argv):
                    kind, body = parse_frame(line)
                    if kind == "T" and isinstance(body, tuple):
                        self.totals, self.totals_at = body, time.time()
                        self.totals_seq += 1
                    elif kind == "C" and isinstance(body, tuple):
                        for what in body:
                            if what in self.received or len(self.received) < MAX_COUNTED:
                                self.received[what] = self.received.get(what, 0) + 1
                            self._fire(OVS if what.startswith("file:") else what)
                    elif kind == "F" and isinstance(body, tuple):
                        self._names = body
                    elif kind == "R" and isinstance(body, dict):
                        if body.get("totals"):  # the helper cannot read them: asked instead
                            self.totals = None
                        trouble = "; ".join(v for k, v in body.items() if v and k not in OPTIONAL)
                        self._live = not trouble
                        self._procs = body.get("procs") == ""
                        self.nft = body.get("nftables") == ""
                        self.error = trouble and f"the event helper: {trouble}"
                        delay = 0.0
                        if started:  # events may have been missed while it was down
                            self._fire(ALL)
                        started = True
                    elif kind == "X" and isinstance(body, str):
                        why = f"the event helper failed: {body}"
            except asyncio.CancelledError:
                self._live = False
                self.totals = None
                raise
            except Exception as e:  # HostError, or asyncssh's own when the connection dropped
                why = f"the event helper stopped: {str(e)[:200] or type(e).__name__}"
            self._set_down(why + "; restarting")
