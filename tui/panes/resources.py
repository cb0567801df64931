"""The Resources pane (placeholder until its area lands; the area engineer replaces this module).

Interface kept by the replacement: class `ResourcesPane(Pane)` with `pane_id = "resources"`, a `title`,
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


class ResourcesPane(Pane):
    pane_id: ClassVar[str] = "resources"
    title: ClassVar[str] = "Resources"
    BINDINGS: ClassVar[list[BindingType]] = []

    def compose(self) -> ComposeResult:
        yield Static(Text("Resources: per-tenant CPU, memory, disk and network use, who spiked, who has no limit — coming with the resources probe.", style="italic"), classes="placeholder")

    def show(self, state: State) -> None:
        return None
