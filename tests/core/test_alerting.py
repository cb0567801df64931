"""Prometheus alerting rules (probes/alerting) tested with the real `promtool test rules`, on
series produced by real `tenantscope check --demo --format prometheus` runs. The alerts
expected are worked out from the same run's `--format json` report (another code path), so a
rule or an exposition that drifts from the checks fails here.

The run's timestamp series is shifted onto promtool's clock (promtool starts at t=0): that is
the only value not taken as printed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from probes import alerting
from tests.helpers import REPO, needs_tool

pytestmark = needs_tool("promtool")
SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?P<labels>\{.*\})? (?P<value>\S+)$")
NODE = {"instance": "hv1:9100", "job": "node"}  # what node_exporter's scrape adds


def _tenantscope(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=120
    )


def _series(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not exposition format: {line!r}"
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m["labels"] or ""))
        out.append((m["name"], labels, float(m["value"])))
    return out


def _selector(name: str, labels: dict[str, str]) -> str:
    body = ",".join(f'{k}="{v}"' for k, v in {**labels, **NODE}.items())
    return f"{name}{{{body}}}"


@pytest.fixture(scope="module")
def demo_run() -> tuple[str, dict]:
    prom = _tenantscope("check", "--demo", "--format", "prometheus")
    assert prom.returncode == 1, prom.stderr  # the demo fleet has failing checks
    js = _tenantscope("check", "--demo", "--format", "json")
    return prom.stdout, json.loads(js.stdout)


def _promtool(tmp_path, tests: list[dict]) -> subprocess.CompletedProcess[str]:
    rules = tmp_path / "tenantscope.rules.yml"
    rules.write_text(alerting.rules())
    spec = tmp_path / "test.yml"
    spec.write_text(yaml.safe_dump({"rule_files": [rules.name], "evaluation_interval": "1m", "tests": tests}))
    return subprocess.run(
        [shutil.which("promtool") or "promtool", "test", "rules", spec.name],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )


def _input(
    samples: list[tuple[str, dict[str, str], float]], *, stop_runs_at: int | None = None
) -> list[dict]:
    out = []
    for name, labels, value in samples:
        if name == "tenantscope_check_run_timestamp_seconds":
            # a run every 5 minutes on promtool's clock; stop_runs_at: the timer stopped then
            n = stop_runs_at if stop_runs_at is not None else 12
            values = f"0+300x{n}" + (f" {300 * n}x{60 - n}" if stop_runs_at is not None else "")
        else:
            values = f"{value:g}x60"
        out.append({"series": _selector(name, labels), "values": values})
    return out


def _broken(report: dict, severities: set[str]) -> list[dict[str, str]]:
    """(host, check, severity) of each check whose worst result is a fail of these severities."""
    out = []
    for r in report["results"]:
        if r["status"] == "fail" and r["severity"] in severities:
            out.append(r)
    return out


def test_failing_checks_page_and_nothing_else_does(demo_run, tmp_path):
    text, report = demo_run
    samples = _series(text)
    fails = {(r["host"], r["check_id"]) for r in _broken(report, {"critical", "high"})}
    assert fails, "the demo fleet has critical/high failures (the planted faults)"
    status = {(lb["host"], lb["check"]): lb for n, lb, _ in samples if n == "tenantscope_check_status"}
    exp = []
    for host, cid in sorted(fails):
        lb = status[(host, cid)]
        assert lb["status"] == "fail", (cid, lb)
        exp.append(
            {
                "exp_labels": {**lb, **NODE, "urgency": "page"},
                "exp_annotations": {
                    "summary": f"{cid} fails on {host} ({lb['severity']})",
                    "description": f"Open `tenantscope` on {host}; `tenantscope check --check {cid} -v` "
                    "shows the evidence and the fix.",
                },
            }
        )
    r = _promtool(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": _input(samples),
                "alert_rule_test": [
                    {"eval_time": "5m", "alertname": "TenantIsolationBroken", "exp_alerts": exp},
                    {"eval_time": "5m", "alertname": "TenantscopeCheckStopped", "exp_alerts": []},
                    {"eval_time": "5m", "alertname": "TenantIsolationNewFinding", "exp_alerts": []},
                ],
            }
        ],
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_host_whose_check_stopped_running_is_flagged(demo_run, tmp_path):
    text, _ = demo_run
    samples = _series(text)
    r = _promtool(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": _input(samples, stop_runs_at=2),  # last run at 10m
                "alert_rule_test": [
                    {"eval_time": "20m", "alertname": "TenantscopeCheckStopped", "exp_alerts": []},
                    {
                        "eval_time": "30m",
                        "alertname": "TenantscopeCheckStopped",
                        "exp_alerts": [
                            {
                                "exp_labels": {**NODE, "urgency": "ticket"},
                                "exp_annotations": {
                                    "summary": "tenantscope checks have not run on hv1:9100 for 15 minutes",
                                    "description": "The timer or the textfile collector stopped: isolation is not being watched there.",
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_units_run_check_into_the_textfile_directory(tmp_path):
    u = alerting.units(
        executable="/usr/local/bin/tenantscope",
        textfile_dir="/var/lib/node exporter",
        baseline="/etc/tenantscope/good.json",
    )
    exec_line = next(line for line in u.service.splitlines() if line.startswith("ExecStart="))
    assert exec_line == (
        "ExecStart=/usr/local/bin/tenantscope check --format prometheus --output "
        "'/var/lib/node exporter/tenantscope.prom' --baseline /etc/tenantscope/good.json"
    )
    assert "SuccessExitStatus=1" in u.service and "OnUnitActiveSec=5min" in u.timer
    paths = alerting.install(u, tmp_path / "units")
    assert sorted(p.name for p in paths) == ["tenantscope-check.service", "tenantscope-check.timer"]
    assert not list((tmp_path / "units").glob("*.tmp"))
    sd = shutil.which("systemd-analyze")
    if sd:  # systemd's own parser where it is installed
        out = subprocess.run([sd, "verify", "--man=no", str(paths[0])], capture_output=True, text=True)
        assert "Unknown key" not in out.stderr and "Invalid" not in out.stderr, out.stderr
