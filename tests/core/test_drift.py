"""drift.diff on States built in the test (it is a pure function of two States; the lab test in
tests/lab/test_lab.py proves it on a real lab broken by a real fault)."""

from __future__ import annotations

from dataclasses import replace

from probes.drift import Area, Mark, diff
from probes.logs.model import LogEvent, LogView
from probes.model import (
    CpuTune,
    Finding,
    Host,
    HostState,
    MemTune,
    Nic,
    Severity,
    State,
    Status,
    VmDetails,
    Workload,
    WorkloadKind,
)
from probes.network.model import Link, Namespace, OvsBridge, OvsPort, Topology
from probes.resources.model import Limits, ResourceSnapshot, Sample


def _vm(
    name: str,
    tenant: str,
    host: str = "hv1",
    bridge: str = "br-a",
    tag: tuple[int, ...] = (),
    filterref: str = "clean-traffic",
    quota: int | None = 50000,
) -> Workload:
    nic = Nic(
        type="bridge",
        mac="52:54:00:00:00:01",
        source=bridge,
        bridge=bridge,
        vlan_tags=tag,
        filterref=filterref,
    )
    vm = VmDetails(nics=(nic,), cputune=CpuTune(quota=quota), memtune=MemTune(hard_limit_kib=1024))
    return Workload(WorkloadKind.VM, name, host, uuid=f"uuid-{name}", state="running", tenant=tenant, vm=vm)


def _finding(cid: str, status: Status, summary: str, workloads: tuple[str, ...] = ()) -> Finding:
    return Finding(
        cid, "network", cid, status, Severity.HIGH, host="hv1", summary=summary, workloads=workloads
    )


def _topo(master: str = "br-a", forward: bool = False, tag: int | None = 100) -> Topology:
    links = (Link("br-a", 2, kind="bridge"), Link("br-b", 3, kind="bridge"), Link("veth-x", 4, master=master))
    ovs = (OvsBridge("ovs0", ports=(OvsPort("p1", "ovs0", tag=tag),)),)
    return Topology(
        links=links,
        namespaces=(Namespace("", ip_forward=forward), Namespace("tn", ip_forward=False)),
        ovs=ovs,
        ip_forward=forward,
    )


def _state(
    workloads: tuple[Workload, ...],
    findings: tuple[Finding, ...] = (),
    topo: Topology | None = None,
    at: float = 1000.0,
    logs: LogView | None = None,
    samples: ResourceSnapshot | None = None,
) -> State:
    hs = HostState(Host("hv1"), workloads=workloads, topology=topo or _topo(), logs=logs, samples=samples)
    return State(hosts=(hs,), findings=findings, taken_at=at)


def test_identical_states_have_no_changes():
    s = _state((_vm("a1", "acme"),), (_finding("NET-02", Status.FAIL, "shared"),))
    d = diff(s, replace(s, taken_at=2000.0))
    assert d.changes == ()
    assert [m for _, m in d.marks] == [Mark.UNCHANGED]


def test_findings_new_unchanged_cleared_and_a_moving_summary_is_the_same_finding():
    before = _state(
        (),
        (
            _finding("VM-04", Status.WARN, "no cpu limit", ("hv1/vm/a1",)),
            _finding("NET-02", Status.FAIL, "br-a shared"),
        ),
    )
    after = _state(
        (),
        (
            _finding("VM-04", Status.WARN, "no cpu limit (now 93%)", ("hv1/vm/a1",)),
            _finding("NET-05", Status.FAIL, "acme reaches globex"),
            _finding("HOST-01", Status.PASS, "fine"),
        ),
        at=2000.0,
    )
    d = diff(before, after)
    assert dict((k.split("|")[0], m) for k, m in d.marks) == {"VM-04": Mark.UNCHANGED, "NET-05": Mark.NEW}
    assert [k.split("|")[0] for k in d.cleared] == ["NET-02"]
    assert sorted(c.kind for c in d.changes) == ["finding-cleared", "finding-new"]
    assert d.new_findings() == (after.findings[1].key,)


def test_a_pass_that_turns_into_a_fail_is_new():
    before = _state((), (_finding("NET-02", Status.PASS, "nothing found"),))
    after = _state((), (_finding("NET-02", Status.FAIL, "nothing found"),))
    assert [m for _, m in diff(before, after).marks] == [Mark.NEW]


def test_workloads_added_removed_moved_between_tenants_and_hosts():
    before = _state((_vm("a1", "acme"), _vm("g1", "globex"), _vm("old", "acme")))
    moved = replace(_vm("g1", "acme"))
    other_host = _vm("a1", "acme", host="hv2")
    after = _state((other_host, moved, _vm("new", "initech")))
    kinds = sorted((c.kind, c.workload.rsplit("/", 1)[-1]) for c in diff(before, after).changes)
    assert kinds == [
        ("workload-added", "new"),
        ("workload-moved-host", "a1"),
        ("workload-moved-tenant", "g1"),
        ("workload-removed", "old"),
    ]


def test_nic_segment_vlan_nwfilter_and_declared_limits():
    before = _state((_vm("a1", "acme"),))
    after = _state((_vm("a1", "acme", bridge="br-b", tag=(200,), filterref="", quota=None),))
    by_kind = {c.kind: c for c in diff(before, after).changes}
    assert set(by_kind) == {"nic-segment-changed", "vlan-changed", "nwfilter-removed", "limit-changed"}
    assert (by_kind["nic-segment-changed"].before, by_kind["nic-segment-changed"].after) == ("br-a", "br-b")
    assert by_kind["vlan-changed"].after == "200"
    assert by_kind["limit-changed"].area is Area.LIMITS and by_kind["limit-changed"].after == "none"


def test_topology_port_joined_another_bridge_ovs_tag_and_forwarding():
    before = _state((), topo=_topo())
    after = _state((), topo=_topo(master="br-b", forward=True, tag=200))
    changes = {c.kind: c for c in diff(before, after).changes}
    assert set(changes) == {"port-joined", "vlan-changed", "forwarding-on"}
    assert changes["port-joined"].summary == "host/veth-x joined bridge br-b (left br-a)"
    assert changes["vlan-changed"].link == "ovs0/p1" and changes["vlan-changed"].after == "200"
    assert changes["forwarding-on"].summary == "IPv4 forwarding turned on in host"


def test_live_limits_changed():
    def samples(mem: int | None) -> ResourceSnapshot:
        return ResourceSnapshot(samples=(Sample("hv1/container/c1", 1.0, live=Limits(mem_limit_bytes=mem)),))

    d = diff(_state((), samples=samples(1 << 30)), _state((), samples=samples(None)))
    assert [(c.kind, c.before, c.after) for c in d.changes] == [("limit-changed", str(1 << 30), "none")]


def test_log_signals_after_the_baseline_only():
    old = LogEvent(900.0, "hv1", "journal", "err", "apparmor denied (old)", tags=("mac-denial",))
    new = LogEvent(1500.0, "hv1", "journal", "err", "apparmor denied (new)", tags=("mac-denial",))
    d = diff(_state((), at=1000.0), _state((), at=2000.0, logs=LogView(signals=(old, new))))
    assert [(c.kind, c.summary, c.at) for c in d.changes] == [
        ("log-signal", "mac-denial: apparmor denied (new)", 1500.0)
    ]


def test_a_drift_survives_a_snapshot_round_trip():
    from probes import snapshot

    before = _state((_vm("a1", "acme"),), (_finding("NET-02", Status.FAIL, "shared"),))
    after = _state((_vm("a1", "globex"),), (), topo=_topo(master="br-b"), at=2000.0)
    state = replace(after, drift=diff(before, after, baseline="good.json"))
    assert snapshot.loads(snapshot.dumps(state)) == state
    assert state.drift is not None and state.drift.baseline == "good.json" and len(state.drift.cleared) == 1


def test_baseline_specs_pick_the_instant_of_a_recording(tmp_path):
    from datetime import UTC, datetime

    import pytest

    from probes import record, snapshot
    from probes.baseline import BaselineError, load

    t0 = datetime(2026, 12, 6, 14, 0, 0, tzinfo=UTC).timestamp()
    path = tmp_path / "r.tsr"
    rec = record.Recorder(path, min_interval=0.0)
    for i, minute in enumerate((0, 2, 10)):  # observations at 14:00, 14:02, 14:10
        rec.add(_state((_vm(f"v{i}", "acme"),), at=t0 + 60 * minute), force=True)
    rec.close()
    assert load(f"{path}@14:05", tz=UTC).label == f"{path}@14:02:00"
    assert load(f"{path}@14:10", tz=UTC).state.taken_at == t0 + 600
    assert load(f"{path}@2026-12-06T14:01:30+00:00", tz=UTC).label.endswith("@14:00:00")
    assert load(str(path), tz=UTC).label.endswith("@14:10:00")  # no time: the last one
    assert load(str(path)).raw
    with pytest.raises(BaselineError, match="the recording starts later, at 2026-12-06 14:00:00"):
        load(f"{path}@13:59", tz=UTC)
    with pytest.raises(BaselineError, match="25:00"):
        load(f"{path}@25:00", tz=UTC)
    snap = tmp_path / "s.json"
    snapshot.save(_state(()), snap)
    assert not load(str(snap)).raw
    with pytest.raises(BaselineError, match="is not a recording"):
        load(f"{snap}@14:00")
    with pytest.raises(BaselineError, match="cannot read"):
        load(str(tmp_path / "missing.json"))
    # a missing file with @TIME is missing, not "not a recording"
    with pytest.raises(BaselineError, match=r"missing.tsr: cannot read: No such file or directory"):
        load(f"{tmp_path / 'missing.tsr'}@14:00")
