"""The README is part of the product: its key table must name every key the app has."""

from __future__ import annotations

from probes.session import Options
from tests.fixtures.tui import sample_state
from tests.helpers import REPO
from tui.app import TenantScopeApp
from tui.bindings import key_entries
from tui.source import StaticSource

README = (REPO / "README.md").read_text()


async def test_every_binding_id_is_in_the_readme_key_table():
    app = TenantScopeApp(Options(), source=StaticSource(sample_state()))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        ids = {e.id for e in key_entries(app)}
    assert len(ids) > 30  # the app, every pane
    table = README.split("## Keys", 1)[1].split("## Commands", 1)[0]
    missing = sorted(i for i in ids if f"`{i}`" not in table)
    assert missing == [], f"README.md key table lacks: {missing}"


def test_readme_gives_the_two_setup_commands_and_every_subcommand():
    from tui.cli import build_parser

    assert "make demo" in README and "make test" in README
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    missing = [c for c in sub.choices if f"tenantscope {c}" not in README]
    assert missing == [], f"README.md does not show: {missing}"


async def test_the_screenshot_counts_are_the_demos():
    """The screenshot's status counts are what `make demo` shows now (observed as the demo
    observes, tests/fixtures/tui.observe_demo). After a change to the catalog or the demo,
    take the screenshot again (the app at 120x36 on the demo fleet)."""
    import re
    from collections import Counter

    from probes.model import Status
    from tests.fixtures.tui import observe_demo

    shot = README.split("```", 2)[1]
    m = re.search(r"✗ FAIL (\d+) · ! WARN (\d+) · - SKIP (\d+) · ✓ PASS (\d+)", shot)
    assert m, "the README's screenshot shows no Findings status line"
    got = Counter(f.status for f in (await observe_demo()).findings)
    demo = (got[Status.FAIL], got[Status.WARN], got[Status.SKIPPED], got[Status.PASS])
    assert tuple(int(x) for x in m.groups()) == demo, f"README screenshot vs demo: {m.group(0)} vs {demo}"


def test_every_file_the_readme_links_exists():
    import re
    from urllib.parse import unquote

    links = re.findall(r"\]\(((?:tests|probes|tui|themes|bench)/[^)#\s]+)\)", README)
    assert links, "the README links files of the repository"
    missing = [link for link in links if not (REPO / unquote(link)).exists()]
    assert missing == [], f"README.md links files that do not exist: {missing}"
