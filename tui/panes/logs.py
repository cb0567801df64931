"""The Logs pane: every host's log entries, attributed to tenants, safe to show.

What it does:
- follows new entries (f toggles; moving up or scrolling up pauses, nothing that arrives
  meanwhile is lost; End resumes);
- filters (`:` then `tenant:acme host:hv1 source:journal sev:warning tag:oom-kill words`,
  `t` cycles the tenant, `s` the minimum severity, `o` the source, Esc clears);
- searches (`/`, literal or regex with R), n / N for the next / previous match;
- jumps from a finding to its evidence lines (`show_entries`, `show_finding`);
- shows the ring's dropped count and the state of every source.

How it stays fast: the pane reads only entries newer than the last seq it saw per host, from
the live ring (probes/logs/ring.py) or, for a snapshot, from the State's LogView. The list is
a Line-API ScrollView: only the visible rows are rendered (and cached), appending never
re-renders what is on screen, and the store is bounded by the ring's capacity.

Everything from a host goes through probes.untrusted.visible() and into rich Text objects,
never markup: escapes, bidi controls and zero-width characters show as visible escapes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from datetime import datetime, tzinfo
from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input, Static

from probes.logs.lazy import LazyLine
from probes.logs.model import (
    DEFAULT_CAPACITY,
    SEVERITIES,
    SEVERITY_RANK,
    LogEntry,
    LogEvent,
    LogSlice,
    SourceState,
    parse_ref,
)
from probes.logs.query import Query, QueryError, Search, parse_query
from probes.model import Finding, State
from probes.untrusted import visible
from tui.panes.base import Pane

_SEV_CLASS = {
    "emerg": "crit",
    "alert": "crit",
    "crit": "crit",
    "err": "err",
    "warning": "warning",
    "notice": "notice",
    "info": "info",
    "debug": "info",
}
_SEV_CYCLE = (None, "warning", "err", "crit")
_SOURCE_CYCLE = (None, "journal", "file:", "libvirt-events", "tenantscope")
_MSG_LIMIT = 16 * 1024
FILTER_SLICE = 0.008  # seconds of filtering between key presses


def _columns(width: int) -> tuple[int, int]:
    """The tenant and source columns' widths: a narrow pane (half of a 140-column terminal)
    gave the message ~20 characters; there the tenant column shrinks and the source goes (Enter
    on a line and `o` still show it). 0: not measured yet."""
    if width == 0 or width >= 110:
        return 14, 14
    if width >= 80:
        return 12, 10
    return 10, 0


def _short_source(src: str) -> str:
    if src.startswith("file:"):
        return src.rsplit("/", 1)[-1]
    if src == "libvirt-events":
        return "events"
    return src.split(":", 1)[0]


class LogLines(ScrollView, can_focus=True):
    """One row per entry; renders only the rows on screen (Line API)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "loglines--crit",
        "loglines--err",
        "loglines--warning",
        "loglines--notice",
        "loglines--info",
        "loglines--cursor",
        "loglines--match",
        "loglines--tenant",
        "loglines--muted",
        "loglines--tag",
    }
    DEFAULT_CSS = """
    LogLines { height: 1fr; }
    LogLines > .loglines--crit { color: $severity-critical; text-style: bold; }
    LogLines > .loglines--err { color: $severity-high; }
    LogLines > .loglines--warning { color: $severity-medium; }
    LogLines > .loglines--notice { color: $severity-low; }
    LogLines > .loglines--info { color: $text; }
    LogLines > .loglines--muted { color: $text-muted; }
    LogLines > .loglines--tenant { color: $accent; }
    LogLines > .loglines--tag { color: $severity-high; text-style: bold; }
    LogLines > .loglines--cursor { text-style: reverse; }
    LogLines > .loglines--match { text-style: bold underline; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", id="logs-up", show=False),
        Binding("down", "cursor(1)", "Down", id="logs-down", show=False),
        Binding("pageup", "page(-1)", "Page up", id="logs-page-up", show=False),
        Binding("pagedown", "page(1)", "Page down", id="logs-page-down", show=False),
        Binding("home", "home", "First", id="logs-first", show=False),
        Binding("end", "end", "Last (follow)", id="logs-last", show=False),
        Binding("left", "pan(-8)", "Left", id="logs-left", show=False),
        Binding("right", "pan(8)", "Right", id="logs-right", show=False),
        Binding("enter", "open_line", "Whole line", id="logs-open-line", show=False),
    ]

    def __init__(self, pane: LogsPane) -> None:
        super().__init__()
        self.pane = pane
        self.lines: list[LogEntry] = []
        self.cursor = -1
        self.follow = True
        self.search_rx: Any = None
        self._cache: LRUCache[tuple[Any, ...], Strip] = LRUCache(2048)
        self._gen = 0
        self._width = 0
        self._times: dict[int, str] = {}
        self._cols = _columns(0)  # (tenant, source) widths for the pane's width

    # -- content

    def invalidate(self) -> None:
        self._gen += 1
        self._cache.clear()
        self.refresh()

    def set_lines(self, lines: list[LogEntry], cursor: int | None = None) -> None:
        self.lines = lines
        self.cursor = min(self.cursor if cursor is None else cursor, len(lines) - 1)
        self._update_size()
        self.invalidate()
        if self.follow:
            self._to_end()
        elif self.cursor >= 0:
            self.reveal(self.cursor)

    def append(self, new: list[LogEntry], cap: int) -> None:
        if not new:
            return
        self.lines.extend(new)
        over = len(self.lines) - cap
        if over > 0:
            del self.lines[:over]
            self.cursor = max(-1, self.cursor - over)
            if not self.follow:  # keep the same rows in view while paused
                self.scroll_to(y=max(0, self.scroll_y - over), animate=False, immediate=True)
            self._cache.clear()
        self._update_size()
        if self.follow:
            self._to_end()
        elif over > 0:
            self.refresh()
        else:
            # only rows that came into view need painting; the rest is cached
            self.refresh()

    def prepend(self, older: list[LogEntry]) -> None:
        """Entries older than all shown (a filter going on in the background): the rows
        on screen stay where they are."""
        self.lines[0:0] = older
        n = len(older)
        if self.cursor >= 0:
            self.cursor += n
        self._update_size()
        if self.follow:
            self._to_end()
        else:
            self.scroll_to(y=self.scroll_y + n, animate=False, immediate=True)
        self.refresh()

    def _update_size(self) -> None:
        """The scrollable size follows the lines. Set without a layout pass: assigning
        `virtual_size` re-lays the whole screen (~12 ms, and a ~6 ms repaint of every
        scrollbar after it) at each arriving line, though only this widget's scrollbars
        move; a scrollbar that appears or goes still asks for its layout itself."""
        size = Size(max(self._width, self.size.width), len(self.lines))
        if size == self.virtual_size:
            return
        self.set_reactive(LogLines.virtual_size, size)
        self._scroll_update(size)
        self.refresh()

    def _to_end(self) -> None:
        if self.lines:
            self.cursor = len(self.lines) - 1
        # max_scroll_y: the rows above a horizontal scrollbar (size.height hid the newest line)
        self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)

    def reveal(self, index: int) -> None:
        h = max(1, self.size.height)
        y = self.scroll_offset.y
        if index < y or index >= y + h:
            self.scroll_to(y=max(0, index - h // 2), animate=False, immediate=True)
        self.refresh()

    # -- keys and mouse

    def pause(self) -> None:
        if self.follow:
            self.follow = False
            self.pane.update_status()

    def action_cursor(self, delta: int) -> None:
        if not self.lines:
            return
        if delta < 0:
            self.pause()
        self.cursor = max(
            0, min(len(self.lines) - 1, (self.cursor if self.cursor >= 0 else len(self.lines) - 1) + delta)
        )
        self.reveal(self.cursor)

    def action_page(self, direction: int) -> None:
        self.action_cursor(direction * max(1, self.size.height - 1))

    def action_home(self) -> None:
        self.pause()
        self.cursor = 0 if self.lines else -1
        self.scroll_to(y=0, animate=False, immediate=True)
        self.refresh()

    def action_end(self) -> None:
        self.follow = True
        self._to_end()
        self.refresh()
        self.pane.update_status()

    def action_pan(self, dx: int) -> None:
        self.scroll_to(x=max(0, self.scroll_x + dx), animate=False, immediate=True)

    def action_open_line(self) -> None:
        """The line under the cursor (the newest while following) in full, with what was made
        of it (tui/screens/log_line.py): the pane cuts a line to its column."""
        from tui.screens.log_line import LogLineScreen

        if not self.lines:
            return
        i = self.cursor if 0 <= self.cursor < len(self.lines) else len(self.lines) - 1
        self.app.push_screen(LogLineScreen(self.lines[i]))

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.pause()
        super()._on_mouse_scroll_up(event)

    def on_click(self, event: events.Click) -> None:
        i = self.scroll_offset.y + event.y
        if 0 <= i < len(self.lines):
            self.pause()
            self.cursor = i
            self.refresh()

    # -- rendering

    def _time(self, at: float) -> str:
        sec = int(at)
        s = self._times.get(sec)
        if s is None:
            if len(self._times) > 4096:
                self._times.clear()
            tz: tzinfo | None = getattr(self.app, "_tz", None)
            s = datetime.fromtimestamp(sec, tz).strftime("%H:%M:%S") if sec else "--:--:--"
            self._times[sec] = s
        return s

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"loglines--{name}", partial=True)

    def line_text(self, e: LogEntry) -> Text:
        """The row for `e`: every host-supplied part through visible(), as plain Text (a lazy
        line is parsed and attributed here, when it is on screen)."""
        if type(e) is LazyLine:
            e = e.event
        sev = _SEV_CLASS.get(e.severity, "info")
        t = Text(no_wrap=True, end="")
        t.append(self._time(e.at), self._style("muted"))
        t.append(" ")
        if self.pane.multi_host:
            t.append(visible(e.host, limit=16)[:16].ljust(16), self._style("muted"))
            t.append(" ")
        t.append(visible(e.severity, limit=7)[:7].ljust(7), self._style(sev))
        t.append(" ")
        tw, sw = self._cols
        tenant = visible(e.tenant, limit=tw)[:tw] if e.tenant else "-"
        t.append(tenant.ljust(tw), self._style("tenant") if e.tenant else self._style("muted"))
        t.append(" ")
        if sw:
            t.append(visible(_short_source(e.source), limit=sw)[:sw].ljust(sw), self._style("muted"))
            t.append(" ")
        if e.tags:
            t.append("[" + ",".join(visible(x, limit=20) for x in e.tags) + "] ", self._style("tag"))
        start = len(t)
        msg = visible(e.message, limit=_MSG_LIMIT)
        if "\t" in msg:
            msg = msg.expandtabs(4)
        t.append(msg, self._style(sev) if sev in ("crit", "err", "warning") else None)
        if self.search_rx is not None:
            mstyle = self._style("match")
            for m in self.search_rx.finditer(msg):
                if m.end() > m.start():
                    t.stylize(mstyle, start + m.start(), start + m.end())
        return t

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        i = scroll_y + y
        width = self.size.width
        base = self.rich_style
        if i >= len(self.lines) or i < 0:
            return Strip.blank(width, base)
        e = self.lines[i]
        is_cursor = i == self.cursor and self.has_focus
        key = (e.host, e.seq, id(e), is_cursor, self._gen)
        strip = self._cache.get(key)
        if strip is None:
            text = self.line_text(e)
            if is_cursor:
                text.stylize(self._style("cursor"))
            segs = list(text.render(self.app.console))
            strip = Strip(segs).apply_style(base)
            if strip.cell_length > self._width:
                self._width = min(strip.cell_length, _MSG_LIMIT + 200)
                self.call_later(self._update_size)
            self._cache[key] = strip
        return strip.crop_extend(scroll_x, scroll_x + width, base).apply_offsets(scroll_x, i)

    def on_focus(self) -> None:
        self.invalidate()

    def on_blur(self) -> None:
        self.invalidate()

    def on_resize(self) -> None:
        cols = _columns(self.size.width)
        if cols != self._cols:  # the rows are drawn again with the message's new room
            self._cols = cols
            self.invalidate()
        self._update_size()
        if self.follow:
            self._to_end()


class LogsPane(Pane):
    pane_id: ClassVar[str] = "logs"
    title: ClassVar[str] = "Logs"
    position: ClassVar[int] = 4
    # New ring entries, re-attributions and source states all come with a new LogView (the
    # logs probe publishes one after each flush that changed something): the figures States
    # of an idle console (every 2 s) need not reach the pane.
    reads: ClassVar[frozenset[str] | None] = frozenset({"host.logs", "tenants"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "toggle_follow", "Follow", id="logs-follow"),
        Binding("slash", "search", "Search", id="logs-search", key_display="/"),
        # (n, N and R are in the help and named by the status line while a search is on; o in the
        # help: in the footer they pushed q Quit, b Runbook and e Report off a 140-column screen)
        Binding("n", "next_match", "Next match", id="logs-next", show=False),
        Binding("N", "prev_match", "Prev match", id="logs-prev", key_display="N", show=False),
        Binding("R", "toggle_regex", "Regex", id="logs-regex", key_display="R", show=False),
        Binding("colon", "filter", "Filter", id="logs-filter", key_display=":"),
        Binding("t", "cycle_tenant", "Tenant", id="logs-tenant"),
        Binding("s", "cycle_severity", "Severity", id="logs-severity"),
        Binding("o", "cycle_source", "Source", id="logs-source", show=False),
        Binding("escape", "escape", "Clear filter", id="logs-clear"),
    ]
    DEFAULT_CSS = """
    LogsPane > #logs-status { height: 1; color: $text-muted; }
    LogsPane > #logs-input { dock: bottom; display: none; }
    LogsPane > #logs-input.-shown { display: block; }
    """

    def __init__(
        self, *, id: str | None = None, classes: str | None = None, capacity: int = DEFAULT_CAPACITY
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.capacity = capacity
        self.store: deque[LogEntry] = deque(maxlen=capacity)
        self.query_filter = Query()
        self.search: Search | None = None
        self.regex = False
        self.multi_host = False
        self._last: dict[str, int] = {}
        self._gens: dict[str, int] = {}
        self._status_text = ""
        self._dropped: dict[str, int] = {}
        self._total: dict[str, int] = {}
        self._sources: list[tuple[str, Any]] = []
        self._input_mode = ""
        self._message = ""
        self._tenants: list[str] = []
        self._state: State | None = None
        self._missing = 0
        self._filter_job = 0
        self._filtering: tuple[int, int] | None = None  # (entries, left to look at)

    def compose(self) -> ComposeResult:
        yield Static("", id="logs-status")
        yield LogLines(self)
        yield Input(id="logs-input")

    @property
    def lines(self) -> LogLines:
        return self.query_one(LogLines)

    # -- State in

    def show(self, state: State) -> None:
        self._state = state
        new: list[LogEntry] = []
        hosts = [hs for hs in state.hosts]
        if self._reattributed(hosts):
            return
        self.multi_host = len(hosts) > 1
        srcs: list[tuple[str, Any]] = []
        for hs in hosts:
            name = hs.host.name
            last = self._last.get(name, 0)
            ring = self._ring(name, last)  # the session's ring after this pane's cursor
            if ring is not None and ring.capacity < self.capacity:
                # hold no more than the ring does: what it dropped, the pane drops too
                self.capacity = ring.capacity
                self.store = deque(self.store, maxlen=ring.capacity)
            if ring is not None:
                got: list[LogEntry] = list(ring.entries)
                self._dropped[name] = ring.dropped
                self._total[name] = ring.total
            elif hs.logs is not None:
                got = [e for e in hs.logs.events if e.seq > last] if hs.logs.total > last else []
                self._dropped[name] = hs.logs.dropped
                self._total[name] = hs.logs.total
            else:
                got = []
            if got:
                self._last[name] = got[-1].seq
                new.extend(got)
            if hs.logs is not None:
                srcs.extend((name, s) for s in hs.logs.sources)
        self._sources = srcs
        self._tenants = sorted({t.name for t in state.tenants})
        if new:
            self.store.extend(new)
            q = self.query_filter
            if q.empty:
                shown = new
            else:
                pred = q.predicate()
                shown = [e for e in new if pred(e)]
            if shown:
                self.lines.append(shown, self.capacity)
        self.update_status()

    def _ring(self, host: str, after: int | None) -> LogSlice | None:
        """The host's log ring after `after` (None: counters only), from the app's source; None
        where there is none (a recording, a saved State: the State's newest entries then)."""
        read = getattr(self.app, "log_entries", None)
        got: LogSlice | None = read(host, after) if read is not None else None
        return got

    def _reattributed(self, hosts: list[Any]) -> bool:
        """When a ring's entries were re-attributed (the inventory arrived after the logs),
        reload the pane from the rings so that tenants and filters see the new attribution."""
        heads = [(hs.host.name, self._ring(hs.host.name, None)) for hs in hosts]
        changed = [(n, r) for n, r in heads if r is not None and self._gens.get(n, 0) != r.generation]
        if not changed:
            return False
        rings = {n: r for n, r in ((n, self._ring(n, 0)) for n, _ in heads) if r is not None}
        firsts = {n: r.total - len(r.entries) + 1 for n, r in rings.items()}

        def current(e: LogEntry) -> LogEntry:
            """The ring's entry now at e's place (the re-attributed one), else e itself."""
            r = rings.get(e.host)
            if r is None:
                return e
            i = e.seq - firsts[e.host]
            return r.entries[i] if 0 <= i < len(r.entries) else e

        # the store keeps its order (no merge by time: that would parse every lazy line)
        merged = [current(e) for e in self.store]
        for n, r in rings.items():
            k = min(len(r.entries), r.total - self._last.get(n, 0))
            if k > 0:
                merged.extend(r.entries[len(r.entries) - k :])
            self._gens[n] = r.generation
            self._last[n] = r.total
            self._dropped[n] = r.dropped
            self._total[n] = r.total
        self.store = deque(merged, maxlen=self.capacity)
        self._rebuild()
        self.update_status()
        return True

    # -- the hook for the findings detail

    def show_entries(self, refs: Iterable[Any], what: str = "") -> int:
        """Show exactly these entries (LogEvents, (host, seq) pairs or evidence `where`
        strings such as `log:hv1#42`); returns how many are still in the pane. `what` says in
        the status line what they are."""
        want: set[tuple[str, int]] = set()
        for r in refs:
            if isinstance(r, LogEvent):
                want.add((r.host, r.seq))
            elif isinstance(r, tuple) and len(r) == 2:
                want.add((str(r[0]), int(r[1])))
            elif isinstance(r, str):
                p = parse_ref(r)
                if p is not None:
                    want.add(p)
        self.query_filter = Query(seqs=frozenset(want), chosen=what)
        found = self._rebuild(cursor_first=True)
        self._missing = len(want) - found
        self.lines.pause()
        self.update_status()
        self.lines.focus()
        return found

    def show_finding(self, finding: Finding) -> int:
        return self.show_entries((e.where for e in finding.evidence), f"the evidence of {finding.check_id}")

    # -- actions

    def action_toggle_follow(self) -> None:
        ll = self.lines
        if ll.follow:
            ll.pause()
        else:
            ll.action_end()
        self.update_status()

    def action_search(self) -> None:
        self._open_input("search", self.search.pattern if self.search else "")

    def action_filter(self) -> None:
        self._open_input("filter", self.query_filter.describe() if self.query_filter.seqs is None else "")

    def action_toggle_regex(self) -> None:
        self.regex = not self.regex
        if self.search is not None:
            self._set_search(self.search.pattern)
        self.update_status()

    def action_next_match(self) -> None:
        self._find(1)

    def action_prev_match(self) -> None:
        self._find(-1)

    def action_cycle_tenant(self) -> None:
        options: list[str | None] = [None, *self._tenants, ""]
        cur = self.query_filter.tenant
        nxt = options[(options.index(cur) + 1) % len(options)] if cur in options else None
        self._set_filter(Query(**{**_fields(self.query_filter), "tenant": nxt, "seqs": None}))

    def action_cycle_severity(self) -> None:
        cur = self.query_filter.min_severity
        i = _SEV_CYCLE.index(cur) if cur in _SEV_CYCLE else 0
        nxt = _SEV_CYCLE[(i + 1) % len(_SEV_CYCLE)]
        self._set_filter(Query(**{**_fields(self.query_filter), "min_severity": nxt, "seqs": None}))

    def action_cycle_source(self) -> None:
        cur = self.query_filter.source
        i = _SOURCE_CYCLE.index(cur) if cur in _SOURCE_CYCLE else 0
        nxt = _SOURCE_CYCLE[(i + 1) % len(_SOURCE_CYCLE)]
        self._set_filter(Query(**{**_fields(self.query_filter), "source": nxt, "seqs": None}))

    def action_escape(self) -> None:
        inp = self.query_one("#logs-input", Input)
        if inp.has_class("-shown"):
            self._close_input()
            return
        self._message = ""
        self._missing = 0
        if self.search is not None:
            self.search = None
            self.lines.search_rx = None
            self.lines.invalidate()
        self._set_filter(Query())

    # -- input line

    def _open_input(self, mode: str, value: str) -> None:
        self._input_mode = mode
        inp = self.query_one("#logs-input", Input)
        inp.placeholder = (
            "search: text, or a regex with R (Enter)"
            if mode == "search"
            else "filter: tenant:NAME host:NAME source:journal|file|events sev:warning tag:TAG words (Enter)"
        )
        inp.value = value
        inp.add_class("-shown")
        inp.focus()

    def _close_input(self) -> None:
        inp = self.query_one("#logs-input", Input)
        inp.remove_class("-shown")
        self.lines.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        mode = self._input_mode
        self._close_input()
        try:
            if mode == "search":
                self._set_search(text)
                if text:
                    self._find(1)
            else:
                self._set_filter(parse_query(text))
        except QueryError as e:
            self._message = str(e)
            self.update_status()

    def _set_search(self, pattern: str) -> None:
        if not pattern:
            self.search = None
            self.lines.search_rx = None
        else:
            s = Search(pattern, self.regex)
            self.lines.search_rx = s.compile()  # raises QueryError
            self.search = s
        self._message = ""
        self.lines.invalidate()
        self.update_status()

    def _set_filter(self, q: Query) -> None:
        self.query_filter = q
        self._message = ""
        self._missing = 0
        self._rebuild()
        self.update_status()

    def _rebuild(self, cursor_first: bool = False) -> int:
        """Show the store through the filter. A filter that must look at every entry (a
        tenant: lazy lines are attributed to answer it) fills the screen from the newest
        entries first, within FILTER_SLICE seconds, and goes on with the older ones in
        slices between key presses (`filtering...` in the status line)."""
        q = self.query_filter
        self._filter_job += 1
        ll = self.lines
        if q.empty or q.seqs is not None:
            self._filtering = None
            pred = q.predicate()
            lines = list(self.store) if q.empty else [e for e in self.store if pred(e)]
            if cursor_first:
                ll.follow = False
                ll.set_lines(lines, cursor=0 if lines else -1)
            else:
                ll.set_lines(lines, cursor=len(lines) - 1 if ll.follow else None)
            return len(lines)
        items = list(self.store)
        pred = q.predicate()
        pos, found = self._filter_slice(items, len(items), pred)
        found.reverse()
        ll.set_lines(found, cursor=len(found) - 1 if ll.follow else None)
        if pos > 0:
            self._filtering = (len(items), pos)
            job = self._filter_job
            self.call_later(self._filter_more, job, items, pos, pred)
        else:
            self._filtering = None
        return len(found)

    @staticmethod
    def _filter_slice(items: list[LogEntry], pos: int, pred: Any) -> tuple[int, list[LogEntry]]:
        """Matches among items[:pos], newest first, for at most FILTER_SLICE seconds."""
        found: list[LogEntry] = []
        end = time.perf_counter() + FILTER_SLICE
        while pos > 0:
            lo = max(0, pos - 512)
            found += [e for e in reversed(items[lo:pos]) if pred(e)]
            pos = lo
            if time.perf_counter() > end:
                break
        return pos, found

    def _filter_more(self, job: int, items: list[LogEntry], pos: int, pred: Any) -> None:
        if job != self._filter_job or not self.is_attached:
            return  # another filter since
        pos, found = self._filter_slice(items, pos, pred)
        if found:
            found.reverse()
            self.lines.prepend(found)
        if pos > 0:
            self._filtering = (len(items), pos)
            self.call_later(self._filter_more, job, items, pos, pred)
        else:
            self._filtering = None
        self.update_status()

    def _find(self, direction: int) -> None:
        ll = self.lines
        rx = ll.search_rx
        if rx is None or not ll.lines:
            return
        n = len(ll.lines)
        start = ll.cursor if ll.cursor >= 0 else (n - 1 if direction > 0 else 0)
        raw_no = self.search.raw_excludes(_MSG_LIMIT) if self.search is not None else None
        lines = ll.lines
        for k in range(1, n + 1):
            i = (start + direction * k) % n
            e = lines[i]
            if raw_no is not None and type(e) is LazyLine and raw_no(e.raw, not e.message_in_raw):
                continue  # its raw bytes cannot match: not parsed
            if rx.search(visible(e.message, limit=_MSG_LIMIT).expandtabs(4)):
                ll.pause()
                ll.cursor = i
                ll.reveal(i)
                ll.invalidate()
                self._message = ""
                self.update_status()
                return
        self._message = "no match"
        self.update_status()

    # -- the status line

    def update_status(self) -> None:
        try:
            status = self.query_one("#logs-status", Static)
            ll = self.lines
        except Exception:
            return
        t = Text(no_wrap=True, overflow="ellipsis", end="")
        t.append("▶ following" if ll.follow else "⏸ paused", "bold")
        if self._message:  # (a bad regex or filter, no match): first, or a half-screen pane cuts it
            t.append("  " + visible(self._message, limit=200), "bold")
        total = sum(self._total.values())
        dropped = sum(self._dropped.values())
        t.append(f"  {len(ll.lines):,} shown / {total:,} received")
        t.append(f", {dropped:,} dropped" if dropped else ", 0 dropped")
        if not self.query_filter.empty:
            t.append("  filter: ")
            t.append(visible(self.query_filter.describe(), limit=200))
            if self._missing:
                t.append(f" ({self._missing} no longer in the ring)")
        if self._filtering is not None:
            n, left = self._filtering
            t.append(f"  filtering… {n - left:,} of {n:,} looked at")
        if self.search is not None:
            t.append("  search: ")
            t.append(
                ("re " if self.search.regex else "") + "/" + visible(self.search.pattern, limit=100) + "/"
            )
            t.append(" (n/N next/previous, R regex)")
        elif self.regex:
            t.append("  regex on")
        bad = [
            (h, s)
            for h, s in self._sources
            if s.state not in (SourceState.FOLLOWING, SourceState.DONE, SourceState.STARTING)
        ]
        ok = len(self._sources) - len(bad)
        if self._sources:
            t.append(f"  sources: {ok} ok")
            for h, s in bad[:3]:
                t.append(", ")
                t.append(visible(s.name, limit=60) + " " + s.state.value)
            if len(bad) > 3:
                t.append(f", +{len(bad) - 3} more")
        if t.plain != self._status_text:  # a repaint only when the line changed
            self._status_text = t.plain
            status.update(t, layout=False)  # one line (height: 1, one row of the pane)


def _fields(q: Query) -> dict[str, Any]:
    return {
        k: getattr(q, k)
        for k in ("tenant", "host", "source", "min_severity", "tag", "workload", "words", "seqs")
    }


__all__ = ["SEVERITIES", "SEVERITY_RANK", "LogLines", "LogsPane", "Segment"]
