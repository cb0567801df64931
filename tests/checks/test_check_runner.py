"""The check runner: checks declare what they read (reads=), reading anything else fails
loudly, and a runner reuses a check's last result only while its declared fields are the same.

The catalog checks run on real parsed domain XML and the real facts probe over a fixture tree
(tests/fixtures/checks.py); the small checks registered here are test checks in a private
catalog (the runner takes one), so the real registry is not touched."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from probes.checks.base import Check, CheckRunner, CheckSpec, UndeclaredRead, check, finding, run_checks
from probes.model import Finding, HostState, Severity, State, Status
from probes.resources.model import Limits, ResourceSnapshot, Sample
from tests.fixtures.checks import all_xml, collect_facts, make_tree, xml_state


def _catalog(fn, reads: tuple[str, ...], cid: str = "TST-01") -> dict[str, Check]:  # type: ignore[no-untyped-def]
    spec = CheckSpec(cid, "test", "a test check", "why", Severity.LOW)
    return {cid: Check(spec, fn, frozenset(reads))}


def _with_samples(st: State, at: float) -> State:
    """The same State with new resource samples (what most polls change)."""
    hs = st.hosts[0]
    samples = tuple(
        Sample(w.key, at, kind="vm", cpu_pct=at % 100, live=Limits("libvirt live", cpu_quota_cores=1.0))
        for w in hs.workloads
    )
    return replace(st, hosts=(replace(hs, samples=ResourceSnapshot(samples=samples, at=at)),))


def test_reading_an_undeclared_field_fails_loudly():
    """A check that declares workloads but reads samples gets an ERROR naming the field, and
    the error is logged: it never silently passes (nor could its result be reused wrongly)."""

    def sneaky(state: State, spec: CheckSpec) -> Iterator[Finding]:
        for hs in state.hosts:
            _ = hs.workloads  # declared: fine
            if getattr(hs, "samples", None) is None:  # getattr with a default must not swallow it
                yield finding(spec, Status.PASS, "no samples", host=hs.host.name)

    st = _with_samples(xml_state(all_xml()[:2]), 1.0)
    [f] = CheckRunner(_catalog(sneaky, ("workloads",))).run(st)
    assert f.status is Status.ERROR
    assert "TST-01" in f.summary and "HostState.samples" in f.summary and "reads=" in f.summary

    def reads_findings(state: State, spec: CheckSpec) -> Iterator[Finding]:
        yield from state.findings  # the output of the checks is never an input

    [g] = CheckRunner(_catalog(reads_findings, ("workloads",))).run(st)
    assert g.status is Status.ERROR and "State.findings" in g.summary

    # the view raises UndeclaredRead itself (not an AttributeError that hasattr would eat)
    def probe_view(state: State, spec: CheckSpec) -> Iterator[Finding]:
        with pytest.raises(UndeclaredRead):
            hasattr(state.hosts[0], "facts")
        assert isinstance(state.hosts[0], HostState) and state.hosts[0].host.name == "hv1"
        yield finding(spec, Status.PASS, "ok")

    [h] = CheckRunner(_catalog(probe_view, ("workloads",))).run(st)
    assert h.status is Status.PASS, h.summary


def test_a_check_must_declare_known_fields():
    with pytest.raises(ValueError, match="samplez"):
        check("TST-02", "test", "t", "w", reads=("workloads", "samplez"))
    with pytest.raises(ValueError, match="findings"):
        check("TST-03", "test", "t", "w", reads=("findings",))
    with pytest.raises(TypeError):
        check("TST-04", "test", "t", "w")  # type: ignore[call-arg]


def test_a_result_is_reused_only_while_its_declared_fields_are_the_same():
    calls: list[str] = []

    def on_workloads(state: State, spec: CheckSpec) -> Iterator[Finding]:
        calls.append("w")
        n = sum(len(hs.workloads) for hs in state.hosts)
        yield finding(spec, Status.PASS, f"{n} workloads")

    def on_samples(state: State, spec: CheckSpec) -> Iterator[Finding]:
        calls.append("s")
        n = sum(len(hs.samples.samples) for hs in state.hosts if hs.samples)
        yield finding(spec, Status.PASS, f"{n} samples")

    cat = _catalog(on_workloads, ("workloads",), "TST-01") | _catalog(on_samples, ("samples",), "TST-02")
    runner = CheckRunner(cat)
    st = xml_state(all_xml()[:3])
    first = runner.run(_with_samples(st, 1.0))
    assert calls == ["w", "s"] and runner.ran == ("TST-01", "TST-02")
    # a poll that changed only the samples: the workloads check is not run again
    second = runner.run(_with_samples(st, 2.0))
    assert calls == ["w", "s", "s"] and runner.ran == ("TST-02",)
    assert second == first  # same summaries (the counts did not change)
    # an equal State built anew (new objects, same values) reuses everything
    runner.run(_with_samples(xml_state(all_xml()[:3]), 2.0))
    assert runner.ran == ()
    # the workloads changed: both run (samples are re-read for the new workloads too)
    third = runner.run(_with_samples(xml_state(all_xml()[:2]), 3.0))
    assert runner.ran == ("TST-01", "TST-02") and third != first
    # a host appearing or going away re-runs every check
    st2 = _with_samples(xml_state(all_xml()[:2]), 3.0)
    runner.run(replace(st2, hosts=(replace(st2.hosts[0], host=replace(st2.hosts[0].host, name="hv2")),)))
    assert runner.ran == ("TST-01", "TST-02")


def test_the_catalog_gives_the_same_results_reused_or_run_anew(tmp_path):
    """A session's runner over successive States (facts, then samples, then a changed VM)
    says exactly what a fresh run over each State says: reuse never changes a result."""
    facts = collect_facts(make_tree("weak", tmp_path))
    base = xml_state(all_xml(), facts=facts)
    states = [
        base,
        _with_samples(base, 1.0),
        _with_samples(base, 2.0),
        _with_samples(xml_state(all_xml()[1:], facts=facts), 2.0),
        _with_samples(xml_state(all_xml()[1:], facts=None), 3.0),
    ]
    runner = CheckRunner()
    reused = 0
    for st in states:
        got = runner.run(st)
        assert got == run_checks(st)
        reused += len({f.check_id for f in got}) - len(runner.ran)
        assert not [f.summary for f in got if f.summary.startswith("check bug")]
    assert reused > 40  # most checks were reused on the sample-only polls


def test_two_runners_share_nothing():
    """Two sessions in one process (serve, tests) each own a runner: one's last results never
    stand in for the other's."""
    seen: list[int] = []

    def count(state: State, spec: CheckSpec) -> Iterator[Finding]:
        seen.append(len(state.hosts[0].workloads))
        yield finding(spec, Status.PASS, f"{seen[-1]} workloads")

    cat = _catalog(count, ("workloads",))
    a, b = CheckRunner(cat), CheckRunner(cat)
    st = xml_state(all_xml()[:2])
    a.run(st)
    b.run(st)
    assert seen == [2, 2] and a.ran == b.ran == ("TST-01",)
    b.run(xml_state(all_xml()[:1]))
    assert a.run(st) == (finding(cat["TST-01"].spec, Status.PASS, "2 workloads"),) and a.ran == ()


def _figures(st: State, at: float, cpu: float, quota: float | None = 1.0) -> State:
    """New samples for every workload: `cpu` % of a core each, limits read anew (equal objects
    while `quota` is the same), as a refresh makes them."""
    hs = st.hosts[0]
    samples = tuple(
        Sample(
            w.key,
            at,
            kind="vm",
            cpu_pct=cpu,
            live=Limits("libvirt live", cpu_quota_cores=quota, cpu_known=True),
        )
        for w in hs.workloads
    )
    return replace(st, hosts=(replace(hs, samples=ResourceSnapshot(samples=samples, at=at)),))


def test_figures_that_moved_below_every_threshold_run_no_check_again(tmp_path):
    """The checks that read the live figures declare what of them they judge (figures=): the
    limits (CTR-07, VM-04, VM-05, VM-12), the spikes (RES-01), whether any tenant can be busy
    enough to be noisy (RES-02). A refresh whose counters moved, nothing else, runs none of them
    (the old runner ran all six at every figures derive); a changed limit or a busy host runs
    those that judge it, and every result is what a fresh run says."""
    facts = collect_facts(make_tree("weak", tmp_path))
    base = xml_state(all_xml(), facts=facts)
    runner = CheckRunner()
    seen = []
    for st, ran in (
        (_figures(base, 1.0, 0.5), None),
        (_figures(base, 2.0, 1.5), set()),  # counters moved: nothing is judged again
        (_figures(base, 3.0, 0.0), set()),
        (_figures(base, 4.0, 0.0, quota=None), {"VM-04", "VM-05", "VM-12", "CTR-07"}),  # a cap went
        (_figures(base, 5.0, 90.0, quota=None), {"RES-02"}),  # busy enough to be judged
        (_figures(base, 6.0, 91.0, quota=None), {"RES-02"}),  # ... at every refresh while busy
        (_figures(base, 7.0, 1.0, quota=None), {"RES-02"}),  # quiet again
        (_figures(base, 8.0, 2.0, quota=None), set()),
    ):
        got = runner.run(st)
        assert got == run_checks(st)
        if ran is not None:
            assert set(runner.ran) == ran, runner.ran
        seen.append(runner.ran)
    assert seen[1] == seen[2] == seen[7] == ()
