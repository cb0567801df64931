"""What a new user meets first (issue 14 item 9): no DSA deprecation noise on SSH use,
`tenantscope --version`, and `serve` without `--host-key` making its own key (as sshd does)
and printing its fingerprint. Real processes: the CLI in a subprocess, a real serve process,
OpenSSH's ssh-keyscan / ssh-keygen to read the key it serves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.serve import free_port, keygen
from tests.helpers import REPO, needs_tool


def _cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_ssh_use_prints_no_dsa_deprecation_warnings():
    # a port nothing listens on: the SSH transport is built and used (asyncssh imported and
    # connecting), the host is unreachable; Python's default warning filters apply
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    r = _cli("check", "--host", f"127.0.0.1:{free_port()}", env=env)
    assert "unreachable" in r.stdout + r.stderr  # it really tried
    assert "CryptographyDeprecationWarning" not in r.stderr
    assert "DSA is deprecated" not in r.stderr


def test_only_asyncssh_dsa_warnings_are_silenced():
    code = (
        "import warnings\n"
        "from probes.hosts.quiet_asyncssh import asyncssh\n"
        "from cryptography.utils import CryptographyDeprecationWarning as W\n"
        "warnings.warn('DSA is deprecated (from elsewhere)', W)\n"
        "warnings.warn('something else', W)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.stderr.count("CryptographyDeprecationWarning") == 2, r.stderr  # not asyncssh's: shown


def test_version():
    from importlib.metadata import version

    r = _cli("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"tenantscope {version('tenantscope')}"


@needs_tool("ssh-keygen", "ssh-keyscan")
@pytest.mark.timeout(60)
def test_serve_without_host_key_creates_one_and_prints_its_fingerprint(tmp_path: Path):
    keygen(tmp_path / "client")
    (tmp_path / "authorized_keys").write_text((tmp_path / "client.pub").read_text())
    env = os.environ | {"XDG_STATE_HOME": str(tmp_path / "state")}
    key = tmp_path / "state" / "tenantscope" / "ssh_host_ed25519_key"

    def serve_once() -> tuple[str, str]:
        port = free_port()
        p = subprocess.Popen(
            [sys.executable, "-m", "tui.cli", "serve", "--demo", "--listen", f"127.0.0.1:{port}"]
            + ["--authorized-keys", str(tmp_path / "authorized_keys")],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert p.stdout is not None
            lines = p.stdout.readline() + p.stdout.readline()
            assert "listening on" in lines, (lines, p.stderr.read() if p.stderr else "")
            scan = subprocess.run(
                ["ssh-keyscan", "-t", "ed25519", "-p", str(port), "127.0.0.1"],
                capture_output=True,
                text=True,
                timeout=20,
            ).stdout
            return lines, scan
        finally:
            p.terminate()
            p.wait(10)

    lines, scan = serve_once()
    assert key.is_file() and (key.stat().st_mode & 0o777) == 0o600
    fp = subprocess.run(
        ["ssh-keygen", "-lf", str(key) + ".pub"], capture_output=True, text=True
    ).stdout.split()[1]
    assert fp.startswith("SHA256:") and fp in lines and "created now" in lines and str(key) in lines
    served_key = scan.split()[1:3]
    assert served_key == Path(str(key) + ".pub").read_text().split()[:2]
    # the second start reuses it (clients' known_hosts stay valid)
    lines2, scan2 = serve_once()
    assert fp in lines2 and "created now" not in lines2 and scan2.split()[1:3] == served_key
