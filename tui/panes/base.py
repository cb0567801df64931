"""The contract every pane keeps with the app.

A pane is a focusable widget with a title and a `show(state)` method. The app calls `show`
on every coalesced State change (at most a few times a second), so a pane must return at
once when the part of the State it renders did not change, and must never block or call a
host itself: it renders what the probes already observed. Whatever a pane needs beyond
rendering (active probes, a poll interval) it asks for with `request` (a typed request of
probes/requests.py, run by the session); the outcome comes back in the State.

Panes declare their keys in `BINDINGS` as `Binding(key, action, description, id=...)`;
the help screen, the footer and the command palette are generated from them, and the ids
let users remap keys (Textual's keymap). Actions are methods `action_*` of the pane.
"""

from __future__ import annotations

import time
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widget import Widget

from probes.model import RequestState, State
from probes.requests import Request, RequestHandle, answered


class Pane(Vertical, can_focus=True):
    """Base for the main screen's panes. Subclasses set `pane_id`, `title`, `position` and
    `BINDINGS` (tui/panes/__init__.py finds them).

    `pane_id` is the stable name used by the app (focus keys, tabs, CSS ids): tenants,
    resources, reachability, logs, findings. `position` is the pane's number key, its tab and
    its slot in the grid (row by row, two a row; 0: not a main-screen pane).
    """

    pane_id: ClassVar[str] = "pane"
    title: ClassVar[str] = "Pane"
    position: ClassVar[int] = 0
    BINDINGS: ClassVar[list[BindingType]] = []
    # What of the State the pane draws: State fields ("findings", "tenants", ...) and HostState
    # fields as "host.NAME". The app calls `show` only when one of them is a new object (the
    # engine keeps what did not change as the same objects), or when the hosts, the host
    # filter or the theme changed; most States only move refresh times or figures, and a
    # pane that does not draw them then costs nothing. None: every State (the default).
    reads: ClassVar[frozenset[str] | None] = None

    DEFAULT_CSS = """
    Pane {
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        height: 1fr;
        width: 1fr;
    }
    Pane:focus-within, Pane:focus {
        border: round $accent;
        border-title-color: $text;
        border-title-style: bold;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id or f"pane-{self.pane_id}", classes=classes)

    def on_mount(self) -> None:
        self.border_title = self.title
        # A pane with a focusable child (a Tree, a DataTable) lets the child take focus;
        # the pane itself stays out of the focus chain so Tab does not stop twice.
        self.can_focus = self.focus_target() is self

    def show(self, state: State) -> None:
        """Render `state`. Called on coalesced changes (those touching `reads`): return at
        once if nothing this pane shows has changed."""

    def request(self, req: Request) -> RequestHandle:
        """Hand `req` to the app's source (the request path); an app without one (a pane
        shown alone) answers it as unavailable."""
        ask = getattr(self.app, "request", None)
        if ask is None:
            return answered(req, 0, RequestState.UNAVAILABLE, "no source to ask", time.time())
        handle: RequestHandle = ask(req)
        return handle

    def cancel_request(self, rid: int) -> bool:
        cancel = getattr(self.app, "cancel_request", None)
        return bool(cancel(rid)) if cancel is not None else False

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Read-only sessions: actions that change something are removed (tui/readonly.py);
        the action methods refuse them too."""
        from tui.readonly import hidden

        return not hidden(self.app, action)

    def focus_target(self) -> Widget:
        """The widget that takes focus when the user selects this pane (number keys)."""
        for child in self.query("*"):
            if child.can_focus and not child.disabled:
                return child
        return self

    @classmethod
    def pane_bindings(cls) -> list[Binding]:
        """The pane's own bindings as Binding objects (for help and the palette)."""
        return [b for b in cls.BINDINGS if isinstance(b, Binding)]
