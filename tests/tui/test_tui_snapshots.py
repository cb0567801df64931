"""Snapshot tests of the main screen and the dialogs (pytest-textual-snapshot).

Deterministic: the State is fixed (the demo fleet is observed once through the real Engine and
the libvirt test driver, then its times are frozen), the clock and time zone are injected.
Update after an intended change with `--snapshot-update`, then look at the SVGs.
"""

from __future__ import annotations

import pytest

from tests.fixtures.tui import demo_state, make_app


@pytest.fixture(scope="module")
def demo():
    return demo_state()


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
