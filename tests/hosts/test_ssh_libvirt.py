"""libvirt of an SSH host through tenantscope's own SSH connection (a forwarded socket).

Real parts: the fixture's OpenSSH sshd on 127.0.0.1 and the real libvirtd (+ QEMU for a tiny
domain) behind it; the "remote" libvirt socket is this machine's /var/run/libvirt socket, seen
through sshd."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import textwrap

import pytest

from probes.engine import Engine
from probes.hosts.base import HostTransport
from probes.hosts.connection import ConnectionProbe
from probes.hosts.libvirt_forward import LibvirtForward, clean_stale
from probes.hosts.local import LocalHost
from probes.hosts.ssh import SSHHost
from probes.inventory.libvirt import LibvirtProbe, LibvirtUnavailable
from probes.model import ConnState, HostState
from tests.fixtures.libvirtd import libvirtd, qemu_domain  # noqa: F401
from tests.fixtures.sshd import forwarded, ssh_host, ssh_trap, sshd, sshd_factory  # noqa: F401

SYS_PYTHON = "/usr/bin/python3"  # the venv's is not readable by other users
FAST = dict(backoff_base=0.05, backoff_max=0.4, keepalive_interval=1.0)


async def _domains(host: HostTransport) -> set[tuple[str, str, str]]:
    p = LibvirtProbe(events=False)
    try:
        r = await p.collect(host)
        return {(w.uuid, w.name, w.state) for w in r.vms}
    finally:
        await p.close()


async def test_domains_over_ssh_equal_local_and_no_system_ssh_runs(sshd, libvirtd, qemu_domain, ssh_trap):
    d = qemu_domain()
    remote = forwarded(sshd)
    local = LocalHost("tse-local", libvirt_uri=libvirtd)
    try:
        for _ in range(5):  # other tests start and stop domains: compare a quiet moment
            before = await _domains(local)
            over_ssh = await _domains(remote)
            after = await _domains(local)
            if before == after:
                break
        assert (d.uuid, d.name, "running") in over_ssh
        assert over_ssh == before
        fwd = remote.libvirt_forward
        assert fwd is not None and fwd.remote == "/var/run/libvirt/libvirt-sock-ro"
        assert not ssh_trap.exists(), f"the system ssh ran: {ssh_trap.read_text()}"
        import psutil

        assert not [c for c in psutil.Process().children(recursive=True) if c.name() == "ssh"]
    finally:
        await remote.close()
    assert fwd.path is None


async def test_wrong_host_key_refuses_libvirt_as_well(sshd, libvirtd, tmp_path):
    other = tmp_path / "known_hosts"
    # a key that is not the server's, recorded under the server's name
    import asyncssh

    alg, b64 = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()[:2]
    other.write_text(f"[127.0.0.1]:{sshd.port} {alg} {b64}\n")
    host = forwarded(sshd, known_hosts=str(other))
    try:
        with pytest.raises(LibvirtUnavailable, match="host key CHANGED"):
            await _domains(host)
        assert host.libvirt_forward is not None and host.libvirt_forward.path is None
        assert host.connection.state == ConnState.HOST_KEY_REFUSED
    finally:
        await host.close()


async def _until(cond, within: float = 20.0, what: str = "") -> None:
    for _ in range(int(within / 0.05)):
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached within {within} s: {what}")


async def test_killed_sshd_makes_host_unreachable_and_the_forward_is_rebuilt(sshd_factory, libvirtd):
    s = sshd_factory()
    host = forwarded(s, **FAST)
    engine = Engine([host], lambda h: [ConnectionProbe(h, interval=0.1), LibvirtProbe(interval=0.2)])

    def hs() -> HostState:
        return engine.state.hosts[0]

    def state(what: str) -> ConnState | None:
        c = hs().connection(what)
        return c.state if c else None

    engine.start()
    try:
        await _until(lambda: state("libvirt") == ConnState.UP, what="libvirt up over ssh")
        fwd = host.libvirt_forward
        assert fwd is not None and fwd.path is not None
        path = fwd.path
        assert os.path.exists(path)
        s.kill()
        await _until(lambda: state("ssh") == ConnState.UNREACHABLE, what="ssh unreachable")
        assert not os.path.exists(path), "the forward's socket outlived its connection"
        await _until(lambda: state("libvirt") == ConnState.UNREACHABLE, what="libvirt marked down")
        s.start()
        await _until(lambda: state("ssh") == ConnState.UP, what="ssh reconnected")
        await _until(lambda: state("libvirt") == ConnState.UP and fwd.path is not None, what="libvirt back")
        assert os.path.exists(path)
        assert not [e for e in hs().probe_errors if e.probe == "libvirt"]
    finally:
        await engine.stop()
        await host.close()
    assert not os.path.exists(path)


async def test_forwarded_socket_is_private(sshd, libvirtd):
    host = forwarded(sshd)
    try:
        await _domains(host)
        fwd = host.libvirt_forward
        assert fwd is not None and fwd.path is not None
        d = os.path.dirname(fwd.path)
        for p, mode in ((d, 0o700), (os.path.dirname(d), 0o700), (fwd.path, 0o600)):
            st = os.stat(p)
            assert st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == mode, (p, oct(st.st_mode))
        if os.geteuid() == 0 and os.access(SYS_PYTHON, os.X_OK):  # another user cannot reach it
            probe = textwrap.dedent(f"""
                import socket, sys
                s = socket.socket(socket.AF_UNIX)
                try:
                    s.connect({fwd.path!r})
                except PermissionError:
                    sys.exit(13)
                sys.exit(0)
            """)
            r = subprocess.run([SYS_PYTHON, "-c", probe], user="nobody", capture_output=True, timeout=30)
            assert r.returncode == 13, r.stderr
    finally:
        await host.close()


async def test_host_without_libvirt_is_absent_not_an_error(sshd):
    host = forwarded(sshd)
    host._libvirt = LibvirtForward(host, candidates=("/nonexistent/tse-libvirt-sock-ro",))
    engine = Engine([host], lambda h: [ConnectionProbe(h, interval=0.1), LibvirtProbe(interval=0.2)])
    try:
        await engine.refresh_once()
        hs = engine.state.hosts[0]
        c = hs.connection("libvirt")
        assert c is not None and c.state == ConnState.ABSENT and "no libvirt" in c.detail
        assert not hs.probe_errors
    finally:
        await engine.stop()
        await host.close()


def test_stale_forward_dirs_of_dead_processes_are_removed_at_start(tmp_path):
    """A tenantscope killed with SIGKILL leaves its dir; the next one removes it, and never
    the dir of a process that still runs."""
    base = tmp_path / "base"
    base.mkdir(mode=0o700)
    child = subprocess.Popen(["sleep", "30"])
    try:
        from probes.hosts.libvirt_forward import _start_time

        alive = base / f"fwd-{child.pid}-{_start_time(child.pid)}"
        reused = base / f"fwd-{child.pid}-1"  # same PID, another start time: a reused PID
        dead = base / "fwd-4194303-77"
        other = base / "notours"
        for p in (alive, reused, dead, other):
            p.mkdir()
            (p / "h1.sock").write_text("")
        removed = clean_stale(str(base))
        assert sorted(removed) == sorted([reused.name, dead.name])
        assert alive.exists() and other.exists() and not dead.exists() and not reused.exists()
    finally:
        child.kill()
        child.wait()


def test_explicit_libvirt_uri_of_a_remote_host_is_kept():
    from probes.hosts.ssh import hosts_from_targets
    from probes.session import Options

    (h,) = hosts_from_targets(Options(hosts=("root@hv9",), libvirt_uri="qemu+tls://hv9/system"))
    assert isinstance(h, SSHHost) and h.libvirt_forward is None
    assert asyncio.run(h.open_libvirt_uri()) == "qemu+tls://hv9/system"
    (g,) = hosts_from_targets(Options(hosts=("root@hv9:2222",)))
    assert isinstance(g, SSHHost) and g.libvirt_forward is not None
    assert g.host.libvirt_uri == "qemu+ssh://root@hv9:2222/system"
