"""The fleet view: one row per host, worst status per area, most urgent first.

Past a handful of hosts the header only summarises; this table is where the engineer finds
the host to open. Rows come from probes/hostsummary.py (pure); Enter narrows the panes to the
highlighted host (the app's host filter), `s` changes the sort.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from probes.hostsummary import AREAS, SORTS, HostRow, rows, sorted_rows
from probes.model import ConnState, State, Status
from tui.safe import untrusted
from tui.status import STATUS_LABEL, STATUS_VAR, theme_style

_CONN = {
    ConnState.UP: ("✓ up", "status-pass"),
    ConnState.CONNECTING: ("… connecting", "status-warn"),
    ConnState.UNREACHABLE: ("✗ unreachable", "status-fail"),
    ConnState.AUTH_FAILED: ("✗ auth failed", "status-fail"),
    ConnState.HOST_KEY_REFUSED: ("✗ host key", "status-fail"),
    ConnState.ABSENT: ("- absent", "status-skip"),
}
STALE_AFTER = 60.0  # seconds without an observation before a host's age is shown as a warning


def age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h"


def area_cell(status: Status | None, variables: Mapping[str, str]) -> Text:
    if status is None:
        return Text("·", style="dim")
    return Text(
        STATUS_LABEL[status].split()[0] + " " + status.value,
        style=theme_style(variables, STATUS_VAR[status], bold=status == Status.FAIL),
    )


class FleetScreen(ModalScreen[str | None]):
    """Dismissed with the host to open, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss_none", "Close", id="fleet-close"),
        Binding("enter", "open_host", "Open host", id="fleet-open"),
        Binding("s", "cycle_sort", "Sort", id="fleet-sort"),
    ]

    def __init__(self, state: State, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self._state = state
        self._clock = clock
        self.sort = SORTS[0]
        self._rows: list[HostRow] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="fleet", classes="dialog") as box:
            box.border_title = "Fleet"
            box.border_subtitle = "Enter opens · s sorts · Esc closes"
            table: DataTable[Text] = DataTable(id="fleet-table", cursor_type="row", zebra_stripes=True)
            table.add_columns("Host", "Connection", "Seen", *AREAS, "Fail", "Warn", "Probe errors")
            yield Static(id="fleet-summary")
            yield table
        yield Footer()

    def on_mount(self) -> None:
        self.show(self._state)

    def show(self, state: State) -> None:
        self._state = state
        found = self.query("#fleet-table")
        if not found:
            return
        table = found.first(DataTable)
        variables = self.app.theme_variables
        current = self._rows[table.cursor_row].host if 0 <= table.cursor_row < len(self._rows) else None
        self._rows = sorted_rows(rows(state, self._clock()), self.sort)
        table.clear()
        for r in self._rows:
            label, var = _CONN.get(r.connection, (str(r.connection), "status-skip"))
            stale = r.stale_s is None or r.stale_s > STALE_AFTER
            table.add_row(
                untrusted(r.host),
                Text(label, style=theme_style(variables, var)),
                Text(
                    age(r.stale_s) + (" !" if stale else ""),
                    style=theme_style(variables, "status-warn") if stale else "",
                ),
                *(area_cell(r.worst_of(a), variables) for a in AREAS),
                Text(str(r.fails)),
                Text(str(r.warns)),
                Text(str(r.probe_errors)),
                key=r.host,
            )
        if current is not None:
            i = next((k for k, r in enumerate(self._rows) if r.host == current), 0)
            table.move_cursor(row=i, animate=False)
        down = sum(r.down for r in self._rows)
        failing = sum(r.fails > 0 for r in self._rows)
        self.query_one("#fleet-summary", Static).update(
            Text(
                f"{len(self._rows)} hosts · {down} down · {failing} with failing checks · sorted by {self.sort}"
            )
        )

    def action_cycle_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.show(self._state)

    def action_open_host(self) -> None:
        table = self.query_one("#fleet-table", DataTable)
        if 0 <= table.cursor_row < len(self._rows):
            self.dismiss(self._rows[table.cursor_row].host)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_host()

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
