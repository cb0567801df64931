"""Every configured log file of a remote host followed by ONE remote process (one SSH session).

Why: sshd allows 10 sessions per connection (MaxSessions) and the SSH transport keeps 7 for
streams, while a hypervisor has a log per domain (/var/log/libvirt/qemu/*.log, often 80+). A
session per file left most of them unfollowed. Here one `python3 -c PROGRAM CONFIG` follows
every file and glob:

- PROGRAM is constant text (the native FileFollower's source plus a loop); the paths, globs and
  resume points travel in CONFIG, one JSON argv element: data, never code.
- Output is framed as one JSON array per line (ASCII only, so a tenant's newline, ESC or
  invalid UTF-8 in a line or a file name cannot break the framing):
  `["P", id, display_path, path_hex]` a file is followed under this id;
  `["L", id, [lines...], [dev, ino, offset, tail]]` complete lines, and where reading
  stopped (tail: the bytes before the offset, hex, to see a rewrite);
  `["O", id, [dev, ino, offset, tail]]` the position moved without a line (open, partial line);
  `["S", id, state, detail]` a file's state; `["G", pattern, state, detail]` a glob's state;
  `["I", live]` whether inotify wakes the follower.
- Globs are expanded again every `rescan` seconds on the host; a file that appears later is
  read from its start. A file deleted for good (gone for `gone` seconds) is closed, so the
  host can free its space; it is picked up again if it comes back.
- Rotation by rename, copytruncate, delete and recreate: FileFollower (probes/logs/sources.py)
  drains a renamed file before opening the new one, and sees a rewrite after a truncation.
- When the stream breaks (connection lost), the next run resumes every file at the last
  offset received for its (device, inode), if the bytes before it are unchanged: lines are in
  the same frame as the offset after them, so nothing is lost or repeated. A file rotated or
  truncated while disconnected is read from the start of the new content (what went to the
  old file after the break is not read).
- The follower sleeps until inotify says something happened in a followed file's directory
  (a write, a rotation, a new file), at most `safety` seconds (2), and its cycles stay at
  least `interval` seconds (0.25) apart; where inotify is missing it looks every `interval`
  as before. `["I", live]` says which.
- Without python3 on the host: `tail -n N -F` per file, at most TAIL_MAX files (each is an SSH
  session); the others get a visible state saying they are not followed and why.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Sequence

from probes.hosts.base import HostError, HostTransport
from probes.logs import sources
from probes.logs.lazy import SourceContext
from probes.logs.model import SourceState

log = logging.getLogger(__name__)

TAIL_MAX = 4  # tail -F sessions per host without python3 (7 stream sessions, 2 kept for journal + events)
NEW_FILE = 1 << 30  # start_lines for a file found later: from its start (bounded to 16 MiB)

_PRELUDE = (
    """from __future__ import annotations
import ctypes, enum, glob, json, os, select, struct, sys, time
class SourceState(str, enum.Enum):
    STARTING = "starting"; FOLLOWING = "following"; WAITING = "waiting"; UNREADABLE = "unreadable"
MAX_LINE_BYTES = %d
START_LINES = 1000
MAX_READ = 4 << 20
HEARTBEAT = 5.0
"""
    % sources.MAX_LINE_BYTES
)

_LOOP = r'''
class Resumable(FileFollower):
    """Starts at a resume point when the file is still the same (device, inode)."""
    resume = None
    def _start_offset(self, fd, size):
        r, self.resume = self.resume, None
        if r is not None:
            st = os.fstat(fd)
            t = bytes.fromhex(r[3])
            if [st.st_dev, st.st_ino] == r[:2] and size >= r[2] and (
                    os.pread(fd, len(t), r[2] - len(t)) == t):
                return r[2]
            self.start_lines = 1 << 30  # another file since: from its start
        return FileFollower._start_offset(self, fd, size)
    def where(self):
        if self._ino is None or self._fd < 0:
            return None
        off = self._pos - len(self._partial)
        n = min(self.TAIL_CHECK, off)
        t = os.pread(self._fd, n, off - n) if self._partial else self._tail[-n:] if n else b""
        return [self._ino[0], self._ino[1], off, t.hex()]

cfg = json.loads(sys.argv[1])
root = os.fsencode(cfg["root"])
resume = {bytes.fromhex(h): r for h, *r in cfg["resume"]}
MAX_FILES, BUDGET = cfg["max_files"], cfg["budget"]
out = []
emit = lambda *a: out.append(json.dumps(a, ensure_ascii=True, separators=(",", ":")))
shown = lambda b: b.decode("utf-8", "replace")
files = {}  # path bytes -> [id, follower, last where, last state, missing since, from glob, idle polls]
ids = [0]

def add(path, start, globbed):
    if path in files:
        files[path][5] = files[path][5] and globbed
        return
    if len(files) >= MAX_FILES:
        return
    f = Resumable(os.fsdecode(root + path), start_lines=start)
    if path in resume:
        f.resume, f._first = resume.pop(path), True
    i = ids[0]; ids[0] += 1
    files[path] = [i, f, None, None, None, globbed, 0]
    emit("P", i, shown(path), path.hex())

def mtime(path):
    try:
        return os.stat(root + path).st_mtime
    except OSError:
        return 0.0

def expand(first):
    # plain paths first: a glob with hundreds of old files must not crowd out syslog
    for k, pat in enumerate(cfg["patterns"]):
        if not any(c in pat for c in "*?["):
            p = os.fsencode(pat)
            add(p, cfg["start_lines"] if first else 1 << 30, False)
            if p not in files and gstate.get(k) is None:
                gstate[k] = ("absent", "more than %d files: not followed" % MAX_FILES)
                emit("G", k, *gstate[k])
    for k, pat in enumerate(cfg["patterns"]):
        p = os.fsencode(pat)
        if not any(c in pat for c in "*?["):
            continue
        n = len(root)
        found = sorted(m[n:] for m in glob.glob(glob.escape(root) + p) if os.path.isfile(m))
        if len(found) > MAX_FILES - len(files):  # past the cap: the newest written are followed
            found.sort(key=mtime, reverse=True)
        for m in found:
            add(m, cfg["start_lines"] if first else 1 << 30, True)
        st = ("following", "") if found else ("waiting", "no file matches (yet)")
        if len(files) >= MAX_FILES and any(m not in files for m in found):
            st = ("absent", "more than %d files: the rest are not followed" % MAX_FILES)
        if gstate.get(k) != st:
            gstate[k] = st
            emit("G", k, *st)

class Wake:
    """inotify on the followed files' directories (writes, rotation, new files): the loop
    sleeps until something happened there, at most `safety` s; without inotify it looks
    every `interval` s as before. Cycles stay at least `interval` s apart."""
    MASK = 0x2 | 0x4 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200  # modify attrib close_write moved create delete
    def __init__(self):
        self.fd, self.dirs = -1, {}
        try:
            self.libc = ctypes.CDLL(None, use_errno=True)
            self.fd = self.libc.inotify_init1(0o4000 | 0o2000000)
        except Exception:
            self.fd = -1
    def watch(self, paths):
        if self.fd < 0:
            return
        for d in {os.path.dirname(p) or b"/" for p in paths}:
            if d not in self.dirs:
                wd = self.libc.inotify_add_watch(self.fd, d, ctypes.c_uint32(self.MASK))
                self.dirs[d] = wd  # -1 (not there yet): the safety timeout covers it
    @property
    def live(self):
        return self.fd >= 0 and any(wd >= 0 for wd in self.dirs.values())
    DIR_CHANGED = 0x40 | 0x80 | 0x100 | 0x200  # a name came or went: expand the globs now
    def wait(self, last, limit):
        """True when a name came or went in a watched directory (not a mere write)."""
        rest = cfg["interval"] - (time.monotonic() - last)
        if not self.live:
            if rest > 0:
                time.sleep(rest)
            return False
        names = False
        if select.select([self.fd], [], [], limit)[0]:
            while True:
                try:
                    buf = os.read(self.fd, 65536)
                except OSError:
                    break
                if not buf:
                    break
                at = 0
                while at + 16 <= len(buf):  # struct inotify_event: wd, mask, cookie, len, name
                    _wd, mask, _cookie, size = struct.unpack_from("iIII", buf, at)
                    names = names or bool(mask & self.DIR_CHANGED)
                    at += 16 + size
            rest = cfg["interval"] - (time.monotonic() - last)
            if rest > 0:
                time.sleep(rest)  # a busy directory wakes us at most as often as before
        return names

gstate = {}
expand(True)
next_scan = time.monotonic() + cfg["rescan"]
w = sys.stdout.write
cycle = 0
wake = Wake()
wake.watch([root + p for p in files] + [root + os.fsencode(p) for p in cfg["patterns"]])
emit("I", wake.live)
last_out = last_cycle = time.monotonic()
names = False
while True:
    busy = False
    now = time.monotonic()
    cycle += 1
    for path, ent in list(files.items()):
        i, f = ent[0], ent[1]
        if ent[6] >= 20 and cycle % 4 and not wake.live:
            continue  # a quiet file (a stopped domain's log) is looked at less often (polled)
        try:
            lines = f.poll(BUDGET)
            if f._fd >= 0 and not os.path.lexists(f.path):
                # deleted (or renamed, new one not yet there): close once it stays gone
                ent[4] = ent[4] or now
                if not lines and now - ent[4] >= cfg["gone"]:
                    f._flush_partial(lines)
                    f.close()
                    f.state, f.detail = SourceState.WAITING, "deleted; waiting for it to come back"
                    f._first = False
                    if ent[5]:
                        del files[path]  # a glob will find it again
            else:
                ent[4] = None
        except Exception as e:  # one file's trouble must not stop the others
            lines = []
            f.close()
            f.state, f.detail = SourceState.UNREADABLE, (str(e) or type(e).__name__)[:200]
        pos = f.where()
        ent[6] = 0 if lines or (pos is not None and pos != ent[2]) else ent[6] + 1
        if lines:
            emit("L", i, lines, pos)
            ent[2] = pos
            busy = busy or sum(map(len, lines)) >= BUDGET // 2
        elif pos != ent[2] and pos is not None:
            emit("O", i, pos)
            ent[2] = pos
        st = (f.state.value, f.detail)
        if st != ent[3]:
            ent[3] = st
            emit("S", i, *st)
    if now >= next_scan or names:
        before = set(files)
        expand(False)
        busy = busy or bool(set(files) - before)  # a new file: read it now, not at the next wake
        wake.watch([root + p for p in files])
        next_scan = now + cfg["rescan"]
    if out:
        w("\n".join(out) + "\n")
        out.clear()
        last_out = now
        sys.stdout.flush()
    elif now - last_out >= HEARTBEAT:
        # a heartbeat: a closed channel ends us here (EPIPE) even when all is quiet; not
        # every cycle: each one is an SSH packet the console decrypts (idle cost per host)
        w("\n")
        sys.stdout.flush()
        last_out = now
    last_cycle = now
    names = False
    if not busy:
        # a file deleted a moment ago is looked at again after `gone`, not after `safety`
        pending = any(ent[4] for ent in files.values())
        names = wake.wait(last_cycle, min(cfg["safety"], cfg["gone"]) if pending else cfg["safety"])
'''

PROGRAM = _PRELUDE + inspect.getsource(sources.FileFollower) + _LOOP


# exit 0: a python3 that runs PROGRAM; 1: too old; 127: none (no "command not found" error
# from the transport: a missing python3 is an answer here, not a failure)
_PYTHON_CHECK = (
    'command -v "$1" >/dev/null 2>&1 || exit 127; '
    'exec "$1" -c "import sys; sys.exit(sys.version_info < (3, 7))"'
)


def config_arg(
    patterns: Sequence[str],
    *,
    root: str = "",
    start_lines: int = sources.START_LINES,
    interval: float = 0.25,
    rescan: float = 5.0,
    gone: float = 2.0,
    safety: float = 2.0,
    resume: Sequence[tuple[str, int, int, int, str]] = (),
    max_files: int = 500,
    budget: int = 256 * 1024,
) -> str:
    """CONFIG for PROGRAM: one JSON argv element (resume entries: path as hex, dev, ino, offset,
    the bytes before the offset as hex)."""
    return json.dumps(
        {
            "root": root,
            "patterns": list(patterns),
            "start_lines": start_lines,
            "interval": interval,
            "safety": safety,
            "rescan": rescan,
            "gone": gone,
            "resume": [list(r) for r in resume],
            "max_files": max_files,
            "budget": budget,
        }
    )


def follower_argv(python: str, config: str) -> list[str]:
    return [python, "-c", PROGRAM, config]


class _Run:
    """The local side of one run of PROGRAM: ids to source names, frames to the sink."""

    def __init__(self, owner: RemoteFiles) -> None:
        self.o = owner
        self.ids: dict[int, tuple[str, str]] = {}  # id -> (source name, path hex)
        self.frames = 0

    def frame(self, line: str) -> None:
        if not line:
            return  # heartbeat
        try:
            f = json.loads(line)
            kind = f[0]
        except (ValueError, IndexError, TypeError):
            log.debug("remote follower: unreadable frame %r", line[:80])
            return
        self.frames += 1
        o = self.o
        if kind == "P":
            name = "file:" + f[2]
            self.ids[f[1]] = (name, f[3])
            if name not in o.parsers:
                o.parsers[name] = SourceContext(o.host.name, name)
        elif kind == "L" and f[1] in self.ids:
            name, hexpath = self.ids[f[1]]
            lines = f[2]
            if lines and not any("\n" in x for x in lines):
                # as a raw block: kept lazily like a local file's (probes/logs/lazy.py)
                block = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
                o.sink.put_block(o.parsers[name], block)
            elif lines:  # a newline inside a line (only a forged frame has one): one entry each
                o.sink.put(sources.parse_lines(o.parsers[name], lines))
            if f[3]:
                o.resume[hexpath] = tuple(f[3])
        elif kind == "O" and f[1] in self.ids:
            o.resume[self.ids[f[1]][1]] = tuple(f[2])
        elif kind == "S" and f[1] in self.ids:
            o.file_state(self.ids[f[1]][0], f[2], f[3])
        elif kind == "G" and 0 <= f[1] < len(o.patterns):
            o.glob_state(o.patterns[f[1]], f[2], f[3])
        elif kind == "I":
            o.inotify = f[1] is True


class RemoteFiles:
    """Follows `patterns` (paths and globs) on one host through one stream (see module doc)."""

    def __init__(
        self,
        patterns: Sequence[str],
        host: HostTransport,
        sink: sources.Sink,
        *,
        start_lines: int = sources.START_LINES,
        interval: float = 0.25,
        rescan: float = 5.0,
        gone: float = 2.0,
        safety: float = 2.0,
        python: str = "python3",
        max_files: int = 500,
    ) -> None:
        self.patterns = tuple(patterns)
        self.max_files = max_files
        self.host, self.sink = host, sink
        self.start_lines, self.interval, self.rescan, self.gone = start_lines, interval, rescan, gone
        self.python = python
        self.safety = safety
        self.inotify = False  # the running follower is woken by inotify (else it looks every `interval`)
        self.parsers: dict[str, SourceContext] = {}
        self.resume: dict[str, tuple[int, int, int, str]] = {}  # path hex -> dev, ino, offset, tail
        self.started = False  # a run delivered frames: later runs resume, new files from the start

    def file_state(self, name: str, state: str, detail: str) -> None:
        try:
            self.sink.state(name, "file", SourceState(state), detail)
        except ValueError:
            pass

    def glob_state(self, pat: str, state: str, detail: str) -> None:
        """A glob's state, or a plain path's that the file cap left out."""
        if state == "following":  # the files stand for the glob now
            self.sink.forget("file:" + pat)
        else:
            self.file_state("file:" + pat, state, detail)

    async def has_python(self) -> bool:
        """Whether the host runs PROGRAM (python3 >= 3.7). A transport failure is not an
        answer: it is retried with back-off, so a slow first connection does not condemn the
        host to the `tail -F` fallback."""
        delay = 1.0
        while True:
            try:
                r = await self.host.run(["sh", "-c", _PYTHON_CHECK, "sh", self.python], timeout=15)
                return r.ok
            except HostError as e:
                for pat in self.patterns:
                    self.file_state("file:" + pat, "failed", f"{str(e)[:160]}; retrying")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

    def config(self) -> str:
        return config_arg(
            self.patterns,
            root=self.host.root,
            start_lines=self.start_lines if not self.started else NEW_FILE,
            interval=self.interval,
            safety=self.safety,
            rescan=self.rescan,
            gone=self.gone,
            resume=[(h, *r) for h, r in self.resume.items()],
            max_files=self.max_files,
        )

    async def run(self) -> None:
        for pat in self.patterns:  # until the first frames say more
            self.file_state("file:" + pat, "starting", "")
        if not await self.has_python():
            await self.run_tail()
            return
        delay = 1.0
        while True:
            r = _Run(self)
            why = "follower ended; resuming"
            try:
                async for line in self.host.stream(follower_argv(self.python, self.config())):
                    r.frame(line)
                    if r.frames and not self.started:
                        self.started = True
            except Exception as e:
                why = str(e)[:200]
            for name, _ in r.ids.values():
                self.sink.state(name, "file", SourceState.FAILED, why)
            if not r.frames:  # it could not even start (a python3 older than 3.7?): say so
                for pat in self.patterns:
                    self.file_state(
                        "file:" + pat,
                        "failed",
                        f"the remote follower ended at once ({why}); retrying in {delay:.0f} s",
                    )
            await asyncio.sleep(delay)
            delay = 1.0 if r.frames else min(delay * 2, 60.0)

    async def run_tail(self) -> None:
        """No python3 on the host: `tail -F` for the first TAIL_MAX files, a state for the rest."""
        paths: list[str] = []
        for pat in self.patterns:
            found = await sources.expand(pat, self.host)
            if not found:
                self.file_state("file:" + pat, "waiting", "no file matches (yet)")
            elif found != [pat]:
                self.sink.forget("file:" + pat)
            paths += [p for p in found if p not in paths]
        why = (
            f"not followed: the host has no {self.python}, and `tail -F` needs an SSH session "
            f"per file (at most {TAIL_MAX})"
        )
        for p in paths[TAIL_MAX:]:
            self.sink.state("file:" + p, "file", SourceState.ABSENT, why)
        await asyncio.gather(
            *(
                sources.follow_file_stream(
                    p, self.host, self.sink, start_lines=self.start_lines, use_python=False
                )
                for p in paths[:TAIL_MAX]
            )
        )


async def follow_files(
    patterns: Sequence[str], host: HostTransport, sink: sources.Sink, **kw: object
) -> None:
    """Follow every path and glob of `patterns` on `host` with one remote process."""
    await RemoteFiles(patterns, host, sink, **kw).run()  # type: ignore[arg-type]
