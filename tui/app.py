"""The tenantscope App: layout, keys, the command palette, and the wiring to the engine.

The app renders State and nothing else: it starts the source (the live Engine from
probes/session.py, or a fixed State for tests and replay), listens to it, and draws a new
State at most every COALESCE seconds however often probes finish. Panes decide
themselves whether what they show changed. It never calls libvirt, SSH or netlink.

Layout: on a large terminal (>= 120x34) the panes share the screen in a grid, two a row in
the order of their `position` (Tenants and Resources, Reachability and Logs, then Findings
across the bottom); below that they collapse to tabs with one pane shown. The number key of a
pane is its position, in both layouts: key N, tab N and grid slot N are the same pane.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import fields
from datetime import tzinfo
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.containers import Container
from textual.driver import Driver
from textual.events import DescendantFocus
from textual.theme import Theme
from textual.widgets import Footer, Tab, Tabs

import themes
from probes.logs.model import LogSlice
from probes.model import HostState, State
from probes.network.model import NicAddresses
from probes.report.model import Ack
from probes.requests import Request, RequestHandle
from probes.session import Options, Session
from probes.untrusted import visible
from tui.bindings import APP_BINDINGS, PANE_ORDER, PANES, BindingCommands
from tui.header import AppHeader
from tui.hostfilter import next_host, only_host
from tui.messages import FindingSelected, StateChanged, WorkloadSelected
from tui.panes.base import Pane
from tui.readonly import env_read_only, hidden
from tui.runbook import RunbookActions
from tui.source import StateSource
from tui.status import THEME_DEFAULTS

if TYPE_CHECKING:
    from textual.notifications import SeverityLevel

log = logging.getLogger(__name__)

PANE_CLASSES: dict[str, type[Pane]] = {p.pane_id: p for p in PANES}
FREEZE_AFTER = 10.0  # seconds after start: gc.freeze() what exists then (see on_mount)


def grid_css(panes: tuple[type[Pane], ...]) -> str:
    """The large layout's grid from the panes' positions: two a row in position order (so slot
    N is what key N opens), the last one across the row when their number is odd."""
    rows = (len(panes) + 1) // 2
    css = f"#panes {{ grid-size: 2 {rows}; grid-columns: 1fr 1fr; grid-rows: {' '.join(['1fr'] * rows)}; }}\n"
    if len(panes) % 2:
        css += f"#pane-{panes[-1].pane_id} {{ column-span: 2; }}\n"
    return css


_STATE_FIELDS = tuple(f.name for f in fields(State) if f.name != "hosts")
_HOST_FIELDS = tuple((f.name, "host." + f.name) for f in fields(HostState))


def changed_fields(old: State | None, new: State) -> frozenset[str] | None:
    """What differs between two States, by identity (the engine hands unchanged parts on as
    the same objects; an equal new object counts as changed, and the pane then compares):
    State fields and "host.NAME" for HostState fields. None when anything may have (the first
    State, hosts added, removed or reordered)."""
    if old is None or len(old.hosts) != len(new.hosts):
        return None
    out = {f for f in _STATE_FIELDS if getattr(old, f) is not getattr(new, f)}
    for a, b in zip(old.hosts, new.hosts):
        if a is b:
            continue
        if a.host != b.host:
            return None
        out.update(name for f, name in _HOST_FIELDS if getattr(a, f) is not getattr(b, f))
    return frozenset(out)


class PaneTabs(Tabs, can_focus=False):
    """Tab bar of the compact layout; keys go to panes, so the bar itself takes no focus."""


class TenantScopeApp(RunbookActions, App[int]):  # runbook steps: tui/runbook.py
    TITLE = "tenantscope"
    CSS_PATH = "app.tcss"
    CSS = grid_css(PANES)  # the grid follows the panes' positions (app.tcss has the rest)
    BINDINGS: ClassVar[list[BindingType]] = APP_BINDINGS
    COMMANDS = App.COMMANDS | {BindingCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (34, "-tall")]
    COALESCE = 0.15  # at most one render per this many seconds, however often probes finish
    BUSY_FACTOR = 2.0

    def __init__(
        self,
        opts: Options | None = None,
        *,
        source: StateSource | None = None,
        clock: Callable[[], float] = time.time,
        tz: tzinfo | None = None,
        read_only: bool | None = None,
    ) -> None:
        super().__init__()
        # partial screen updates render only the widgets they reach (tui/compositor.py), and
        # the pieces of a divided line are not kept (tui/strips.py)
        from tui import compositor, strips

        compositor.install()
        strips.install()
        self.opts = opts or Options()
        # read-only: no action that changes anything (tui/readonly.py); env set by `serve`
        self.read_only = env_read_only() if read_only is None else read_only
        self.acks: dict[str, Ack] = {}  # acknowledged findings (Finding.key), this session only
        self._source: StateSource = (
            source if source is not None else Session(self.opts, read_only=self.read_only)
        )
        # the probes begin what they can (the libvirt test driver's open, on the probe's thread)
        # while Textual reads the styles, starts and composes the screen: from here, not from
        # compose (tens of ms later). The app stops its source on exit (closing what was opened).
        warm = getattr(self._source, "warm_up", None)
        if warm is not None:
            warm()
        self._clock = clock
        self._tz = tz
        self._pending: State | None = None
        # a plain loop timer, not a Textual Timer (a task of its own per State: ~0.2 ms/s idle)
        self._flush_timer: asyncio.TimerHandle | None = None
        self._stopping = False  # unmounting: States still published while the source stops are dropped
        self._last_flush = 0.0
        self._render_cost = 0.0  # seconds the last State took to render (the panes' show())
        self._state: State | None = None
        self.host_filter: str | None = None  # one host of the fleet, or None for all (key h)
        self._active = PANE_ORDER[0]
        self._loop_thread = threading.get_ident()
        self._app_context: contextvars.Context | None = None
        self.renders = 0  # States drawn (tests and bench read it)
        self._behind: set[Pane | AppHeader] = set()  # not drawn while hidden or covered
        self._shown: State | None = None  # the State the panes were last given (host filter applied)
        self._fanout: list[Pane | AppHeader] | None = None
        for data in themes.builtin():
            self.register_theme(Theme(**data))
        self.theme = themes.DEFAULT

    # -- layout

    def compose(self) -> ComposeResult:
        # What exists now (the imported modules: most of the heap) lives as long as the console:
        # the full collections that a first inventory's allocations set off (1,000 domains:
        # several, 0.1-0.7 s each with the loop or the probe stopped) need not walk it
        self._source.heap.freeze(young=False)
        yield AppHeader(clock=self._clock, tz=self._tz, stale_after=max(10.0, 5 * self.opts.interval))
        yield PaneTabs(
            *(Tab(f"{p.position} {p.title}", id=f"tab-{p.pane_id}") for p in PANES),
            id="pane-tabs",
        )
        with Container(id="panes"):
            for p in PANES:
                yield p(classes="-active" if p.pane_id == self._active else None)
        yield Footer()

    def get_driver_class(self) -> type[Driver]:
        """Textual's choice, with Linux's driver replaced by one whose input thread sleeps
        until there is input (tui/driver.py: ten wake-ups a second fewer at idle)."""
        cls = super().get_driver_class()
        if cls.__module__ == "textual.drivers.linux_driver" and cls.__name__ == "LinuxDriver":
            from tui.driver import QuietLinuxDriver

            return QuietLinuxDriver
        return cls

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(THEME_DEFAULTS)

    @property
    def state(self) -> State | None:
        """The State on screen now."""
        return self._state

    def pane(self, pane_id: str) -> Pane:
        return self.query_one(f"#pane-{pane_id}", Pane)

    # -- the request path: what panes and steps ask beyond rendering (probes/requests.py)

    @property
    def source(self) -> StateSource:
        """Where the State comes from (the live session, a fixed State, a replay)."""
        return self._source

    def request(self, req: Request) -> RequestHandle:
        """Hand a typed request to the source; progress and outcome come back in the State."""
        return self._source.request(req)

    def cancel_request(self, rid: int) -> bool:
        return self._source.cancel(rid)

    def log_entries(self, host: str, after: int | None) -> LogSlice | None:
        """A host's log ring after the Logs pane's cursor (None where the source has no ring)."""
        return self._source.log_entries(host, after)

    def add_state_listener(self, fn: Callable[[State], object]) -> None:
        """Hear every State the source publishes (a recorder), not only the rendered ones."""
        self._source.subscribe(fn)

    # -- the source of State

    def on_mount(self) -> None:
        self._loop_thread = threading.get_ident()
        self._app_context = contextvars.copy_context()
        self._source.subscribe(self._on_source_state)
        self.screen_change_signal.subscribe(self, self._catch_up)
        self._render(self._source.state)
        self._source.start()
        self.action_focus_pane(self._active)
        self._install_repaint_signal()
        # What exists once started (modules, widgets, the first States) lives as long as the
        # console: the cyclic GC need not walk it again at every collection (halves its idle cost)
        self.set_timer(FREEZE_AFTER, lambda: self._source.heap.freeze(young=False))

    def _install_repaint_signal(self) -> None:
        """SIGUSR1 repaints the whole screen: a viewer that joins a shared session (tmux,
        `serve` followers) otherwise sees only the differences Textual sends after it."""
        try:
            asyncio.get_running_loop().add_signal_handler(
                signal.SIGUSR1, lambda: self.refresh(repaint=True, layout=True)
            )
            self._repaint_signal = True
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, no signals
            self._repaint_signal = False

    async def on_unmount(self) -> None:
        self._stopping = True
        self._source.heap.unfreeze()  # (an app run in a longer process: tests, benches)
        if getattr(self, "_repaint_signal", False):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        try:
            await self._source.stop()
        except Exception:
            log.exception("stopping the engine")

    def _on_source_state(self, state: State) -> None:
        """Called by the engine on every change (often): remember it, render soon."""
        if threading.get_ident() != self._loop_thread:  # a source publishing from a thread
            self.call_from_thread(self._on_source_state, state)
            return
        if self._app_context is not None:
            # a source's callback may have been scheduled outside the app (a source created
            # before the app ran): Textual's timers need the app's context
            self._app_context.copy().run(self._queue_state, state)
        else:
            self._queue_state(state)

    def _queue_state(self, state: State) -> None:
        if self._stopping:
            return
        self._pending = state
        if self._flush_timer is None:
            # at least COALESCE apart, and BUSY_FACTOR times what the last render cost: a fleet
            # whose States arrive all the time leaves the loop free for keys between renders
            gap = max(self.COALESCE, self.BUSY_FACTOR * self._render_cost)
            delay = max(0.01, self._last_flush + gap - time.monotonic())
            if not self._last_flush:
                # the source's first State (the console's first frame: 1,000 domains' inventory
                # and findings) waits for nothing: a burst still gathers behind it in the gap
                delay = 0.0
            self._flush_timer = asyncio.get_running_loop().call_later(delay, self._flush_pending)

    def _flush_pending(self) -> None:
        self._flush_timer = None
        state, self._pending = self._pending, None
        self._last_flush = time.monotonic()
        if state is not None and state is not self._state:
            # drawn here, in the timer's callback (the app's context): a StateChanged message
            # to the app's own queue woke its pump and dispatched (~0.15 ms a State) for nothing
            self._take_state(state)

    def on_state_changed(self, message: StateChanged) -> None:
        self._take_state(message.state)

    def _take_state(self, state: State) -> None:
        try:
            if self._stopping or not self.screen_stack:
                return  # exiting: the screens are gone (a State published just before)
        except KeyError:  # (no screen stack for the mode any more)
            return
        t0 = time.perf_counter()
        self._render(state)
        self._render_cost = min(1.0, time.perf_counter() - t0)

    def _render(self, state: State, *, everything: bool = False) -> None:
        """Fan `state` out to the header and the panes that draw what changed (`Pane.reads`);
        `everything`: to every pane (the host filter moved)."""
        self._state = state
        self.renders += 1
        shown = only_host(state, self.host_filter)  # the header always shows the whole fleet
        changed = None if everything else changed_fields(self._shown, shown)
        self._shown = shown
        # A pane nobody can see costs nothing: behind another screen (the fleet view, a
        # dialog) or on a hidden tab it is skipped and drawn when it shows again (_catch_up).
        covered = self._covered()
        for t in self._targets():
            if covered or not t.display:
                self._behind.add(t)
                continue
            if (
                isinstance(t, Pane)
                and t.reads is not None
                and changed is not None
                and t not in self._behind
                and not (t.reads & changed)
            ):
                continue  # nothing it draws moved: refresh times, another area's news
            self._behind.discard(t)
            try:
                t.show(state if isinstance(t, AppHeader) else shown)
            except Exception:  # one broken pane must not blank the others
                log.exception("%s failed to render", type(t).__name__)
        self.runbook_progress(state)  # the running steps' progress (State.requests)
        # a screen on top that follows the State says so with a `follow_state(state)` method
        # (the probe errors, the fleet view, the changes): asked of the screen itself, so a
        # render imports no screen module (issue 16: RSS)
        follow = getattr(self.screen, "follow_state", None)
        if follow is not None:
            follow(state)

    def _targets(self) -> list[Pane | AppHeader]:
        """The header and the panes, found once (a query walks the whole DOM: ~0.4 ms a
        State); none once they are gone (a State can arrive while the app exits)."""
        if not self._fanout:
            self._fanout = [*self.query(AppHeader), *self.query(Pane)]
        return [t for t in self._fanout if t.is_attached]

    def _covered(self) -> bool:
        try:
            return self.screen is not self.default_screen
        except Exception:  # no screen (starting, exiting)
            return False

    def _catch_up(self, *_: object) -> None:
        """Draw the panes skipped while they could not be seen, now that they can."""
        state = self._state
        if state is None or not self._behind or self._covered():
            return
        shown = only_host(state, self.host_filter)
        for t in list(self._behind):
            if not t.is_attached or not t.display:
                continue
            self._behind.discard(t)
            try:
                t.show(state if isinstance(t, AppHeader) else shown)
            except Exception:
                log.exception("%s failed to render", type(t).__name__)

    # -- panes and focus

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Pane keys act on the main screen only: not behind a dialog."""
        if action == "focus_pane" and self.screen is not self.default_screen:
            return False
        return not hidden(self, action)  # read-only: changing actions are removed (and refused)

    def action_focus_pane(self, pane_id: str) -> None:
        if pane_id not in PANE_CLASSES:
            return
        self._activate(pane_id)
        self.pane(pane_id).focus_target().focus()

    def _activate(self, pane_id: str) -> None:
        """Make `pane_id` the shown pane of the compact layout (and the current tab)."""
        if pane_id == self._active and self.pane(pane_id).has_class("-active"):
            return
        self._active = pane_id
        for p in self.query(Pane):
            p.set_class(p.pane_id == pane_id, "-active")
        for tabs in self.query(PaneTabs):  # none while the app shuts down
            if tabs.active != f"tab-{pane_id}":
                tabs.active = f"tab-{pane_id}"
        if self._behind:  # the newly shown pane: once its CSS says it is displayed
            self.call_after_refresh(self._catch_up)

    @on(DescendantFocus)
    def _focus_moved(self, event: DescendantFocus) -> None:
        for node in event.widget.ancestors_with_self:
            if isinstance(node, Pane):
                self._activate(node.pane_id)
                return

    @on(Tabs.TabActivated, "#pane-tabs")
    def _tab_clicked(self, event: Tabs.TabActivated) -> None:
        # Setting `tabs.active` from _activate posts this message too; by the time it
        # arrives the user may have moved on, so only the bar's current tab counts.
        if event.tab.id != event.tabs.active:
            return
        pane_id = (event.tab.id or "").removeprefix("tab-")
        if pane_id != self._active:
            self.action_focus_pane(pane_id)

    # -- screens

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every notification (the app's and its widgets': Widget.notify comes here) as plain
        text through the one sanitizing function: they carry host names, request messages and
        paths, and Textual reads a message as markup by default ("showing host [@click=...]"
        was a link that ran an action)."""
        super().notify(
            visible(message), title=visible(title), severity=severity, timeout=timeout, markup=False
        )

    def action_pick_host(self) -> None:
        """Narrow the panes to the next host of the fleet, then back to all hosts."""
        if self._state is not None and len(self._state.hosts) < 2:  # nothing to narrow
            self.notify("one host: h narrows a fleet's panes to one host at a time", timeout=3)
            return
        self.host_filter = next_host(self._state, self.host_filter)
        self._tell_on_screen()
        self.notify(
            f"showing host {self.host_filter}" if self.host_filter else "showing all hosts", timeout=3
        )
        if self._state is not None:
            self._render(self._state, everything=True)

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_probe_errors(self) -> None:
        from tui.screens.probe_errors import ProbeErrorsScreen

        if self._state is not None and not isinstance(self.screen, ProbeErrorsScreen):
            self.push_screen(ProbeErrorsScreen(self._state, self._tz))

    def action_fleet(self) -> None:
        """Every host, worst status per area, most urgent first; Enter narrows to a host."""
        from tui.screens.fleet import FleetScreen

        if self._state is None or isinstance(self.screen, FleetScreen):
            return

        def opened(host: str | None) -> None:
            if host is not None:
                self.host_filter = host
            self._tell_on_screen()
            if host is not None:
                self.notify(f"showing host {host} (h: next host / all)", timeout=3)
                if self._state is not None:
                    self._render(self._state, everything=True)

        self.push_screen(FleetScreen(self._state, self._clock), opened)
        self._tell_on_screen(fleet_view=True)

    def _tell_on_screen(self, *, fleet_view: bool = False) -> None:
        """Tell the source whose figures are drawn: the engine reads the other hosts' figures
        less often in a large fleet (Engine.show_hosts). The fleet view draws no host's
        figures, a host filter one host's, the main view every host's."""
        show = getattr(self._source, "show_hosts", None)
        if show is not None:
            show(() if fleet_view else (self.host_filter,) if self.host_filter else None)

    def action_changes(self) -> None:
        """What changed since the baseline (--baseline), newest first; Enter jumps to it."""
        from probes.drift import Change
        from tui.screens.changes import ChangesScreen

        if self._state is None or isinstance(self.screen, ChangesScreen):
            return
        drift = self._state.drift

        def opened(change: Change | None) -> None:
            state = self._state
            if change is None or state is None:
                return
            finding = next((f for f in state.findings if f.key == change.finding), None)
            workload = state.workload(change.workload) if change.workload else None
            if finding is not None:
                self.post_message(FindingSelected(finding))
            elif workload is not None:
                self.post_message(WorkloadSelected(workload))
            elif change.link:
                self.action_focus_pane("reachability")
            elif change.finding:  # cleared: only the baseline had it
                self.notify("that finding is cleared: it is only in the baseline", timeout=4)

        self.push_screen(ChangesScreen(drift, drift.baseline if drift else ""), opened)

    def on_finding_selected(self, message: FindingSelected) -> None:
        from tui.screens.finding_detail import FindingDetailScreen  # copy/save fix, ack, jumps

        self.push_screen(FindingDetailScreen(message.finding))

    def on_workload_selected(self, message: WorkloadSelected) -> None:
        from tui.screens.workload import WorkloadScreen

        findings = self._state.findings if self._state is not None else ()
        addresses: tuple[NicAddresses, ...] = ()
        hs = (
            next((h for h in self._state.hosts if h.host.name == message.workload.host), None)
            if self._state
            else None
        )
        if hs is not None and message.workload.vm is not None:
            from probes.network.vmaddr import vm_addresses  # pure: derived from the State

            addresses = vm_addresses(hs).get(message.workload.key, ())
        self.push_screen(WorkloadScreen(message.workload, findings, addresses))
