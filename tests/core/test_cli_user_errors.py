"""What a user meets when the input or the host is wrong (found by trying the CLI as a new
user would): one line naming what and where, no traceback, an exit code a script can trust.
The CLI's main() in this process; the libvirt test driver (real libvirt API) as the host that
cannot be read."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from tui.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def domain_file(tmp_path: Path) -> str:
    """A domain XML where the test driver wants a <node> file: libvirt refuses to open it."""
    p = tmp_path / "one-domain.xml"
    p.write_text("<domain type='test'><name>d1</name><memory>1024</memory></domain>\n")
    return f"test://{p}"


def test_unwritable_log_file_is_one_line(capsys, tmp_path):
    rc, _, err = run(
        capsys, "check", "--demo", "--check", "VM-03", "--log-file", str(tmp_path / "no" / "x.log")
    )
    assert rc == 2 and "Traceback" not in err
    assert (
        err.strip() == f"tenantscope: --log-file {tmp_path}/no/x.log: cannot write: No such file or directory"
    )


def test_interval_must_be_positive(capsys):
    for bad in ("0", "-3", "nan", "soon"):
        with pytest.raises(SystemExit) as e:
            main(["demo", "--interval", bad])
        assert e.value.code == 2
        assert "argument --interval" in capsys.readouterr().err


def test_unknown_option_is_reported_with_the_commands_usage(capsys):
    with pytest.raises(SystemExit) as e:
        main(["check", "--demo", "--bogus"])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert (
        "usage: tenantscope check" in err
        and "tenantscope check: error: unrecognized arguments: --bogus" in err
    )


def test_check_of_an_unreadable_libvirt_view_exits_2_naming_it(capsys, domain_file):
    """The host's only source did not answer: every VM check errs and the rest pass on nothing.
    That is a failed run (2) with the reason on stderr, not a clean bill (it exited 0)."""
    rc, out, err = run(capsys, "check", "--libvirt", domain_file, "--format", "json")
    assert rc == 2
    assert any(r["status"] == "error" for r in json.loads(out)["results"])
    assert f"libvirt {domain_file} unreachable" in err and "expecting root element of 'node'" in err


def test_no_vm_or_segment_check_passes_on_vms_it_could_not_see(capsys, domain_file):
    """With the host's libvirt not answering, the VM limit checks err like the other VM checks
    and the segment checks say their picture lacks the VMs: no PASS vouches for unseen VMs
    (VM-04, VM-05, NET-02, NET-04..07 said "PASS nothing found")."""
    ids = ("VM-04", "VM-05", "NET-02", "NET-04", "NET-05", "NET-06", "NET-07")
    rc, out, _ = run(
        capsys, "check", "--libvirt", domain_file, "--format", "json", *(f"--check={i}" for i in ids)
    )
    assert rc == 2
    got = {(r["check_id"], r["status"], r["summary"]) for r in json.loads(out)["results"]}
    assert {c for c, *_ in got} == set(ids), got
    assert not [g for g in got if g[1] == "pass"], got
    for c, status, summary in got:
        assert status == "error" and "unreachable" in summary, (c, status, summary)


def test_a_libvirt_uri_the_user_named_that_has_no_driver_is_an_error(capsys):
    """`--libvirt bogus:///x`: libvirt has no driver for it. The user named it, so the VM checks
    err naming it (they said "SKIP no libvirt on this host") and check exits 2."""
    rc, out, err = run(capsys, "check", "--libvirt", "bogus:///x", "--format", "json", "--check=VM-04")
    assert rc == 2 and "bogus:///x" in err
    (r,) = json.loads(out)["results"]
    assert r["status"] == "error" and "bogus:///x" in r["summary"], r


def test_snapshot_of_an_unreadable_host_says_so_and_exits_2(capsys, tmp_path, domain_file):
    """A "known good" baseline holding nothing of the host is no baseline: still written (it
    is what was seen), but named on stderr and exit 2, as `check` does."""
    out_file = tmp_path / "good.json"
    rc, out, err = run(capsys, "snapshot", "--libvirt", domain_file, "-o", str(out_file))
    assert rc == 2 and out_file.exists() and out.startswith("wrote ")
    assert "unreachable" in err
    rc, _, err = run(capsys, "snapshot", "--demo", "-o", str(out_file))
    assert rc == 0 and err == ""


def test_alerting_install_runs_a_command_that_exists(capsys, tmp_path, monkeypatch):
    """With `tenantscope` not on PATH (a venv not activated, sudo's secure_path), ExecStart was
    the one word '.../python -m tui.cli' quoted whole: systemd found no such program and the
    checks never ran. A missing textfile directory is named (the timer would fail until then)."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    rc, out, err = run(
        capsys,
        "alerting",
        "install",
        "--unit-dir",
        str(tmp_path / "units"),
        "--textfile-dir",
        str(tmp_path / "nope"),
    )
    assert rc == 0 and "wrote" in out
    service = (tmp_path / "units" / "tenantscope-check.service").read_text()
    exec_line = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    argv = shlex.split(exec_line.removeprefix("ExecStart="))
    assert Path(argv[0]).is_file() and "check" in argv, argv
    assert f"{tmp_path}/nope" in err and "does not exist" in err


def test_record_needs_a_positive_duration_and_size(capsys, tmp_path):
    """`record --duration -5` wrote a recording of no observation and exited 0."""
    for opt, bad in (("--duration", "-5"), ("--duration", "0"), ("--max-size", "0")):
        with pytest.raises(SystemExit) as e:
            main(["record", "--demo", "-o", str(tmp_path / "r.tsr"), opt, bad])
        assert e.value.code == 2 and f"argument {opt}: must be more than 0" in capsys.readouterr().err
    assert not (tmp_path / "r.tsr").exists()


def test_replay_of_a_snapshot_says_what_opens_it(capsys, tmp_path):
    """A saved State is not a recording: replay says so and names what opens a snapshot."""
    snap = tmp_path / "good.json"
    assert run(capsys, "snapshot", "--demo", "-o", str(snap))[0] == 0
    rc, _, err = run(capsys, "replay", str(snap))
    assert rc == 2 and "not a tenantscope recording" in err
    assert "saved State (snapshot)" in err and "report --from" in err and "Traceback" not in err
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01not json")
    rc, _, err = run(capsys, "replay", str(junk))
    assert rc == 2 and "not a tenantscope recording" in err and "saved State" not in err
