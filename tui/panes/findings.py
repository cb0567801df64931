"""Findings pane: every isolation check result, the worst first.

Sorted by status (fail, warn, error, skipped, pass), then severity, then tenant. The status is
a symbol and a word (colour only on top), so it reads the same on a monochrome projector.
Enter opens the detail (why it matters, evidence, the fix). The table is refilled only when
the findings changed, and the cursor stays on the same finding. t, a and s filter by tenant,
area and status (c clears); acknowledged findings stay listed, marked "✔ ack".

A fleet has thousands of findings (13,000 at 200 hosts), so the table is built for that: a row
is keyed by what the finding is about (check, host, workloads), not by its wording,
so a reworded summary (figures in it) updates that row in place, and findings that come, go or
change status are rows added, removed and moved in place (a rebuild, which re-adds every row
and redraws the table, only when most rows are new); the column widths are
computed once per fill from the text (no cell is measured by the table); a rebuild draws
the rows on screen first and adds the rest between frames, a few milliseconds at a time.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable

from probes.model import Finding, State
from probes.untrusted import visible
from tui.messages import FindingSelected
from tui.panes.base import Pane
from tui.safe import untrusted
from tui.status import STATUS_LABEL, finding_sort_key, severity_text, status_text
from tui.table import CellCachedTable, text_width

COLUMNS = ("Status", "Severity", "Check", "Tenants", "Summary")
# A rebuild of the table (rows came, went or moved) that cost more than REBUILD_SLOW seconds
# (a fleet's thousands of findings) is not done again within REBUILD_FACTOR times its cost:
# States arriving meanwhile are drawn together (a timer draws the last one)
REBUILD_SLOW = 0.05
REBUILD_FACTOR = 4.0
COLUMNS_FLEET = ("Status", "Severity", "Check", "Host", "Tenants", "Summary")
# A rebuild adds the first FILL_FIRST rows at once (more than a screen shows), then the rest
# FILL_SLICE seconds of work at a time, FILL_PAUSE apart (frames and keys go in between)
FILL_FIRST = 120
FILL_SLICE = 0.015
FILL_PAUSE = 0.005
ACK_MARK = "✔ ack "
NEW_MARK = "★ new "


def row_identity(f: Finding) -> str:
    """What a finding is about, without its wording: its row in the table (check, host,
    workloads; findings alike in these get #1, #2... in the table's order). Finding.key has
    the summary, so a summary with figures in it was a new row, and a rebuild, at every change."""
    return f"{f.check_id}|{f.host}|{','.join(sorted(f.workloads))}"


SUMMARY_ROOM = 48  # columns the Summary keeps before the Tenants column is cut


class FindingsTable(CellCachedTable):
    """The table; row keys are row_identity (#n for a repeat) so the cursor survives refreshes."""


class FindingsPane(Pane):
    pane_id: ClassVar[str] = "findings"
    title: ClassVar[str] = "Findings"
    position: ClassVar[int] = 5
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open_detail", "Detail", id="findings-detail"),
        Binding("t", "cycle_filter('tenant')", "Tenant filter", id="findings-filter-tenant"),
        Binding("a", "cycle_filter('area')", "Area filter", id="findings-filter-area"),
        Binding("s", "cycle_filter('status')", "Status filter", id="findings-filter-status"),
        Binding("c", "clear_filters", "Clear filters", id="findings-filter-clear"),
    ]

    def __init__(self, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kw)
        self._findings: tuple[Finding, ...] | None = None
        self._rows: dict[str, Finding] = {}  # row key -> finding, in the table's order
        self._order: list[str] = []  # the row keys, in order
        self._filled = 0  # rows of _order in the table (a rebuild fills the rest between frames)
        self._fill_gen = 0  # a rebuild makes the previous fill's pending steps moot
        self._widths: tuple[int, ...] = ()
        self._columns: tuple[str, ...] = ()
        self._multi_host = False
        self._new: frozenset[str] = frozenset()  # keys of findings new since the baseline
        # per row: what its cells were made from (finding, acknowledged, new): a State whose
        # findings keep their order updates only the rows whose finding changed
        self._made: dict[str, tuple[Finding, bool, bool]] = {}
        self._theme: object = None
        # the Status, Severity, Check and Tenants cells: one Text per value and theme, shared by
        # the rows (780 findings held ~3,000 copies, ~1 MiB; DataTable never changes a cell)
        self._shared: dict[tuple[str, str], Text] = {}
        self._shared_theme: object = None
        self._rebuild_cost = 0.0  # seconds the last rebuild took
        self._rebuilt_at = 0.0
        self._refill_due = False
        self.filters: dict[str, str | None] = {"tenant": None, "area": None, "status": None}

    def compose(self) -> ComposeResult:
        table = FindingsTable(id="findings-table", cursor_type="row", zebra_stripes=True, fixed_widths=True)
        self._set_columns(table, COLUMNS, tuple(len(c) for c in COLUMNS))
        yield table

    def _set_columns(self, table: FindingsTable, columns: tuple[str, ...], widths: tuple[int, ...]) -> None:
        if columns != self._columns or widths != self._widths:
            table.clear(columns=True)
            for c, w in zip(columns, widths):
                table.add_column(Text(c), key=c.lower(), width=w)  # plain text, not markup
            self._columns, self._widths = columns, widths

    def on_mount(self) -> None:
        super().on_mount()
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._refill())

    def on_unmount(self) -> None:
        self._fill_gen += 1  # a fill's pending steps end with the pane (an app exiting mid-fill)

    @property
    def table(self) -> FindingsTable:
        return self.query_one(FindingsTable)

    @property
    def ordered(self) -> tuple[Finding, ...]:
        return tuple(self._rows.values())

    def show(self, state: State) -> None:
        multi_host = len(state.hosts) > 1
        new = frozenset(state.drift.new_findings() if state.drift else ())
        if state.findings == self._findings and multi_host == self._multi_host and new == self._new:
            return
        self._findings = state.findings
        self._new = new
        self._multi_host = multi_host
        wait = self._rebuilt_at + REBUILD_FACTOR * self._rebuild_cost - time.monotonic()
        if self._rebuild_cost > REBUILD_SLOW and wait > 0:
            if not self._refill_due:
                self._refill_due = True
                self.set_timer(wait, self._refill_later)
            return
        self._refill()

    def _refill_later(self) -> None:
        self._refill_due = False
        self._refill()

    def _refill(self) -> None:
        if self._findings is None:
            return
        table = self.table
        # The cursor follows its finding across refreshes, unless it is on the first row:
        # then it stays on top, where the worst finding is.
        current = self.selected() if table.cursor_row > 0 else None
        ordered = sorted(filter(self._passes, self._findings), key=finding_sort_key)
        acks = getattr(self.app, "acks", {})
        variables = self.app.theme_variables
        rows: dict[str, Finding] = {}
        seen: set[str] = set()
        for f in ordered:
            if f.key in seen:  # two identical results: keep one row
                continue
            seen.add(f.key)
            ident = rid = row_identity(f)
            n = 1
            while rid in rows:  # the same check, host and subjects, said otherwise: a row each
                rid = f"{ident}#{n}"
                n += 1
            rows[rid] = f
        # a fleet: which host each finding is on matters as much as which tenant
        columns = COLUMNS_FLEET if self._multi_host else COLUMNS
        widths = self._column_widths(columns, rows.values(), acks)
        if columns == self._columns and widths != self._widths:  # (another set of columns: below)
            table.set_widths((c.lower(), w) for c, w in zip(columns, widths))
            self._widths = widths
        same_order = len(rows) == len(self._rows) and all(a == b for a, b in zip(rows, self._rows))
        kept = 0 if same_order else sum(1 for rid in rows if rid in self._rows)
        if (
            columns == self._columns
            and variables is self._theme
            and (same_order or (self._filled == len(self._order) and 2 * kept >= len(rows)))
        ):
            # the same rows (most States of a fleet), or mostly the same rows in another order:
            # rows that went are removed, new rows added, changed rows updated and the rows
            # moved in place (a rebuild re-adds every row and redraws the whole table).
            # With the same order, rows a fill has not reached yet are drawn from _rows when it does
            if not same_order:
                for rid in [rid for rid in self._rows if rid not in rows]:
                    table.remove_row(rid)
                    self._made.pop(rid, None)
            for i, (rid, f) in enumerate(rows.items()):
                if same_order and i >= self._filled:
                    break
                made = (f, f.key in acks, f.key in self._new)
                old = self._made.get(rid)
                if old is None:  # (not same_order: a new row, placed below)
                    table.add_row(*self._cells(f, made, variables), key=rid)
                    self._made[rid] = made
                    continue
                if old[1:] == made[1:] and (old[0] is f or old[0] == f):
                    continue
                for c, cell in zip(columns, self._cells(f, made, variables)):
                    table.update_cell(rid, c.lower(), cell)
                self._made[rid] = made
            if not same_order:
                table.place_rows(rows)
                self._filled = len(rows)
            self._rows = rows
            self._order = list(rows)
        else:
            t0 = time.monotonic()
            table.clear()
            self._set_columns(table, columns, widths)
            self._theme = variables
            self._shared_theme = None  # (new shared cells: tenant lists gone since are dropped)
            self._made = {}
            self._rows = rows
            self._order = list(rows)
            self._filled = 0
            self._fill_gen += 1
            self._fill(FILL_FIRST)  # (and up to the cursor's finding, below)
            self._rebuilt_at = time.monotonic()
            self._rebuild_cost = self._rebuilt_at - t0
            if self._filled < len(self._order):
                self.set_timer(FILL_PAUSE, lambda gen=self._fill_gen: self._fill_more(gen))
        if current is not None and (at := self._order_index(current)) >= 0:
            table.move_cursor(row=at, animate=False)
        counts = Counter(f.status for f in self._rows.values())
        self.border_subtitle = " · ".join(
            f"{STATUS_LABEL[s]} {counts[s]}" for s in STATUS_LABEL if counts.get(s)
        )
        shown = [f"{k} {v or '(none)'}" for k, v in self.filters.items() if v is not None]
        if shown:  # filters are visible; c clears them (a tenant's name is host text: never markup)
            self.border_subtitle = untrusted(
                f"filter {', '.join(shown)} · " + (self.border_subtitle or "nothing")
            )

    def _fill(self, upto: int) -> None:
        """Add the rows of _order up to index `upto` (exclusive) that are not in the table yet."""
        table = self.table
        acks = getattr(self.app, "acks", {})
        variables = self._theme
        upto = min(upto, len(self._order))
        for rid in self._order[self._filled : upto]:
            f = self._rows[rid]
            made = self._made[rid] = (f, f.key in acks, f.key in self._new)
            table.add_row(*self._cells(f, made, variables), key=rid)
        self._filled = max(self._filled, upto)

    def _fill_more(self, gen: int) -> None:
        """One step of a rebuild's fill: FILL_SLICE seconds of rows, then the next step."""
        if gen != self._fill_gen or not self.is_attached:
            return
        deadline = time.monotonic() + FILL_SLICE
        while self._filled < len(self._order) and time.monotonic() < deadline:
            self._fill(self._filled + 50)
        if self._filled < len(self._order):
            self.set_timer(FILL_PAUSE, lambda: self._fill_more(gen))

    def _order_index(self, f: Finding) -> int:
        """Where `f` (or the finding now about the same thing) is in the order; -1: gone. The
        table is filled up to there, so the row can take the cursor."""
        rid = next((k for k, g in self._rows.items() if g.key == f.key), None)
        if rid is None:
            rid = row_identity(f) if row_identity(f) in self._rows else None
        if rid is None:
            return -1
        at = self._order.index(rid)
        if at >= self._filled:
            self._fill(at + 1)
        return at

    def row_key(self, f: Finding) -> str | None:
        """The key of `f`'s row in the table (None: not listed)."""
        return next((k for k, g in self._rows.items() if g is f or g.key == f.key), None)

    def _column_widths(self, columns: tuple[str, ...], findings: Any, acks: Any) -> tuple[int, ...]:
        """The widths the table would measure for these rows' cells, from their text alone
        (each distinct text made visible and measured once: a fleet repeats most of them)."""
        multi = self._multi_host
        new = self._new
        memo: dict[str, int] = {}

        def width(text: str) -> int:
            w = memo.get(text)
            if w is None:
                w = memo[text] = text_width(visible(text))
            return w

        status = max(
            (text_width(STATUS_LABEL.get(s, s.value.upper())) for s in {f.status for f in findings}),
            default=0,
        )
        severity = max((len(s.value) for s in {f.severity for f in findings}), default=0)
        check = host = tenants = summary = 0
        for f in findings:
            key = f.key
            check = max(check, width(f.check_id))
            if multi:
                host = max(host, width(f.host or "—"))
            tenants = max(tenants, width(", ".join(f.tenants) or "—"))
            marks = (len(ACK_MARK) if key in acks else 0) + (len(NEW_MARK) if key in new else 0)
            summary = max(summary, marks + width(f.summary or f.title))
        # a narrow pane (80 columns): the summary, what is wrong, gets the room first; a long
        # tenant list is cut with an ellipsis (the detail lists every tenant)
        room = self.size.width - 2 * self.table.cell_padding * len(columns) - 1  # (scrollbar)
        if room > 0:
            others = status + severity + check + (host if multi else 0)
            tenants = max(len("Tenants"), min(tenants, room - others - min(summary, SUMMARY_ROOM)))
        found = (status, severity, check, *((host,) if multi else ()), tenants, summary)
        return tuple(max(text_width(c), w) for c, w in zip(columns, found))

    def on_resize(self) -> None:
        if self._findings is not None and self._columns:
            self._refill()  # the widths follow the pane's (rows stay: only the widths change)

    def _cells(self, f: Finding, made: tuple[Finding, bool, bool], variables: Any) -> list[Text]:
        _, acked, new = made
        if variables is not self._shared_theme:
            self._shared, self._shared_theme = {}, variables
        shared = self._shared
        if (status := shared.get(("status", f.status.value))) is None:
            status = shared["status", f.status.value] = status_text(f.status, variables)
        if (severity := shared.get(("severity", f.severity.value))) is None:
            severity = shared["severity", f.severity.value] = severity_text(f.severity, variables)
        if (check := shared.get(("check", f.check_id))) is None:
            check = shared["check", f.check_id] = untrusted(f.check_id)
        cells = [status, severity, check]
        if self._multi_host:
            cells.append(untrusted(f.host or "—"))
        summary = untrusted(f.summary or f.title)
        if acked:  # acknowledged: listed, marked, never hidden
            summary = Text(ACK_MARK, style="italic") + summary
        if new:  # new since the baseline (--baseline): C lists every change
            summary = Text(NEW_MARK, style="bold") + summary
        names = ", ".join(f.tenants) or "—"
        if (tenants := shared.get(("tenants", names))) is None:
            tenants = shared["tenants", names] = untrusted(names)
            tenants.overflow = "ellipsis"  # cut to its column in a narrow pane
        cells += [tenants, summary]
        return cells

    def selected(self) -> Finding | None:
        table = self.table
        if table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:
            return None
        return self._rows.get(key or "")

    # -- actions

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_detail()

    # -- filters (tenant, area, status); each key cycles through the values present

    def _passes(self, f: Finding) -> bool:
        t, a, s = self.filters["tenant"], self.filters["area"], self.filters["status"]
        return (
            (t is None or (t in f.tenants if t else not f.tenants))
            and (a is None or f.area == a)
            and (s is None or f.status.value == s)
        )

    def filter_values(self, what: str) -> list[str]:
        fs = self._findings or ()
        if what == "tenant":
            return sorted({t for f in fs for t in f.tenants}) + (
                [""] if any(not f.tenants for f in fs) else []
            )
        if what == "area":
            return sorted({f.area for f in fs})
        return [s.value for s in STATUS_LABEL if any(f.status == s for f in fs)]

    def action_cycle_filter(self, what: str) -> None:
        options: list[str | None] = [None, *self.filter_values(what)]
        cur = self.filters.get(what)
        self.filters[what] = options[(options.index(cur) + 1) % len(options)] if cur in options else None
        self._refill()

    def action_clear_filters(self) -> None:
        self.filters = dict.fromkeys(self.filters)
        self._refill()

    def refresh_acks(self) -> None:
        """The app's acknowledgements changed: redraw the marks."""
        self._refill()

    def action_open_detail(self) -> None:
        f = self.selected()
        if f is not None:
            self.post_message(FindingSelected(f))
