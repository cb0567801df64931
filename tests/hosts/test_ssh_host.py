"""SSHHost against a real OpenSSH sshd on 127.0.0.1: commands, files, deadlines, streams,
host keys, authentication and unreachable hosts."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import asyncssh
import psutil
import pytest

from probes.hosts.base import CommandTimeout, HostError
from probes.hosts.ssh import AuthFailed, HostKeyRefused, HostUnreachable, remote_command
from probes.model import ConnState
from tests.fixtures.sshd import accepted_logins, free_port, ssh_host, sshd, sshd_factory  # noqa: F401


def _fingerprint(pub_line: str) -> str:
    return asyncssh.import_public_key(pub_line).get_fingerprint("sha256")


async def _gone(marker: str, within: float = 60.0) -> bool:
    """True once no process has `marker` in its command line (waits for that event; the bound
    only stops a hung test)."""
    for _ in range(int(within / 0.05)):
        if not any(marker in " ".join(p.info["cmdline"] or ()) for p in psutil.process_iter(["cmdline"])):
            return True
        await asyncio.sleep(0.05)
    return False


MODES = pytest.mark.parametrize("use_mux", [True, False], ids=["mux", "session-per-command"])


@MODES
async def test_run_keeps_argv_as_data(sshd, tmp_path, use_mux):
    pwned = f"/tmp/tse-pwned-{uuid.uuid4().hex[:8]}"
    hostile = [
        f"x;touch {pwned}",
        f"$(touch {pwned})",
        f"`touch {pwned}`",
        "a b",
        "'\"",
        "-n",
        "\\",
        f"x\n;touch {pwned}",
    ]
    h = ssh_host(sshd, use_mux=use_mux)
    try:
        r = await h.run(["printf", "%s\\n", *hostile])
        assert r.ok and r.stdout == "".join(a + "\n" for a in hostile)
        r = await h.run(["sh", "-c", 'echo "$#"; echo err >&2; exit 3', "sh", *hostile])
        assert (r.returncode, r.stdout.strip(), r.stderr.strip()) == (3, str(len(hostile)), "err")
    finally:
        await h.close()
    assert not os.path.exists(pwned)


@MODES
async def test_one_connection_carries_concurrent_commands(sshd_factory, use_mux):
    s = sshd_factory()
    h = ssh_host(s, use_mux=use_mux)
    try:
        # more than sshd's MaxSessions (10) at once: the transport queues them
        rs = await asyncio.gather(*(h.run(["echo", str(i)]) for i in range(24)))
        assert [r.stdout.strip() for r in rs] == [str(i) for i in range(24)]
        assert h.connection.state == ConnState.UP
    finally:
        await h.close()
    assert accepted_logins(s) == 1


async def _command_server(h: Any) -> Any:
    """The host's command server (sshmux) process, started by a first command."""
    assert (await h.run(["true"])).ok
    mux = h._mux
    assert mux is not None and mux._proc is not None
    return mux._proc


async def test_commands_started_together_go_to_the_command_server_as_one_write(sshd_factory, monkeypatch):
    """A probe's refresh starts its commands together: their request lines leave in one write
    (one SSH packet, one send) instead of one each, and each still gets its own result."""
    h = ssh_host(sshd_factory())
    try:
        proc = await _command_server(h)
        writes: list[bytes] = []
        stdin = proc.stdin
        real = stdin.write
        monkeypatch.setattr(stdin, "write", lambda data: (writes.append(data), real(data))[1])
        rs = await asyncio.gather(*(h.run(["echo", str(i)]) for i in range(12)))
        assert [r.stdout.strip() for r in rs] == [str(i) for i in range(12)]
        assert len(writes) == 1 and writes[0].count(b"\n") == 12
    finally:
        await h.close()


async def test_a_commands_result_comes_back_in_one_write(sshd_factory, monkeypatch):
    """Issue 19: the command server writes a result with output (header, stdout, stderr) with
    one write, so it mostly arrives as one SSH packet (it came as two: the header, then the
    output); binary output and exact byte counts as before."""
    h = ssh_host(sshd_factory())
    try:
        proc = await _command_server(h)
        packets: list[bytes] = []
        real = proc.data_received
        monkeypatch.setattr(proc, "data_received", lambda data, dt: (packets.append(data), real(data, dt)))
        n = 12
        for i in range(n):  # one at a time: no two results share a read
            r = await h.run(["sh", "-c", 'printf "%s\\n\\0" "$1"; echo err >&2', "sh", f"out{i}"])
            assert r.ok and r.stdout == f"out{i}\n\0" and r.stderr == "err\n"
        assert (await h.run(["true"])).stdout == ""  # no output: the header alone
        assert len(packets) <= 1.3 * (n + 1), packets
    finally:
        await h.close()


async def test_aes_gcm_is_offered_first_unless_the_ssh_config_names_ciphers(sshd, tmp_path):
    """Issue 19: each packet of an idle fleet costs ~40 us in asyncssh's chacha20-poly1305 and
    ~2-5 us in AES-GCM, so AES-GCM is offered first; a user whose ssh_config names Ciphers
    (in a Host block or an included file) gets exactly what it names."""
    h = ssh_host(sshd)
    try:
        assert (await h.run(["true"])).ok
        assert h._conn is not None
        assert h._conn.get_extra_info("send_cipher") == "aes128-gcm@openssh.com"
        assert h._conn.get_extra_info("recv_cipher") == "aes128-gcm@openssh.com"
    finally:
        await h.close()
    (tmp_path / "more.conf").write_text("Host *\n  Ciphers=chacha20-poly1305@openssh.com\n")
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"# the user's\nInclude {tmp_path}/*.conf\n")
    h = ssh_host(sshd, config=[str(cfg)])
    try:
        assert (await h.run(["true"])).ok
        assert h._conn is not None
        assert h._conn.get_extra_info("send_cipher") == "chacha20-poly1305@openssh.com"
    finally:
        await h.close()


async def test_the_cipher_choice_reads_the_ssh_config_again_only_when_it_changed(tmp_path):
    """cipher_preference read and parsed the user's ssh_config at every connect (each host,
    each reconnect); a session's CipherChoice reads it once and again only when a file it read
    or an included folder changed (opens counted by inotify on the real files). The user's
    Ciphers line still wins: added to the file, or in a new file of an included folder."""
    from probes.hosts.inotify import Inotify
    from probes.hosts.ssh import PREFERRED_CIPHERS, CipherChoice

    IN_OPEN = 0x20
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "a.conf").write_text("Host x\n  User y\n")
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Include {tmp_path}/conf.d/*.conf\nHost h1\n  Port 2222\n")
    opens: list[str] = []
    ino = Inotify(lambda wd, mask, name: opens.append(name or str(wd)) if mask & IN_OPEN else None)
    ino.start(asyncio.get_running_loop())
    ino.add(str(cfg), IN_OPEN)
    try:
        choice = CipherChoice([str(cfg)])
        for _ in range(5):
            assert choice()[: len(PREFERRED_CIPHERS)] == list(PREFERRED_CIPHERS)
        await asyncio.sleep(0.05)
        assert len(opens) == 1, opens
        (tmp_path / "conf.d" / "b.conf").write_text("Host *\n  Ciphers aes256-ctr\n")
        assert choice() is None  # a new included file names Ciphers: the user's line wins
        (tmp_path / "conf.d" / "b.conf").unlink()
        assert choice() is not None
        with cfg.open("a") as f:
            f.write("Ciphers aes256-ctr\n")
        assert choice() is None
        await asyncio.sleep(0.05)
        n = len(opens)
        assert choice() is None and choice() is None
        await asyncio.sleep(0.05)
        assert len(opens) == n
    finally:
        ino.close()


@MODES
async def test_read_text(sshd, tmp_path, use_mux):
    p = tmp_path / "f;$(id) x.txt"
    p.write_bytes(b"0123456789" * 10 + b"\xff tail")
    (tmp_path / "dir").mkdir()
    pwned = f"/tmp/tse-pwned-{uuid.uuid4().hex[:8]}"
    h = ssh_host(sshd, use_mux=use_mux)
    try:
        text = await h.read_text(str(p))
        assert text == (p.read_bytes()).decode("utf-8", "replace")
        assert await h.read_text(str(p), limit=5) == "01234"
        with pytest.raises(FileNotFoundError):
            await h.read_text(str(tmp_path / "missing"))
        with pytest.raises(IsADirectoryError):
            await h.read_text(str(tmp_path / "dir"))
        assert (await h.read_text("/proc/self/status")).startswith("Name:")
        with pytest.raises(FileNotFoundError):
            await h.read_text(f"/nonexistent/x;touch {pwned}")
    finally:
        await h.close()
    assert not os.path.exists(pwned)


@MODES
async def test_missing_command_is_a_clear_error(sshd, use_mux):
    h = ssh_host(sshd, use_mux=use_mux)
    try:
        with pytest.raises(HostError, match="tse-no-such-cmd: command not found"):
            await h.run(["tse-no-such-cmd"])
    finally:
        await h.close()


@MODES
async def test_a_hanging_command_hits_its_deadline_and_is_killed(sshd, use_mux):
    marker = f"{61 + int(uuid.uuid4().int % 1000) / 1000:.3f}"  # a unique sleep argument
    h = ssh_host(sshd, use_mux=use_mux)
    try:
        with pytest.raises(CommandTimeout, match=r"no answer within 0\.5 s"):
            await h.run(["sleep", marker], timeout=0.5)
        assert await _gone(f"sleep {marker}"), "the remote command outlived its deadline"
        # what the command started goes too
        with pytest.raises(CommandTimeout):
            await h.run(["sh", "-c", f"sleep {marker}1; echo done"], timeout=0.5)
        assert await _gone(f"sleep {marker}1"), "a child of the remote command outlived its deadline"
        assert (await h.run(["echo", "still usable"])).stdout.strip() == "still usable"
    finally:
        await h.close()


async def test_closing_a_stream_ends_the_remote_command(sshd):
    marker = f"tse-stream-{uuid.uuid4().hex[:8]}"
    h = ssh_host(sshd)
    try:
        it = h.stream(["sh", "-c", 'while :; do echo "$1"; sleep 0.05; done', marker, marker])
        got = []
        async for line in it:
            got.append(line)
            if len(got) == 3:
                break
        await it.aclose()
        assert got == [marker] * 3
        assert await _gone(marker), "the streamed command outlived its stream"
    finally:
        await h.close()


def test_remote_command_is_one_shell_word_per_argument():
    cmd = remote_command(["ip", "-n", "x;reboot", "link"])
    assert "'x;reboot'" in cmd and cmd.startswith("sh -c ")
    with pytest.raises(ValueError):
        remote_command([])


# ---------------------------------------------------------------- host keys


async def test_unknown_host_key_is_refused_with_its_fingerprint(sshd, tmp_path):
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    h = ssh_host(sshd, known_hosts=str(kh))
    try:
        with pytest.raises(HostKeyRefused) as ei:
            await h.run(["true"])
    finally:
        await h.close()
    msg = str(ei.value)
    assert "unknown host key" in msg and _fingerprint(sshd.host_pub) in msg
    assert "--accept-new-host-keys" in msg and "\n" not in msg
    assert h.connection.state == ConnState.HOST_KEY_REFUSED
    assert kh.read_text() == ""  # nothing recorded without the flag


async def test_accept_new_host_keys_trusts_and_records_a_new_host(sshd, tmp_path):
    kh = tmp_path / "sub" / "known_hosts"  # created on demand
    h = ssh_host(sshd, known_hosts=str(kh), accept_new_host_keys=True)
    try:
        assert (await h.run(["echo", "ok"])).stdout.strip() == "ok"
    finally:
        await h.close()
    alg, b64 = sshd.host_pub.split()[:2]
    assert kh.read_text() == f"[127.0.0.1]:{sshd.port} {alg} {b64}\n"
    h2 = ssh_host(sshd, known_hosts=str(kh))  # now known: no flag needed
    try:
        assert (await h2.run(["echo", "ok"])).ok
    finally:
        await h2.close()


async def test_changed_host_key_is_refused_even_with_accept_new(sshd, tmp_path):
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode().split()
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{sshd.port} {other[0]} {other[1]}\n")
    before = kh.read_text()
    h = ssh_host(sshd, known_hosts=str(kh), accept_new_host_keys=True)
    try:
        with pytest.raises(HostKeyRefused) as ei:
            await h.run(["true"])
    finally:
        await h.close()
    msg = str(ei.value)
    assert "CHANGED" in msg and _fingerprint(sshd.host_pub) in msg and "ssh-keygen -R" in msg
    assert kh.read_text() == before
    assert h.connection.state == ConnState.HOST_KEY_REFUSED


# ---------------------------------------------------------------- auth and reachability


async def test_wrong_client_key_is_auth_failed(sshd, tmp_path):
    key = tmp_path / "stranger"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(key))
    h = ssh_host(sshd, client_keys=[str(key)])
    try:
        with pytest.raises(AuthFailed, match="authentication failed"):
            await h.run(["true"])
    finally:
        await h.close()
    assert h.connection.state == ConnState.AUTH_FAILED


async def test_nothing_listening_is_unreachable_and_backs_off(sshd):
    from probes.fleet import parse_target
    from probes.hosts.ssh import SSHHost

    port = free_port()
    h = SSHHost(
        parse_target(f"ssh://root@127.0.0.1:{port}"),
        known_hosts=sshd.known_hosts,
        client_keys=[sshd.client_key],
        agent_path=None,
        config=[],
        backoff_base=30,
    )
    try:
        with pytest.raises(HostUnreachable, match="connection refused") as first:
            await h.run(["true"])
        assert h.connection.state == ConnState.UNREACHABLE
        # while backing off, calls fail at once with the last error, worded the same (no
        # countdown: a headless run makes no next attempt), without a new attempt
        with pytest.raises(HostUnreachable) as again:
            await h.run(["true"])
        assert str(again.value) == str(first.value) and h._failures == 1
    finally:
        await h.close()


async def test_ssh_config_alias_and_proxyjump(sshd_factory, tmp_path):
    """An alias from ssh_config (HostName, Port, User) reached through a ProxyJump host, as
    OpenSSH would: the jump host's own settings come from the config too."""
    jump, target = sshd_factory(), sshd_factory()
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"""\
Host tse-jump
  HostName 127.0.0.1
  Port {jump.port}
  User root
  IdentityFile {jump.client_key}
  UserKnownHostsFile {jump.known_hosts}
Host tse-target
  HostName 127.0.0.1
  Port {target.port}
  User root
  ProxyJump tse-jump
""")
    from probes.fleet import parse_target
    from probes.hosts.ssh import SSHHost

    h = SSHHost(
        parse_target("tse-target"),
        known_hosts=target.known_hosts,
        client_keys=[target.client_key],
        agent_path=None,
        config=[str(cfg)],
    )
    try:
        r = await h.run(["sh", "-c", 'echo "$SSH_CONNECTION"'])
    finally:
        await h.close()
    assert r.ok and r.stdout.split()[3] == str(target.port)
    assert accepted_logins(jump) == 1 and accepted_logins(target) == 1
    assert h.host.name == "tse-target" and h.host.libvirt_uri is None


def _mux_dirs(s) -> set[str]:
    """Temp dirs of the command servers running under this sshd (from their open FIFO)."""
    out = set()
    for p in psutil.Process(s.pid).children(recursive=True):
        try:
            for f in p.open_files() + [type("F", (), {"path": os.readlink(f"/proc/{p.pid}/fd/5")})()]:
                if "tenantscope-mux." in f.path:
                    out.add(os.path.dirname(f.path))
        except (psutil.Error, OSError):
            continue
    return out


async def test_command_server_cleans_up_when_closed(sshd_factory):
    s = sshd_factory()
    h = ssh_host(s)
    try:
        assert (await h.run(["echo", "x"])).ok
        dirs = _mux_dirs(s)
        assert len(dirs) == 1 and os.path.isdir(next(iter(dirs)))
    finally:
        await h.close()
    for _ in range(1200):  # wait for the removal (the bound, 60 s, only stops a hung test)
        if not _mux_dirs(s) and not any(os.path.exists(d) for d in dirs):
            break
        await asyncio.sleep(0.05)
    assert not _mux_dirs(s) and not any(os.path.exists(d) for d in dirs)


@MODES
async def test_pending_commands_fail_fast_when_the_connection_drops(sshd_factory, use_mux):
    s = sshd_factory()
    h = ssh_host(s, use_mux=use_mux)
    try:
        assert (await h.run(["true"])).ok
        marker = f"{30 + int(uuid.uuid4().int % 1000) / 1000:.3f}"  # a unique sleep argument
        pending = asyncio.ensure_future(h.run(["sleep", marker], timeout=60))
        for _ in range(1200):  # the command runs on the host (bound: 60 s)
            if any(p.info["cmdline"] == ["sleep", marker] for p in psutil.process_iter(["cmdline"])):
                break
            await asyncio.sleep(0.05)
        s.kill()
        with pytest.raises(HostError) as ei:
            await asyncio.wait_for(pending, 20)  # not the 60 s deadline
        assert not isinstance(ei.value, CommandTimeout)
        assert h.connection.state == ConnState.UNREACHABLE
    finally:
        await h.close()


async def test_concurrent_reads_go_as_one_command_and_keep_their_own_outcome(sshd, tmp_path):
    files = {
        "empty": b"",
        "nl": b"a\nb\n",
        "no-nl": b"x",
        "bin": b"\x00\xff\xfe\n\n",
        "fake-marker": b"\n0123456789abcdef0123456789abcdef 0\n",
        "big": b"y" * 70000,
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "dir").mkdir()
    h = ssh_host(sshd)
    calls = []
    run = h.run

    async def counting(argv, **kw):
        calls.append(argv)
        return await run(argv, **kw)

    h.run = counting  # type: ignore[method-assign]
    try:
        names = [*files, "missing", "dir", "big"]
        limits = [4 << 20] * (len(names) - 1) + [10]
        got = await asyncio.gather(
            *(h.read_text(str(tmp_path / n), limit=lim) for n, lim in zip(names, limits)),
            return_exceptions=True,
        )
    finally:
        await h.close()
    assert len(calls) == 1  # one round trip for all of them
    for name, g in zip(files, got):
        assert g == files[name].decode("utf-8", "replace"), name
    assert isinstance(got[len(files)], FileNotFoundError)
    assert isinstance(got[len(files) + 1], IsADirectoryError)
    assert got[-1] == "y" * 10


async def test_streams_beyond_the_session_limit_fail_clearly(sshd):
    h = ssh_host(sshd, max_sessions=5)  # 2 streams at most
    its = [h.stream(["sleep", "30"]) for _ in range(3)]
    tasks = [asyncio.ensure_future(it.__anext__()) for it in its[:2]]
    try:
        for _ in range(200):  # both streams hold their sessions
            if h._streams.locked():
                break
            await asyncio.sleep(0.05)
        with pytest.raises(HostError, match="no SSH session left for another stream"):
            await its[2].__anext__()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for it in its:
            await it.aclose()
        await h.close()
