"""Replay: ask for the time to jump to (HH:MM:SS UTC, or +S / -S seconds)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class JumpTo(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="replay-jump-cancel")]
    DEFAULT_CSS = """
    JumpTo { align: center middle; }
    JumpTo > Vertical { width: 60; height: auto; border: round $accent; padding: 1 2; background: $surface; }
    """

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text("Jump to HH:MM:SS (UTC) or +SECONDS / -SECONDS; Enter jumps, Esc cancels"))
            yield Input(placeholder="14:05:00", id="replay-jump")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
