"""Themes: the built-in five, user themes validated with fallback, --theme, remembered in the
XDG state file, NO_COLOR; snapshots of the main screen in each theme, the runbook and the
finding detail (deterministic: fixed State, clock and time zone)."""

from __future__ import annotations

import colorsys

import pytest
from textual.color import Color

import themes
from tests.fixtures.runbook import incident_state
from tests.fixtures.tui import demo_state, make_app
from tui import theming
from tui.status import THEME_DEFAULTS

BUILTIN = (
    "tenantscope-dark",
    "tenantscope-light",
    "tenantscope-high-contrast",
    "tenantscope-colour-blind",
    "tenantscope-monochrome",
)


@pytest.fixture(autouse=True)
def xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    return tmp_path


def test_builtin_themes_define_every_variable():
    got = {t["name"]: t for t in themes.builtin()}
    assert set(BUILTIN) <= set(got)
    for name in BUILTIN:
        assert set(THEME_DEFAULTS) <= set(got[name]["variables"]), name
        theming.validate(dict(got[name]), name)


def test_colour_blind_theme_has_no_red_green_pair():
    v = next(t for t in themes.builtin() if t["name"] == "tenantscope-colour-blind")["variables"]

    def hue(c: str) -> float:
        r, g, b = (x / 255 for x in Color.parse(c).rgb)
        return colorsys.rgb_to_hsv(r, g, b)[0] * 360

    assert 180 <= hue(v["status-pass"]) <= 260  # blue, not green
    assert not 75 <= hue(v["status-fail"]) <= 165  # not green either


def write_theme(xdg, name: str, text: str) -> None:
    d = xdg / "config" / "tenantscope" / "themes"
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(text)


async def test_user_themes_valid_one_used_broken_one_skipped(xdg):
    write_theme(xdg, "ok.toml", 'name = "mine"\nprimary = "#123456"\n[variables]\nstatus-fail = "#ff0000"\n')
    write_theme(xdg, "bad.toml", 'name = "broken"\nprimary = "not-a-colour"\n')
    write_theme(xdg, "typo.toml", 'name = "typo"\nprimry = "#123456"\n')
    app, _ = make_app()
    app.theme = theming.choose(app, cli="mine")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.theme == "mine"
        assert "broken" not in app.available_themes
        msgs = " | ".join(n.message for n in app._notifications)
        assert "bad.toml: primary = 'not-a-colour' is not a colour" in msgs
        assert "typo.toml: unknown key 'primry'" in msgs
        # status variables the user theme does not set fall back to the defaults
        assert app.theme_variables["status-pass"] == THEME_DEFAULTS["status-pass"]


def test_unknown_theme_on_the_command_line_is_refused(capsys):
    from tui.cli import main

    assert main(["demo", "--theme", "solarized-nope"]) == 2
    err = capsys.readouterr().err
    assert "--theme solarized-nope: unknown theme" in err and "high-contrast" in err


async def test_choice_is_remembered_and_short_names_work(xdg):
    from tui import extras

    app, _ = make_app()
    extras.configure(app, theme="light")
    assert app.theme == "tenantscope-light"
    assert 'theme = "tenantscope-light"' in theming.state_path().read_text()
    async with app.run_test(size=(120, 40)) as pilot:
        app.theme = "tenantscope-high-contrast"  # as the palette's theme switcher does
        await pilot.pause()
    assert theming.remembered() == "tenantscope-high-contrast"
    app2, _ = make_app()
    extras.configure(app2)
    assert app2.theme == "tenantscope-high-contrast"


def test_no_color_and_config_theme(monkeypatch):
    app, _ = make_app()
    assert theming.choose(app, cli=None, environ={"NO_COLOR": "1"}) == "tenantscope-monochrome"
    assert (
        theming.choose(app, cli=None, config_theme="colour-blind", environ={}) == "tenantscope-colour-blind"
    )
    assert theming.choose(app, cli=None, environ={}) == themes.DEFAULT
    assert theming.choose(app, cli="nord", environ={}) == "nord"  # Textual's own themes render too


# -- snapshots


@pytest.fixture(scope="module")
def demo():
    return demo_state()


async def settle(pilot) -> None:  # type: ignore[no-untyped-def]
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize("theme", BUILTIN + ("textual-light",))
def test_main_screen_in_each_theme(snap_compare, demo, theme):
    app, _ = make_app(demo)
    app.theme = theme
    assert snap_compare(app, terminal_size=(160, 48), run_before=settle)


@pytest.mark.parametrize("size", [(80, 24), (200, 60)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_runbook_panel(snap_compare, size):
    app, _ = make_app(incident_state())

    async def run(pilot):  # type: ignore[no-untyped-def]
        # one key at a time, each settled: pressed together on a loaded machine, "M" reached the
        # logs step's "since when?" prompt before it had taken Enter (not a time: 'M')
        for key in ("L", "enter", "M", "A"):
            await pilot.press(key)
            await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run)


def test_finding_detail_with_ack_200x60(snap_compare):
    app, _ = make_app(incident_state())

    async def run(pilot):  # type: ignore[no-untyped-def]
        from tui.screens.finding_detail import acknowledge

        st = app.state
        acknowledge(app, next(f for f in st.findings if f.check_id == "VM-08"), "INC-9 password rotated")
        await pilot.press("5")
        pane = app.pane("findings")
        pane.table.move_cursor(row=[f.check_id for f in pane.ordered].index("VM-08"))
        await pilot.press("enter")
        await settle(pilot)

    assert snap_compare(app, terminal_size=(200, 60), run_before=run)
