"""One of each (issue 12 item 6): one status order, one severity rank, one is-running
predicate, one VM iterator, one fmt_bytes, the dark theme's defaults from its file. Each test
fails if a second copy drifts from the first."""

from __future__ import annotations

from probes.checks.base import CheckSpec, finding
from probes.checks.common import qemu_running, vms
from probes.checks.report import _sorted
from probes.model import (
    SEVERITY_ORDER,
    STATUS_ORDER,
    Host,
    HostState,
    Severity,
    Status,
    VmDetails,
    Workload,
    WorkloadKind,
)
from probes.report.build import _order
from probes.units import fmt_bytes

SPEC = CheckSpec("VM-99", "vm", "t", "w", Severity.HIGH)


def _all_statuses():
    return [
        finding(SPEC, s, f"{s} result", host="hv1")
        for s in (Status.PASS, Status.WARN, Status.SKIPPED, Status.ERROR, Status.FAIL)
    ]


def test_one_status_order_error_before_warn_everywhere():
    """FAIL, ERROR, WARN, SKIPPED, PASS: an unanswered check may hide a FAIL; a WARN is a known,
    bounded weakness. The same order in `check` output, the report and the Findings pane."""
    from tui.status import STATUS_LABEL, finding_sort_key

    want = [Status.FAIL, Status.ERROR, Status.WARN, Status.SKIPPED, Status.PASS]
    assert sorted(STATUS_ORDER, key=STATUS_ORDER.__getitem__) == want
    fs = _all_statuses()
    assert [f.status for f in _sorted(tuple(fs))] == want
    assert [f.status for f in sorted(fs, key=_order)] == want
    assert [f.status for f in sorted(fs, key=finding_sort_key)] == want
    assert list(STATUS_LABEL) == want


def test_one_severity_rank():
    assert max(Severity, key=SEVERITY_ORDER.__getitem__) is Severity.CRITICAL
    assert sorted(Severity, key=SEVERITY_ORDER.__getitem__) == list(Severity)


def test_one_is_running_predicate_and_one_vm_iterator():
    """A guest suspended to RAM (pmsuspended) still has its QEMU, memory and cgroup; a domain
    whose XML could not be read is left to VM-01, never judged on empty details."""
    for state in ("running", "idle", "paused", "pmsuspended", "in shutdown", ""):
        assert qemu_running(Workload(WorkloadKind.VM, "a", "hv1", state=state)), state
    for state in ("shut off", "crashed"):
        assert not qemu_running(Workload(WorkloadKind.VM, "a", "hv1", state=state)), state
    good = Workload(WorkloadKind.VM, "good", "hv1", vm=VmDetails(vcpus=1))
    bad = Workload(WorkloadKind.VM, "bad", "hv1", vm=VmDetails(parse_error="not XML"))
    assert vms(HostState(Host("hv1"), workloads=(good, bad))) == [good]


def test_one_fmt_bytes_two_widths():
    assert fmt_bytes(1536) == "1.5 KiB" and fmt_bytes(512) == "512 B"
    assert (
        fmt_bytes(1536, compact=True) == "1.5K"
        and fmt_bytes(200 * 1024**2, rate=True, compact=True) == "200M/s"
    )
    assert fmt_bytes(None) == "—"


def test_the_dark_themes_defaults_come_from_its_file():
    import tomllib
    from pathlib import Path

    from tui.status import THEME_DEFAULTS

    dark = tomllib.loads((Path(__file__).resolve().parents[2] / "themes" / "dark.toml").read_text())
    assert dark["variables"] == THEME_DEFAULTS
