"""The Logs pane (placeholder until its area lands; the area engineer replaces this module).

Interface kept by the replacement: class `LogsPane(Pane)` with `pane_id = "logs"`, a `title`,
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


class LogsPane(Pane):
    pane_id: ClassVar[str] = "logs"
    title: ClassVar[str] = "Logs"
    BINDINGS: ClassVar[list[BindingType]] = []

    def compose(self) -> ComposeResult:
        yield Static(Text("Logs: what the host said — AVC/AppArmor denials, qemu errors, bridge events, OOM kills — attributed to tenants, coming with the log sources.", style="italic"), classes="placeholder")

    def show(self, state: State) -> None:
        return None
