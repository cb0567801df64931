"""The request path (probes/requests.py, probes/session.py): typed requests run by the session,
their progress and outcome in State.requests; sources that cannot run one say so."""

from __future__ import annotations

import asyncio

from probes.model import RequestState, State
from probes.record import Header, Recording
from probes.requests import ActiveProbe, Audit, FactsRefresh, PollSchedule, UpdatesLookup
from probes.session import Session
from tests.fixtures.tui import sample_state
from tui.replay import ReplaySource
from tui.source import StaticSource


async def test_a_static_source_answers_what_it_cannot_run_as_unavailable():
    src = StaticSource(sample_state())
    seen: list[State] = []
    src.subscribe(seen.append)
    for req in (ActiveProbe(), UpdatesLookup(), FactsRefresh(), PollSchedule("resources", 1.0)):
        st = await src.request(req).result()
        assert st.state == RequestState.UNAVAILABLE and "not available in a saved State" in st.message
    assert [r.state for r in src.state.requests] == [RequestState.UNAVAILABLE] * 4
    assert seen and seen[-1].requests == src.state.requests  # published, not silent


async def test_replay_says_not_available_in_replay_and_still_audits():
    rec = Recording("x.tsr", Header(1, 1.0, ("hv1",)), times=[1.0], states=[sample_state()])
    src = ReplaySource(rec, autoplay=False)
    st = await src.request(ActiveProbe()).result()
    assert st.state == RequestState.UNAVAILABLE and "not available in replay" in st.message
    audit = await src.request(Audit(("VM-01", "VM-09"))).result()
    assert audit.state == RequestState.DONE and audit.done == audit.total == 2
    assert {f.check_id for f in audit.findings} == {"VM-01", "VM-09"}
    assert src.state.requests[-1] == audit


async def test_read_only_session_refuses_changing_requests():
    session = Session.over_state(sample_state(), read_only=True)
    try:
        for req in (ActiveProbe(), UpdatesLookup()):
            st = await session.request(req).result()
            assert st.state == RequestState.REFUSED and st.message == "read-only session"
        assert {r.kind for r in session.state.requests} == {"active-probe", "updates"}
    finally:
        await session.stop()


async def test_audit_reports_progress_in_the_state_and_stops_when_cancelled():
    session = Session.over_state(sample_state())
    try:
        h = session.request(Audit())
        (running,) = session.state.requests
        assert running.id == h.id and running.state == RequestState.RUNNING
        for _ in range(200):  # progress shows in the State while it runs
            await asyncio.sleep(0.001)
            st = session.state.requests[0]
            if st.state != RequestState.RUNNING or st.done:
                break
        assert st.total > 5 and (st.done > 0 or st.state == RequestState.DONE)
        done = await h.result()
        assert done.state == RequestState.DONE and done.done == done.total == st.total
        assert session.state.requests == (done,)
        h = session.request(Audit())
        assert session.cancel(h.id)
        st = await h.result()
        assert st.state == RequestState.CANCELLED and st.done < st.total
        assert not session.cancel(h.id)  # nothing runs any more
    finally:
        await session.stop()


async def test_a_request_that_fails_on_a_host_is_a_probe_error_there_not_an_exception():
    """An ActiveProbe on a host whose probe run raises: the engine records it as that host's
    probe error and the request says FAILED with the reason. The raising prober is a stand-in
    (a fake: a real prober bug cannot be produced on demand)."""
    from dataclasses import replace

    from probes.network.model import Topology

    state = sample_state()
    hs = replace(state.hosts[0], topology=Topology())
    session = Session.over_state(replace(state, hosts=(hs,)))

    import probes.network.prober as prober

    async def boom(*a, **kw):  # type: ignore[no-untyped-def]
        raise RuntimeError("prober exploded")

    real, prober.probe_host = prober.probe_host, boom
    try:
        st = await asyncio.wait_for(session.request(ActiveProbe()).result(), 10)
    finally:
        prober.probe_host = real
        await session.stop()
    assert st.state == RequestState.FAILED and "prober exploded" in st.message
    errs = session.state.hosts[0].probe_errors
    assert [(e.probe, e.message) for e in errs] == [("active-probe", "prober exploded")]


async def test_cancel_stops_a_long_active_probe_at_once():
    """x in the Reachability pane, X in the runbook: a probe run that would take long is
    cancelled at once, recorded as CANCELLED, and leaves no probe error. The slow prober is a
    stand-in (a fake: a real probe run this long needs tenants that never answer)."""
    import time
    from dataclasses import replace

    import probes.network.prober as prober
    from probes.network.model import Topology

    state = sample_state()
    session = Session.over_state(replace(state, hosts=(replace(state.hosts[0], topology=Topology()),)))

    async def slow(*a, **kw):  # type: ignore[no-untyped-def]
        await asyncio.sleep(60)

    real, prober.probe_host = prober.probe_host, slow
    try:
        h = session.request(ActiveProbe())
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        assert session.cancel(h.id)
        st = await asyncio.wait_for(h.result(), 5)
        assert time.monotonic() - t0 < 1.0
    finally:
        prober.probe_host = real
        await session.stop()
    assert st.state == RequestState.CANCELLED and st.finished_at >= st.started_at
    assert session.state.hosts[0].probe_errors == () and session.state.hosts[0].reach is None
