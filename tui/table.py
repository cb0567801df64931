"""A DataTable whose cells are rendered once per content, for tables of hundreds of rows that
change a few cells at a time (the fleet view, the Findings pane).

Textual's DataTable keys its render caches by a counter that every `update_cell`, `add_row`
or `sort` moves, so one changed cell re-renders every visible cell (~700 cells in a 200-host
fleet view: 0.1-0.8 s on the event loop, the slow tail of key presses), and it measures every
cell of every new row for the column widths (~315 ms for 1,700 findings). Here a cell's
rendering (the header's too) is kept per (row, column, the cell object, its styles) and reused
while the cell is the same object, and a table whose owner sets the column widths (`fixed_widths`) does not
measure new rows. What is drawn is exactly what DataTable draws
(tests/tui/test_findings_fleet.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.cells import cell_len
from rich.style import Style
from textual._two_way_dict import TwoWayDict
from textual.cache import LRUCache
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

# cells kept: a few screens of a wide table, more than Textual's own cell cache holds per screen
CELL_CACHE = 20_000


class RowTable(DataTable[Any]):
    """A DataTable whose Home and End go to the first and last row when the cursor is a row, as
    in every list (Textual's move sideways there, which in a table as wide as its screen does
    nothing: the help's "Home End move" did not hold)."""

    def action_scroll_home(self) -> None:
        if self.cursor_type == "row":
            self.action_scroll_top()
        else:
            super().action_scroll_home()

    def action_scroll_end(self) -> None:
        if self.cursor_type == "row":
            self.action_scroll_bottom()
        else:
            super().action_scroll_end()


class CellCachedTable(RowTable):
    """DataTable with renders cached by cell content (see the module's docstring).

    `fixed_widths=True`: every column is added with its `width` (the owner computes widths
    from its data, e.g. with `text_width`), rows have a height of 1 and no labels, so new
    rows need no measuring.
    """

    def __init__(self, *args: Any, fixed_widths: bool = False, **kw: Any) -> None:
        # (before DataTable's __init__: its reactive watchers clear the caches)
        self._by_content: LRUCache[tuple[object, ...], tuple[object, Any]] = LRUCache(CELL_CACHE)
        self.fixed_widths = fixed_widths
        super().__init__(*args, **kw)

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> Any:
        if column_index < 0 or row_index < -1:  # row labels: as DataTable does
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        column_key = self._column_locations.get_key(column_index)
        if column_key is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        cell: object
        if row_index == -1:  # the header: its cell is the column's label
            column = self.columns.get(column_key)
            if column is None:
                return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
            row_key: RowKey | None = self._header_row_key
            cell, height = column.label, self.header_height
        else:
            row_key = self._row_locations.get_key(row_index)
            row = self.rows.get(row_key) if row_key is not None else None
            if row_key is None or row is None:
                return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
            cell, height = self._data[row_key].get(column_key), row.height
        # everything DataTable's rendering of a cell depends on, but its update counter
        key = (
            row_key,
            column_key,
            row_index,  # (the cell's segments carry its row and column for the mouse)
            column_index,
            base_style,
            width,
            cursor,
            hover,
            self._show_hover_cursor,
            self.show_cursor,
            self._pseudo_class_state,
            height,
            self.cell_padding,
            self.fixed_rows,
            self.fixed_columns,
        )
        got = self._by_content.get(key)
        if got is not None and got[0] is cell:
            return got[1]
        lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        if got is not None:  # a new cell in that place: Textual's LRUCache.set keeps an old value
            self._by_content.discard(key)
        self._by_content[key] = (cell, lines)
        return lines

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._by_content.clear()

    def notify_style_update(self) -> None:
        super().notify_style_update()  # (a theme, focus: the styles in the key change too)
        self._by_content.clear()

    def update_cell(
        self, row_key: RowKey | str, column_key: ColumnKey | str, value: Any, *, update_width: bool = False
    ) -> None:
        """As DataTable's; the rows' order and heights stay, so the row offsets computed for
        them are kept (DataTable recomputes them over every row after any change: ~20 ms a
        frame at thousands of rows)."""
        before = self._update_count
        offsets = self._offset_cache.get(before)
        ordered = self._ordered_row_cache.get((len(self.rows), before))
        super().update_cell(row_key, column_key, value, update_width=update_width)
        if offsets is not None:
            self._offset_cache[self._update_count] = offsets
        if ordered is not None:
            self._ordered_row_cache[(len(self.rows), self._update_count)] = ordered

    def place_rows(self, order: Iterable[str]) -> None:
        """Put the rows in this order (every row's key, once): rows move in place; nothing is
        re-added or measured, and unmoved rows keep their rendered cells."""
        locations = TwoWayDict({RowKey(k): i for i, k in enumerate(order)})
        if len(locations) != len(self.rows):
            raise ValueError(f"place_rows: {len(locations)} keys for {len(self.rows)} rows")
        self._row_locations = locations
        self._update_count += 1
        self.refresh()

    def set_widths(self, widths: Iterable[tuple[str, int]]) -> None:
        """New fixed widths for these columns (by key): the rows stay, nothing is measured."""
        for key, width in widths:
            self.columns[ColumnKey(key)].width = width
        self._require_update_dimensions = True  # the virtual size, on idle
        self._clear_caches()
        self._update_count += 1
        self.refresh()

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        if self.fixed_widths:
            # widths are the owner's: only rows that need a height or a label are measured
            new_rows = [
                k for k in new_rows if (r := self.rows.get(k)) is not None and (r.auto_height or r.label)
            ]
        super()._update_dimensions(new_rows)


def text_width(plain: str) -> int:
    """A text cell's width as DataTable measures it (Text.__rich_measure__'s maximum): its
    widest line in terminal cells."""
    if plain.isascii() and plain.isprintable():
        return len(plain)
    return max((cell_len(line) for line in plain.splitlines()), default=0)
