"""Help: every key, generated from the live bindings (so remapped keys show as remapped)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from tui.bindings import key_entries
from tui.table import RowTable

NAVIGATION = (
    "In lists and trees: ↑ ↓ PgUp PgDn Home End move · Enter opens · Space expands "
    "or collapses · ← → pan long log lines · Tab / Shift+Tab next pane or its detail · mouse"
)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close", id="help-close"),
        Binding("question_mark", "dismiss", "Close", id="help-close-toggle", key_display="?"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="help", classes="dialog") as box:
            box.border_title = "Keys"
            box.border_subtitle = "Esc or ? closes"
            table: DataTable[Text] = RowTable(id="help-table", cursor_type="row", zebra_stripes=True)
            table.add_columns("Key", "Action", "Where", "Id")
            for e in key_entries(self.app):
                table.add_row(
                    Text(e.key, style="bold"), Text(e.description), Text(e.scope), Text(e.id, style="dim")
                )
            yield table
            yield Static(Text(NAVIGATION, style="dim"), id="help-nav")
        yield Footer()

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)

    def rows(self) -> list[tuple[str, ...]]:
        """The table's content as plain strings (for tests and screen readers)."""
        t = self.query_one("#help-table", DataTable)
        return [tuple(str(c) for c in t.get_row_at(i)) for i in range(t.row_count)]
