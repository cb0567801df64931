"""Ask for a time: where to jump in a replay, or since when the runbook reviews logs."""

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

    def __init__(
        self,
        prompt: str = "Jump to HH:MM:SS (UTC) or +SECONDS / -SECONDS; Enter jumps, Esc cancels",
        placeholder: str = "14:05:00",
    ) -> None:
        super().__init__()
        self.prompt = prompt
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.prompt))
            yield Input(placeholder=self.placeholder, id="replay-jump")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
