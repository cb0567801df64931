"""The diagnostic runbook: the seed's steps as keys, a panel showing each step's state.

Steps, in the order an on-call engineer works through them:

  L review logs        the Logs pane on warnings and worse (isolation signals are tagged there)
  M monitor resources  the Resources pane sorted by CPU (spikes first), every tenant expanded
                       so missing limits show
  I test isolation     active network probes, after the Reachability pane's confirmation that
                       says what will be sent (refused in read-only sessions)
  A audit config       the check catalog, check by check, in a thread (progress, cancellable)
  U software updates   the package manager's pending security updates (SW-02), on demand
                       (refused in read-only sessions: it asks every host's package manager)

Each step is not run, running (with progress), done (with the number of findings it concerns),
cancelled (keeping what was found so far) or failed (with the reason). X cancels the running
long step. b shows or hides the panel; every step is also in the command palette.

`RunbookActions` is mixed into the App: its actions are app actions, bound in
tui/bindings.py (APP_BINDINGS), so the keys work from every pane. The long steps are typed
requests to the session (probes/requests.py: ActiveProbe through the Reachability pane,
Audit, UpdatesLookup); the panel shows their progress from State.requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.widgets import Static

from probes.model import RequestState, State, Status
from probes.requests import Audit, Request, UpdatesLookup
from tui.header import hhmmss
from tui.readonly import refuse


class StepState(StrEnum):
    NOT_RUN = "not run"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


SYMBOL = {
    StepState.NOT_RUN: "·",
    StepState.RUNNING: "…",
    StepState.DONE: "✓",
    StepState.CANCELLED: "■",
    StepState.FAILED: "✗",
}


@dataclass
class Step:
    id: str
    key: str
    title: str
    areas: tuple[str, ...]  # which findings it concerns
    state: StepState = StepState.NOT_RUN
    done: int = 0
    total: int = 0
    findings: int = 0
    reason: str = ""

    def line(self) -> Text:
        t = Text()
        t.append(f"{self.key} ", style="bold")
        t.append(f"{self.title:<19}")
        t.append(f"{SYMBOL[self.state]} {self.state.value}")
        if self.state == StepState.RUNNING and self.total:
            n = 8
            full = int(n * self.done / max(self.total, 1))
            t.append(f" {'▰' * full}{'▱' * (n - full)} {self.done}/{self.total}")
        elif self.state in (StepState.DONE, StepState.CANCELLED):
            t.append(
                f" · {self.findings} finding{'s' if self.findings != 1 else ''}"
                + (" so far" if self.state == StepState.CANCELLED else "")
            )
        elif self.state == StepState.FAILED:
            t.append(": ")
            t.append(self.reason)
        return t


def default_steps() -> dict[str, Step]:
    steps = [
        Step("logs", "L", "Review logs", ("logs",)),
        Step("resources", "M", "Monitor resources", ("resources",)),
        Step("network", "I", "Test isolation", ("network",)),
        Step("audit", "A", "Audit config", ()),
        Step("updates", "U", "Software updates", ("software",)),
    ]
    return {s.id: s for s in steps}


def problems(state: State | None, areas: tuple[str, ...]) -> int:
    """Findings that are not a pass (or skip) in these areas (all areas when empty)."""
    if state is None:
        return 0
    return sum(
        1
        for f in state.findings
        if f.status in (Status.FAIL, Status.WARN, Status.ERROR) and (not areas or f.area in areas)
    )


SEVERITY_RANK = {
    "emerg": 0,
    "alert": 1,
    "crit": 2,
    "err": 3,
    "warning": 4,
    "notice": 5,
    "info": 6,
    "debug": 7,
}


def since_time(spec: str, now: float) -> float | str:
    """`-15m`, `-2h`, `-90s`, `HH:MM[:SS]` (UTC, on now's day) or "" (everything) to a time;
    a message when it is none of these."""
    import re

    spec = spec.strip()
    if not spec:
        return 0.0
    m = re.fullmatch(r"-(\d+(?:\.\d+)?)([smh]?)", spec)
    if m:
        return now - float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    m = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", spec)
    if m and int(m.group(1)) < 24 and int(m.group(2)) < 60:
        return now - now % 86400 + int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3) or 0)
    return f"not a time: {spec!r} (use -15m, -2h, -90s or HH:MM in UTC; Enter alone for everything)"


class RunbookPanel(Static):
    """The steps and their state, docked at the bottom above the footer (b hides it)."""

    DEFAULT_CSS = """
    RunbookPanel {
        dock: bottom; width: 100%; height: auto; max-height: 12; margin-bottom: 1;  /* above the footer */
        border: round $accent; padding: 0 1; background: $surface;
    }
    """

    def on_mount(self) -> None:
        self.border_title = "Runbook"
        self.border_subtitle = "b hides · X cancels · e report"
        self.redraw()

    def redraw(self) -> None:
        steps = getattr(self.app, "runbook_steps", {})
        self.update(Text("\n").join(s.line() for s in steps.values()))


if TYPE_CHECKING:  # what the mixin needs of the app it is mixed into (tui/app.py)
    from collections.abc import Callable

    from textual.app import App

    from probes.requests import RequestHandle

    _AppBase = App[int]
else:
    _AppBase = object


class RunbookActions(_AppBase):
    """Mixed into TenantScopeApp: the runbook's state and actions."""

    RUNBOOK_POLL: ClassVar[float] = 0.25
    if TYPE_CHECKING:
        _clock: Callable[[], float]

        def pane(self, pane_id: str) -> Any: ...
        def action_focus_pane(self, pane_id: str) -> None: ...
        def request(self, req: Request) -> RequestHandle: ...
        def cancel_request(self, rid: int) -> bool: ...

    @property
    def runbook_steps(self) -> dict[str, Step]:
        if not hasattr(self, "_runbook_steps"):
            self._runbook_steps = default_steps()
        return self._runbook_steps

    @property
    def _runbook_requests(self) -> dict[str, int]:
        """The running steps' request ids."""
        if not hasattr(self, "_rb_ids"):
            self._rb_ids: dict[str, int] = {}
        return self._rb_ids

    def _rb_set(self, step_id: str, **kw: Any) -> None:
        step = self.runbook_steps[step_id]
        for k, v in kw.items():
            setattr(step, k, v)
        for panel in self.query(RunbookPanel):
            panel.redraw()

    def _rb_state(self) -> State | None:
        return getattr(self, "state", None)

    # -- the panel

    def action_runbook_toggle(self) -> None:
        panels = list(self.query(RunbookPanel))
        if panels:
            for p in panels:
                p.display = not p.display
            return
        self.screen.mount(RunbookPanel(id="runbook"))

    def _rb_show_panel(self) -> None:
        panels = list(self.query(RunbookPanel))
        if not panels:
            self.default_screen.mount(RunbookPanel(id="runbook"))
        else:
            panels[0].display = True

    # -- quick steps: they set up a pane and count what it concerns

    def action_runbook_logs(self) -> None:
        """Asks since when (Enter: everything kept), then shows the warnings and worse and the
        isolation signals (tagged lines) since then."""
        from tui.screens.replay_jump import JumpTo

        self.push_screen(
            JumpTo(
                "Review logs since: HH:MM[:SS] (UTC), or -15m / -2h / -90s; "
                "Enter alone: everything kept. Esc cancels",
                "-15m",
            ),
            self._rb_logs_since,
        )

    def _rb_logs_since(self, spec: str | None) -> None:
        if spec is None:
            return
        state = self._rb_state()
        now = state.taken_at if state is not None and state.taken_at else self._clock()
        since = since_time(spec, now)
        if isinstance(since, str):
            self.notify(since, severity="error")
            return
        self._rb_show_panel()
        self.action_focus_pane("logs")
        pane = self.pane("logs")
        events = [
            e
            for h in (state.hosts if state else ())
            if h.logs is not None
            for e in h.logs.events
            if e.at >= since and (SEVERITY_RANK.get(e.severity, 9) <= SEVERITY_RANK["warning"] or e.tags)
        ]
        try:
            what = "warnings and isolation signals"
            if since > 0:
                what += f" since {hhmmss(since, UTC)} UTC"  # (as the since prompt takes it)
            shown = pane.show_entries(events, what)
        except Exception as e:
            self._rb_set("logs", state=StepState.FAILED, reason=f"logs pane: {e}")
            return
        self.runbook_log_lines = shown
        self._rb_set("logs", state=StepState.DONE, findings=problems(state, ("logs",)))

    def action_runbook_resources(self) -> None:
        self._rb_show_panel()
        self.action_focus_pane("resources")
        pane = self.pane("resources")
        try:
            pane.sort_col, pane.reverse = 1, False  # CPU, the biggest (the spike) first
            state = self._rb_state()
            if state is not None:
                pane.expanded.update(f"t:{t.name}" for t in state.tenants)
            pane._rerender()
        except Exception as e:
            self._rb_set("resources", state=StepState.FAILED, reason=f"resources pane: {e}")
            return
        self._rb_set("resources", state=StepState.DONE, findings=problems(self._rb_state(), ("resources",)))

    # -- network: the Reachability pane's own confirmation, worker and progress

    def action_runbook_network(self) -> None:
        if refuse(self, "testing network isolation (it sends probes)"):
            self._rb_set("network", state=StepState.FAILED, reason="read-only session")
            return
        self._rb_show_panel()
        self.action_focus_pane("reachability")
        pane = self.pane("reachability")
        pane.action_probe()  # asks first; says what will be sent
        self._rb_set("network", state=StepState.RUNNING, done=0, total=0, reason="")
        self._rb_network_seen = False
        self._rb_network_before = self._rb_reach()
        self.set_timer(self.RUNBOOK_POLL, self._rb_watch_network)

    def _rb_watch_network(self) -> None:
        from textual.screen import ModalScreen
        from textual.widgets import ProgressBar

        pane = self.pane("reachability")
        running = [w for w in pane.workers if w.group == "reach-probe" and w.is_running]
        step = self.runbook_steps["network"]
        if step.state != StepState.RUNNING:
            return
        if running:
            self._rb_network_seen = True
            bar = pane.query_one("#reach-progress", ProgressBar)
            self._rb_set("network", done=int(bar.progress), total=int(bar.total or 0))
        elif isinstance(self.screen, ModalScreen):
            pass  # the confirmation is open
        elif (
            not self._rb_network_seen
            and self._rb_reach() == self._rb_network_before
            and "cancelled" not in getattr(pane, "_rnote", "")
        ):
            self._rb_set("network", state=StepState.FAILED, reason="not started (declined or not possible)")
            return
        else:
            cancelled = "cancelled" in getattr(pane, "_rnote", "")
            self._rb_set(
                "network",
                state=StepState.CANCELLED if cancelled else StepState.DONE,
                findings=problems(self._rb_state(), ("network",)),
            )
            return
        self.set_timer(self.RUNBOOK_POLL, self._rb_watch_network)

    def _rb_reach(self) -> tuple[object, ...]:
        """The probe results on screen (a fast run can start and end between two polls)."""
        src = getattr(self, "source", None)  # the source's State: the screen's lags by a render
        st = getattr(src, "state", None) or self._rb_state()
        return tuple(id(h.reach) for h in st.hosts) if st is not None else ()

    # -- audit: the catalog check by check (a request: the session runs it in a thread)

    def action_runbook_audit(self) -> None:
        if self.runbook_steps["audit"].state == StepState.RUNNING:
            self.notify("The audit is already running (X cancels).")
            return
        self._rb_show_panel()
        self.action_focus_pane("findings")
        self.run_worker(self._rb_request("audit", Audit()), group="runbook-audit", name="audit configuration")

    # -- software updates: the package manager of every host, on demand (a request)

    def action_runbook_updates(self) -> None:
        if refuse(self, "looking up software updates (it runs the package manager)"):
            self._rb_set("updates", state=StepState.FAILED, reason="read-only session")
            return
        if self.runbook_steps["updates"].state == StepState.RUNNING:
            return
        self._rb_show_panel()
        self.run_worker(
            self._rb_request("updates", UpdatesLookup()), group="runbook-updates", name="software updates"
        )

    async def _rb_request(self, step_id: str, req: Request) -> None:
        """Run a step as a request to the session; its progress comes back in State.requests
        (shown by `_rb_progress`), its outcome from the handle."""
        step = self.runbook_steps[step_id]
        self._rb_set(step_id, state=StepState.RUNNING, done=0, total=0, findings=0, reason="")
        handle = self.request(req)
        self._runbook_requests[step_id] = handle.id
        st = await handle.result()
        self._runbook_requests.pop(step_id, None)
        if step_id == "audit":
            self.runbook_audit = st.findings  # what was found, also after a cancel
            found = sum(f.status in (Status.FAIL, Status.WARN, Status.ERROR) for f in st.findings)
        else:
            found = problems(self._rb_state(), step.areas)
        end = {
            RequestState.DONE: StepState.DONE,
            RequestState.CANCELLED: StepState.CANCELLED,
        }.get(st.state, StepState.FAILED)
        self._rb_set(step_id, state=end, done=st.done, total=st.total, findings=found, reason=st.message)

    def runbook_progress(self, state: State) -> None:
        """The running steps' progress, from the requests in `state` (the app calls this on
        every render)."""
        ids = getattr(self, "_runbook_requests", {})
        for step_id, rid in ids.items():
            st = next((r for r in state.requests if r.id == rid), None)
            if st is None or st.finished:
                continue
            kw: dict[str, Any] = {"done": st.done, "total": st.total}
            if step_id == "audit":
                kw["findings"] = sum(
                    f.status in (Status.FAIL, Status.WARN, Status.ERROR) for f in st.findings
                )
            if any(getattr(self.runbook_steps[step_id], k) != v for k, v in kw.items()):
                self._rb_set(step_id, **kw)

    # -- cancel whatever long step runs

    def action_runbook_cancel(self) -> None:
        cancelled = False
        for rid in list(self._runbook_requests.values()):
            cancelled = self.cancel_request(rid) or cancelled
        if self.runbook_steps["network"].state == StepState.RUNNING:
            self.pane("reachability").action_cancel_probe()
            cancelled = True
        if not cancelled:
            self.notify("No runbook step is running.")

    # -- the incident report (e): Markdown, JSON and an SVG screenshot (tui/report.py)

    def action_report(self) -> None:
        from tui.report import save_from_app

        try:
            paths = save_from_app(self)
        except OSError as e:
            self.notify(f"Cannot write the report: {e}", severity="error")
            return
        self.last_report = paths
        self.notify("Report saved: " + ", ".join(str(p) for p in paths), timeout=8)
