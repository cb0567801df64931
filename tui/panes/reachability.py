"""The Reachability pane (placeholder until its area lands; the area engineer replaces this module).

Interface kept by the replacement: class `ReachabilityPane(Pane)` with `pane_id = "reachability"`, a `title`,
`BINDINGS` of `Binding(key, action, description, id=...)`, and `show(state)` called by the
app on every coalesced State change.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import Static

from probes.model import State
from tui.panes.base import Pane


class ReachabilityPane(Pane):
    pane_id: ClassVar[str] = "reachability"
    title: ClassVar[str] = "Reachability"
    BINDINGS: ClassVar[list[BindingType]] = []

    def compose(self) -> ComposeResult:
        yield Static(Text("Reachability: can tenant A reach tenant B? Expected (bridges, VLANs, OVS, nwfilter) against observed (active probes), per pair — coming with the network probe.", style="italic"), classes="placeholder")

    def show(self, state: State) -> None:
        return None
