"""Probe errors: which probe failed on which host, with what message, since when; and how
each probe is fed (events with a slow safety poll, or polling, and why).

Opened from the header's error count (click or `!`). A failing probe never stops the others;
this list is where the user sees what is missing from the picture and why.
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

from probes.model import Feed, ProbeError, State
from tui.header import hhmmss
from tui.safe import untrusted
from tui.table import RowTable


def all_errors(state: State) -> list[ProbeError]:
    return sorted((e for h in state.hosts for e in h.probe_errors), key=lambda e: (e.host, e.probe))


def all_feeds(state: State) -> list[tuple[str, Feed]]:
    return sorted(((h.host.name, f) for h in state.hosts for f in h.feeds), key=lambda x: (x[0], x[1].probe))


# never colour alone: a symbol and a word
MODES = {"events": ("⚡ events", "bold"), "polled": ("⟳ polled", "")}


class ProbeErrorsScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close", id="probe-errors-close"),
    ]

    def __init__(self, state: State, tz: tzinfo | None = None) -> None:
        super().__init__()
        self._state = state
        self._tz = tz
        self._errors: list[ProbeError] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="probe-errors", classes="dialog") as box:
            box.border_title = "Probe errors, and how each probe is fed"
            box.border_subtitle = "Esc closes"
            table: DataTable[Text] = RowTable(id="probe-errors-table", cursor_type="row")
            table.add_columns("Probe", "Host", "Failing since", "Last", "Message")
            yield table
            yield Static(id="probe-error-message")
            yield Static(id="probe-errors-empty")
            feeds: DataTable[Text] = DataTable(id="probe-feeds-table", cursor_type="none")
            feeds.add_columns("Probe", "Host", "Fed by", "Every", "How, or why polled")
            yield feeds
        yield Footer()

    def on_mount(self) -> None:
        self.show(self._state)

    def follow_state(self, state: State) -> None:
        """The app hands the screen on top every new State (tui/app.py)."""
        self.show(state)

    def show(self, state: State) -> None:
        self._state = state
        found = self.query("#probe-errors-table")
        if not found:  # pushed but not composed yet: on_mount shows the latest state
            return
        table = found.first(DataTable)
        row = table.cursor_row
        table.clear()
        errors = all_errors(state)
        self._errors = errors
        for e in errors:
            table.add_row(
                untrusted(e.probe),
                untrusted(e.host),
                Text(hhmmss(e.since or e.at, self._tz)),
                Text(hhmmss(e.at, self._tz)),
                untrusted(e.message),
            )
        if errors:
            table.move_cursor(row=min(max(row, 0), len(errors) - 1), animate=False)
        # no error: no empty table filling the dialog above the one line saying so
        table.display = bool(errors)
        self._show_message(table.cursor_row)
        self.query_one("#probe-errors-empty", Static).update(
            Text("No probe is failing: every probe's last run succeeded.", style="italic")
            if not errors
            else Text(f"{len(errors)} probe(s) failing; each retries with back-off.", style="dim")
        )

        self._show_feeds(state)

    def _show_feeds(self, state: State) -> None:
        """Per probe: event-driven (with the safety poll's period) or polled, and why."""
        table = self.query_one("#probe-feeds-table", DataTable)
        table.clear()
        for host, f in all_feeds(state):
            word, style = MODES.get(f.mode, (f.mode, ""))
            table.add_row(
                untrusted(f.probe),
                untrusted(host),
                Text(word, style=style),
                Text(f"{f.every:g} s" if f.every else ""),
                untrusted(f.detail),
            )

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_message(event.cursor_row)

    def _show_message(self, row: int) -> None:
        """The highlighted error's whole message, wrapped (the table cuts long ones)."""
        errors = self._errors
        text = Text()
        if 0 <= row < len(errors):
            e = errors[row]
            text = Text.assemble(untrusted(f"{e.probe} on {e.host}: ", style="bold"), untrusted(e.message))
        self.query_one("#probe-error-message", Static).update(text)

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
