"""`tenantscope check` end to end: the demo fleet (real libvirt test driver) with its planted
faults, exit codes, formats, bad arguments; the local host when libvirtd + QEMU are here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from probes.checks import report
from tests.helpers import needs_tool
from tui.cli import main

# The demo fleet's planted isolation faults (probes/demo/fleet.xml): check id -> tenants of a
# non-passing result that must be there.
PLANTED = {
    "VM-01": {("initech",)},  # an unconfined domain
    "VM-06": {("acme", "globex")},  # overlapping vcpupin across tenants
    "VM-07": {("acme",), ("initech",)},  # emulated disk bus / NIC model
    "VM-08": {("globex",)},  # VNC on 0.0.0.0 without a password
    "VM-09": {("acme", "globex")},  # a disk image attached to two tenants
    "LOG-02": {("globex",)},  # its simulated logs (probes/demo/logs.py): the shared disk's lock
    "LOG-03": {("initech",)},  # ... and an OOM kill of a domain without a memory limit
}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["check", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def demo_json():
    """One JSON run over the demo fleet (a subprocess: the real console script path)."""
    p = subprocess.run(
        [sys.executable, "-m", "tui.cli", "check", "--demo", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return p.returncode, json.loads(p.stdout), p.stderr


def test_demo_finds_the_planted_faults_with_ids_tenants_and_fixes(demo_json):
    rc, doc, _ = demo_json
    assert rc == 1  # there are FAILs
    jsonschema.validate(doc, report.json_schema(), cls=jsonschema.Draft202012Validator)
    assert doc["source"] == "demo" and doc["hosts"][0]["name"] == "demo-hv1"
    for cid, want in PLANTED.items():
        found = {
            tuple(r["tenants"])
            for r in doc["results"]
            if r["check_id"] == cid and r["status"] in ("fail", "warn")
        }
        assert want <= found, (cid, found)
        for r in doc["results"]:
            if r["check_id"] == cid and r["status"] in ("fail", "warn"):
                assert r["fix"] and r["evidence"] and r["workloads"], r
    vm01 = next(r for r in doc["results"] if r["check_id"] == "VM-01" and r["status"] == "fail")
    assert "seclabel" in vm01["evidence"][0]["where"]


def test_demo_host_checks_are_skipped_with_the_reason(demo_json):
    _, doc, _ = demo_json
    h = [r for r in doc["results"] if r["check_id"] == "HOST-02"]
    assert [r["status"] for r in h] == ["skipped"] and "demo" in h[0]["summary"]


def test_text_and_prometheus_on_the_demo(capsys):
    rc, out, _ = run(capsys, "--demo", "--check", "VM-08", "--check", "vm-09")
    assert rc == 1
    assert "== VMs ==" in out and "FAIL  VM-08" in out and "fix:" in out
    assert "VM-01" not in out  # only the checks asked for
    rc, out, _ = run(capsys, "--demo", "--format", "prometheus", "--check", "VM-09")
    fams = {f.name: f for f in text_string_to_metric_families(out)}
    (s,) = fams["tenantscope_check_status"].samples
    assert s.labels["check"] == "VM-09" and s.labels["status"] == "fail" and s.labels["host"] == "demo-hv1"


def test_exit_zero_when_everything_passes(capsys):
    rc, out, _ = run(capsys, "--demo", "--check", "VM-03")  # no static label without relabel
    assert rc == 0 and "PASS  VM-03" in out


def test_list_and_markdown_and_schema(capsys):
    rc, out, _ = run(capsys, "--list")
    assert rc == 0 and "HOST-01" in out and "CTR-09" in out and "NET-08" in out
    rc, out, _ = run(capsys, "--list", "--format", "markdown")
    assert rc == 0 and out.startswith("| id | area |")
    rc, out, _ = run(capsys, "--schema")
    assert rc == 0 and json.loads(out)["title"] == "tenantscope check report"


def test_bad_arguments_exit_2(capsys):
    rc, _, err = run(capsys, "--demo", "--check", "NOPE-1")
    assert rc == 2 and "unknown check id NOPE-1" in err
    rc, _, err = run(capsys, "--demo", "--format", "markdown")
    assert rc == 2 and "--list" in err
    with pytest.raises(SystemExit) as e:
        main(["check", "--format", "yaml"])
    assert e.value.code == 2


def test_bad_silence_config_exit_2(capsys, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[checks]\nsilence = { "VM-99" = ["acme"] }\n')
    rc, _, err = run(capsys, "--demo", "--config", str(cfg))
    assert rc == 2 and str(cfg) in err and "VM-99" in err


def test_silence_config_turns_a_warning_into_a_visible_pass(capsys, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[checks]\nsilence = { "VM-13" = ["acme", "globex"] }\n')
    rc, out, _ = run(capsys, "--demo", "--config", str(cfg), "--check", "VM-13", "--format", "json")
    doc = json.loads(out)
    assert not [r for r in doc["results"] if r["status"] == "warn"]
    assert any("silenced" in r["summary"] and str(cfg) in r["summary"] for r in doc["results"])


def test_unreachable_host_exits_2(capsys):
    rc, _, err = run(capsys, "--host", "ssh://root@127.0.0.1:1", "--check", "VM-01")
    assert rc == 2 and "unreachable" in err


def test_a_host_never_reached_gets_no_pass_fail_or_warning(capsys):
    """A check never vouches for what was not seen: on a host where nothing was observed (SSH
    refused on a loopback port nobody listens on), empty logs and limits are not 'nothing
    found' (LOG-01..03, VM-12, CTR-07 passed) nor 'no log source' (LOG-04 failed): each is an
    ERROR saying why. Every check's result is an error or a skip."""
    rc, out, _ = run(capsys, "--host", "ssh://root@127.0.0.1:1", "--format", "json")
    doc = json.loads(out)
    assert rc == 2
    statuses = {r["status"] for r in doc["results"]}
    assert statuses <= {"error", "skipped"}, sorted({(r["check_id"], r["status"]) for r in doc["results"]})
    logs = [r for r in doc["results"] if r["check_id"] in ("LOG-01", "LOG-04", "VM-12")]
    assert len(logs) == 3 and all(
        "nothing observed on" in r["summary"] and "refused" in r["summary"] for r in logs
    )


def test_a_host_never_reached_is_said_once_with_what_was_tried(capsys):
    """On-call view of a host that refused SSH (a loopback port nobody listens on): the text
    report says the cause once, with the host and what was tried, instead of ~40 ERROR lines
    each repeating it (most with "(next attempt in 1 s)", though a headless run makes none);
    the check ids that could not look at it are listed as ranges; stderr says the host was not
    observed and the exit status is 2 (the run itself failed). JSON keeps one result per check."""
    from tests.fixtures.sshd import free_port

    port = free_port()
    rc, out, err = run(capsys, "--host", f"ssh://root@127.0.0.1:{port}")
    assert rc == 2
    cause = f"root@127.0.0.1:{port}: unreachable: connection refused"
    assert out.count("connection refused") == 1, out
    assert f"== Not observed: 127.0.0.1:{port} ==\nERROR {cause}\n" in out
    assert f"tried: SSH to root@127.0.0.1:{port}, for the probes ssh," in out
    assert "HOST-01..12" in out and "next attempt" not in out + err
    assert "\nERROR HOST-01" not in out and "== Probe errors ==" not in out
    assert err.strip() == f"tenantscope: 127.0.0.1:{port} not observed: SSH to {cause}"
    rc, out, _ = run(capsys, "--host", f"ssh://root@127.0.0.1:{port}", "--format", "json")
    doc = json.loads(out)
    assert rc == 2 and {r["check_id"] for r in doc["results"] if r["status"] == "error"} >= {
        "HOST-01",
        "SW-02",
    }
    assert not [e for h in doc["hosts"] for e in h["probe_errors"] if "next attempt" in e["message"]]
    # machines are told too: the host's entry says why nothing was observed there
    assert [h["not_observed"] for h in doc["hosts"]] == [cause]
    jsonschema.validate(doc, report.json_schema())


def test_a_malformed_libvirt_test_file_is_a_host_not_observed(capsys, tmp_path):
    """A libvirt view (the real test driver) whose node file is malformed: libvirt is its only
    source, so nothing was observed there. The checks vouched for it anyway (CTR-07 'nothing
    found', NET-09 'nothing forwards' passed on an empty topology) and the cause was printed 20
    times; now one block naming the file's line, no pass, stderr says not observed, exit 2."""
    bad = tmp_path / "fleet.xml"
    bad.write_text('<node><domain type="test"><name>x</name>\n<memory>')
    rc, out, err = run(capsys, "--libvirt", f"test://{bad}", "--format", "json")
    assert rc == 2
    assert {r["status"] for r in json.loads(out)["results"]} <= {"error", "skipped"}
    rc, out, err = run(capsys, "--libvirt", f"test://{bad}")
    assert rc == 2 and out.count("Premature end of data") == 1, out
    assert f"tried: libvirt at test://{bad}, for the probes libvirt, resources" in out
    assert "not observed: libvirt" in err and f"{bad}:2:" in err


def test_a_missing_libvirt_test_file_prints_nothing_past_our_messages(capfd, tmp_path):
    """`--libvirt test:///typo.xml`: the networks and statistics readers opened their own
    connection to the missing file, and libxml2 printed 'I/O warning : failed to load external
    entity' on fd 2 (past libvirt's error handler: over the console's screen) twice. Now no
    connection is tried to a file that is not there; the one message names it (real driver)."""
    missing = tmp_path / "typo.xml"
    rc = main(["check", "--libvirt", f"test://{missing}"])
    out, err = capfd.readouterr()
    assert rc == 2 and "I/O warning" not in err + out, err
    assert out.count(f"no such file {missing}") == 1 and "not observed" in err


def test_a_host_name_with_an_empty_label_is_said_in_words(capsys):
    """`--host nosuch..host` (a typo): the resolver's IDNA encoding refused it and the user read
    "UnicodeError: encoding with 'idna' codec failed (UnicodeError: label empty or too long)"."""
    rc, out, err = run(capsys, "--host", "root@nosuch..host")
    assert rc == 2 and "idna" not in out + err and "UnicodeError" not in out + err, err
    assert "nosuch..host: unreachable: not a valid host name (an empty or too long label)" in err


@needs_tool("journalctl")
def test_a_journal_file_named_but_not_readable_is_said_and_exits_2(capsys, tmp_path):
    """`--journal-file` naming a file that is not a journal: LOG-01 passed ('nothing found')
    and nothing said the journal was never read; now stderr names it with journalctl's words
    and the run exits 2 (the run itself failed, as for a --libvirt URI that did not answer)."""
    bad = tmp_path / "not-a-journal.journal"
    bad.write_text("garbage\n")
    rc, out, err = run(capsys, "--journal-file", str(bad), "--check", "LOG-01")
    assert rc == 2, (out, err)
    assert f"journal:{bad} absent: Failed to open files" in err, err


def test_probe_errors_of_one_cause_are_one_line():
    """The text report's probe errors: one line per distinct failure on a host, naming its probes."""
    from probes.model import Host, HostState, ProbeError, State, Workload, WorkloadKind

    hs = HostState(
        host=Host("hv1"),
        workloads=(Workload(kind=WorkloadKind.NETNS, name="a", host="hv1"),),
        probe_errors=(
            ProbeError("netns", "hv1", "boom", 1.0),
            ProbeError("facts", "hv1", "boom", 1.0),
            ProbeError("logs", "hv1", "other", 1.0),
        ),
    )
    text = report.as_text(State(hosts=(hs,), taken_at=1.0))
    assert "ERROR probes netns, facts on hv1: boom\n" in text and "ERROR probe logs on hv1: other\n" in text
    assert text.count("boom") == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (reads libvirt's config and sockets)")
def test_local_host_runs_every_check_without_crashing(capsys):
    """`tenantscope check` on this machine: every check gives a result; none crashes."""
    rc, out, _ = run(capsys, "--format", "json")
    doc = json.loads(out)
    assert rc in (0, 1)
    ids = {r["check_id"] for r in doc["results"]}
    assert {"HOST-01", "VM-01", "CTR-01", "SW-01"} <= ids
    crashed = [r for r in doc["results"] if r["summary"].startswith("check failed")]
    assert not crashed, crashed
    sw01 = next(r for r in doc["results"] if r["check_id"] == "SW-01")
    assert sw01["status"] == "pass" and os.uname().release in sw01["summary"]


def test_session_registers_the_facts_probe():
    from probes.hosts.local import LocalHost
    from probes.session import Options, make_probes

    live = [p for p in make_probes(Options())(LocalHost("hv1")) if p.name == "facts"]
    assert len(live) == 1 and not live[0].updates
    asked = [p for p in make_probes(Options(updates=True))(LocalHost("hv1")) if p.name == "facts"]
    assert asked[0].updates and asked[0].timeout > live[0].timeout
    assert not [p for p in make_probes(Options(demo=True))(LocalHost("demo")) if p.name == "facts"]


def test_every_virsh_fix_of_the_demo_pastes(demo_json):
    """A finding's fix is commands to paste, one a line, the why or the XML to change as a
    shell comment (`  # ...`). VM-01/03/07/08 said `virsh edit NAME: <xml>`: pasted, virsh was
    asked for a domain named 'NAME:'. Every virsh line's domain is a domain of the demo."""
    import shlex

    _, doc, _ = demo_json
    domains = {w.split("/")[-1] for r in doc["results"] for w in r["workloads"]}
    seen = 0
    for r in doc["results"]:
        if r["status"] not in ("fail", "warn"):
            continue
        for line in (r["fix"] or "").split("\n"):
            if not line.startswith("virsh "):
                continue
            argv = shlex.split(line.split("  # ", 1)[0])
            if argv[1] in ("edit", "detach-disk", "memtune", "schedinfo"):
                assert argv[2] in domains, (r["check_id"], line)
                seen += 1
    assert seen >= 8
