"""Every key of the app in one place, and the command palette built from them.

Bindings carry an `id` (stable, used by keymaps: `App.set_keymap({"help": "f1"})`) and a
description. The help screen and the palette read the bindings that are live on the app and
its panes (after any keymap), so what they list is what the keys do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from textual.app import App
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode

from tui.panes import pane_classes

# From the pane classes (their `position`): number keys, tabs and grid slots agree.
PANES = pane_classes()
PANE_ORDER = tuple(p.pane_id for p in PANES)
PANE_TITLES = {p.pane_id: p.title for p in PANES}

APP_BINDINGS: list[BindingType] = [
    *(
        Binding(
            str(p.position),
            f"focus_pane('{p.pane_id}')",
            f"{p.title} pane",
            id=f"focus-{p.pane_id}",
            show=False,
        )
        for p in PANES
    ),
    Binding("question_mark", "help", "Help", id="help", key_display="?"),
    Binding("exclamation_mark", "probe_errors", "Probe errors", id="probe-errors", key_display="!"),
    Binding("ctrl+p", "command_palette", "Commands", id="command-palette", priority=True, show=False),
    Binding("q", "quit", "Quit", id="quit"),
    Binding("h", "pick_host", "Next host / all", id="pick-host", show=False),
    Binding("H", "fleet", "Fleet view", id="fleet", key_display="H", show=False),
    Binding("C", "changes", "Changes since baseline", id="changes", key_display="C", show=False),
    # the diagnostic runbook (tui/runbook.py) and the incident report (tui/report.py)
    Binding("b", "runbook_toggle", "Runbook", id="runbook"),
    Binding("L", "runbook_logs", "Review logs", id="run-review-logs", key_display="L", show=False),
    Binding(
        "M", "runbook_resources", "Monitor resources", id="run-monitor-resources", key_display="M", show=False
    ),
    Binding(
        "I", "runbook_network", "Test network isolation", id="run-network-test", key_display="I", show=False
    ),
    Binding("A", "runbook_audit", "Audit configuration", id="run-audit", key_display="A", show=False),
    Binding("U", "runbook_updates", "Software updates", id="run-updates", key_display="U", show=False),
    Binding("X", "runbook_cancel", "Cancel step", id="run-cancel", key_display="X", show=False),
    Binding("e", "report", "Report", id="report"),
]


@dataclass(frozen=True)
class KeyEntry:
    """One key as the user sees it: where it works, the key, what it does, its id."""

    scope: str  # "Global" or a pane title
    key: str  # as displayed, after the keymap
    description: str
    id: str
    action: str
    node: DOMNode


def _live(node: DOMNode, keymap: dict[str, str]) -> list[Binding]:
    """The node's bindings with the user's keymap applied, as Textual applies it when
    dispatching keys (Screen._binding_chain: a copy of `_bindings` + `apply_keymap`)."""
    bindings = getattr(node, "_bindings", None)
    if bindings is None:
        return list(Binding.make_bindings(type(node).BINDINGS))
    bindings = bindings.copy()
    if keymap:
        bindings.apply_keymap(keymap)
    return [b for _key, b in bindings]


def key_entries(app: App[Any]) -> Iterator[KeyEntry]:
    """The app's own keys, then each pane's, in pane order. Keys bound to one action are
    shown together ("q, ctrl+q")."""
    from tui.panes.base import Pane
    from tui.readonly import hidden

    def entries(node: DOMNode, scope: str, *, only_ids: bool) -> Iterator[KeyEntry]:
        seen: dict[tuple[str, str], list[str]] = {}
        meta: dict[tuple[str, str], Binding] = {}
        for b in _live(node, getattr(app, "_keymap", {})):
            if b.system or (only_ids and not b.id) or hidden(app, b.action):
                continue  # hidden: read-only sessions list no changing action
            k = (b.action, b.description)
            keys = seen.setdefault(k, [])
            if b.id and not (k in meta and meta[k].id):  # the user's (remappable) key first
                meta[k] = b
                keys.insert(0, app.get_key_display(b))
            else:
                meta.setdefault(k, b)
                keys.append(app.get_key_display(b))
        for k, keys in seen.items():
            b = meta[k]
            yield KeyEntry(
                scope, ", ".join(dict.fromkeys(keys)), b.description or b.action, b.id or "", b.action, node
            )

    order = [b.id for b in APP_BINDINGS if isinstance(b, Binding)]
    yield from sorted(
        entries(app, "Global", only_ids=False),
        key=lambda e: order.index(e.id) if e.id in order else len(order),
    )
    panes: dict[str, Pane] = {p.pane_id: p for p in app.query(Pane)}
    for pid in PANE_ORDER:
        if pid in panes:
            yield from entries(panes[pid], panes[pid].title, only_ids=False)


class BindingCommands(Provider):
    """Every bound action, by description, in the command palette."""

    def _commands(self) -> list[tuple[str, str, Callable[[], None]]]:
        out: list[tuple[str, str, Callable[[], None]]] = []
        for e in key_entries(self.app):
            if e.action in ("command_palette",):
                continue
            title = e.description if e.scope == "Global" else f"{e.scope}: {e.description}"
            out.append(
                (
                    title,
                    f"key {e.key}" + (f" · id {e.id}" if e.id else ""),
                    partial(_run, self.app, e.node, e.action),
                )
            )
        return out

    async def discover(self) -> Hits:
        for title, help_, cb in self._commands():
            yield DiscoveryHit(title, cb, text=title, help=help_)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_, cb in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), cb, text=title, help=help_)


def _run(app: App[Any], node: DOMNode, action: str) -> None:
    """Run a pane's action with that pane focused, so it acts on what the user sees."""
    from tui.app import TenantScopeApp
    from tui.panes.base import Pane

    if isinstance(node, Pane) and isinstance(app, TenantScopeApp):
        app.action_focus_pane(node.pane_id)
    app.call_after_refresh(app.run_action, action, node)
