"""Log sources: the journal, files followed like `tail -F`, libvirt events, and our own events.

Every source runs through the host transport (`run`, `stream`), so it works locally and over
SSH; only file following has a native local implementation (FileFollower), because it can
promise what `tail -F` cannot: on rename it drains the old file before opening the new one,
and it notices a copytruncate even when the file grew back past the old offset (it checks the
bytes it read last). Over SSH every file of a host is followed by ONE remote process
(probes/logs/remote_follow.py: the same FileFollower run by the host's python3), since sshd
allows only 10 sessions per connection.

A source is a coroutine `run(sink)` that pushes its lines (raw blocks: `put_block`,
`put_journal`; or parsed entries) and its state to a Sink; the logs service
(probes/logs/service.py) owns the sinks, keeps lines lazily, attributes entries, and
feeds the engine. A source restarts itself after a failure, with back-off, and says so in its
state; the journal resumes after the last cursor it saw, so nothing is lost or repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from probes.hosts.base import HostError, HostTransport
from probes.logs import parsers
from probes.logs.config import DEFAULT_FILES as DEFAULT_FILES
from probes.logs.config import START_LINES as START_LINES
from probes.logs.config import LogsConfig as LogsConfig
from probes.logs.filewatch import SAFETY, FileWatch
from probes.logs.lazy import SourceContext
from probes.logs.model import LogEvent, SourceState

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 64 * 1024  # longer lines are cut here (the display cuts at 16 KiB)
MAX_READ = 4 << 20  # per poll: a burst is read over several polls (backpressure)


class Sink:
    """Where a source delivers: entries, and its state (the service implements it)."""

    def put(self, events: Sequence[LogEvent]) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def put_lines(self, parse: Callable[[str], LogEvent], lines: Sequence[str]) -> None:
        """Raw lines with their parser: a sink may parse them later, off the event loop
        (the logs service does it in its flush worker); this default parses now."""
        self.put([parse(line) for line in lines])

    def put_block(self, ctx: SourceContext, block: bytes) -> None:
        """Complete lines of a local file, raw (each ends with a newline): a sink may keep
        them lazily (the logs service does: probes/logs/lazy.py); this default parses them
        now, untimed lines taking the time of the line before."""
        self.put(parse_lines(ctx, [raw.decode("utf-8", "replace") for raw in block.split(b"\n")[:-1]]))

    def put_journal(self, ctx: SourceContext, line: str) -> None:
        """One `journalctl -o json` line: a sink may keep it lazily (the logs service gathers
        them in blocks); this default parses it now."""
        self.put_lines(lambda text: ctx.parse(text, ctx.host, ctx.source), (line,))

    def state(self, name: str, kind: str, state: SourceState, detail: str = "") -> None:  # pragma: no cover
        raise NotImplementedError

    def forget(self, name: str) -> None:
        """A source no longer stands on its own (a glob whose files are followed now)."""
        return None


def parse_lines(ctx: SourceContext, lines: Sequence[str]) -> list[LogEvent]:
    """Parse a source's lines in order, untimed lines taking the time of the line before."""
    out = []
    for line in lines:
        e = ctx.parse(line, ctx.host, ctx.source)
        if e.at:
            ctx.last_at = e.at
        elif ctx.last_at:
            e = _retime(e, ctx.last_at)
        out.append(e)
    return out


# ---------------------------------------------------------------- native file following


class FileFollower:
    """Follows one path like `tail -F`, synchronously (`poll()` returns complete new lines).

    - starts `start_lines` lines back from the end (bounded read), or at the start of a file
      that appears later;
    - rename + create: drains the old file to its end, then reads the new one from its start;
    - copytruncate: a file shorter than the offset, or whose last-read bytes changed, is read
      again from its start;
    - delete + recreate and a file that does not exist yet: waits, then reads from the start;
    - lines longer than `max_line` bytes are cut (the rest of that line is skipped).
    """

    TAIL_CHECK = 64

    def __init__(self, path: str, *, start_lines: int = START_LINES, max_line: int = MAX_LINE_BYTES) -> None:
        self.path = path
        self.start_lines = start_lines
        self.max_line = max_line
        self._f: object | None = None
        self._fd: int = -1
        self._ino: tuple[int, int] | None = None
        self._pos = 0
        self._partial = b""
        self._skipping = False  # inside an over-long line
        self._tail = b""  # the last bytes read, to notice a rewrite after truncation
        self._first = True
        self._blocks = False  # poll_block: complete lines as raw bytes, not decoded lines
        self.state = SourceState.STARTING
        self.detail = ""

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = -1

    def _open(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            self.state, self.detail = SourceState.WAITING, "does not exist (yet)"
            self._first = False
            return False
        except PermissionError:
            self.state, self.detail = SourceState.UNREADABLE, "permission denied"
            return False
        except OSError as e:
            self.state, self.detail = SourceState.UNREADABLE, e.strerror or str(e)
            return False
        st = os.fstat(fd)
        self._fd, self._ino = fd, (st.st_dev, st.st_ino)
        self._pos, self._partial, self._skipping, self._tail = 0, b"", False, b""
        if self._first:
            self._pos = self._start_offset(fd, st.st_size)
            if self._pos:
                self._tail = os.pread(
                    fd, min(self.TAIL_CHECK, self._pos), self._pos - min(self.TAIL_CHECK, self._pos)
                )
        self._first = False
        self.state, self.detail = SourceState.FOLLOWING, ""
        return True

    def _start_offset(self, fd: int, size: int) -> int:
        """Offset of the line `start_lines` lines back from the end (reads at most 16 MiB)."""
        if self.start_lines <= 0:
            return size
        want = self.start_lines
        pos, seen, step = size, 0, 64 * 1024
        limit = max(0, size - (16 << 20))
        while pos > limit:
            n = min(step, pos - limit)
            pos -= n
            buf = os.pread(fd, n, pos)
            # a trailing newline at EOF ends the last line; it does not start one
            end = len(buf) - 1 if pos + n == size and buf.endswith(b"\n") else len(buf)
            i = end
            while True:
                i = buf.rfind(b"\n", 0, i)
                if i < 0:
                    break
                seen += 1
                if seen >= want:
                    return pos + i + 1
        return limit if limit == 0 else self._next_line(fd, limit)

    def _next_line(self, fd: int, off: int) -> int:
        buf = os.pread(fd, self.max_line, off)
        i = buf.find(b"\n")
        return off + i + 1 if i >= 0 else off

    def _read(self, out: list[str], budget: int) -> int:
        """Read from the open file to its end (or the budget); complete lines go to `out`."""
        got = 0
        while got < budget:
            chunk = os.pread(self._fd, min(1 << 20, budget - got), self._pos)
            if not chunk:
                break
            self._pos += len(chunk)
            got += len(chunk)
            if len(chunk) >= self.TAIL_CHECK:
                self._tail = chunk[-self.TAIL_CHECK :]  # (not a copy of the whole chunk)
            else:
                self._tail = (self._tail + chunk)[-self.TAIL_CHECK :]
            self._split(chunk, out)
        return got

    @staticmethod
    def _has_long(data: bytes, m: int, n: int) -> bool:
        """Does a line of data[:n] (complete lines) pass m bytes? One rfind per m bytes."""
        a = 0
        while n - a > m:
            j = data.rfind(b"\n", a, a + m + 1)
            if j < 0:
                return True
            a = j + 1
        return False

    def _split(self, chunk: bytes, out: list) -> None:
        data = self._partial + chunk if self._partial else chunk
        if self._blocks and not self._skipping:
            last = data.rfind(b"\n")
            if last >= 0 and not self._has_long(data, self.max_line, last + 1):
                # the common case: no line to cut, no copy per line
                out.append(data if last + 1 == len(data) else data[: last + 1])
                rest = data[last + 1 :]
                if len(rest) > self.max_line:
                    out.append(rest[: self.max_line] + b"\n")
                    rest, self._skipping = b"", True
                self._partial = rest
                return
        start = 0
        while True:
            i = data.find(b"\n", start)
            if i < 0:
                break
            if self._skipping:
                self._skipping = False
            else:
                end = i if i - start <= self.max_line else start + self.max_line
                out.append(self._line(data[start:end]))
            start = i + 1
        rest = data[start:]
        if self._skipping:
            rest = b""
        elif len(rest) > self.max_line:
            out.append(self._line(rest[: self.max_line]))
            rest, self._skipping = b"", True
        self._partial = rest

    def _line(self, raw: bytes):
        return raw + b"\n" if self._blocks else raw.decode("utf-8", "replace")

    def _flush_partial(self, out: list) -> None:
        if self._partial and not self._skipping:
            out.append(self._line(self._partial))
        self._partial, self._skipping = b"", False

    def maybe_changed(self) -> bool:
        """Two cheap stats: False only when the open file has not changed size and is still
        the file at `path` (then a poll would read nothing). A rewrite to the very same size
        is not seen here: callers still poll now and then (FULL_POLL_EVERY)."""
        if self._fd < 0:
            return True
        try:
            if os.fstat(self._fd).st_size != self._pos:
                return True
            cur = os.stat(self.path)
        except OSError:
            return True
        return (cur.st_dev, cur.st_ino) != self._ino

    def poll_block(self, budget: int = MAX_READ) -> bytes:
        """Like poll, but the complete lines as one block of raw bytes (each line ends with a
        newline; over-long lines cut as poll cuts them)."""
        self._blocks = True
        try:
            out = self.poll(budget)
            return out[0] if len(out) == 1 else b"".join(out)
        finally:
            self._blocks = False

    def poll(self, budget: int = MAX_READ) -> list:
        out: list = []
        if self._fd < 0 and not self._open():
            return out
        st = os.fstat(self._fd)
        if st.st_size < self._pos or (
            self._tail
            and st.st_size >= self._pos
            and os.pread(self._fd, len(self._tail), self._pos - len(self._tail)) != self._tail
        ):
            # truncated (copytruncate), maybe already written again: read from the start
            self._flush_partial(out)
            self._pos, self._tail = 0, b""
        budget -= self._read(out, budget)
        try:
            cur = os.stat(self.path)
            replaced = (cur.st_dev, cur.st_ino) != self._ino
        except FileNotFoundError:
            replaced = False  # renamed or deleted: keep reading the old file until a new one
        except OSError:
            replaced = False
        if replaced:
            self._read(out, 1 << 62)  # drain what was written to the old file
            self._flush_partial(out)
            self.close()
            if self._open():
                self._read(out, max(budget, 0))
        return out


def glob_paths(pattern: str, root: str = "") -> list[str]:
    import glob

    if any(c in pattern for c in "*?["):
        return sorted(p[len(root) :] for p in glob.glob(root + pattern))
    return [pattern]


FULL_POLL_EVERY = 8  # polls: a full read even when the cheap stat saw no change


async def follow_file_local(
    path: str,
    host: HostTransport,
    sink: Sink,
    *,
    start_lines: int = START_LINES,
    interval: float = 0.25,
    stop: asyncio.Event | None = None,
    watch: FileWatch | None = None,
    safety: float = SAFETY,
) -> None:
    """Follow `path` on the local host (its `root` prefix applied) until cancelled. With a
    `watch` (inotify), the file is read when it changed, and at least every SAFETY seconds;
    without, it is looked at every `interval` seconds."""
    name = "file:" + path
    ctx = SourceContext(host.name, name)
    f = FileFollower(host.root + path, start_lines=start_lines)
    last_state: tuple[SourceState, str] | None = None
    lock = threading.Lock()  # the fd is closed only when no poll runs in a worker

    def poll_block() -> tuple[bytes, int]:
        """In a worker thread: read (the lines are parsed lazily by the sink)."""
        with lock:
            block = f.poll_block()
        return block, block.count(b"\n")

    changed = watch.follow(f.path) if watch is not None else None
    idle = cycle = 0
    try:
        while True:
            cycle += 1
            if changed is not None:
                block, n = await asyncio.to_thread(poll_block)  # told it changed, or safety
            elif cycle % FULL_POLL_EVERY and not f.maybe_changed():
                block, n = b"", 0  # nothing new: no trip to a worker thread (most polls)
            else:
                block, n = await asyncio.to_thread(poll_block)
            if (f.state, f.detail) != last_state:
                last_state = (f.state, f.detail)
                sink.state(name, "file", f.state, f.detail)
            if block:
                sink.put_block(ctx, block)
                idle = 0
                if n > 1000:
                    continue  # more may be waiting: read again at once
            else:
                idle += 1
            if stop is not None and stop.is_set():
                return
            if changed is not None:
                await _wait_change(changed, interval, safety)
                continue
            # a quiet file (the log of a domain that stopped) is looked at less often
            await asyncio.sleep(interval if idle < 20 else min(1.0, interval * 4))
    finally:
        if watch is not None:
            watch.forget(f.path)

        def close() -> None:
            with lock:
                f.close()

        threading.Thread(target=close, name="close " + path, daemon=True).start()


async def _wait_change(changed: asyncio.Event, gap: float, safety: float) -> None:
    """Until inotify says the file changed (or the safety period passed); then a short gap
    (a fraction of the old poll interval) so a busy file is read in batches, not per write."""
    try:
        async with asyncio.timeout(safety):
            await changed.wait()
    except TimeoutError:
        return
    changed.clear()
    await asyncio.sleep(min(gap, 0.05))


def line_parser(source: str, host: str) -> Callable[[str], LogEvent]:
    """The parser of one file source, giving untimed continuation lines (a qemu command
    line) the time of the line before. Called in order, from one thread at a time."""
    parse = parsers.parser_for(source)
    last = [0.0]

    def p(line: str) -> LogEvent:
        e = parse(line, host, source)
        if e.at:
            last[0] = e.at
        elif last[0]:
            e = _retime(e, last[0])
        return e

    return p


def _retime(e: LogEvent, at: float) -> LogEvent:
    from dataclasses import replace

    return replace(e, at=at)


_REMOTE_PRELUDE = """from __future__ import annotations
import enum, os, sys, time
class SourceState(str, enum.Enum):
    STARTING = "starting"; FOLLOWING = "following"; WAITING = "waiting"; UNREADABLE = "unreadable"
MAX_LINE_BYTES = %d
START_LINES = 1000
MAX_READ = 4 << 20
"""
_REMOTE_LOOP = """
f = FileFollower(sys.argv[1], start_lines=int(sys.argv[2]))
last = None
w = sys.stdout.write
while True:
    for line in f.poll():
        w("L" + line + "\\n")
    if (f.state, f.detail) != last:
        last = (f.state, f.detail)
        w("S" + f.state.value + " " + f.detail + "\\n")
    sys.stdout.flush()
    time.sleep(%r)
"""


def remote_follower_script(interval: float = 0.25) -> str:
    """FileFollower as a `python3 -c` program for hosts reached over SSH: a constant program,
    the path is an argument. Output lines: `L<line>` or `S<state> <detail>`."""
    import inspect

    return _REMOTE_PRELUDE % MAX_LINE_BYTES + inspect.getsource(FileFollower) + _REMOTE_LOOP % interval


async def follow_file_stream(
    path: str,
    host: HostTransport,
    sink: Sink,
    *,
    start_lines: int = START_LINES,
    interval: float = 0.25,
    use_python: bool | None = None,
) -> None:
    """Follow `path` through the transport: with FileFollower run by the host's python3 when
    it has one (loses nothing on rename), else with `tail -F` (which loses what is written to
    a renamed file after it switched). One SSH session per file: remote hosts use
    probes/logs/remote_follow.py instead, which follows all files in one session."""
    name = "file:" + path
    parse = line_parser(name, host.name)
    n = start_lines
    delay = 1.0
    if use_python is None:
        try:
            r = await host.run(
                ["python3", "-c", "import sys; sys.exit(sys.version_info < (3, 7))"], timeout=15
            )
            use_python = r.ok
        except HostError:
            use_python = False
    script = remote_follower_script(interval) if use_python else ""
    while True:
        got = 0
        try:
            if use_python:
                argv = ["python3", "-c", script, host.root + path, str(n)]
            else:
                sink.state(name, "file", SourceState.FOLLOWING, "tail -F")
                argv = ["tail", "-n", str(n), "-F", "--", host.root + path]
            async for line in host.stream(argv):
                if use_python:
                    if line[:1] == "S":
                        st, _, detail = line[1:].partition(" ")
                        try:
                            sink.state(name, "file", SourceState(st), detail)
                        except ValueError:
                            pass
                        continue
                    line = line[1:]
                sink.put_lines(parse, (line,))
                got += 1
            sink.state(name, "file", SourceState.FAILED, "follower ended; restarting")
        except Exception as e:
            sink.state(name, "file", SourceState.FAILED, str(e)[:200])
        n = 0  # a restart reads only what is new (what came in between the two is lost)
        await asyncio.sleep(delay)
        delay = 1.0 if got else min(delay * 2, 60.0)


# ---------------------------------------------------------------- the journal


@dataclass(frozen=True)
class JournalSpec:
    files: tuple[str, ...] = ()  # --file (saved journals)
    directory: str = ""  # --directory
    since: str = ""  # --since (a journalctl time spec)
    cursor: str = ""  # --after-cursor
    lines: int = START_LINES
    follow: bool = True

    @property
    def name(self) -> str:
        if self.files:
            return "journal:" + ",".join(self.files)
        if self.directory:
            return "journal:" + self.directory
        return "journal"


def journal_argv(spec: JournalSpec, cursor: str = "", root: str = "") -> list[str]:
    argv = ["journalctl", "-o", "json", "--no-pager", "--merge"]
    for f in spec.files:
        argv += ["--file", root + f]
    if spec.directory:
        argv += ["--directory", root + spec.directory]
    if cursor or spec.cursor:
        argv += ["--after-cursor", cursor or spec.cursor]
    elif spec.since:
        argv += ["--since", spec.since]
    else:
        argv += ["-n", str(spec.lines)]
    if spec.follow:
        argv.append("-f")
    return argv


# Where journalctl reads the host's own journal (journald's volatile and persistent storage)
JOURNAL_DIRS = ("/run/log/journal", "/var/log/journal")
JOURNAL_LOOK = 30.0  # s between two looks for a first journal file on a local host without one


def local_journal_present(root: str = "") -> bool:
    """A journal file in DIR or DIR/MACHINE-ID of JOURNAL_DIRS (two directory reads, no process)."""
    for d in JOURNAL_DIRS:
        try:
            with os.scandir(root + d) as it:
                for e in it:
                    if e.name.endswith((".journal", ".journal~")):
                        return True
                    if e.is_dir(follow_symlinks=False):
                        with contextlib.suppress(OSError):
                            if any(n.endswith((".journal", ".journal~")) for n in os.listdir(e.path)):
                                return True
        except OSError:
            continue
    return False


async def follow_journal(spec: JournalSpec, host: HostTransport, sink: Sink) -> None:
    name = spec.name
    if host.is_local and not spec.files and not spec.directory and not local_journal_present(host.root):
        # no journald writing here (a container, a host without systemd): a `journalctl -f`
        # would sit on nothing for ever, ~7 MiB of RSS (issue 16); look again now and then.
        # Still "following" (what journalctl -f on no files was): the journal is taken up as
        # soon as it exists, and LOG-04 judges the host as it did
        sink.state(
            name,
            "journal",
            SourceState.FOLLOWING,
            f"no journal files in {' or '.join(JOURNAL_DIRS)} yet: looked for every {JOURNAL_LOOK:g} s",
        )
        while not local_journal_present(host.root):
            await asyncio.sleep(JOURNAL_LOOK)
    try:
        probe = journal_argv(
            JournalSpec(spec.files, spec.directory, lines=0, follow=False), root=host.root
        ) + ["-q"]
        r = await host.run(probe, timeout=20)
    except HostError as e:
        sink.state(name, "journal", SourceState.ABSENT, str(e)[:200])
        return
    if not r.ok:
        detail = (r.stderr.strip() or f"journalctl exit {r.returncode}").splitlines()[0][:200]
        st = SourceState.UNREADABLE if "ermission" in detail else SourceState.ABSENT
        sink.state(name, "journal", st, detail)
        return
    cursor = ""
    delay = 1.0
    ctx = SourceContext(host.name, name, journal=True)

    while True:
        sink.state(name, "journal", SourceState.FOLLOWING if spec.follow else SourceState.STARTING)
        got = 0
        last = ""
        try:
            async for line in host.stream(journal_argv(spec, cursor, host.root)):
                if not line.startswith("{"):
                    continue
                sink.put_journal(ctx, line)
                last = line
                got += 1
        except Exception as e:
            sink.state(name, "journal", SourceState.FAILED, str(e)[:200])
        else:
            if not spec.follow:
                sink.state(name, "journal", SourceState.DONE, f"{got} entries")
                return
            sink.state(
                name, "journal", SourceState.FAILED, "journalctl ended; resuming after the last cursor"
            )
        if last:  # resume after the last entry seen: nothing lost, nothing repeated
            cursor = parsers.parse_journal_line(last, host.name, name)[1] or cursor
        await asyncio.sleep(delay)
        delay = 1.0 if got else min(delay * 2, 60.0)


# ---------------------------------------------------------------- libvirt events


def events_uri(host: HostTransport) -> str | None:
    """The URI for `virsh event` run ON the host; None when events cannot come (test driver)."""
    uri = host.host.libvirt_uri
    if not uri or uri.startswith("test:"):
        return None
    if host.is_local:
        return uri
    # qemu+ssh://user@host/system seen from the host itself is qemu:///system
    scheme, sep, rest = uri.partition("://")
    driver = scheme.split("+", 1)[0]
    path = rest.split("/", 1)[1] if "/" in rest else "system"
    return f"{driver}:///{path.split('?', 1)[0]}"


_SYSTEM_SOCKETS = ("libvirt-sock-ro", "libvirt-sock", "virtqemud-sock-ro", "virtqemud-sock")


def _daemon_socket_present(uri: str, root: str = "") -> bool:
    """For a local `DRIVER:///system` URI: is one of the daemon's sockets there? (Other URIs:
    assume yes and let virsh answer.)"""
    if not uri.endswith(":///system"):
        return True
    return any(os.path.exists(f"{root}/run/libvirt/{s}") for s in _SYSTEM_SOCKETS)


async def follow_libvirt_events(host: HostTransport, sink: Sink) -> None:
    name = "libvirt-events"
    uri = events_uri(host)
    if uri is None:
        sink.state(name, "libvirt-events", SourceState.ABSENT, "no lifecycle events from this libvirt URI")
        return
    delay = 1.0
    while True:
        if host.is_local and not _daemon_socket_present(uri, host.root):
            # no daemon to ask: wait without starting a process each time (idle cost)
            sink.state(name, "libvirt-events", SourceState.WAITING, f"no libvirt daemon socket for {uri}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)
            continue
        try:
            r = await host.run(["virsh", "-r", "-c", uri, "uri"], timeout=15)
        except HostError as e:
            sink.state(name, "libvirt-events", SourceState.ABSENT, str(e)[:200])
            return
        if not r.ok:
            sink.state(
                name,
                "libvirt-events",
                SourceState.FAILED,
                (r.stderr.strip() or "virsh failed").splitlines()[-1][:200],
            )
        else:
            sink.state(name, "libvirt-events", SourceState.FOLLOWING, uri)
            try:
                async for line in host.stream(
                    ["virsh", "-r", "-c", uri, "event", "--all", "--loop", "--timestamp"]
                ):
                    e = parsers.parse_virsh_event(line, host.name, name)
                    if e is not None:
                        sink.put([e])
                        delay = 1.0
            except Exception as e:
                sink.state(name, "libvirt-events", SourceState.FAILED, str(e)[:200])
            else:
                sink.state(name, "libvirt-events", SourceState.FAILED, "virsh event ended; restarting")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 60.0)


# ---------------------------------------------------------------- what to start


async def expand(pattern: str, host: HostTransport) -> list[str]:
    """The paths a configured file pattern names now (a glob only in the last part)."""
    if not any(c in pattern for c in "*?["):
        return [pattern]
    if host.is_local:
        return glob_paths(pattern, host.root)
    d, _, base = pattern.rpartition("/")
    if any(c in d for c in "*?["):
        return []
    try:
        r = await host.run(
            ["find", host.root + (d or "/"), "-maxdepth", "1", "-type", "f", "-name", base], timeout=15
        )
    except HostError:
        return []
    n = len(host.root)
    return sorted(p[n:] for p in r.stdout.splitlines() if p.startswith(host.root + d + "/"))


def file_coroutine(
    path: str,
    cfg: LogsConfig,
    host: HostTransport,
    sink: Sink,
    *,
    start_lines: int | None = None,
    watch: FileWatch | None = None,
):
    n = cfg.start_lines if start_lines is None else start_lines
    if host.is_local and cfg.native_files:
        return follow_file_local(path, host, sink, start_lines=n, watch=watch)
    return follow_file_stream(path, host, sink, start_lines=n)


def now() -> float:
    return time.time()
