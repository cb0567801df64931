"""One remote process follows every log file of an SSH host (probes/logs/remote_follow.py).

Over a real OpenSSH sshd on 127.0.0.1 (MaxSessions 10): 25 files, more than sshd allows
sessions, are all followed; rotation by rename, copytruncate, delete and recreate, and files
appearing later lose and repeat nothing (exact sequences); a broken connection resumes at the
last offset; hostile file names are data; without python3 a few files get `tail -F` and the
rest a visible state.
"""

from __future__ import annotations

import asyncio
import json
import os

from probes.logs import remote_follow, sources
from probes.logs.model import SourceState
from probes.logs.remote_follow import follow_files
from tests.fixtures.sshd import ssh_host, sshd, sshd_factory  # noqa: F401 - fixtures
from tests.logs.test_logs_sources import CollectSink, lines, msgs, run_scenario, wait_for, write


class Sink(CollectSink):
    """CollectSink that also records forgotten sources and the last state of each."""

    def __init__(self) -> None:
        super().__init__()
        self.forgotten: list[str] = []

    def forget(self, name: str) -> None:
        self.forgotten.append(name)

    def last(self, name: str) -> tuple[SourceState, str] | None:
        for n, st, d in reversed(self.states):
            if n == name:
                return st, d
        return None

    def by_source(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for e in self.events:
            out.setdefault(e.source, []).append(e.message)
        return out


async def _run(coro):
    return asyncio.create_task(coro)


async def _stop(task, host=None) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    if host is not None:
        await host.close()


def test_program_is_constant_and_paths_are_data():
    hostile = ["/x/a;touch /tmp/tse-pwned", "/x/$(id).log", "/x/*.log"]
    a = remote_follow.follower_argv("python3", remote_follow.config_arg(hostile))
    b = remote_follow.follower_argv("python3", remote_follow.config_arg(["/var/log/syslog"]))
    assert a[:3] == b[:3] == ["python3", "-c", remote_follow.PROGRAM]
    assert "tse-pwned" not in remote_follow.PROGRAM
    assert json.loads(a[3])["patterns"] == hostile


async def test_25_files_one_session_over_ssh(tmp_path, sshd):
    """More files than sshd's MaxSessions (10): every one followed, through one session."""
    d = tmp_path / "qemu"
    d.mkdir()
    ws = {}
    for i in range(25):
        ws[i] = open(d / f"dom{i:02d}.log", "ab", buffering=0)
        write(ws[i], lines(f"d{i}-", 0, 5))
    host = ssh_host(sshd)
    sink = Sink()
    task = await _run(follow_files([str(d / "*.log")], host, sink, start_lines=2, interval=0.05))
    names = [f"file:{d}/dom{i:02d}.log" for i in range(25)]
    try:
        await wait_for(
            lambda: all(len(sink.by_source().get(n, [])) >= 2 for n in names),
            "the last 2 lines of 25 files over ssh",
        )
        for i in range(25):
            write(ws[i], lines(f"d{i}-", 5, 8))
        await wait_for(
            lambda: all(len(sink.by_source().get(n, [])) >= 5 for n in names), "appended lines of 25 files"
        )
        await asyncio.sleep(0.2)
        got = sink.by_source()
        assert got == {n: msgs(f"d{i}-", 3, 8) for i, n in enumerate(names)}
        assert all(sink.last(n) == (SourceState.FOLLOWING, "") for n in names)
        assert f"file:{d}/*.log" in sink.forgotten  # the glob stands for its files now
        # streams left for the journal, libvirt events and more: the followers took one
        assert not host._streams.locked()
    finally:
        for w in ws.values():
            w.close()
        await _stop(task, host)


async def test_past_the_file_cap_plain_paths_and_the_newest_files_are_followed(tmp_path, sshd):
    """A host with more log files than the cap (hundreds of old domain logs): the plain paths
    (syslog) are followed whatever the order of the patterns, then a glob's newest files; the
    glob says what it left out. Before, the glob's first files by name took every place and
    syslog stayed 'starting' for ever."""
    d = tmp_path / "qemu"
    d.mkdir()
    for i in range(6):
        p = d / f"dom{i}.log"
        with open(p, "ab", buffering=0) as w:
            write(w, lines(f"d{i}-", 0, 1))
        os.utime(p, (1_000_000 + i, 1_000_000 + i))  # dom5 written last
    syslog = tmp_path / "syslog"
    with open(syslog, "ab", buffering=0) as w:
        write(w, lines("s-", 0, 1))
    host = ssh_host(sshd)
    sink = Sink()
    pats = [str(d / "*.log"), str(syslog)]
    task = await _run(follow_files(pats, host, sink, start_lines=5, interval=0.05, max_files=3))
    try:
        await wait_for(lambda: len(sink.by_source()) >= 3, "three files followed")
        await wait_for(lambda: sink.last(f"file:{d}/*.log") is not None, "the glob's state")
        await asyncio.sleep(0.2)
        assert set(sink.by_source()) == {f"file:{syslog}", f"file:{d}/dom5.log", f"file:{d}/dom4.log"}
        st, detail = sink.last(f"file:{d}/*.log")
        assert st == SourceState.ABSENT and "more than 3 files" in detail
    finally:
        await _stop(task, host)


async def test_rotation_truncation_recreate_over_ssh_exact(tmp_path, sshd):
    host = ssh_host(sshd)
    try:

        async def follow(path, h, sink):
            await follow_files([path], h, sink, start_lines=3, interval=0.02, gone=0.1)

        await run_scenario(tmp_path, follow, host=host)
    finally:
        await host.close()


async def test_new_and_deleted_files_of_a_glob_over_ssh(tmp_path, sshd):
    d = tmp_path / "qemu"
    d.mkdir()
    (d / "old.log").write_text("".join(x + "\n" for x in lines("o", 0, 4)))
    host = ssh_host(sshd)
    sink = Sink()
    task = await _run(
        follow_files(
            [str(d / "*.log"), str(tmp_path / "later.log")],
            host,
            sink,
            start_lines=1,
            interval=0.02,
            rescan=0.1,
            gone=0.1,
        )
    )
    try:
        await wait_for(lambda: sink.messages == ["o3"], "the last line of old.log")
        assert sink.last(f"file:{tmp_path}/later.log") == (SourceState.WAITING, "does not exist (yet)")
        # a domain starts later: its whole log, from the start
        (d / "new.log").write_text("".join(x + "\n" for x in lines("n", 0, 3)))
        (tmp_path / "later.log").write_text("".join(x + "\n" for x in lines("l", 0, 2)))
        await wait_for(lambda: len(sink.messages) >= 6, "a new file of the glob and a file created later")
        got = sink.by_source()
        assert got[f"file:{d}/new.log"] == msgs("n", 0, 3)
        assert got[f"file:{tmp_path}/later.log"] == msgs("l", 0, 2)
        # deleted for good: closed, with a state saying so
        os.unlink(d / "old.log")
        await wait_for(
            lambda: (
                sink.last(f"file:{d}/old.log")
                == (SourceState.WAITING, "deleted; waiting for it to come back")
            ),
            "the deletion",
        )
        # and it comes back: read from its start
        (d / "old.log").write_text("".join(x + "\n" for x in lines("back", 0, 2)))
        await wait_for(lambda: len(sink.messages) >= 8, "the file that came back")
        await asyncio.sleep(0.2)
        assert sink.by_source()[f"file:{d}/old.log"] == ["o3", "back0", "back1"]
        assert len(sink.messages) == 8
    finally:
        await _stop(task, host)


async def test_hostile_file_names_and_content_are_data(tmp_path, sshd):
    d = tmp_path / "hostile"
    d.mkdir()
    # no "/" in a name: the commands would run in the remote user's home
    pwned = os.path.expanduser("~/tse-pwned-rf")
    names = [
        "a b.log",
        "x;touch tse-pwned-rf;.log",
        "$(touch tse-pwned-rf).log",
        "new\nline.log",
        "`touch tse-pwned-rf`.log",
        "quote'\".log",
    ]
    for i, n in enumerate(names):
        (d / n).write_text(f"Nov 27 10:00:00 hv1 app[1]: in file {i}\n")
    # content that looks like frames, with an ESC and invalid UTF-8
    (d / "frames.log").write_bytes(
        b'["L",0,["forged"],null]\n["P",0,"/etc/shadow","00"]\n'
        b"esc \x1b]0;title\x07 bad \xff\xfe\n" + b"\x01" * (100 << 10) + b"\n"
        # over-long, 6 JSON bytes per byte: a frame of ~400 KB
    )
    # a name that is not UTF-8 (Linux file names are bytes)
    bad = os.fsencode(str(d)) + b"/raw\xff.log"
    with open(bad, "wb") as f:
        f.write(b"Nov 27 10:00:00 hv1 app[1]: raw name\n")
    host = ssh_host(sshd)
    sink = Sink()
    task = await _run(follow_files([str(d / "*"), str(d / "$(touch x).log")], host, sink, interval=0.02))
    try:
        await wait_for(lambda: len(sink.events) >= len(names) + 5, "lines of hostile files")
        await asyncio.sleep(0.2)
        got = sink.by_source()
        for i, n in enumerate(names):
            assert got[f"file:{d}/{n}"] == [f"in file {i}"]
        assert got[f"file:{d}/frames.log"] == [
            '["L",0,["forged"],null]',
            '["P",0,"/etc/shadow","00"]',
            "esc \x1b]0;title\x07 bad \ufffd\ufffd",
            "\x01" * sources.MAX_LINE_BYTES,
        ]
        assert got[f"file:{d}/raw\ufffd.log"] == ["raw name"]
        assert len(sink.events) == len(names) + 5
        assert not os.path.exists(pwned) and not os.path.exists("tse-pwned-rf")
        assert sink.last(f"file:{d}/$(touch x).log") == (SourceState.WAITING, "does not exist (yet)")
    finally:
        await _stop(task, host)


async def test_connection_lost_resumes_without_loss_or_repeat(tmp_path, sshd_factory):
    s = sshd_factory()
    p = tmp_path / "app.log"
    q = tmp_path / "trunc.log"  # copytruncated while disconnected, and longer again
    w = open(p, "ab", buffering=0)
    write(w, lines("a", 0, 3))
    q.write_text("".join(x + "\n" for x in lines("q", 0, 2)))
    host = ssh_host(s, backoff_base=0.05, backoff_max=0.2, keepalive_interval=0.5, keepalive_count_max=1)
    sink = Sink()
    task = await _run(follow_files([str(p), str(q)], host, sink, interval=0.02))
    try:
        await wait_for(lambda: len(sink.messages) >= 5, "the first lines")
        s.kill()  # the host's sshd and the follower's session die
        await wait_for(
            lambda: sink.last("file:" + str(p))[0] == SourceState.FAILED,
            "the follower noticing the lost connection",
        )
        write(w, lines("b", 0, 3))  # written while nobody follows
        q.write_text("".join(x + "\n" for x in lines("rewritten", 0, 3)))
        s.start()
        await wait_for(lambda: len(sink.messages) >= 11, "the lines written meanwhile", timeout=30)
        write(w, lines("c", 0, 2))
        await wait_for(lambda: len(sink.messages) >= 13, "new lines after the reconnect")
        await asyncio.sleep(0.2)
        got = sink.by_source()
        assert got["file:" + str(p)] == msgs("a", 0, 3) + msgs("b", 0, 3) + msgs("c", 0, 2)
        assert got["file:" + str(q)] == msgs("q", 0, 2) + msgs("rewritten", 0, 3)
    finally:
        w.close()
        await _stop(task, host)


async def test_without_python3_a_few_tail_followers_and_a_state_for_the_rest(tmp_path, sshd):
    d = tmp_path / "q"
    d.mkdir()
    for i in range(7):
        (d / f"f{i}.log").write_text(f"Nov 27 10:00:00 hv1 app[1]: f{i}\n")
    host = ssh_host(sshd)
    sink = Sink()
    # a python that the host does not have: the fallback is the one a python-less host gets
    task = await _run(follow_files([str(d / "*.log")], host, sink, python="tse-no-python3"))
    try:
        await wait_for(lambda: len(sink.events) >= remote_follow.TAIL_MAX, "tail -F lines")
        await asyncio.sleep(0.3)
        got = sink.by_source()
        assert got == {f"file:{d}/f{i}.log": [f"f{i}"] for i in range(remote_follow.TAIL_MAX)}
        for i in range(remote_follow.TAIL_MAX, 7):
            st, detail = sink.last(f"file:{d}/f{i}.log")
            assert st == SourceState.ABSENT and "tse-no-python3" in detail and "not followed" in detail
    finally:
        await _stop(task, host)


async def test_logs_service_uses_one_follower_per_ssh_host(tmp_path, sshd):
    from probes.logs.service import HostLogs, LogService

    d = tmp_path / "qemu"
    d.mkdir()
    for i in range(12):
        (d / f"dom{i}.log").write_text(f"2026-11-27T10:00:11.045615Z qemu-system-x86_64: d{i}\n")
    host = ssh_host(sshd)
    svc = LogService(
        sources.LogsConfig(
            files=(str(d / "*.log"), str(tmp_path / "none.log")), journal=False, libvirt_events=False
        )
    )
    try:
        hl: HostLogs = await svc.ensure(host)
        assert set(hl.tasks) == {"files"}
        await wait_for(lambda: len(hl.pending) >= 12, "12 files through one follower")
        assert {s.name for s in hl.sources.values() if s.state == SourceState.FOLLOWING} == {
            f"file:{d}/dom{i}.log" for i in range(12)
        }
        assert f"file:{d}/*.log" not in hl.sources
        assert hl.sources[f"file:{tmp_path}/none.log"].state == SourceState.WAITING
        await svc.ensure(host)  # a later probe run starts nothing more
        assert set(hl.tasks) == {"files"}
    finally:
        await svc.stop_host(host.name)
        await host.close()


async def test_host_down_at_start_is_retried_not_taken_for_a_host_without_python(tmp_path, sshd_factory):
    s = sshd_factory()
    s.kill()
    p = tmp_path / "app.log"
    p.write_text("".join(x + "\n" for x in lines("a", 0, 2)))
    host = ssh_host(s, backoff_base=0.05, backoff_max=0.2)
    sink = Sink()
    task = await _run(follow_files([str(p)], host, sink, interval=0.02))
    try:
        await wait_for(
            lambda: (sink.last("file:" + str(p)) or (None,))[0] == SourceState.FAILED,
            "the unreachable host in the file's state",
        )
        assert sink.last("file:" + str(p))[1].endswith("retrying")
        s.start()
        await wait_for(lambda: len(sink.messages) >= 2, "the lines once the host is up", timeout=30)
        assert sink.messages == msgs("a", 0, 2)
        assert sink.last("file:" + str(p)) == (SourceState.FOLLOWING, "")  # python3, not tail -F
    finally:
        await _stop(task, host)
