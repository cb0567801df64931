"""The matrix cell label carries the filter state (ƒ✗ blocked by a filter, ƒ✓ through one,
ƒ? undecided), decided by the real predictor over a bridge-family rule set (plain data: the
rules are the ones a real `nft -j` would give; tests/network/test_filters_lab.py runs them)."""

from __future__ import annotations

from dataclasses import replace

from probes.network.filtermodel import Atom, Chain, Match, NsFilters, Ruleset, Unknown, Verdict, make_rule
from probes.network.predict import matrix
from tests.tui.test_network_pane import shared_bridge_state
from tui.panes.reachability import LEGEND, cell_label


def _with_rule(*parts) -> object:
    st = shared_bridge_state()
    hs = st.hosts[0]
    rule = make_rule(
        (
            Match("meta iifname", "==", (Atom("value", "h1"),)),
            Match("meta oifname", "==", (Atom("value", "h2"),)),
        )
        + parts,
        Verdict("drop"),
        7,
        "",
    )
    chain = Chain("bridge", "tf2", "forward", (rule,), hook="forward", policy="accept")
    f = NsFilters("", (Ruleset("nft", (chain,)),), why="bridge")
    return replace(hs, topology=replace(hs.topology, filters=(f,)))


def test_cell_labels_show_the_filter_state() -> None:
    hs = _with_rule(Match("ct state", "==", (Atom("value", "new"),)))
    m = matrix(hs)
    ab, ba = m.cell("acme", "globex"), m.cell("globex", "acme")
    assert ab is not None and ba is not None
    assert ab.filter_state == "blocked-by-filter"
    assert cell_label(ab) == "✗ ~✗ ƒ✗"
    assert ba.filter_state == "reach-through-filter"
    assert cell_label(ba).endswith("ƒ✓") and "‼" in cell_label(ba)
    assert "ƒ✗ blocked by a filter" in LEGEND


def test_cell_label_says_undecided() -> None:
    hs = _with_rule(Unknown("meta mark 0x1"))
    c = matrix(hs).cell("acme", "globex")
    assert c is not None and c.filter_state == "filter-undecided"
    assert cell_label(c).endswith(" ƒ?")
    assert "ƒ? undecided" in LEGEND
