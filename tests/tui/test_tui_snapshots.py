"""Snapshot tests of the main screen and the dialogs (pytest-textual-snapshot).

Deterministic: the State is fixed (the demo fleet is observed once through the real Engine with
every probe the demo runs, on the libvirt test driver, then its times are frozen), the clock and
time zone are injected.
Update after an intended change with `--snapshot-update`, then look at the SVGs.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from probes.model import Status
from tests.fixtures.tui import demo_state, make_app
from tui.cli import main


@pytest.fixture(scope="module")
def demo():
    return demo_state()


def test_the_demo_state_is_what_the_demo_shows(demo, capsys):
    """What the pictures are taken of: the topology (libvirt's view), the planted shared-bridge
    fault, nothing of the machine the tests run on, and the counts of `check --demo`."""
    hs = demo.hosts[0]
    assert hs.topology is not None and any(lk.name == "br-shared" for lk in hs.topology.links)
    shared = [f for f in demo.findings if f.check_id == "NET-02" and f.status is Status.FAIL]
    assert any("bridge br-shared is shared by tenants acme, initech" in f.summary for f in shared)
    assert hs.samples is not None and {s.workload.split("/")[1] for s in hs.samples.samples} == {"vm"}
    assert main(["check", "--demo", "--format", "json"]) in (0, 1)
    summary = json.loads(capsys.readouterr().out)["summary"]
    got = Counter(f.status for f in demo.findings)
    assert summary == {
        "fail": got[Status.FAIL],
        "error": got[Status.ERROR],
        "warn": got[Status.WARN],
        "skipped": got[Status.SKIPPED],
        "passed": got[Status.PASS],
    }
    assert got[Status.ERROR] == 0, [f.summary for f in demo.findings if f.status is Status.ERROR]


def test_the_demo_shows_log_lines_its_findings_talk_about(demo):
    """The demo's Logs pane was empty (its simulated hypervisor writes no log): the demo host
    now has simulated lines (probes/demo/logs.py) read by the real parsers and attribution,
    which LOG-02 (globex-db-1 could not lock the disk VM-09 says is shared) and LOG-03
    (initech-build-1, no memory limit, OOM-killed) point at; nothing of this machine is read."""
    from probes.demo.logs import DETAIL

    [hs] = demo.hosts
    assert hs.logs is not None
    by_seq = {e.seq: e for e in hs.logs.events}
    assert len(by_seq) >= 15
    assert {s.detail for s in hs.logs.sources} == {DETAIL}
    assert {s.state.value for s in hs.logs.sources} == {"done"}
    got = {f.check_id: f for f in demo.findings if f.check_id.startswith("LOG-")}
    lock, oom = got["LOG-02"], got["LOG-03"]
    assert lock.status is Status.FAIL and lock.related == ("VM-09",) and lock.tenants == ("globex",)
    assert oom.status is Status.FAIL and oom.tenants == ("initech",)
    # the summaries name the workload as the other checks do (not its key demo-hv1/vm/NAME)
    assert oom.summary == "1 OOM kill(s) of qemu-system-x86 in initech-build-1", oom.summary
    assert lock.summary.startswith("3 disk-lock line(s) for globex-db-1; "), lock.summary
    assert got["LOG-04"].status is Status.SKIPPED and "demo" in got["LOG-04"].summary
    for f in (lock, oom):  # every log line a finding names is in the pane, attributed to its workload
        refs = [int(ev.where.split("#")[1]) for ev in f.evidence if ev.where.startswith("log:demo-hv1#")]
        assert refs and all(by_seq[n].workload in f.workloads for n in refs), f
    assert {e.workload.split("/")[-1] for e in hs.logs.events if e.tags == ("bridge-port",)} == {
        "acme-db-1",
        "initech-ci-1",
    }  # the two tenants' ports on br-shared (NET-02)


async def settle(pilot) -> None:  # type: ignore[no-untyped-def]
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (160, 48), (200, 60)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_demo_fleet_main_screen(snap_compare, demo, size):
    app, _ = make_app(demo)
    assert snap_compare(app, terminal_size=size, run_before=settle)


def test_demo_fleet_findings_tab_80x24(snap_compare, demo):
    app, _ = make_app(demo)
    assert snap_compare(app, terminal_size=(80, 24), press=["5"], run_before=settle)


def test_sample_state_with_probe_errors_160x48(snap_compare):
    from tests.fixtures.tui import sample_state

    app, _ = make_app(sample_state(errors=True))
    assert snap_compare(app, terminal_size=(160, 48), run_before=settle)


def test_help_screen_80x24(snap_compare):
    app, _ = make_app()
    assert snap_compare(app, terminal_size=(80, 24), press=["question_mark"], run_before=settle)


def test_finding_detail_80x24(snap_compare, demo):
    app, _ = make_app(demo)
    assert snap_compare(app, terminal_size=(80, 24), press=["5", "enter"], run_before=settle)


def test_workload_detail_80x24(snap_compare, demo):
    app, _ = make_app(demo)
    assert snap_compare(app, terminal_size=(80, 24), press=["1", "down", "enter"], run_before=settle)


@pytest.mark.parametrize("size", [(80, 24), (200, 60)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_a_narrow_findings_pane_gives_the_summary_the_room(demo, size):
    """At 80 columns the Summary (what is wrong) got ~21 characters while Tenants kept its
    widest list ("globex, initech, umbrella"): there, Tenants is cut with an ellipsis and the
    Summary keeps its room; a wide pane shows every tenant as before."""
    from textual.widgets.data_table import ColumnKey

    from tui.panes.findings import FindingsPane

    app, _ = make_app(demo)
    async with app.run_test(size=size) as pilot:
        await pilot.press("5")
        await settle(pilot)
        pane = app.query_one(FindingsPane)
        table = pane.table
        widest = max(len(", ".join(f.tenants)) for f in pane.ordered)
        tenants = table.columns[ColumnKey("tenants")].width
        summary_seen = (
            pane.size.width
            - sum(c.get_render_width(table) for c in table.columns.values())
            + (table.columns[ColumnKey("summary")].get_render_width(table))
        )
        if size[0] == 80:
            assert tenants < widest and summary_seen >= 40, (tenants, summary_seen)
        else:
            assert tenants == widest
