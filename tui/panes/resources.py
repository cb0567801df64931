"""Resources pane: who uses what right now, who spiked, who has no limit.

A table of tenants (Enter expands one to its workloads) with CPU (% of one core, with the
share of the host), memory used/limit, disk and network rates, each with a sparkline of the
last refreshes, the worst vCPU delay (steal) and the limits; sortable by any column (`s`
cycles, `r` reverses, or click a header). Below it, the selected row's history as a larger
chart (`m` picks the metric). `+`/`-` change the refresh interval at run time, `p` pauses.

"No limit" is shown as a symbol and words ("∞ no limit", "⚠ no cpu/mem cap"), never by
colour alone. Idle cost matters (the console runs all day on a busy host): when the samples
did not change the pane does nothing, and otherwise it updates only the cells whose text
changed; the table is rebuilt only when rows come, go or change order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static

from probes.model import State
from probes.requests import PollSchedule
from probes.resources.tenants import Usage, by_tenant, series_of
from probes.units import fmt_bytes
from tui.figureline import FigureLine
from tui.panes.base import Pane
from tui.safe import untrusted
from tui.status import theme_style
from tui.table import CellCachedTable

# What an on-call engineer needs first comes first (a half-width pane shows only the left
# columns without scrolling): who burns CPU, who holds memory, who has no limit.
COLUMNS = ("Tenant", "CPU", "Mem used/limit", "Limits", "Host cpu·mem", "Disk", "Net", "Steal")
COL_KEYS = ("name", "cpu", "mem", "limits", "host", "disk", "net", "steal")
INTERVALS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
CHART_METRICS = ("cpu", "mem", "disk", "net")
CHART_TITLES = {
    "cpu": "CPU, % of one core",
    "mem": "memory",
    "disk": "disk read+write",
    "net": "network rx+tx",
}
SPARK = "▁▂▃▄▅▆▇█"
SPARK_POINTS = 6
CHART_ROWS = 4


# ------------------------------------------------------------------ formatting (pure)


def fmt_pct(v: float | None) -> str:
    return "—" if v is None else (f"{v:.0f}%" if v >= 10 else f"{v:.1f}%")


def sparkline(values: Sequence[float], floor: float, n: int = SPARK_POINTS) -> str:
    """The last `n` values as block characters, scaled to max(values, floor) so that idle
    noise stays flat."""
    pts = list(values[-n:])
    if not pts:
        return ""
    top = max(max(pts), floor)
    if top <= 0:
        return SPARK[0] * len(pts)
    return "".join(SPARK[min(7, max(0, int(v / top * 7.999)))] for v in pts)


def chart(values: Sequence[float], width: int, rows: int = CHART_ROWS, floor: float = 1.0) -> list[str]:
    """A `rows`-high bar chart of the last `width` values (eighth blocks), top row first."""
    pts = list(values[-width:]) if width > 0 else []
    top = max(max(pts, default=0.0), floor)
    out = []
    for r in range(rows - 1, -1, -1):
        line = []
        for v in pts:
            h = max(0.0, v) / top * rows * 8 - r * 8
            line.append(" " if h <= 0 else SPARK[min(7, max(0, int(h) - 1))] if h < 8 else "█")
        out.append("".join(line))
    return out


# Sparklines and charts scale from 0 to max(values, floor): a quarter of a core of jitter or a
# steady 100 MiB must look low, not like a full bar. Memory scales to its limit where known.
_FLOORS = {"cpu": 100.0, "mem": float(1 << 30), "disk": float(1 << 20), "net": float(1 << 20)}


@dataclass(frozen=True)
class Cell:
    text: str
    style: str = ""  # "", "warn", "dim", "bold"
    value: float = 0.0  # what sorting uses


def usage_cells(
    u: Usage, label: str, indent: bool, bold: bool = False, spark: int = SPARK_POINTS
) -> tuple[Cell, ...]:
    mem_txt = fmt_bytes(u.mem_bytes, compact=True)
    mem_style = ""
    if u.mem_limit_bytes is not None:
        mem_txt += "/" + fmt_bytes(u.mem_limit_bytes, compact=True)
    elif u.mem_unlimited:
        mem_txt += "/∞ no limit"
        mem_style = "warn"
    missing = [w for w, n in (("cpu", u.cpu_unlimited), ("mem", u.mem_unlimited)) if n]
    if missing:
        limits = Cell(
            "⚠ no " + "/".join(missing) + " cap", "warn", 2 * bool(u.cpu_unlimited) + bool(u.mem_unlimited)
        )
    elif u.cpu_quota_cores is not None or u.mem_limit_bytes is not None:
        limits = Cell("✓ capped", "", 0)
    else:
        limits = Cell("—", "dim", 0)

    def sl(values: Sequence[float], floor: float) -> str:
        return " " + sparkline(values, floor, spark) if spark else ""

    return (
        Cell(("  └ " if indent else "") + label, "bold" if bold else ""),
        Cell(f"{fmt_pct(u.cpu_pct)}{sl(u.cpu_hist, _FLOORS['cpu'])}", value=u.cpu_pct or 0.0),
        Cell(
            f"{mem_txt}{sl(u.mem_hist, max(_FLOORS['mem'], float(u.mem_limit_bytes or 0)))}",
            mem_style,
            float(u.mem_bytes or 0),
        ),
        limits,
        Cell(
            f"{fmt_pct(u.cpu_share)}·{fmt_pct(u.mem_share)}"
            if u.mem_share is not None
            else fmt_pct(u.cpu_share),
            value=u.cpu_share or 0.0,
        ),
        Cell(
            f"{fmt_bytes(u.disk_bps, rate=True, compact=True)}{sl(u.disk_hist, _FLOORS['disk'])}",
            value=u.disk_bps or 0.0,
        ),
        Cell(
            f"{fmt_bytes(u.net_bps, rate=True, compact=True)}{sl(u.net_hist, _FLOORS['net'])}",
            value=u.net_bps or 0.0,
        ),
        Cell(
            fmt_pct(u.steal_pct) if u.steal_pct is not None else "",
            "warn" if (u.steal_pct or 0) >= 10 else "",
            u.steal_pct or 0.0,
        ),
    )


def _coarse(v: float) -> float:
    """Two significant digits, and nothing below 1: rows must not swap places every refresh
    because of idle jitter (a reorder rebuilds the table)."""
    if abs(v) < 1.0:
        return 0.0
    return float(f"{v:.2g}")


@dataclass(frozen=True)
class Row:
    key: str  # "t:HOST:TENANT" or "w:WORKLOAD_KEY"
    cells: tuple[Cell, ...]
    usage: Usage
    tenant_key: str


def build_rows(
    state: State,
    expanded: frozenset[str],
    sort_col: int,
    reverse: bool,
    names: dict[str, str] | None = None,
    spark: int = SPARK_POINTS,
) -> list[Row]:
    """The table as plain data: tenants sorted by the sort column, expanded ones followed by
    their workloads (sorted the same way)."""
    # (the sparklines' points only: the chart sums its row's whole history, series_of)
    hosts = by_tenant(
        state, per_workload=lambda host, tenant: f"t:{host}:{tenant}" in expanded, points=max(spark, 1)
    )
    multi = len(hosts) > 1
    wl_names = names if names is not None else {w.key: w.name for w in state.workloads()}

    def name_of(r: Row) -> str:
        return r.cells[0].text.lstrip("▸▾└ ").lower()

    def order(rows: list[Row]) -> list[Row]:
        if sort_col == 0:
            return sorted(rows, key=name_of, reverse=reverse)
        sign = 1 if reverse else -1
        return sorted(rows, key=lambda r: (sign * _coarse(r.cells[sort_col].value), name_of(r)))

    tenants: list[tuple[Row, list[Row]]] = []
    for hu in hosts:
        for t in hu.tenants:
            tkey = f"t:{hu.host}:{t.name}"
            label = f"{'▾' if tkey in expanded else '▸'} {t.name} ({len(t.workloads)})" + (
                f" @{hu.host}" if multi else ""
            )
            trow = Row(tkey, usage_cells(t, label, False, True, spark), t, tkey)
            kids = (
                [
                    Row(
                        f"w:{u.name}",
                        usage_cells(u, wl_names.get(u.name, u.name.rsplit("/", 1)[-1]), True, spark=spark),
                        u,
                        tkey,
                    )
                    for tn, u in hu.workloads
                    if tn == t.name
                ]
                if tkey in expanded
                else []
            )
            tenants.append((trow, kids))
    out: list[Row] = []
    by_key = {r.key: (r, kids) for r, kids in tenants}
    for r in order([r for r, _ in tenants]):
        out.append(r)
        out.extend(order(by_key[r.key][1]))
    return out


# ------------------------------------------------------------------ widgets


class ResourcesTable(CellCachedTable):
    """Row keys are Row.key, so the cursor survives refreshes; Home and End go to the first and
    last row (tui.table.RowTable)."""


class ResourcesPane(Pane):
    pane_id: ClassVar[str] = "resources"
    title: ClassVar[str] = "Resources"
    position: ClassVar[int] = 2
    reads: ClassVar[frozenset[str] | None] = frozenset({"host.samples", "tenants", "host.workloads"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "toggle_row", "Expand", id="resources-expand"),
        Binding("s", "sort_next", "Sort", id="resources-sort"),
        Binding("r", "sort_reverse", "Reverse", id="resources-reverse"),
        Binding("m", "chart_metric", "Chart", id="resources-chart"),
        Binding("p", "pause", "Pause", id="resources-pause"),
        Binding("plus,equals_sign", "faster", "Faster", id="resources-faster"),
        Binding("minus", "slower", "Slower", id="resources-slower"),
    ]

    DEFAULT_CSS = """
    ResourcesPane #resources-summary { height: 1; padding: 0 1; }
    ResourcesPane #resources-table { height: 1fr; }
    ResourcesPane #resources-chart { height: auto; max-height: 6; padding: 0 1; }
    """

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.expanded: set[str] = set()
        self.sort_col = 1
        self.reverse = False
        self.paused = False
        self.chart_metric = "cpu"
        self.interval: float | None = None
        self.updates = 0  # cell updates done (tests and the benchmark read it)
        self.rebuilds = 0
        self._state: State | None = None
        self._drawn_state: State | None = None
        self._hidden_state: State | None = None
        self._seen: tuple[Any, ...] | None = None
        self._rows: list[Row] = []
        self._cells: dict[str, tuple[Cell, ...]] = {}
        self._summary = ""
        self._chart = ""
        self._chart_rows = CHART_ROWS
        self._warn: Any = None
        self._parts: tuple[ResourcesTable, FigureLine, Static] | None = None

    def on_mount(self) -> None:
        super().on_mount()
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._restyle())

    def _restyle(self) -> None:
        """A new theme: every styled cell is drawn again in its colours."""
        self._warn = None
        self._rows = []
        self._redraw()

    def compose(self) -> ComposeResult:
        yield FigureLine(id="resources-summary")
        table = ResourcesTable(id="resources-table", cursor_type="row", zebra_stripes=False)
        for c, k in zip(COLUMNS, COL_KEYS):
            table.add_column(
                Text(c), key=k
            )  # plain: a str label is parsed as markup (rich then loads its emoji table, ~0.5 MiB)
        yield table
        yield Static("", id="resources-chart")

    @property
    def table(self) -> ResourcesTable:
        return self._widgets()[0]

    def _widgets(self) -> tuple[ResourcesTable, FigureLine, Static]:
        """The table, the summary and the chart, found once (a query at every redraw: ~30 us
        each, three or four a refresh)."""
        if self._parts is None:
            self._parts = (
                self.query_one(ResourcesTable),
                self.query_one("#resources-summary", FigureLine),
                self.query_one("#resources-chart", Static),
            )
        return self._parts

    # -- rendering

    def show(self, state: State) -> None:
        if self.paused:
            self._state = state
            return
        if not self.display:  # another tab is shown (compact layout): catch up when shown
            self._hidden_state = state
            return
        seen = (tuple(h.samples for h in state.hosts), state.tenants, tuple(h.workloads for h in state.hosts))
        prev = self._seen
        if (
            prev is not None
            and len(seen[0]) == len(prev[0])
            and all(a is b for a, b in zip(seen[0], prev[0]))
            and seen[1] == prev[1]
            and seen[2] == prev[2]
        ):
            return  # nothing this pane shows has changed (other probes' news)
        self._seen = seen
        self._state = state
        self._redraw()

    def _redraw(self) -> None:
        state = self._state
        if state is None:
            return
        self._draw_summary(state)
        self._drawn_state = state  # the rows' (the chart sums its row's history from it)
        rows = build_rows(
            state, frozenset(self.expanded), self.sort_col, self.reverse, spark=self._spark_points()
        )
        self._sync(rows)
        self._draw_chart()

    def _style(self, name: str) -> str | Any:
        if name == "warn":
            if self._warn is None:  # once per theme: theme_variables is not free
                self._warn = theme_style(self.app.theme_variables, "status-warn", bold=True)
            return self._warn
        if name == "dim":
            return "dim"
        if name == "bold":
            return "bold"
        return ""

    def _text(self, cell: Cell, untrusted_text: bool = False) -> Text:
        if untrusted_text:
            return untrusted(cell.text, style=self._style(cell.style) if cell.style else "")
        return Text(cell.text, style=self._style(cell.style) if cell.style else "", end="")

    def _sync(self, rows: list[Row]) -> None:
        table = self.table
        keys = [r.key for r in rows]
        if keys != [r.key for r in self._rows]:
            current = self._cursor_key()
            table.clear()
            for r in rows:
                table.add_row(*(self._text(c, i == 0) for i, c in enumerate(r.cells)), key=r.key)
            self.rebuilds += 1
            if current in keys:
                table.move_cursor(row=keys.index(current), animate=False)
        else:
            for r in rows:
                old = self._cells.get(r.key, ())
                for i, (c, o) in enumerate(zip(r.cells, old)):
                    if c.text != o.text or c.style != o.style:
                        table.update_cell(r.key, COL_KEYS[i], self._text(c, i == 0))
                        self.updates += 1
        self._rows = rows
        self._cells = {r.key: r.cells for r in rows}

    def _cursor_key(self) -> str | None:
        if not self._rows:
            return None
        i = self.table.cursor_row
        return self._rows[i].key if 0 <= i < len(self._rows) else None

    def selected(self) -> Row | None:
        k = self._cursor_key()
        return next((r for r in self._rows if r.key == k), None)

    def _draw_summary(self, state: State) -> None:
        parts = []
        for h in state.hosts:
            s = h.samples
            if s is None:
                continue
            t = s.totals
            self.interval = self.interval or s.interval or None
            host = f"{h.host.name}: " if len(state.hosts) > 1 else ""
            if not t.cpus:
                txt = f"{host}{len(s.samples)} workload(s)"
            else:
                txt = (
                    f"{host}CPU {fmt_pct(t.cpu_pct)} of {t.cpus} · steal {fmt_pct(t.steal_pct)} · "
                    f"mem {fmt_bytes(t.mem_used, compact=True)}/{fmt_bytes(t.mem_total, compact=True)}"
                )
            if t.net_rx_bps is not None:
                txt += (
                    f" · net {fmt_bytes((t.net_rx_bps or 0) + (t.net_tx_bps or 0), rate=True, compact=True)}"
                )
            if s.spikes:
                txt += f" · ⚡{sum(1 for x in s.spikes if x.active)} spiking"
            if s.problems:
                txt += f" · ! {len(s.problems)} problem(s): " + "; ".join(s.problems)[:80]
            parts.append(txt)
        if not parts:
            parts.append("waiting for the first samples…")
        ivl = f"every {self.interval:g} s" if self.interval else ""
        text = " | ".join(parts) + (f"  [{'⏸ paused' if self.paused else ivl}]" if ivl or self.paused else "")
        if text != self._summary:
            self._summary = text
            # one line, fixed height: no layout pass; its colours stay, so only the text is
            # redrawn (tui/figureline.py)
            self._widgets()[1].set_text(text)

    def _draw_chart(self) -> None:
        w = self._widgets()[2]
        row = self.selected() or (self._rows[0] if self._rows else None)
        if row is None or not w.display:
            text = ""
        else:
            drawn = self._drawn_state
            series = series_of(drawn, row.usage.workloads, self.chart_metric) if drawn is not None else ()
            width = max(10, (self.size.width or 80) - 14)
            lines = [  # full width: a point more at zero changes nothing on screen, nor the text
                ln.ljust(width)
                for ln in chart(
                    series, width, rows=self._chart_rows or CHART_ROWS, floor=_FLOORS[self.chart_metric]
                )
            ]
            top = max(max(series, default=0.0), _FLOORS[self.chart_metric])
            top_s = (
                fmt_pct(top)
                if self.chart_metric == "cpu"
                else fmt_bytes(top, rate=self.chart_metric != "mem", compact=True)
            )
            name = row.cells[0].text.strip().lstrip("└▸▾ ").strip()
            # (no count of the points: a title moving with every refresh redrew an idle chart)
            head = f"{name} — {CHART_TITLES[self.chart_metric]}, one bar per refresh (m: metric)"
            body = (
                [f"{top_s:>8} ┤{lines[0]}"]
                + [f"{'':>8} │{ln}" for ln in lines[1:-1]]
                + [f"{'0':>8} ┼{lines[-1]}"]
            )
            text = "\n".join([head] + body)
        if text != self._chart:
            same_height = text.count("\n") == self._chart.count("\n") and bool(text) == bool(self._chart)
            self._chart = text
            w.update(untrusted_lines(text), layout=not same_height)

    def on_show(self) -> None:
        state, self._hidden_state = self._hidden_state, None
        if state is not None:
            self.show(state)

    def _spark_points(self) -> int:
        # a narrow pane (the two-up layout) gets short sparklines so the limits stay in view
        return SPARK_POINTS if (self.size.width or 120) >= 100 else 3

    def on_resize(self) -> None:
        if (
            self._state is not None
            and self._rows
            and len(self._rows[0].cells[1].text.split(" ")[-1]) != self._spark_points()
        ):
            self._redraw()
        # the chart only where there is room for it next to a useful table
        h = self.size.height
        self._chart_rows = CHART_ROWS if h >= 20 else 2 if h >= 11 else 0
        self._widgets()[2].display = self._chart_rows > 0
        self._chart = "\x00"  # force a redraw at the new width
        self._draw_chart()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._draw_chart()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_toggle_row()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        col = event.column_index
        if col == self.sort_col:
            self.reverse = not self.reverse
        else:
            self.sort_col, self.reverse = col, False
        self._rerender()

    # -- actions

    def _rerender(self) -> None:
        self._redraw()

    def action_toggle_row(self) -> None:
        row = self.selected()
        if row is None:
            return
        t = row.tenant_key
        self.expanded.symmetric_difference_update({t})
        self._rerender()
        keys = [r.key for r in self._rows]
        if t in keys:
            self.table.move_cursor(row=keys.index(t), animate=False)

    def action_sort_next(self) -> None:
        self.sort_col = (self.sort_col + 1) % len(COLUMNS)
        self.reverse = False
        self.notify(f"sorted by {COLUMNS[self.sort_col]}", timeout=1.5)
        self._rerender()

    def action_sort_reverse(self) -> None:
        self.reverse = not self.reverse
        self._rerender()

    def action_chart_metric(self) -> None:
        i = CHART_METRICS.index(self.chart_metric)
        self.chart_metric = CHART_METRICS[(i + 1) % len(CHART_METRICS)]
        self._draw_chart()

    def action_pause(self) -> None:
        self.paused = not self.paused
        self.request(PollSchedule("resources", paused=self.paused))
        if not self.paused and self._state is not None:
            self._seen = None
            self.show(self._state)
        elif self._state is not None:
            self._draw_summary(self._state)

    def action_faster(self) -> None:
        self._set_interval(-1)

    def action_slower(self) -> None:
        self._set_interval(+1)

    def _set_interval(self, step: int) -> None:
        cur = self.interval or 2.0
        i = min(range(len(INTERVALS)), key=lambda j: abs(INTERVALS[j] - cur))
        new = INTERVALS[max(0, min(len(INTERVALS) - 1, i + step))]
        self.interval = new
        self.request(PollSchedule("resources", seconds=new))
        self.notify(f"resources refresh every {new:g} s", timeout=1.5)
        if self._state is not None:
            self._draw_summary(self._state)


def untrusted_lines(text: str) -> Text:
    """Multi-line text whose lines are each made safe (newlines kept as line breaks)."""
    out = Text(end="")
    for i, line in enumerate(text.split("\n")):
        if i:
            out.append("\n")
        out.append_text(untrusted(line))
    return out
