"""`tenantscope check --host ...` against a real sshd: refused host keys, unknown hosts, failed
authentication and unreachable hosts are one clear line each, exit non-zero, no traceback;
bad fleet files are one line naming the file and line."""

from __future__ import annotations

import json

import asyncssh
import pytest

from tests.fixtures.sshd import accepted_logins, free_port, sshd  # noqa: F401
from tui.cli import main


def _fp(pub: str) -> str:
    return asyncssh.import_public_key(pub).get_fingerprint("sha256")


def _check(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["check", "--libvirt", "test:///default", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def base(sshd, tmp_path):
    cfg = tmp_path / "ssh_config"
    cfg.write_text("")
    return ["--identity", sshd.client_key, "--ssh-config", str(cfg)]


def test_check_over_ssh_connects(sshd, base, capsys):
    """The report is of the SSH host, from data read over SSH: sshd accepted the login, the only
    host is the SSH target, and its host checks judged facts (not skipped for want of them)."""
    before = accepted_logins(sshd)
    args = ("--host", sshd.target, "--known-hosts", sshd.known_hosts, "--format", "json")
    code, out, err = _check(capsys, *args, *base)
    assert "Traceback" not in out + err
    assert "host key" not in err and "unreachable" not in err, err
    assert code in (0, 1)  # 1 when a check fails on this machine; 2 means we could not look
    assert accepted_logins(sshd) > before
    doc = json.loads(out)
    name = f"127.0.0.1:{sshd.port}"
    assert [(h["name"], h["kind"], h["probe_errors"]) for h in doc["hosts"]] == [(name, "ssh", [])]
    host = {r["check_id"]: r for r in doc["results"] if r["check_id"] in ("HOST-01", "HOST-04", "HOST-07")}
    assert len(host) == 3 and all(r["host"] == name and r["status"] != "skipped" for r in host.values()), host


def test_unknown_host_is_refused_with_fingerprint(sshd, base, capsys, tmp_path):
    kh = tmp_path / "kh"
    kh.write_text("")
    code, out, err = _check(capsys, "--host", sshd.target, "--known-hosts", str(kh), *base)
    assert code == 2 and "Traceback" not in out + err
    lines = [ln for ln in err.splitlines() if ln.startswith("tenantscope:")]
    assert len(lines) == 1, err
    assert "host key refused" in lines[0] and "unknown host key" in lines[0]
    assert _fp(sshd.host_pub) in lines[0] and "--accept-new-host-keys" in lines[0]
    assert "unknown host key" in out  # and in the report itself


def test_accept_new_host_keys_flag(sshd, base, capsys, tmp_path):
    kh = tmp_path / "kh"
    code, out, err = _check(
        capsys, "--host", sshd.target, "--known-hosts", str(kh), "--accept-new-host-keys", *base
    )
    assert code in (0, 1) and "host key" not in err
    assert f"[127.0.0.1]:{sshd.port} ssh-ed25519 " in kh.read_text()


def test_changed_host_key_is_refused(sshd, base, capsys, tmp_path):
    alg, b64 = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode().split()[:2]
    kh = tmp_path / "kh"
    kh.write_text(f"[127.0.0.1]:{sshd.port} {alg} {b64}\n")
    code, out, err = _check(
        capsys, "--host", sshd.target, "--known-hosts", str(kh), "--accept-new-host-keys", *base
    )
    assert code == 2 and "Traceback" not in out + err
    assert "host key CHANGED" in err and _fp(sshd.host_pub) in err


def test_auth_failure(sshd, capsys, tmp_path):
    key = tmp_path / "stranger"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(key))
    cfg = tmp_path / "cfg"
    cfg.write_text("")
    code, out, err = _check(
        capsys,
        "--host",
        sshd.target,
        "--known-hosts",
        sshd.known_hosts,
        "--identity",
        str(key),
        "--ssh-config",
        str(cfg),
    )
    assert code == 2 and "Traceback" not in out + err
    assert "auth failed" in err and "authentication failed" in err


def test_unreachable(sshd, base, capsys):
    code, out, err = _check(
        capsys, "--host", f"ssh://root@127.0.0.1:{free_port()}", "--known-hosts", sshd.known_hosts, *base
    )
    assert code == 2 and "Traceback" not in out + err
    assert "unreachable" in err and "connection refused" in err


def test_one_bad_host_does_not_hide_the_good_one(sshd, base, capsys):
    code, out, err = _check(
        capsys,
        "--host",
        sshd.target,
        "--host",
        f"127.0.0.1:{free_port()}",
        "--known-hosts",
        sshd.known_hosts,
        *base,
    )
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.startswith("tenantscope:")]
    assert len(lines) == 1 and "unreachable" in lines[0]


@pytest.mark.parametrize(
    "args,msg",
    [
        (["--inventory", "/nonexistent/inv.ini"], "tenantscope: /nonexistent/inv.ini: no such file"),
        (["--host", "http://x"], "only ssh://"),
        (["--host", "hv1", "--identity", "/nonexistent/key"], "/nonexistent/key: no such file"),
    ],
)
def test_bad_fleet_input_is_one_line(args, msg, capsys):
    code = main(["check", *args])
    out, err = capsys.readouterr()
    assert code == 2 and msg in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_libvirt_uri_named_for_an_ssh_target_that_does_not_answer_is_an_error(sshd, base, capsys):
    """`--host hv --libvirt qemu+tcp://hv/system`: the URI is the user's (Host.libvirt_uri_given),
    so one that does not answer is said on stderr and the run exits 2, as for the local host's
    --libvirt and a libvirt view; the flag was set only for those, so an SSH target's failed
    URI went unsaid (exit 0 or 1). Real sshd; libvirt's port is a refused loopback port."""
    uri = f"qemu+tcp://127.0.0.1:{free_port()}/system"
    args = ["--libvirt", uri, "--host", sshd.target, "--known-hosts", sshd.known_hosts]
    code = main(["check", *args, *base])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in out + err, (code, err)
    assert f"libvirt {uri} unreachable" in err, err
