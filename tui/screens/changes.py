"""Changes since the baseline, newest first: the answer to "what changed?".

Rows come from probes/drift.py (a pure diff of the baseline and the current State). Enter
dismisses with the change, and the app jumps to what it names: the finding's detail, the
workload, or the Reachability pane for a link or port.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from probes.drift import Change, Drift, counts
from probes.model import State
from tui.header import hhmmss
from tui.safe import untrusted
from tui.table import RowTable


class ChangesScreen(ModalScreen[Change | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss_none", "Close", id="changes-close"),
        Binding("enter", "open_change", "Open", id="changes-open"),
    ]

    def __init__(self, drift: Drift | None, baseline: str, tz: tzinfo | None = None) -> None:
        super().__init__()
        self._drift = drift
        self._baseline = baseline
        self._tz = tz
        self._changes: tuple[Change, ...] = ()

    def compose(self) -> ComposeResult:
        with Vertical(id="changes", classes="dialog") as box:
            box.border_title = "Changes since the baseline"
            box.border_subtitle = "Enter opens · Esc closes"
            yield Static(id="changes-summary")
            table: DataTable[Text] = RowTable(id="changes-table", cursor_type="row")
            table.add_columns("Time", "Area", "Host", "Change")
            yield table
        yield Footer()

    def on_mount(self) -> None:
        self.show(self._drift)

    def follow_state(self, state: State) -> None:
        """The app hands the screen on top every new State (tui/app.py)."""
        self.show(state.drift)

    def show(self, drift: Drift | None) -> None:
        self._drift = drift
        found = self.query("#changes-table")
        if not found:
            return
        table = found.first(DataTable)
        table.clear()
        self._changes = drift.newest_first() if drift else ()
        for c in self._changes:
            table.add_row(
                Text(hhmmss(c.at, self._tz)), Text(str(c.area)), untrusted(c.host), untrusted(c.summary)
            )
        summary = self.query_one("#changes-summary", Static)
        if drift is None:
            summary.update(
                Text(
                    "No baseline: start with --baseline FILE (a snapshot or a recording@HH:MM); "
                    "in a replay, B sets one (an instant of the recording).",
                    style="italic",
                )
            )
            return
        n = counts(drift)
        per = ", ".join(f"{v} {k}" for k, v in sorted(n.items())) or "nothing changed"
        summary.update(
            Text.assemble(
                "Baseline ",
                untrusted(self._baseline),
                f" ({hhmmss(drift.baseline_at, self._tz)}): ",
                f"{len(drift.new_findings())} new finding(s), {len(drift.cleared)} cleared · {per}",
            )
        )

    def action_open_change(self) -> None:
        table = self.query_one("#changes-table", DataTable)
        if 0 <= table.cursor_row < len(self._changes):
            self.dismiss(self._changes[table.cursor_row])

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_change()

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
