"""`tenantscope lab` without a lab (no root needed): the fault catalogue, status, clear refusals;
and the plan's names fit Linux interface names for every tenant count the lab accepts."""

from __future__ import annotations

import json

import pytest

from probes.lab.faults import FAULTS
from probes.lab.plan import make_plan
from tests.fixtures.lab import tenantscope


def test_list_faults_names_each_fault_and_its_findings(tmp_path) -> None:
    r = tenantscope("lab", "--dir", str(tmp_path), "list-faults")
    assert r.returncode == 0
    for f in FAULTS.values():
        assert f.name in r.stdout and all(c in r.stdout for c in f.findings)


def test_status_and_break_without_a_lab(tmp_path) -> None:
    r = tenantscope("lab", "--dir", str(tmp_path / "none"), "status", "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["up"] is False
    r = tenantscope("lab", "--dir", str(tmp_path / "none"), "break", "forwarding")
    assert r.returncode == 2 and "no lab is up" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "none").exists()


def test_dir_after_the_action_and_in_the_hints(tmp_path) -> None:
    """`--dir` is taken after the action too (`lab break X --dir D`, as users type it), and the
    commands the lab prints to paste name that directory: `tenantscope lab down` alone would
    look in /run/tenantscope-lab and find nothing to remove."""
    d = tmp_path / "my lab"
    r = tenantscope("lab", "break", "forwarding", "--dir", str(d))
    assert r.returncode == 2 and "unrecognized" not in r.stderr, r.stderr
    assert f"no lab is up in {d}" in r.stderr
    assert f"`tenantscope lab --dir '{d}' up`" in r.stderr
    r = tenantscope("lab", "break", "forwarding", "--bogus")
    assert r.returncode == 2 and "usage: tenantscope lab break" in r.stderr, r.stderr


@pytest.mark.parametrize("n", [1, 3, 30, 200])
def test_plan_names_fit(n: int) -> None:
    p = make_plan(n, ovs=True)
    names = [t.bridge for t in p.tenants] + [w.name for w in p.workloads()]
    assert all(len(x.encode()) <= 15 and x.startswith("tsl-") for x in names)
    assert len(set(w.name for w in p.workloads())) == len(p.workloads())
    assert len({w.address for w in p.workloads()}) == len(p.workloads())
    with pytest.raises(ValueError):
        make_plan(201)
