"""The detail dialogs' one shell: a log line, a finding, a workload shown whole.

Each is a scrolling dialog holding one Text (made by its module's pure `..._text` function,
every host value through untrusted()), titled, closed with Esc, with the footer of its keys.
The ids are `NAME-detail` (the dialog) and `NAME-body` (the text), so tests and extensions
(tui/screens/finding_detail.py redraws the body) find them; each screen declares its own Esc
binding, since a binding's id names its screen for the keymap.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static


class DetailScreen(ModalScreen[None]):
    NAME: ClassVar[str]  # the ids' prefix: NAME-detail, NAME-body
    TITLE: ClassVar[str]  # the dialog's border title

    def body(self) -> Text:
        raise NotImplementedError

    def compose(self) -> ComposeResult:
        with VerticalScroll(id=f"{self.NAME}-detail", classes="dialog") as box:
            box.border_title = self.TITLE
            box.border_subtitle = "Esc closes"
            yield Static(self.body(), id=f"{self.NAME}-body")
        yield Footer()

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
