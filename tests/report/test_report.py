"""Incident report: Markdown structure, JSON schema, secrets scrubbed, from the TUI (e) with a
scrubbed SVG screenshot and from `tenantscope report` on the demo fleet (real libvirt test driver)."""

from __future__ import annotations

import json

import pytest

from probes.report.build import as_json, as_markdown, build
from probes.report.model import Ack
from probes.report.scrub import scrub
from tests.fixtures.runbook import GFX_PASSWORD, KEY_PATH, TOKEN, incident_state
from tests.fixtures.tui import T0, make_app
from tui.cli import main

SECRETS = (GFX_PASSWORD, KEY_PATH, TOKEN, "id_ed25519")


def test_markdown_sections_and_no_secrets():
    st = incident_state()
    net = next(f for f in st.findings if f.check_id == "NET-02")
    md = as_markdown(build(st, {net.key: Ack(net.key, "NET-02", "INC-7: moving globex", T0)}, now=T0))
    heads = [line for line in md.splitlines() if line.startswith("#")]
    assert heads[0] == "# Incident report: hv1"
    assert [h for h in heads if h.startswith("## ")] == [
        "## Findings",
        "## Reachability",
        "## Resource peaks",
        "## Log lines",
        "## Acknowledgements",
    ]
    assert "### NET-02: A segment shared by tenants (FAIL, high)" in heads  # the catalog's title
    assert "Tenants involved: acme, globex" in md
    assert "**WRONG**" in md  # the matrix cell behind NET-02
    assert 'apparmor="DENIED"' in md  # the log line behind LOG-01
    assert "INC-7: moving globex" in md
    assert "ip link set h2 nomaster" in md
    for s in SECRETS:
        assert s not in md


def test_json_schema_and_no_secrets():
    st = incident_state()
    raw = as_json(build(st, now=T0))
    for s in SECRETS:
        assert s.encode() not in raw
    doc = json.loads(raw)
    assert doc["schema"] == 1
    assert set(doc) >= {
        "generated_at",
        "hosts",
        "time_from",
        "time_to",
        "tenants_involved",
        "findings",
        "matrices",
        "peaks",
        "logs",
        "acknowledgements",
    }
    assert doc["hosts"] == ["hv1"] and doc["time_from"] <= doc["time_to"]
    f = doc["findings"][0]
    assert set(f) >= {"check_id", "status", "severity", "evidence", "fix", "why", "acknowledged"}
    assert [x["check_id"] for x in doc["findings"]] == ["NET-02", "VM-08", "LOG-01"]  # fail, then warn
    assert doc["matrices"][0]["host"] == "hv1"
    assert {c["status"] for c in doc["matrices"][0]["cells"]} >= {"wrong"}


@pytest.mark.parametrize(
    "text,secret",
    [
        ("<graphics type='spice' passwd=\"pw123\"/>", "pw123"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaA\n-----END OPENSSH PRIVATE KEY-----", "b3BlbnNzaA"),
        ("rsync -e 'ssh -i /home/u/keys/deploy' x", "/home/u/keys/deploy"),
        ("curl -H 'Authorization: Bearer abcdef123' https://x", "abcdef123"),
        ("mysql --password hunter2", "hunter2"),
        ("qemu+ssh://root:pa55@hv2/system", "pa55"),
        ("ssh -oIdentityFile=/srv/k root@x", "/srv/k"),
    ],
)
def test_scrub_rules(text, secret):
    assert secret not in scrub(text)


async def test_e_in_the_tui_writes_md_json_svg_without_secrets(tmp_path):
    app, _ = make_app(incident_state())
    app.report_dir = str(tmp_path)
    async with app.run_test(size=(300, 48)) as pilot:
        await pilot.press(
            "4"
        )  # the Logs pane (half the width of 300 columns) shows the line with the token and key path
        await pilot.pause()
        svg_raw = app.export_screenshot()
        assert "ghp_plantedTOKEN" in svg_raw.replace("&#160;", " ")  # it is on screen...
        await pilot.press("e")
        await pilot.pause()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 3 and all(n.startswith("tenantscope-report-hv1-20260921-141321") for n in names)
    assert {n.rsplit(".", 1)[1] for n in names} == {"md", "json", "svg"}
    for p in tmp_path.iterdir():
        text = p.read_text().replace("&#160;", " ")
        for s in SECRETS:
            assert s not in text, (p.name, s)  # ...but not in any file
    svg = next(tmp_path.glob("*.svg")).read_text()
    assert svg.startswith("<svg") and "Accepted" in svg.replace("&#160;", " ")


def test_report_command_on_the_demo_fleet(tmp_path, capsys):
    assert main(["report", "--demo", "-o", str(tmp_path)]) == 0
    md = next(tmp_path.glob("tenantscope-report-demo-hv1-*.md")).read_text()
    assert md.startswith("# Incident report: demo-hv1")
    doc = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert doc["source"] == "demo" and doc["findings"]
    assert "wrote" in capsys.readouterr().out


def test_the_report_of_a_host_never_reached_says_its_cause_once(tmp_path, capsys):
    """`tenantscope report --host` on a refused loopback port: the Markdown was ~1,200 lines
    repeating the cause 84 times (a table row and a section per check in error); now a 'Not
    observed' section says it once with what was tried, the Findings leave that host's errors
    out; the JSON keeps every finding and names the host not observed."""
    from tests.fixtures.sshd import free_port

    port = free_port()
    assert main(["report", "--host", f"ssh://root@127.0.0.1:{port}", "-o", str(tmp_path)]) == 2
    md = next(tmp_path.glob("*.md")).read_text()
    assert md.count("connection refused") == 1 and len(md.splitlines()) < 60, md
    assert "## Not observed\n\n- **127.0.0.1:" in md and f"tried: SSH to root@127.0.0.1:{port}" in md
    assert "No failing, warning or erroring check on a host observed." in md
    doc = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert [n["host"] for n in doc["not_observed"]] == [f"127.0.0.1:{port}"]
    assert len([f for f in doc["findings"] if f["status"] == "error"]) > 30
    assert "not observed" in capsys.readouterr().err


def test_report_from_a_snapshot_and_bad_file(tmp_path, capsys):
    from probes import snapshot

    snap = tmp_path / "s.json"
    snapshot.save(incident_state(), snap)
    assert main(["report", "--from", str(snap), "-o", str(tmp_path / "out")]) == 0
    assert len(list((tmp_path / "out").glob("*.md"))) == 1
    (tmp_path / "bad.json").write_text("{nope")
    assert main(["report", "--from", str(tmp_path / "bad.json")]) == 2
    assert "bad.json" in capsys.readouterr().err
