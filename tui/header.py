"""The header: which hosts, how their connections are, how fresh the picture is.

On call, the first question is whether the screen can be trusted: so every connection's state
is spelled out ("libvirt: unreachable since 14:02:10, retrying"), the count of failing probes
is one click (or `!`) from their messages, the time of the last refresh is shown and marked
stale when it stops moving, and a demo says it is one. Times come from an injected clock and
time zone so that screenshots and tests are deterministic.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import NamedTuple

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from probes.checks.base import nothing_observed
from probes.hostsummary import DOWN, connection_state
from probes.model import Connection, ConnState, Host, HostKind, State
from tui.safe import untrusted
from tui.status import theme_style

DEMO_NOTE = "demo fleet (libvirt test driver: simulated hypervisor)"
LIBVIRT_VIEW_NOTE = "(libvirt's view: no kernel, files or logs read)"


def hhmmss(t: float, tz: tzinfo | None = None) -> str:
    return datetime.fromtimestamp(t, tz).strftime("%H:%M:%S") if t else "never"


CONN_SYMBOL = {
    ConnState.UP: ("✓", "status-pass"),
    ConnState.CONNECTING: ("…", "status-warn"),
    ConnState.UNREACHABLE: ("✗", "status-fail"),
    ConnState.AUTH_FAILED: ("✗", "status-fail"),
    ConnState.HOST_KEY_REFUSED: ("✗", "status-fail"),
    ConnState.ABSENT: ("-", "status-skip"),
}


def connection_text(c: Connection, tz: tzinfo | None, variables: dict[str, str]) -> Text:
    symbol, var = CONN_SYMBOL.get(c.state, ("?", "status-warn"))
    colour = theme_style(variables, var)
    out = Text()
    out.append(f"{symbol} ", style=colour)
    out.append_text(untrusted(c.what))
    out.append(": ")
    down = c.state in (ConnState.UNREACHABLE, ConnState.AUTH_FAILED, ConnState.HOST_KEY_REFUSED)
    # the host's connection is "unreachable"; an area behind it (libvirt) is "unavailable"
    out.append("unavailable" if down and c.what != "ssh" else c.state.value, style=colour)
    if down:
        if c.since:
            out.append(f" since {hhmmss(c.since, tz)}")
        out.append(", retrying")
        if c.detail:
            why = c.detail.split("retrying: ", 1)[-1]
            out.append(" (")
            out.append_text(untrusted(why if len(why) <= 80 else why[:79] + "…"))
            out.append(")")
    return out


MAX_HOSTS_LISTED = 3  # beyond this the header summarises the fleet and names the hosts in trouble
_DOWN = DOWN  # one definition with the fleet view (probes/hostsummary.py)


class HostLine(NamedTuple):
    """What the header shows of one host."""

    host: Host
    connections: tuple[Connection, ...]
    observed: bool  # refreshed at least once
    probe_errors: int
    blind: bool = False  # probes ran and failed, and nothing was observed (checks/base.py)


class HeaderInputs(NamedTuple):
    """Everything of a State the header shows, and nothing else: the header is made from it
    alone, so a State whose inputs equal those on screen need not be drawn again (and a field
    the header starts to show is in the comparison by being here)."""

    source: str
    refreshed: float  # the newest refresh of any host (0: never)
    hosts: tuple[HostLine, ...]


def header_inputs(state: State) -> HeaderInputs:
    return HeaderInputs(
        state.source,
        max((h.refreshed_at for h in state.hosts), default=0.0),
        tuple(
            HostLine(
                h.host, h.connections, bool(h.refreshed_at), len(h.probe_errors), bool(nothing_observed(h))
            )
            for h in state.hosts
        ),
    )


def _of(state: State | HeaderInputs) -> HeaderInputs:
    return state if isinstance(state, HeaderInputs) else header_inputs(state)


def area_trouble(state: State | HeaderInputs) -> dict[str, list[HostLine]]:
    """{area: hosts} of hosts that are UP whose area connection (libvirt, ...) is down: a host
    that is unreachable is counted once, as unreachable, not again per area."""
    out: dict[str, list[HostLine]] = {}
    for h in _of(state).hosts:
        if connection_state(h.connections, h.observed) != ConnState.UP:
            continue
        for c in h.connections:
            if c.what != "ssh" and c.state in _DOWN:
                out.setdefault(c.what, []).append(h)
    return out


def _names(hosts: list[HostLine]) -> Text:
    out = Text(" (")
    out.append_text(Text(", ").join(untrusted(h.host.name) for h in hosts[:3]))
    out.append(f", +{len(hosts) - 3} more)" if len(hosts) > 3 else ")")
    return out


def fleet_text(state: State | HeaderInputs, variables: dict[str, str]) -> Text:
    """'12 hosts: ✓ 10 up · ✗ 2 unreachable (hv3, hv7) · libvirt ✗ on 1 (hv5)': hosts counted
    by their connection, then the areas in trouble on hosts that are up; one line however
    large the fleet."""
    inputs = _of(state)
    hosts = inputs.hosts
    by = [connection_state(h.connections, h.observed) for h in hosts]
    down = [h for h, c in zip(hosts, by, strict=True) if c in _DOWN]
    waiting = [h for h, c in zip(hosts, by, strict=True) if c == ConnState.CONNECTING]
    up = len(hosts) - len(down) - len(waiting)
    out = Text(f"{len(hosts)} hosts: ", style="bold")
    out.append(f"✓ {up} up", style=theme_style(variables, "status-pass"))
    if waiting:
        out.append(f" · … {len(waiting)} connecting", style=theme_style(variables, "status-warn"))
    if down:
        out.append(f" · ✗ {len(down)} unreachable", style=theme_style(variables, "status-fail", bold=True))
        out.append_text(_names(down))
    for area, trouble in sorted(area_trouble(inputs).items()):
        out.append(" · ")
        out.append_text(untrusted(area))
        out.append(f" ✗ on {len(trouble)}", style=theme_style(variables, "status-fail", bold=True))
        out.append_text(_names(trouble))
    return out


FOLLOWERS_ENV = "TENANTSCOPE_FOLLOWERS_FILE"


def followers() -> int | None:
    """How many follow this console (`serve --presenter` writes the count to the file named by
    TENANTSCOPE_FOLLOWERS_FILE); None when this console is not presenting."""
    path = os.environ.get(FOLLOWERS_ENV)
    if not path:
        return None
    try:
        with open(path) as f:
            return int(f.read(32).strip() or 0)
    except (OSError, ValueError):
        return None


def header_parts(
    state: State | HeaderInputs,
    now: float,
    tz: tzinfo | None,
    stale_after: float,
    variables: dict[str, str],
    following: int | None = None,
) -> list[Text]:
    """The header's pieces, each kept on one line: title, one per host, refresh, source."""
    inputs = _of(state)
    parts = [Text("tenantscope", style="bold")]
    if following is not None:
        parts.append(Text(f"presenting: {following} following", style="bold"))
    if len(inputs.hosts) > MAX_HOSTS_LISTED:
        parts.append(fleet_text(inputs, variables))
    for h in inputs.hosts if len(inputs.hosts) <= MAX_HOSTS_LISTED else ():
        part = untrusted(h.host.name, style="bold")
        if h.host.kind == HostKind.LIBVIRT:  # a remote or simulated hypervisor's API only
            part.append(f" {LIBVIRT_VIEW_NOTE}", style="italic")
        if not h.connections and not h.observed:
            part.append(" waiting for the first observation", style="italic")
        ssh = next((c for c in h.connections if c.what == "ssh"), None)
        # a host whose SSH is down says so once: its areas (libvirt) are down because of it
        for c in (ssh,) if ssh is not None and ssh.state in _DOWN else h.connections:
            part.append("  ")
            part.append_text(connection_text(c, tz, variables))
        parts.append(part)
    parts.append(refreshed_part(inputs, now, tz, stale_after, variables))
    if inputs.source == "demo":
        parts.append(Text(DEMO_NOTE, style="italic"))
    elif inputs.source not in ("live", ""):
        parts.append(untrusted(inputs.source, style="italic"))
    return parts


def refreshed_part(
    state: State | HeaderInputs, now: float, tz: tzinfo | None, stale_after: float, variables: dict[str, str]
) -> Text:
    """How fresh the picture is. A live one says only that it is fresh ("refreshed < 10 s
    ago": the stale mark would say otherwise), so that the header does not change with every
    refresh (a redraw each time, most of what an idle console cost); once it is stale, the
    time of the last refresh and its age, every second. A replay or a saved State shows the
    time it was taken."""
    inputs = _of(state)
    refreshed = inputs.refreshed
    if inputs.hosts and all(h.blind for h in inputs.hosts) and can_turn_stale(inputs):
        # every run failed: "refreshed < 10 s ago" read as a fresh picture of nothing
        return Text("nothing observed yet", style=theme_style(variables, "status-warn", bold=True))
    if not refreshed or not can_turn_stale(inputs):
        return Text(f"refreshed {hhmmss(refreshed, tz)}")
    age = now - refreshed
    if age <= stale_after:
        return Text(f"refreshed < {span(stale_after)} ago")
    part = Text(f"refreshed {hhmmss(refreshed, tz)}")
    part.append(f" (stale: {span(age)} ago)", style=theme_style(variables, "status-warn", bold=True))
    return part


def span(seconds: float) -> str:
    """'12 s', '1 min 15 s', '2 min' (whole seconds)."""
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"


def can_turn_stale(state: State | HeaderInputs) -> bool:
    """Only a picture being observed (live or the demo) turns stale: a replay or a saved State
    shows a past time on purpose, and the wall clock says nothing about it."""
    return state.source in ("live", "", "demo")


SEPARATOR = Text("  │  ", style="dim")


def pack(parts: list[Text], width: int) -> Text:
    """Join parts with separators, breaking lines between parts (never inside one) so that
    a time or a state is never split across lines on a narrow terminal."""
    lines: list[Text] = []
    line: Text | None = None
    for part in parts:
        if line is None:
            line = part.copy()
        elif line.cell_len + SEPARATOR.cell_len + part.cell_len <= width:
            line.append_text(SEPARATOR)
            line.append_text(part)
        else:
            lines.append(line)
            line = part.copy()
    if line is not None:
        lines.append(line)
    return Text("\n").join(lines)


def header_text(
    state: State | HeaderInputs,
    now: float,
    tz: tzinfo | None,
    stale_after: float,
    variables: dict[str, str],
    width: int = 10_000,
    following: int | None = None,
) -> Text:
    parts = header_parts(state, now, tz, stale_after, variables, following)
    if width < 100:  # the terminal's title says it already; keep the room for facts
        parts = parts[1:]
    return pack(parts, width)


def errors_text(state: State | HeaderInputs, variables: dict[str, str]) -> Text:
    n = sum(h.probe_errors for h in _of(state).hosts)
    if not n:
        return Text("✓ no probe errors", style="dim")
    return Text(
        f"⚠ {n} probe error{'s' if n != 1 else ''} (!)",
        style=theme_style(variables, "status-fail", bold=True),
    )


class ErrorCount(Static):
    """The failing-probe count; a click opens the list (same as `!`)."""

    async def on_click(self) -> None:
        await self.app.run_action("probe_errors")


class AppHeader(Horizontal):
    def __init__(self, *, clock: Callable[[], float], tz: tzinfo | None, stale_after: float) -> None:
        super().__init__(id="header")
        self._clock = clock
        self._tz = tz
        self._stale_after = stale_after
        self._state: HeaderInputs | None = None  # what of the State shown the header shows
        self._shown: tuple[Text, Text] | None = None
        self._refreshed = 0.0  # the newest refresh time of the State shown
        self._drawn_stale = False  # the header on screen says "stale"
        self._timer: asyncio.TimerHandle | None = None  # the clock's next tick
        self._drawn_from: tuple[object, ...] | None = None  # the inputs of the text on screen

    def compose(self) -> ComposeResult:
        yield Static(id="header-main")
        yield ErrorCount(id="header-errors")

    def on_unmount(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def show(self, state: State) -> None:
        self._state = inputs = header_inputs(state)
        self._refreshed = inputs.refreshed
        if self._key(inputs) != self._drawn_from or self._drawn_stale:
            self._tick()
        self._arm()

    def _key(self, inputs: HeaderInputs) -> tuple[object, ...]:
        """The header's inputs but the clock's: a State that changes none of them (a fresh
        picture's next refresh) is not drawn again (the text would be the same, and making it
        cost ~0.3 ms a State). A live picture's refresh time is drawn by the clock's tick."""
        refreshed = bool(inputs.refreshed) if can_turn_stale(inputs) else inputs.refreshed
        return (self.app.theme, inputs._replace(refreshed=refreshed))

    def _arm(self) -> None:
        """The clock's next tick: every second while the stale mark's age moves (or a
        presenter's follower count may), else when the picture turns stale. A live console
        gets a new State before that, so its clock never wakes it (it ticked every second)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._state is None:
            return
        if self._drawn_stale or FOLLOWERS_ENV in os.environ:
            delay = 1.0
        elif self._refreshed and can_turn_stale(self._state):
            delay = max(0.05, self._refreshed + self._stale_after - self._clock() + 0.01)
        else:
            return  # nothing observed yet, or a replay: nothing can turn stale
        # (a loop timer: a Textual Timer is a task of its own; the callback keeps the app's
        # context, in which it is scheduled)
        self._timer = asyncio.get_running_loop().call_later(delay, self._clock_tick)

    def _clock_tick(self) -> None:
        """Only the stale mark (and a presenter's follower count) moves with the clock, so
        the header is rebuilt only when it is stale, was, or is presenting."""
        self._timer = None
        if self._state is None or not self.is_attached:
            return
        stale = (
            bool(self._refreshed)
            and can_turn_stale(self._state)
            and self._clock() - self._refreshed > self._stale_after
        )
        if stale or self._drawn_stale or FOLLOWERS_ENV in os.environ:
            self._tick()
        self._arm()

    def on_resize(self) -> None:
        self.call_after_refresh(self._tick)

    def _width(self, errs: Text) -> int:
        """The main text's width: its Static's once laid out; before that (the first State,
        shown at mount) what the layout will give it beside the error count. Packed for the
        whole screen, the first text was wrapped by the Static inside a part ('refreshed' /
        'never': a 3-line header in the first frames at 80 columns)."""
        width = self.query_one("#header-main", Static).size.width
        if width:
            return width
        pad = self.styles.padding
        errors = self.query_one("#header-errors", Static).styles.padding
        width = (self.size.width or self.app.size.width) - pad.left - pad.right
        return max(1, width - errs.cell_len - errors.left - errors.right)

    def _tick(self) -> None:
        if self._state is None:
            return
        variables = self.app.theme_variables
        errs = errors_text(self._state, variables)
        main = header_text(
            self._state, self._clock(), self._tz, self._stale_after, variables, self._width(errs), followers()
        )
        self._drawn_stale = "(stale: " in main.plain
        self._drawn_from = self._key(self._state)
        if self._shown is not None and self._shown == (main, errs):
            return
        # A layout pass only when the header's size can change: its line count (height:
        # auto) or the error count (width: auto). The refresh time alone changes every poll.
        old = self._shown
        self._shown = (main, errs)
        same_lines = old is not None and old[0].plain.count("\n") == main.plain.count("\n")
        self.query_one("#header-main", Static).update(main, layout=not same_lines)
        if old is None or old[1] != errs:
            self.query_one("#header-errors", Static).update(errs)
