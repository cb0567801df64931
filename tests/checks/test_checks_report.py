"""Renderings of check results: JSON against its JSON Schema (jsonschema), Prometheus through
prometheus_client's exposition-format parser, text with hostile host strings, the catalog and
the README table it generates."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from probes.checks import report
from probes.checks.base import load_catalog, run_checks
from probes.model import Evidence, Finding, Host, HostState, Severity, State, Status
from probes.untrusted import visible
from tests.fixtures.checks import XML_DIR, xml_state
from tests.helpers import REPO

ROOT = REPO
EVIL = 'hv"1\\\n\x1b]0;pwned\x07[@click=app.quit]'

ISSUE_IDS = (
    ["HOST-%02d" % i for i in range(1, 12)]
    + [
        "VM-01",
        "VM-02",
        "VM-03",
        "VM-06",
        "VM-07",
        "VM-08",
        "VM-09",
        "VM-10",
        "VM-11",
        "VM-13",
        "VM-14",
        "NET-08",
    ]
    + ["CTR-%02d" % i for i in (1, 2, 3, 4, 5, 6, 8, 9)]
    + ["SW-01", "SW-02"]
)


def evil_state() -> State:
    f = Finding(
        check_id="VM-01",
        area="vm",
        title="t",
        status=Status.FAIL,
        severity=Severity.HIGH,
        host=EVIL,
        summary=f"domain {EVIL} unconfined",
        tenants=("ac\x1bme",),
        workloads=(f"{EVIL}/vm/x",),
        evidence=(Evidence(f"domain '{EVIL}'", "type='none'"),),
        fix=f"virsh edit {EVIL}",
    )
    return State(hosts=(HostState(host=Host(EVIL)),), findings=(f,), taken_at=1_800_000_000.0)


def demo_like() -> State:
    st = xml_state(sorted(XML_DIR.glob("*.xml")))
    from dataclasses import replace

    return replace(st, findings=run_checks(st))


def test_json_validates_against_its_schema():
    schema = report.json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    for st in (demo_like(), evil_state(), State()):
        doc = json.loads(report.as_json(st))
        jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
        assert doc["schema_version"] == report.JSON_SCHEMA_VERSION
        assert report.load_report(report.as_json(st)).results == tuple(
            report._sorted(report.normalized(st).findings)
        )
    doc = json.loads(report.as_json(demo_like()))
    doc["results"][0]["status"] = "sort-of"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)


def test_json_carries_evidence_and_raw_host_text():
    doc = json.loads(report.as_json(evil_state()))
    r = doc["results"][0]
    assert r["host"] == EVIL and r["evidence"][0]["detail"] == "type='none'"  # JSON escapes, raw kept
    assert doc["generated_at"] == "2027-01-15T08:00:00Z" and doc["summary"]["fail"] == 1


def test_prometheus_parses_and_escapes_labels():
    text = report.as_prometheus(evil_state())
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    s = fams["tenantscope_check_status"].samples
    assert len(s) == 1 and s[0].value == 1
    assert s[0].labels == {
        "host": visible(EVIL),
        "check": "VM-01",
        "area": "vm",
        "status": "fail",
        "severity": "high",
    }
    assert "\x1b" not in text and "\x07" not in text
    assert fams["tenantscope_probe_errors"].samples[0].value == 0


def test_prometheus_one_series_per_check_and_host_with_the_worst_status():
    st = demo_like()
    fams = {f.name: f for f in text_string_to_metric_families(report.as_prometheus(st))}
    series = fams["tenantscope_check_status"].samples
    keys = [(x.labels["host"], x.labels["check"]) for x in series]
    assert len(keys) == len(set(keys)) == len({(f.host or "hv1", f.check_id) for f in st.findings})
    vm06 = next(x for x in series if x.labels["check"] == "VM-06")
    assert vm06.labels["status"] == "fail" and vm06.labels["severity"] == "high"
    counts = {
        (x.labels["check"], x.labels["status"]): x.value for x in fams["tenantscope_check_results"].samples
    }
    assert counts[("VM-07", "warn")] == 3


def test_text_is_grouped_by_area_with_fix_and_safe():
    text = report.as_text(demo_like())
    heads = re.findall(r"^== (.+) ==$", text, re.M)
    order = [report.AREA_TITLE[a] for a in report.AREA_ORDER]
    assert heads == sorted(set(heads), key=order.index) and {"Host", "VMs", "Containers"} <= set(heads)
    assert "FAIL  VM-01" in text and "fix: virsh edit globex-app-1" in text
    assert re.search(r"^summary: \d+ fail, \d+ error, \d+ warn, \d+ skipped, \d+ pass$", text, re.M)
    evil = report.as_text(evil_state())
    assert "\x1b" not in evil and "\x07" not in evil and "\\x1b]0;pwned\\x07" in evil


def test_text_prints_a_fix_of_several_commands_one_a_line():
    """NET-04's fix is one command per port: the text report printed them on one line joined
    by an escaped newline ('isolated on\\x0abridge link ...'), which no one can paste."""
    f = replace(
        evil_state().findings[0],
        host="hv1",
        fix="bridge link set dev a isolated on\nbridge link set dev b\x1b isolated on",
    )
    text = report.as_text(State(hosts=(HostState(host=Host("hv1")),), findings=(f,)))
    assert (
        "      fix: bridge link set dev a isolated on\n           bridge link set dev b\\x1b isolated on\n"
        in text
    )


def test_catalog_has_the_issues_ids_with_why_and_fix():
    cat = load_catalog()
    missing = [i for i in ISSUE_IDS if i not in cat]
    assert not missing
    for cid in ISSUE_IDS:
        s = cat[cid].spec
        assert re.fullmatch(r"[A-Z]+-\d\d", s.id) and s.area and s.title and s.fix, cid
        assert 1 <= len(re.findall(r"[.!?](\s|$)", s.why)) <= 3, (cid, s.why)


def test_readme_catalog_table_matches_the_code():
    text = (ROOT / "README.md").read_text()
    assert report.README_START in text and report.README_END in text, (
        "run: python -m probes.checks.report README.md"
    )
    between = text.split(report.README_START, 1)[1].split(report.README_END, 1)[0]
    assert between == report.readme_block(load_catalog()), (
        "README catalog table is stale: run `.venv/bin/python -m probes.checks.report README.md`"
    )


def test_exit_code():
    assert report.exit_code(evil_state()) == 1
    assert report.exit_code(State()) == 0
