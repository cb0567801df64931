"""Keys: every binding of every pane and screen has an id and a description; the user's keymap
from the config file changes a binding; invalid entries are refused with a clear message."""

from __future__ import annotations

from collections import Counter

import pytest

from probes.config import parse as parse_config
from tests.fixtures.tui import make_app
from tui import keymap
from tui.bindings import key_entries
from tui.cli import main


def test_every_binding_has_an_id_and_a_description():
    found = keymap.all_bindings()
    classes = {c.__name__ for c, _ in found}
    assert {
        "TenantScopeApp",
        "TenantsPane",
        "ResourcesPane",
        "ReachabilityPane",
        "LogsPane",
        "FindingsPane",
        "FindingScreen",
        "FindingDetailScreen",
        "HelpScreen",
        "ReplayApp",
        "AckNote",
    } <= classes
    bad = [(c.__name__, b.key) for c, b in found if not b.id or not b.description]
    assert bad == []
    for cls in {c for c, _ in found}:  # within one class, an id names one binding
        ids = Counter(b.id for c, b in found if c is cls)
        assert [i for i, n in ids.items() if n > 1] == [], cls.__name__


@pytest.mark.parametrize(
    "key,ok",
    [
        ("ctrl+n", True),
        ("f5", True),
        ("N", True),
        ("question_mark", True),
        ("ctrl+shift+up", True),
        ("ctrl+", False),
        ("hyperdrive", False),
        ("ctrl+ctrl+a", False),
        ("", False),
    ],
)
def test_key_validation(key, ok):
    assert keymap.valid_key(key) is ok


def test_unknown_id_and_bad_key_are_refused_with_the_place():
    with pytest.raises(
        keymap.KeymapError,
        match=r"cfg.toml: \[keymap\] run-netwrok-test: unknown binding id "
        r"\(did you mean 'run-network-test'\?\)",
    ):
        keymap.parse({"run-netwrok-test": "ctrl+n"}, "cfg.toml")
    with pytest.raises(keymap.KeymapError, match="'ctrl\\+' is not a key"):
        keymap.parse({"run-network-test": "ctrl+"}, "cfg.toml")
    with pytest.raises(keymap.KeymapError, match="expected a key as a string"):
        keymap.parse({"help": 5}, "cfg.toml")


async def test_keymap_from_config_changes_the_binding():
    cfg = parse_config('[keymap]\nrun-audit = "ctrl+n"\nfindings-filter-tenant = "T"\n', "cfg.toml")
    from tests.fixtures.runbook import incident_state

    app, _ = make_app(incident_state())
    keymap.apply(app, cfg)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("ctrl+n")
        await app.workers.wait_for_complete()
        assert app.runbook_steps["audit"].state.value == "done"
        await pilot.press("5", "T")
        assert app.pane("findings").filters["tenant"] == "acme"
        entries = {e.id: e.key for e in key_entries(app)}
        assert entries["run-audit"] == "^n"  # help and palette show the new key (ctrl+n)


def test_cli_refuses_a_bad_keymap(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[keymap]\nno-such-action = "x"\n')
    assert main(["--config", str(cfg), "run"]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}: [keymap] no-such-action: unknown binding id" in err


def test_binding_ids_are_hyphenated_and_the_logs_panes_old_ids_still_work():
    """One convention for binding ids (`tenants-expand-all`): the Logs pane's were dotted
    (`logs.follow`). A keymap written with an old id (the README listed them) still works;
    naming one binding by both names is refused."""
    dotted = sorted(b.id for _, b in keymap.all_bindings() if b.id and "." in b.id)
    assert dotted == []
    assert keymap.parse({"logs.follow": "F", "logs.open-line": "ctrl+o"}) == {
        "logs-follow": "F",
        "logs-open-line": "ctrl+o",
    }
    with pytest.raises(keymap.KeymapError, match=r"c.toml: \[keymap\] logs-follow: logs-follow is already"):
        keymap.parse({"logs.follow": "F", "logs-follow": "G"}, "c.toml")
    with pytest.raises(keymap.KeymapError, match="unknown binding id"):
        keymap.parse({"logs.nope": "F"})


async def test_an_old_logs_id_in_the_keymap_remaps_the_key():
    from tests.fixtures.runbook import incident_state

    app, _ = make_app(incident_state())
    # unquoted, as the README's `id = "key"` reads: TOML makes it a table `logs` (the old ids
    # worked only quoted; unquoted the id was "logs", unknown)
    keymap.apply(app, parse_config('[keymap]\nlogs.follow = "F"\n', "cfg.toml"))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("4")
        pane = app.pane("logs")
        assert pane.lines.follow
        await pilot.press("F")
        assert not pane.lines.follow
        await pilot.press("F")
        assert pane.lines.follow
