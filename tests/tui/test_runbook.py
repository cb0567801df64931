"""The runbook: each step's key runs it and the panel shows its state; cancel keeps what was
found; changing steps ask first and are refused in read-only sessions."""

from __future__ import annotations

from textual.screen import ModalScreen

from tests.fixtures.recording import tsj_net  # noqa: F401
from tests.fixtures.runbook import incident_state
from tests.fixtures.tui import make_app, make_live_app
from tests.helpers import needs_root, needs_tool
from tui.runbook import RunbookPanel, StepState


async def test_quick_steps_set_up_their_pane_and_count():
    app, _ = make_app(incident_state())
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("L")
        await pilot.pause()
        await pilot.press("enter")  # since: everything kept
        await pilot.pause()
        steps = app.runbook_steps
        assert steps["logs"].state == StepState.DONE and steps["logs"].findings == 1
        from tui.panes.logs import LogLines

        shown = [e.message for e in app.query_one(LogLines).lines]
        # the denial (warning) and the bridge event (an isolation signal); the info lines left out
        assert len(shown) == 2 and "DENIED" in shown[1] and "br0" in shown[0]
        assert app.focused is not None and app.pane("logs") in app.focused.ancestors_with_self
        panel = app.query_one(RunbookPanel)
        assert "✓ done · 1 finding" in str(panel.render())
        await pilot.press("M")
        await pilot.pause()
        assert steps["resources"].state == StepState.DONE
        assert app.pane("resources").sort_col == 1
        await pilot.press("b")
        assert not panel.display
        await pilot.press("b")
        assert panel.display


async def test_review_logs_since_a_time():
    from tests.fixtures.tui import T0
    from tui.runbook import since_time

    assert since_time("-15m", T0) == T0 - 900
    assert since_time("", T0) == 0.0
    assert since_time("14:12:22", T0) == T0 - T0 % 86400 + 14 * 3600 + 12 * 60 + 22
    assert "not a time" in since_time("yesterday", T0)
    app, _ = make_app(incident_state())
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("L")
        await pilot.pause()
        for ch in "14:12:23":  # after the denial (14:12:22)
            await pilot.press({":": "colon"}.get(ch, ch))
        await pilot.press("enter")
        await pilot.pause()
        assert app.runbook_log_lines == 0


async def test_audit_runs_the_catalog_with_progress():
    from probes.checks.base import load_catalog

    app, _ = make_app(incident_state())
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("A")
        await app.workers.wait_for_complete()
        await pilot.pause()
        step = app.runbook_steps["audit"]
        assert step.state == StepState.DONE
        assert step.done == step.total == len(load_catalog())
        assert {f.check_id for f in app.runbook_audit} >= set(load_catalog())


async def test_cancel_keeps_what_was_found(monkeypatch):
    import probes.checks.base as base

    real = base.run_checks
    calls = []
    app, _ = make_app(incident_state())

    def counting(state, ids=None):  # the real checks; the user presses X after the third
        calls.append(ids)
        out = real(state, ids)
        if len(calls) == 3:
            app.call_from_thread(app.action_runbook_cancel)
        return out

    monkeypatch.setattr(base, "run_checks", counting)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("A")
        await app.workers.wait_for_complete()
        await pilot.pause()
        step = app.runbook_steps["audit"]
        assert step.state == StepState.CANCELLED
        assert step.done == 3 < step.total
        assert {f.check_id for f in app.runbook_audit} == {c[0] for c in calls}
        assert "so far" in str(app.query_one(RunbookPanel).render())


async def test_network_step_asks_first_and_no_sends_nothing():
    app, _ = make_app(incident_state())
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("I")
        await pilot.pause()
        import os

        if os.geteuid() == 0:  # the pane's confirmation says what will be sent
            assert isinstance(app.screen, ModalScreen)
            text = " ".join(str(s.render()) for s in app.screen.query("Static"))
            assert "ICMP echo" in text and "Nothing else is sent" in text
            await pilot.press("n")
        else:  # no confirmation: the pane says why nothing can be sent
            assert not isinstance(app.screen, ModalScreen)
            assert any("Active probes need root" in n.message for n in app._notifications)
        await pilot.pause(0.6)
        step = app.runbook_steps["network"]
        assert step.state == StepState.FAILED and "not started" in step.reason
        assert not any(w.group == "reach-probe" for w in app.pane("reachability").workers)


async def test_changing_steps_refused_when_read_only():
    app, _ = make_app(incident_state(), read_only=True)
    async with app.run_test(size=(160, 48)) as pilot:
        for key in ("I", "U"):
            await pilot.press(key)  # hidden: the keys do nothing
        assert app.runbook_steps["network"].state == StepState.NOT_RUN
        app.action_runbook_network()  # called anyway (palette, script): refused
        app.action_runbook_updates()
        await pilot.pause()
        assert app.runbook_steps["network"].state == StepState.FAILED
        assert app.runbook_steps["updates"].reason == "read-only session"
        assert not isinstance(app.screen, ModalScreen)


async def test_updates_step_without_live_hosts_says_why():
    app, _ = make_app(incident_state())
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("U")
        await app.workers.wait_for_complete()
        await pilot.pause()
        step = app.runbook_steps["updates"]
        assert step.state == StepState.FAILED and "no live hosts" in step.reason


async def _lab_state(fault: bool):  # type: ignore[no-untyped-def]
    import asyncio

    from probes.hosts.local import LocalHost
    from probes.model import Host, HostState, NetnsDetails, Placement, State, Workload, WorkloadKind
    from probes.network.topology import TopologyProbe
    from tests.fixtures.recording import inject_fault

    if fault:
        await asyncio.to_thread(inject_fault)  # both tenants on one bridge
    topo = await TopologyProbe().collect(LocalHost("labhost", libvirt_uri=None))
    wl = tuple(
        Workload(
            WorkloadKind.NETNS,
            ns,
            "labhost",
            tenant=t,
            placed_by=Placement.CONFIG,
            netns=NetnsDetails(path=f"/run/netns/{ns}"),
        )
        for ns, t in (("tsj-a1", "acme"), ("tsj-b1", "globex"))
    )
    return State(hosts=(HostState(Host("labhost"), workloads=wl, topology=topo),))


async def _wait_step(app, pilot) -> None:  # type: ignore[no-untyped-def]
    await app.workers.wait_for_complete()
    for _ in range(40):  # the runbook notices the end on its next poll
        await pilot.pause(0.1)
        if app.runbook_steps["network"].state != StepState.RUNNING:
            break


@needs_root
@needs_tool("ip")
async def test_network_step_on_real_namespaces_cancel_then_run(tmp_path, tsj_net):
    from probes.session import Options

    cfg = tmp_path / "c.toml"
    cfg.write_text("[network]\nprobe_timeout = 5.0\n")
    # isolated tenants: the echo requests wait for their timeout, long enough to cancel
    app = make_live_app(await _lab_state(fault=False), opts=Options(config_path=str(cfg)))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("I")
        await pilot.pause()
        assert isinstance(app.screen, ModalScreen)
        await pilot.press("y")
        await pilot.pause(0.3)
        assert app.runbook_steps["network"].state == StepState.RUNNING
        await pilot.press("X")
        await _wait_step(app, pilot)
        assert app.runbook_steps["network"].state == StepState.CANCELLED
    cfg.write_text("[network]\nprobe_timeout = 0.5\n")
    app = make_live_app(await _lab_state(fault=True), opts=Options(config_path=str(cfg)))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("I")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause(0.2)
        await _wait_step(app, pilot)
        assert app.runbook_steps["network"].state == StepState.DONE
        reach = app.state.hosts[0].reach
        assert reach is not None and any(r.reached for r in reach.results)  # the fault: acme reaches globex
