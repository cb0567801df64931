"""The fleet view: one row per host, worst status per area, most urgent first.

Past a handful of hosts the header only summarises; this table is where the engineer finds
the host to open. Rows come from probes/hostsummary.py (pure); Enter narrows the panes to the
highlighted host (the app's host filter), `s` changes the sort.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static
from textual.widgets.data_table import ColumnKey

from probes.hostsummary import AREAS, SORTS, HostRow, rows, sorted_rows
from probes.model import Finding, State, Status
from tui.header import CONN_SYMBOL
from tui.safe import untrusted
from tui.status import STATUS_LABEL, STATUS_VAR, theme_style
from tui.table import CellCachedTable

STALE_AFTER = 60.0  # seconds without an observation before a host's age is shown as a warning


def age(seconds: float | None) -> str:
    """Coarse on purpose: a host polled every few seconds reads "<10s" all the time instead of
    ticking 0s-1s-2s, which redrew the whole table every second for nothing."""
    if seconds is None:
        return "never"
    if seconds < 10:
        return "<10s"
    if seconds < 90:
        return f"{seconds // 10 * 10:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h"


# A cell as its text and style (None: untrusted text from the host); compared between States
# so that only changed cells are redrawn.
Cell = tuple[str, Style | str | None]
SEEN_COLUMN = 2
AGE_REDRAW = 1.0  # seconds: a change of ages alone redraws the table at most this often
# seconds: other changes of cells in rows that kept their place (a fleet of hundreds changes a
# few hosts' cells at every State) are drawn at most this often; a new order, hosts coming or
# going, a key (sort) are drawn at once
CELL_REDRAW = 0.5
NO_RESULT = "·"  # an area without any result for the host
SUBTITLE = "Enter opens · s sorts · Esc closes"
SUBTITLE_WIDE = "Enter opens · ← → more columns · s sorts · Esc closes"  # the table is wider
LEGEND = (
    f"areas: the host's worst check result there, {NO_RESULT} no check of that area ran on the host"
    f"   Seen: ! no observation for over {STALE_AFTER:.0f} s"
)


def area_cell(status: Status | None, variables: Mapping[str, str]) -> Cell:
    if status is None:
        return (NO_RESULT, "dim")
    return (
        STATUS_LABEL[status].split()[0] + " " + status.value,
        theme_style(variables, STATUS_VAR[status], bold=status == Status.FAIL),
    )


def _text(cell: Cell) -> Text:
    text, style = cell
    return untrusted(text) if style is None else Text(text, style=style)


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
        self._cells_shown: list[tuple[Cell, ...]] = []
        self._column_keys: list[ColumnKey] = []
        self._aged_at = 0.0
        self._redraw_due = False  # a timer will draw cells that changed within CELL_REDRAW
        self._summary = ""
        # Per host, what its row was made from, and the row (a fleet of hundreds changes a few
        # hosts between two States: the others' rows and cells are not made again)
        self._findings_of: tuple[object, dict[str, tuple[Finding, ...]]] = ((), {})
        self._row_of: dict[str, tuple[tuple[object, ...], HostRow]] = {}
        self._cells_of: dict[tuple[object, ...], tuple[Cell, ...]] = {}
        self._cells_theme: object = None

    def compose(self) -> ComposeResult:
        with Vertical(id="fleet", classes="dialog") as box:
            box.border_title = "Fleet"
            box.border_subtitle = SUBTITLE
            # (cells rendered once per content: a State changes a few hosts' cells, a sort none)
            table = CellCachedTable(id="fleet-table", cursor_type="row", zebra_stripes=True)
            # the counts before the areas: at 140 columns they were past the right edge
            self._column_keys = table.add_columns(
                "Host", "Connection", "Seen", "Fail", "Warn", "Probe errors", *AREAS
            )
            yield Static(id="fleet-summary")
            yield table
            yield Static(Text(LEGEND, style="dim"), id="fleet-legend")
        yield Footer()

    def on_mount(self) -> None:
        self.show(self._state)
        self.call_after_refresh(self._say_if_wider)

    def on_resize(self) -> None:
        self.call_after_refresh(self._say_if_wider)

    def _say_if_wider(self) -> None:
        """At 80 columns only the host and vm areas fit: the subtitle says ← → shows the rest."""
        found = self.query("#fleet-table")
        if not found:
            return
        table = found.first(DataTable)
        wider = table.virtual_size.width > table.scrollable_content_region.width
        self.query_one("#fleet").border_subtitle = SUBTITLE_WIDE if wider else SUBTITLE

    def follow_state(self, state: State) -> None:
        """The app hands the screen on top every new State (tui/app.py)."""
        self.show(state)

    def show(self, state: State) -> None:
        """Rows that kept their place get only their changed cells updated; the table is rebuilt
        only when hosts come, go or change order. Ages alone redraw at most once a second."""
        self._state = state
        found = self.query("#fleet-table")
        if not found:
            return
        table = found.first(DataTable)
        variables = self.app.theme_variables
        new_rows = sorted_rows(self._host_rows(state, self._clock()), self.sort)
        # (before the returns below: `s` with the order unchanged, e.g. one host, still names
        # the new sort)
        self._show_summary(new_rows)
        if variables is not self._cells_theme:  # another theme: every cell's style changes
            self._cells_of, self._cells_theme = {}, variables
        cells = [self._cells_cached(r, variables) for r in new_rows]
        order = [r.host for r in new_rows]
        now = time.monotonic()
        if order == [r.host for r in self._rows] and len(self._cells_shown) == len(cells):
            changed = [
                (r.host, i, c)
                for r, old, new in zip(new_rows, self._cells_shown, cells)
                for i, c in enumerate(new)
                if c != old[i]
            ]
            if not changed or (
                all(i == SEEN_COLUMN for _, i, _ in changed) and now - self._aged_at < AGE_REDRAW
            ):
                self._rows = list(new_rows)  # (cells not redrawn yet are redrawn next time)
                return
            wait = self._aged_at + CELL_REDRAW - now
            if wait > 0:  # drawn with the next State, or by the timer, whichever comes first
                self._rows = list(new_rows)
                if not self._redraw_due:
                    self._redraw_due = True
                    self.set_timer(wait, self._redraw)
                return
            for host, i, c in changed:
                table.update_cell(host, self._column_keys[i], _text(c))
        else:
            current = self._rows[table.cursor_row].host if 0 <= table.cursor_row < len(self._rows) else None
            shown = dict(zip((r.host for r in self._rows), self._cells_shown))
            if len(shown) == len(order) == table.row_count and shown.keys() == set(order):
                # the same hosts in another order (a sort key, a host got worse): their changed
                # cells, then the rows moved in place (nothing re-added, re-measured, re-rendered)
                for host, new in zip(order, cells):
                    old = shown[host]
                    for i, c in enumerate(new):
                        if c != old[i]:
                            table.update_cell(host, self._column_keys[i], _text(c))
                first = self._column_keys[0]  # (a host's cell: the object itself names its row)
                place = {id(table.get_cell(host, first)): i for i, host in enumerate(order)}
                table.sort(first, key=lambda cell: place[id(cell)])
            else:
                table.clear()
                for r, row in zip(new_rows, cells):
                    table.add_row(*(_text(c) for c in row), key=r.host)
            if current is not None:
                i = next((k for k, r in enumerate(new_rows) if r.host == current), 0)
                table.move_cursor(row=i, animate=False)
        self._rows = list(new_rows)
        self._cells_shown = cells
        self._aged_at = now

    def _show_summary(self, rows: list[HostRow]) -> None:
        down = sum(r.down for r in rows)
        failing = sum(r.fails > 0 for r in rows)
        n = len(rows)
        hosts = f"{n} host{'' if n == 1 else 's'}"
        summary = f"{hosts} · {down} down · {failing} with failing checks · sorted by {self.sort}"
        if summary != self._summary:
            self._summary = summary
            self.query_one("#fleet-summary", Static).update(Text(summary))

    def _redraw(self) -> None:
        self._redraw_due = False
        self.show(self._state)

    def _host_rows(self, state: State, now: float) -> list[HostRow]:
        """hostsummary.rows(state, now), made again only for the hosts whose connections,
        probe errors, workload count or findings changed (the age is the clock's)."""
        ref, by_host = self._findings_of
        if ref is not state.findings:
            grouped: dict[str, list[Finding]] = {}
            for f in state.findings:
                grouped.setdefault(f.host, []).append(f)
            old = by_host
            by_host = {}
            for hn, fs in grouped.items():
                t = tuple(fs)
                by_host[hn] = old[hn] if old.get(hn) == t else t
            self._findings_of = (state.findings, by_host)
        out = []
        for h in state.hosts:
            name = h.host.name
            mine = by_host.get(name, ())
            key = (h.host, h.connections, bool(h.refreshed_at), h.probe_errors, len(h.workloads), mine)
            got = self._row_of.get(name)
            if got is not None and all(a is b or a == b for a, b in zip(got[0], key)):
                row = got[1]
                stale = max(0.0, now - h.refreshed_at) if h.refreshed_at else None
                out.append(row if row.stale_s == stale else replace(row, stale_s=stale))
                continue
            # (fleet-wide results, host "", count for no host in rows() either)
            [row] = rows(State(hosts=(h,), findings=mine), now)
            self._row_of[name] = (key, row)
            out.append(row)
        if len(self._row_of) > len(out):
            names = {r.host for r in out}
            self._row_of = {k: v for k, v in self._row_of.items() if k in names}
        return out

    def _cells_cached(self, r: HostRow, variables: Mapping[str, str]) -> tuple[Cell, ...]:
        stale = r.stale_s is None or r.stale_s > STALE_AFTER
        key = (r.host, r.connection, age(r.stale_s), stale, r.worst, r.fails, r.warns, r.probe_errors)
        got = self._cells_of.get(key)
        if got is None:
            if len(self._cells_of) > 4 * max(len(self._rows), 64):
                self._cells_of = {}
            got = self._cells_of[key] = self._cells(r, variables)
        return got

    @staticmethod
    def _cells(r: HostRow, variables: Mapping[str, str]) -> tuple[Cell, ...]:
        symbol, var = CONN_SYMBOL.get(r.connection, ("?", "status-warn"))  # as the header shows it
        label = f"{symbol} {r.connection.value}"
        stale = r.stale_s is None or r.stale_s > STALE_AFTER
        return (
            (r.host, None),  # untrusted: sanitized when made Text
            (label, theme_style(variables, var)),
            (
                age(r.stale_s) + (" !" if stale else ""),
                theme_style(variables, "status-warn") if stale else "",
            ),
            (str(r.fails), ""),
            (str(r.warns), ""),
            (str(r.probe_errors), ""),
            *(area_cell(r.worst_of(a), variables) for a in AREAS),
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
