"""The finding detail with its actions: copy or save the fix, acknowledge, jump to the evidence.

Extends tui/screens/finding.py (which renders why, evidence and fix) with the keys an engineer
uses next: c copies the fix (OSC 52: works where the terminal allows it, tmux with
`set-clipboard on`, most SSH terminals), w always saves it to a file in the current directory,
a acknowledges the finding with a note (this session only; listed, never hidden), and t / l / m
jump to the tenant in the Tenants pane, the log lines in the Logs pane, or the cell of the
reachability matrix behind the finding.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from probes.model import Finding
from probes.report.model import Ack
from tui.safe import untrusted
from tui.screens.finding import FindingScreen, detail_text


def fix_file_name(f: Finding, now: float) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{f.check_id}-{f.host or 'host'}")
    return f"tenantscope-fix-{safe}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(now))}.txt"


def fix_text(f: Finding) -> str:
    """What the fix file holds: a header saying what it fixes, then the fix as given."""
    head = f"# {f.check_id} {f.title}\n# host {f.host or '-'} · tenants {', '.join(f.tenants) or '-'}\n# {f.summary}\n"
    return head + (f.fix or "(no fix given)") + "\n"


class AckNote(ModalScreen[str | None]):
    """Asks for the acknowledgement's note (Enter saves, Esc cancels)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="ack-cancel"),
    ]
    DEFAULT_CSS = """
    AckNote { align: center middle; }
    AckNote > Vertical { width: 70; height: auto; border: round $accent; padding: 1 2; background: $surface; }
    """

    def __init__(self, finding: Finding, note: str = "") -> None:
        super().__init__()
        self.finding = finding
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                Text("Acknowledge ")
                + untrusted(self.finding.check_id, style="bold")
                + Text(": a note for the session (Enter saves, Esc cancels)")
            )
            yield Input(
                value=self.note, placeholder="e.g. known, ticket INC-123, fixed at 14:05", id="ack-note"
            )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class FindingDetailScreen(FindingScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "copy_fix", "Copy fix", id="finding-copy-fix"),
        Binding("w", "save_fix", "Save fix", id="finding-save-fix"),
        Binding("a", "acknowledge", "Acknowledge", id="finding-ack"),
        Binding("t", "jump('tenants')", "Tenant", id="finding-jump-tenant"),
        Binding("l", "jump('logs')", "Log lines", id="finding-jump-logs"),
        Binding("m", "jump('reachability')", "Matrix cell", id="finding-jump-matrix"),
    ]

    def on_mount(self) -> None:
        self._redraw()

    def _redraw(self) -> None:
        text = detail_text(self.finding, self.app.theme_variables)
        ack = getattr(self.app, "acks", {}).get(self.finding.key)
        if ack is not None:
            text.append("\n\nAcknowledged\n", style="bold underline")
            text.append(time.strftime("%H:%M:%S ", time.localtime(ack.at)))
            text.append_text(untrusted(ack.note or "(no note)"))
        self.query_one("#finding-body", Static).update(text)
        box = self.query_one("#finding-detail")
        box.border_subtitle = "c copy fix · w save fix · a ack · t tenant · l logs · m matrix · Esc"

    # -- the fix

    def action_copy_fix(self) -> None:
        self.app.copy_to_clipboard(self.finding.fix or "")
        self.notify("Fix copied (OSC 52: if your terminal ignores it, w saves it to a file).")

    def action_save_fix(self) -> None:
        now = getattr(self.app, "_clock", time.time)()
        path = Path(os.getcwd()) / fix_file_name(self.finding, now)
        try:
            path.write_text(fix_text(self.finding), encoding="utf-8")
        except OSError as e:
            self.notify(f"Cannot write {path}: {e.strerror}", severity="error")
            return
        self.saved_to = path
        self.notify(f"Fix saved to {path}")

    # -- acknowledgement

    def action_acknowledge(self) -> None:
        old = getattr(self.app, "acks", {}).get(self.finding.key)
        self.app.push_screen(AckNote(self.finding, old.note if old else ""), self._acked)

    def _acked(self, note: str | None) -> None:
        if note is None:
            return
        acknowledge(self.app, self.finding, note)
        self._redraw()

    # -- jumps

    def action_jump(self, where: str) -> None:
        app = self.app
        f = self.finding
        self.dismiss(None)
        ok = jump(app, f, where)
        if not ok:
            app.notify(f"Nothing for this finding in the {where} pane.", severity="warning")


def acknowledge(app, f: Finding, note: str) -> Ack:  # type: ignore[no-untyped-def]
    now = getattr(app, "_clock", time.time)()
    ack = Ack(f.key, f.check_id, note, now)
    app.acks[f.key] = ack
    try:
        app.pane("findings").refresh_acks()
    except Exception:
        pass
    return ack


def jump(app, f: Finding, where: str) -> bool:  # type: ignore[no-untyped-def]
    """Show `where` (tenants, logs, reachability) focused on what is behind `f`."""
    app.action_focus_pane(where)
    pane = app.pane(where)
    if where == "logs":
        return pane.show_finding(f) > 0
    if where == "reachability":
        ts = list(f.tenants)
        pairs = [(a, b) for a in ts for b in ts if a != b] + [(a, "(host)") for a in ts]
        for a, b in pairs:
            if pane.select_cell(a, b, f.host or None):
                return True
        for key in list(getattr(pane, "_rcells", {})):  # one tenant: its row's first wrong cell
            h, s, d = key.split("|", 2)
            if s in ts and pane._rcells[key][1].status == "wrong" and pane.select_cell(s, d, h):
                return True
        return False
    if where == "tenants":
        from tui.panes.tenants import _walk

        tree = pane.tenant_tree
        wanted = [f"w:{k}" for k in f.workloads] + [f"t:{t}" for t in f.tenants]
        nodes = {n.data: n for n in _walk(tree.root)}
        for data in wanted:
            node = nodes.get(data)
            if node is not None:
                if node.parent is not None:
                    node.parent.expand()
                app.call_after_refresh(tree.move_cursor, node, animate=False)
                pane.jumped_to = data
                return True
        return False
    return False
