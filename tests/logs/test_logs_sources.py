"""Sources on real files and real journal files: nothing lost, nothing repeated.

Files are appended to, rotated by rename, truncated (copytruncate), deleted and recreated
while the follower runs; the test asserts the exact sequence of lines received. The same
scenario runs against the native follower (local hosts) and `tail -F` through the transport
(what SSH hosts use). Journal files are real (systemd-journal-remote) and followed while
entries are appended.
"""

from __future__ import annotations

import asyncio
import os
import shutil

from probes.logs import sources
from probes.logs.model import LogEvent, SourceState
from probes.logs.sources import FileFollower, JournalSpec, journal_argv
from tests.fixtures.journal import journal_remote, local_host, write_journal
from tests.helpers import needs_tool


class CollectSink(sources.Sink):
    def __init__(self) -> None:
        self.events: list[LogEvent] = []
        self.states: list[tuple[str, SourceState, str]] = []

    def put(self, events):
        self.events.extend(events)

    def state(self, name, kind, state, detail=""):
        self.states.append((name, state, detail))

    @property
    def messages(self) -> list[str]:
        return [e.message for e in self.events]


async def wait_for(cond, what: str, timeout: float = 15.0) -> None:
    """Wait until cond() holds (a deadline for waiting, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def lines(prefix: str, a: int, b: int) -> list[str]:
    return [f"Nov 27 10:00:00 hv1 app[1]: {prefix}{i}" for i in range(a, b)]


def msgs(prefix: str, a: int, b: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(a, b)]


def write(f, ls) -> None:
    f.write("".join(x + "\n" for x in ls).encode())
    f.flush()


# ---------------------------------------------------------------- the follower, step by step


def test_follower_start_back_partial_lines_and_rotation(tmp_path):
    p = tmp_path / "app.log"
    p.write_text("".join(f"line{i}\n" for i in range(50)))
    f = FileFollower(str(p), start_lines=10)
    assert f.poll() == [f"line{i}" for i in range(40, 50)]
    assert f.state == SourceState.FOLLOWING
    w = open(p, "ab", buffering=0)
    w.write(b"par")
    assert f.poll() == []
    w.write(b"tial\nnext\n")
    assert f.poll() == ["partial", "next"]
    # rename rotation: the writer keeps writing to the old file for a while
    os.rename(p, tmp_path / "app.log.1")
    w.write(b"late1\n")
    assert f.poll() == ["late1"]
    w.write(b"late2\nunterminated")
    w.close()
    w = open(p, "ab", buffering=0)
    w.write(b"new1\n")
    assert f.poll() == ["late2", "unterminated", "new1"]
    # copytruncate, and written past the old offset before the follower looked again
    shutil.copy(p, tmp_path / "app.log.2")
    os.truncate(p, 0)
    w.write(b"after-truncate-a-much-longer-line-than-before\n")
    assert f.poll() == ["after-truncate-a-much-longer-line-than-before"]
    os.truncate(p, 0)
    w.write(b"x\n")
    assert f.poll() == ["x"]
    # delete and recreate
    os.unlink(p)
    w.close()
    assert f.poll() == []
    p.write_bytes(b"recreated\n\xff\xfeinvalid\n")
    assert f.poll() == ["recreated", "\ufffd\ufffdinvalid"]
    f.close()


def test_follower_waits_for_a_missing_file_and_cuts_long_lines(tmp_path):
    p = tmp_path / "later.log"
    f = FileFollower(str(p), start_lines=1000, max_line=100)
    assert f.poll() == [] and f.state == SourceState.WAITING
    p.write_bytes(b"first\n" + b"A" * 250 + b"\nafter\n")
    got = f.poll()
    assert got == ["first", "A" * 100, "after"]  # a file that appears is read from its start
    f.close()


def test_follower_bounded_start_in_a_large_file(tmp_path):
    p = tmp_path / "big.log"
    with open(p, "wb") as w:
        for i in range(200_000):
            w.write(b"%d\n" % i)
    f = FileFollower(str(p), start_lines=1000)
    got = f.poll()
    assert got == [str(i) for i in range(199_000, 200_000)]
    f.close()


def test_unreadable_file_as_nobody(tmp_path):
    """A file the reader may not read is UNREADABLE. Root reads everything, so as root the
    follower runs in a forked child that dropped to `nobody`; otherwise in this process."""
    import pwd

    p = tmp_path / "secret.log"
    p.write_text("x\n")
    p.chmod(0o600 if os.geteuid() == 0 else 0)  # unreadable to nobody, or to its non-root owner
    os.chmod(tmp_path, 0o755)
    nobody = pwd.getpwnam("nobody")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody (when root), poll once, report, exit
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
            f = FileFollower(str(p))
            out = f"{f.poll()} {f.state.value} {f.detail}"
        except BaseException as e:
            out = f"error {e}"
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    got = os.read(r, 1000).decode()
    os.close(r)
    os.waitpid(pid, 0)
    assert got == "[] unreadable permission denied"


# ---------------------------------------------------------------- live, through a transport


async def run_scenario(tmp_path, follow, host=None) -> CollectSink:
    """The whole life of a log file while `follow(path, host, sink)` runs. With `host`
    (an SSH host on this machine), the path is absolute and the host has no root prefix."""
    root = tmp_path / "root"
    (root / "var/log").mkdir(parents=True)
    p = root / "var/log/app.log"
    name = "/var/log/app.log" if host is None else str(p)
    host = host or local_host(root)
    sink = CollectSink()
    w = open(p, "ab", buffering=0)
    write(w, lines("pre", 0, 5))
    expected = msgs("pre", 2, 5)  # 3 lines back
    task = asyncio.create_task(follow(name, host, sink))
    try:
        await wait_for(lambda: sink.messages == expected, "the last 3 lines")
        write(w, lines("a", 0, 5))
        expected += msgs("a", 0, 5)
        await wait_for(lambda: len(sink.messages) >= len(expected), "appended lines")
        assert sink.messages == expected
        # rotate by rename; the writer writes to the old file, then reopens
        os.rename(p, root / "var/log/app.log.1")
        write(w, lines("old", 0, 3))
        w.close()
        w = open(p, "ab", buffering=0)
        write(w, lines("new", 0, 3))
        expected += msgs("old", 0, 3) + msgs("new", 0, 3)
        await wait_for(lambda: len(sink.messages) >= len(expected), "lines across the rename")
        assert sink.messages == expected
        # copytruncate
        shutil.copy(p, root / "var/log/app.log.2")
        os.truncate(p, 0)
        await asyncio.sleep(0.3)  # let the follower see the empty file first
        write(w, lines("t", 0, 4))
        expected += msgs("t", 0, 4)
        await wait_for(lambda: len(sink.messages) >= len(expected), "lines after truncation")
        assert sink.messages == expected
        # delete and recreate
        w.close()
        os.unlink(p)
        await asyncio.sleep(0.3)
        w = open(p, "ab", buffering=0)
        write(w, lines("re", 0, 3))
        expected += msgs("re", 0, 3)
        await wait_for(lambda: len(sink.messages) >= len(expected), "lines of the recreated file")
        await asyncio.sleep(0.3)  # and nothing more arrives
        assert sink.messages == expected
    finally:
        w.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert all(e.host == host.name and e.source == "file:" + name for e in sink.events)
    return sink


async def test_native_follower_loses_and_repeats_nothing(tmp_path):
    async def follow(path, host, sink):
        await sources.follow_file_local(path, host, sink, start_lines=3, interval=0.02)

    await run_scenario(tmp_path, follow)


async def test_native_follower_driven_by_inotify_loses_and_repeats_nothing(tmp_path):
    """The same life of a file (rotation, copytruncate, delete and re-create...) with reads
    driven by inotify alone: the safety read is a minute away, so every step is an event."""
    from probes.logs.filewatch import FileWatch

    watch = FileWatch()

    async def follow(path, host, sink):
        await sources.follow_file_local(
            path, host, sink, start_lines=3, interval=0.02, watch=watch, safety=60
        )

    try:
        await run_scenario(tmp_path, follow)
        assert watch.live and watch.received > 0
    finally:
        watch.close()


async def test_native_follower_safety_read_catches_what_inotify_missed(tmp_path):
    from probes.logs.filewatch import FileWatch

    root = tmp_path / "root"
    (root / "var/log").mkdir(parents=True)
    path = root / "var/log/app.log"
    path.write_bytes(b"Nov 27 10:00:00 h app: one\n")
    watch = FileWatch()
    sink = CollectSink()
    task = asyncio.create_task(
        sources.follow_file_local(
            "/var/log/app.log", local_host(root), sink, start_lines=10, interval=0.02, watch=watch, safety=0.5
        )
    )
    try:
        await wait_for(lambda: sink.messages == ["one"], "the first line")
        assert watch._ino is not None
        watch._ino.close()  # inotify is gone: nothing will tell the follower any more
        with open(path, "ab") as f:
            f.write(b"Nov 27 10:00:01 h app: two\n")
        await wait_for(lambda: sink.messages == ["one", "two"], "the line seen by the safety read", 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        watch.close()


@needs_tool("python3")
async def test_remote_follower_through_the_transport_loses_and_repeats_nothing(tmp_path):
    """What SSH hosts run: the same follower as a `python3 -c` program, read via stream()."""

    async def follow(path, host, sink):
        await sources.follow_file_stream(path, host, sink, start_lines=3, interval=0.02)

    sink = await run_scenario(tmp_path, follow)
    assert ("file:/var/log/app.log", SourceState.FOLLOWING, "") in sink.states


# ---------------------------------------------------------------- journal files


@journal_remote
async def test_saved_journal_file_read_and_followed(tmp_path):
    j = tmp_path / "saved.journal"
    write_journal(
        j,
        [
            {"MESSAGE": f"boot {i}", "PRIORITY": "6", "SYSLOG_IDENTIFIER": "app", "_HOSTNAME": "broken-host"}
            for i in range(5)
        ],
    )
    write_journal(
        j,
        [
            {
                "MESSAGE": b"evil \x1b]0;TITLE\x07 \xff",
                "PRIORITY": "2",
                "SYSLOG_IDENTIFIER": "kernel",
                "_TRANSPORT": "kernel",
            }
        ],
    )
    host = local_host(tmp_path)
    sink = CollectSink()
    spec = JournalSpec(files=("/saved.journal",), lines=3)
    task = asyncio.create_task(sources.follow_journal(spec, host, sink))
    try:
        await wait_for(lambda: len(sink.events) >= 3, "the last 3 journal entries")
        assert sink.messages == ["boot 3", "boot 4", "evil \x1b]0;TITLE\x07 \ufffd"]
        assert sink.events[2].severity == "crit" and sink.events[2].kind == "kernel"
        assert ("journal:/saved.journal", SourceState.FOLLOWING, "") in sink.states
        write_journal(
            j, [{"MESSAGE": f"live {i}", "PRIORITY": "4", "SYSLOG_IDENTIFIER": "app"} for i in range(4)]
        )
        await wait_for(lambda: len(sink.events) >= 7, "appended journal entries")
        write_journal(j, [{"MESSAGE": "last", "SYSLOG_IDENTIFIER": "app"}])
        await wait_for(lambda: len(sink.events) >= 8, "one more entry")
        await asyncio.sleep(0.3)
        assert sink.messages[3:] == ["live 0", "live 1", "live 2", "live 3", "last"]
        assert [e.severity for e in sink.events[3:7]] == ["warning"] * 4
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@journal_remote
async def test_journal_directory_once_and_missing(tmp_path):
    d = tmp_path / "jdir"
    d.mkdir()
    write_journal(d / "system.journal", [{"MESSAGE": f"m{i}"} for i in range(3)])
    host = local_host(tmp_path)
    sink = CollectSink()
    await asyncio.wait_for(
        sources.follow_journal(JournalSpec(directory="/jdir", follow=False), host, sink), 30
    )
    assert sink.messages == ["m0", "m1", "m2"]
    assert sink.states[-1][1] == SourceState.DONE
    sink = CollectSink()
    await asyncio.wait_for(sources.follow_journal(JournalSpec(files=("/nope.journal",)), host, sink), 30)
    assert sink.events == [] and sink.states[-1][1] in (SourceState.ABSENT, SourceState.UNREADABLE)


@journal_remote
async def test_no_local_journal_no_journalctl_until_one_appears(tmp_path, monkeypatch):
    """A local host without journal files (a root without /run/log/journal or
    /var/log/journal): the journal source is followed as before (its state says there are no
    files yet) but no journalctl process runs (it would follow nothing, ~7 MiB of RSS); once a
    journal file appears, journalctl follows it."""
    import psutil

    monkeypatch.setattr(sources, "JOURNAL_LOOK", 0.2)
    host = local_host(tmp_path)
    sink = CollectSink()
    task = asyncio.create_task(sources.follow_journal(JournalSpec(lines=0), host, sink))

    def journalctls() -> list[psutil.Process]:
        return [p for p in psutil.Process().children(recursive=True) if p.name() == "journalctl"]

    try:
        await wait_for(lambda: sink.states, "the journal's first state")
        assert sink.states[0][1] == SourceState.FOLLOWING and "no journal files" in sink.states[0][2]
        await asyncio.sleep(0.6)  # three looks
        assert journalctls() == [] and len(sink.states) == 1
        d = tmp_path / "var/log/journal/0123456789abcdef0123456789abcdef"
        d.mkdir(parents=True)
        write_journal(d / "system.journal", [{"MESSAGE": "first"}])
        await wait_for(lambda: len(sink.states) > 1, "the journal taken up")
        assert sink.states[-1][1:] == (SourceState.FOLLOWING, "")
        await wait_for(lambda: journalctls() != [], "journalctl following")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_journal_argv_resumes_after_cursor():
    spec = JournalSpec(lines=50)
    assert journal_argv(spec) == ["journalctl", "-o", "json", "--no-pager", "--merge", "-n", "50", "-f"]
    assert journal_argv(spec, "s=1;i=2")[-3:] == ["--after-cursor", "s=1;i=2", "-f"]
    assert "--since" in journal_argv(JournalSpec(since="-1h"))


def test_events_uri():
    from probes.hosts.local import LocalHost

    assert sources.events_uri(LocalHost("h", libvirt_uri="qemu:///system")) == "qemu:///system"
    assert sources.events_uri(LocalHost("h", libvirt_uri="test:///default")) is None


def test_logs_config():
    """The [logs] table is typed by the config parser, each bad key named with file and line."""
    import pytest

    from probes.config import ConfigError, parse

    cfg = parse('[logs]\nfiles = ["/var/log/app.log"]\nstart_lines = 10\njournal = false\n', "c.toml").logs
    assert cfg.files == ("/var/log/app.log",) and cfg.start_lines == 10 and cfg.journal is False
    for text, line, key, what in (
        ["[logs]\njournal = false\nsince = 3\n"] + ["3", "logs.since", "expected a string"],
        ["[logs]\n\nring = 0\n"] + ["3", "logs.ring", "expected a whole number >= 1"],
        ['[logs]\nfiles = "var/log"\n'] + ["2", "logs.files", "expected a list of strings"],
        ['[logs]\nfiles = ["var/log"]\n'] + ["2", "logs.files", "expected absolute paths"],
        ["[logs]\nflies = []\n"] + ["2", "logs.flies", "unknown key"],
    ):
        with pytest.raises(ConfigError) as e:
            parse(text, "c.toml")
        assert str(e.value).startswith(f"c.toml:{line}: {key}: {what}"), str(e.value)


@journal_remote
async def test_journal_resumes_after_its_cursor_when_the_stream_breaks(tmp_path):
    """The stream of a real journalctl is cut after 3 lines (as a dropped SSH channel would):
    the follower restarts with --after-cursor; no entry lost, none repeated."""
    j = tmp_path / "j.journal"
    write_journal(j, [{"MESSAGE": f"e{i}"} for i in range(6)])
    real = local_host(tmp_path)

    class Breaking(type(real)):  # the real LocalHost, with a stream that breaks once
        calls: list[list[str]] = []

        async def stream(self, argv):
            self.calls.append(list(argv))
            n = 0
            agen = super().stream(argv)
            try:
                async for line in agen:
                    yield line
                    n += 1
                    if len(self.calls) == 1 and n == 3:
                        raise OSError("connection lost")
            finally:
                await agen.aclose()

    host = Breaking("hv1", libvirt_uri=None, root=str(tmp_path))
    sink = CollectSink()
    task = asyncio.create_task(
        sources.follow_journal(JournalSpec(files=("/j.journal",), lines=100), host, sink)
    )
    try:
        await wait_for(lambda: len(sink.events) >= 6, "all entries after the restart")
        write_journal(j, [{"MESSAGE": "e6"}])
        await wait_for(lambda: len(sink.events) >= 7, "a new entry")
        await asyncio.sleep(0.3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sink.messages == [f"e{i}" for i in range(7)]
    assert "--after-cursor" in Breaking.calls[1] and "-n" not in Breaking.calls[1]
    assert any(s[1] == SourceState.FAILED and "connection lost" in s[2] for s in sink.states)


@needs_tool("tail")
async def test_tail_fallback_when_the_host_has_no_python3(tmp_path):
    """Without python3 on the host, files are followed with `tail -F` (appends and a
    truncation arrive; a rename can lose what the old file got after tail switched)."""
    from probes.hosts.base import HostError
    from probes.hosts.local import LocalHost

    class NoPython(LocalHost):
        async def run(self, argv, **kw):
            if argv[0] == "python3":
                raise HostError("python3: command not found")
            return await super().run(argv, **kw)

    p = tmp_path / "app.log"
    p.write_text("".join(x + "\n" for x in lines("pre", 0, 5)))
    host = NoPython("hv1", libvirt_uri=None, root=str(tmp_path))
    sink = CollectSink()
    task = asyncio.create_task(sources.follow_file_stream("/app.log", host, sink, start_lines=2))
    try:
        await wait_for(lambda: sink.messages == msgs("pre", 3, 5), "the last 2 lines")
        with open(p, "a") as f:
            f.write("".join(x + "\n" for x in lines("a", 0, 3)))
        await wait_for(lambda: len(sink.messages) >= 5, "appended lines")
        assert sink.messages == msgs("pre", 3, 5) + msgs("a", 0, 3)
        assert ("file:/app.log", SourceState.FOLLOWING, "tail -F") in sink.states
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_maybe_changed_is_cheap_and_conservative(tmp_path):
    """The stat pre-check that spares a worker-thread trip: false only when a poll would read
    nothing (same file, same size)."""
    p = tmp_path / "q.log"
    p.write_bytes(b"a\n")
    f = FileFollower(str(p))
    assert f.maybe_changed()  # not open yet
    assert f.poll() == ["a"]
    assert not f.maybe_changed()
    with open(p, "ab") as w:
        w.write(b"b\n")
    assert f.maybe_changed() and f.poll() == ["b"] and not f.maybe_changed()
    os.rename(p, tmp_path / "q.log.1")
    p.write_bytes(b"c\n")
    assert f.maybe_changed()
    assert f.poll() == ["c"]
    f.close()


async def test_a_rewrite_to_the_same_size_is_still_read(tmp_path):
    """copytruncate then exactly as many bytes again: the stat pre-check cannot see it, the
    periodic full poll must."""
    root = tmp_path / "root"
    (root / "var/log").mkdir(parents=True)
    p = root / "var/log/app.log"
    p.write_bytes(b"one\n")
    sink = CollectSink()
    task = asyncio.create_task(
        sources.follow_file_local("/var/log/app.log", local_host(root), sink, interval=0.02)
    )
    try:
        await wait_for(lambda: sink.messages == ["one"], "the first line")
        await asyncio.sleep(0.1)
        with open(p, "r+b") as w:  # truncate and rewrite in place: same size, new content
            w.truncate(0)
            w.write(b"two\n")
        await wait_for(lambda: sink.messages == ["one", "two"], "the rewritten line")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
