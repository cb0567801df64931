"""Read-only sessions: changing actions are removed from keys, help and palette, and refused
where they run (the action method), whatever calls it."""

from __future__ import annotations

from textual.screen import ModalScreen

from tests.fixtures.tui import make_app
from tui.bindings import key_entries
from tui.cli import main
from tui.readonly import env_read_only


async def test_read_only_refuses_network_probe_and_hides_it():
    app, _ = make_app(read_only=True)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("3")
        await pilot.press("p")
        await pilot.pause()
        assert not isinstance(app.screen, ModalScreen)  # no confirmation: the key is gone
        # not even dimmed in the footer (it was: shown, and a press did nothing)
        assert "probe" not in {b.binding.action for b in app.active_bindings.values()}
        actions = {e.action for e in key_entries(app)}
        assert "probe" not in actions  # not in help nor palette
        pane = app.pane("reachability")
        pane.action_probe()  # called directly (palette, a script): refused where it runs
        pane._confirmed(True)
        await pilot.pause()
        assert not isinstance(app.screen, ModalScreen)
        assert not any(w.group == "reach-probe" for w in pane.workers)
        assert any("Read-only" in n.message for n in app._notifications)


async def test_writable_session_keeps_the_probe_action():
    app, _ = make_app(read_only=False)
    async with app.run_test(size=(160, 48)):
        assert "probe" in {e.action for e in key_entries(app)}


def test_env_switch():
    assert env_read_only({"TENANTSCOPE_READONLY": "1"})
    assert not env_read_only({"TENANTSCOPE_READONLY": "0"})
    assert not env_read_only({})


def test_check_refuses_probe_when_read_only(capsys):
    assert main(["check", "--demo", "--read-only", "--probe"]) == 2
    assert "read-only" in capsys.readouterr().err
