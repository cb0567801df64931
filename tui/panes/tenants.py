"""Tenants pane: who runs what, where. A tree tenant > workload, plus an "unplaced" group.

Each workload line says its kind, state, host and the rule that placed it in its tenant, so
a surprising placement can be traced to the config selector, the Nova metadata or the name
prefix that caused it. Refreshes keep the cursor, the collapsed groups and the scroll
position: when only labels changed they are updated in place; when workloads come or go the
tree is rebuilt and the view restored.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

from rich.cells import cell_len
from rich.text import Span, Text, TextType
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from probes.model import Placement, State, Workload
from probes.netns_fold import namespace_name
from probes.untrusted import visible
from tui.messages import WorkloadSelected
from tui.panes.base import Pane
from tui.safe import untrusted

UNPLACED = "u:"  # node data of the unplaced group; tenants are "t:NAME", workloads "w:KEY"


@dataclass(frozen=True)
class _Row:
    data: str
    label: Text
    children: tuple[_Row, ...] = ()  # a network namespace's containers (two or more)


@dataclass(frozen=True)
class _Group:
    data: str
    label: Text
    rows: tuple[_Row, ...]


Parts = list[tuple[str, str]]  # (text already made safe, style)


def _assemble(parts: Parts) -> Text:
    """One Text from pieces, one span per styled piece: what `Text.assemble` gives, built at
    once (it appends piece by piece: most of the pane's first draw at 1,000 workloads)."""
    spans = []
    texts = []
    pos = 0
    for text, style in parts:
        n = len(text)
        if style and n:
            spans.append(Span(pos, pos + n, style))
        texts.append(text)
        pos += n
    return Text("".join(texts), spans=spans, end="")


def _placement_parts(w: Workload) -> Parts:
    if w.placed_by == Placement.UNPLACED or not w.tenant:
        if w.placed_rule:  # e.g. a generated name the prefix rule does not read
            return [("unplaced: ", "italic"), (visible(w.placed_rule), "")]
        return [("no rule matched", "italic")]
    out = [(f"{w.placed_by.value}", "")]
    if w.placed_rule:
        out += [(": ", ""), (visible(w.placed_rule), "")]
    return out


def _kind_detail(w: Workload) -> str:
    """What kind of VM or container, where that is known: "xen pv", "docker tsbusy:1"."""
    if w.vm is not None and w.vm.xen_guest:
        return f"xen {w.vm.xen_guest}"
    if w.container is not None and w.container.image:
        return f"{w.container.runtime or 'container'} {w.container.image}"
    return ""


def workload_label(w: Workload) -> Text:
    """Name, kind, namespace, state, host and the rule that placed it; every host-given piece
    made safe by `visible` (the one sanitizing function, as `untrusted` does)."""
    ns = namespace_name(w)
    detail = _kind_detail(w)
    parts: Parts = [(visible(w.name), "bold"), ("  ", ""), (w.kind.value, "italic")]
    if detail:
        parts += [(" (", ""), (visible(detail), ""), (")", "")]
    if ns:
        parts += [(" in netns ", ""), (visible(ns), "")]
    parts += [(" · ", ""), (visible(w.state or "?"), ""), (" · ", ""), (visible(w.host), ""), (" · ", "")]
    return _assemble(parts + _placement_parts(w))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


LabelCache = dict[tuple[object, ...], Text]


def _label_key(w: Workload) -> tuple[object, ...]:
    return (w.key, w.name, w.kind, w.host, w.state, w.tenant, w.placed_by, w.placed_rule, _kind_detail(w))


def build_groups(state: State, cache: LabelCache | None = None) -> tuple[_Group, ...]:
    """The tree's content as plain data: one group per tenant (sorted), then unplaced.

    `cache` maps a workload's shown fields to its label from the previous call, so that on a
    large fleet a refresh builds labels only for the workloads that changed; it is replaced
    in place by this call's labels (old entries dropped)."""
    old = dict(cache) if cache is not None else {}
    if cache is not None:
        cache.clear()

    def row_label(w: Workload) -> Text:
        k = _label_key(w)
        text = old.get(k)
        if text is None:
            text = workload_label(w)
        if cache is not None:
            cache[k] = text
        return text

    by_tenant: dict[str, list[Workload]] = {t.name: [] for t in state.tenants}
    unplaced: list[Workload] = []
    for w in state.workloads():
        if w.tenant:
            by_tenant.setdefault(w.tenant, []).append(w)
        else:
            unplaced.append(w)

    def rows(ws: Sequence[Workload]) -> tuple[_Row, ...]:
        order = sorted(ws, key=lambda w: (w.host, w.kind.value, w.name))
        # containers sharing one named namespace: listed under it (one row per container)
        shared: dict[tuple[str, str], list[Workload]] = {}
        for w in order:
            ns = namespace_name(w)
            if ns:
                shared.setdefault((w.host, ns), []).append(w)
        out: list[_Row] = []
        done: set[tuple[str, str]] = set()
        for w in order:
            k = (w.host, namespace_name(w))
            if k[1] and len(shared[k]) > 1:
                if k not in done:
                    done.add(k)
                    kids = tuple(_Row(f"w:{c.key}", row_label(c)) for c in shared[k])
                    label = Text.assemble(
                        ("netns ", "italic"),
                        untrusted(k[1], style="bold"),
                        (f"  {len(kids)} containers · ", "dim"),
                        untrusted(k[0], style="dim"),
                    )
                    out.append(_Row(f"n:{k[0]}/{k[1]}", label, kids))
                continue
            out.append(_Row(f"w:{w.key}", row_label(w)))
        return tuple(out)

    groups = []
    for name in sorted(by_tenant):
        ws = by_tenant[name]
        hosts = {w.host for w in ws}
        label = Text.assemble(
            untrusted(name, style="bold"),
            "  ",
            (f"{_plural(len(ws), 'workload')} · {_plural(len(hosts), 'host')}", "dim"),
        )
        groups.append(_Group(f"t:{name}", label, rows(ws)))
    label = Text.assemble(
        ("⊘ unplaced", "bold italic"),
        "  ",
        (
            f"{_plural(len(unplaced), 'workload')} no rule matched"
            if unplaced
            else "none: every workload has a tenant"
            if any(by_tenant.values())
            else "none: no workload observed",  # (not "every workload has a tenant": none is)
            "dim",
        ),
    )
    groups.append(_Group(UNPLACED, label, rows(unplaced)))
    return tuple(groups)


def _projection(state: State) -> tuple[object, ...]:
    """What this pane shows, cheap to compare: skip all work when it is unchanged."""
    return (tuple(t.name for t in state.tenants), tuple(_label_key(w) for w in state.workloads()))


class TenantTree(Tree[str]):
    """The tree itself; its node data identify groups and workloads across refreshes.

    A fleet's first draw adds a node per workload (1,000 domains: 1,051 nodes): the two
    methods below are Textual's documented points to do that more cheaply, with the same
    result. Each copy of a label costs a pass over its text (rich strips control codes from
    every Text it makes), and the labels here are single lines, made safe, never changed once
    made (a change makes a new label)."""

    def process_label(self, label: TextType) -> Text:
        """A one-line Text as it is (Tree's own copies it: the first of its lines)."""
        if isinstance(label, Text) and "\n" not in label.plain:
            return label
        return super().process_label(label)

    def get_label_width(self, node: TreeNode[str]) -> int:
        """The width `render_label` gives (the expand icon and the label), without rendering
        a copy of every label to measure it."""
        if node.allow_expand:
            icon = self.ICON_NODE_EXPANDED if node.is_expanded else self.ICON_NODE
            return cell_len(icon) + node.label.cell_len
        return node.label.cell_len

    _batching = False  # adding many nodes: invalidated once at the end (see batch)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Add many nodes, invalidating the tree's caches and layout once at the end instead of
        after every node (Tree does it per add: a refresh and a reset of every node's state)."""
        self._batching = True
        try:
            yield
        finally:
            self._batching = False
            self._invalidate()

    def _invalidate(self) -> None:
        if not self._batching:
            super()._invalidate()


class TenantsPane(Pane):
    pane_id: ClassVar[str] = "tenants"
    title: ClassVar[str] = "Tenants"
    position: ClassVar[int] = 1
    reads: ClassVar[frozenset[str] | None] = frozenset({"tenants", "host.workloads"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("plus", "expand_all", "Expand all", id="tenants-expand-all"),
        Binding("minus", "collapse_all", "Collapse all", id="tenants-collapse-all"),
        Binding("enter", "open_workload", "Details", id="tenants-details"),
    ]

    def __init__(self, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kw)
        self._seen: tuple[object, ...] | None = None
        self._groups: tuple[_Group, ...] = ()
        self._collapsed: set[str] = set()
        self._labels: LabelCache = {}
        self._state: State | None = None

    def compose(self) -> ComposeResult:
        tree = TenantTree(Text("tenants"), id="tenant-tree")
        tree.show_root = False
        tree.guide_depth = 2
        yield tree

    @property
    def tenant_tree(self) -> TenantTree:
        return self.query_one(TenantTree)

    # -- rendering

    def show(self, state: State) -> None:
        self._state = state
        seen = _projection(state)
        if seen == self._seen:
            return
        self._seen = seen
        groups = build_groups(state, self._labels)
        self.border_subtitle = (
            f"{_plural(len(groups) - 1, 'tenant')} · {_plural(len(state.workloads()), 'workload')}"
        )
        if _shape(groups) == _shape(self._groups):
            self._relabel(groups)
        else:
            self._rebuild(groups)
        self._groups = groups

    def _relabel(self, groups: tuple[_Group, ...]) -> None:
        nodes = {n.data: n for n in _walk(self.tenant_tree.root)}
        old = {g.data: g for g in self._groups}
        for g in groups:
            if old[g.data].label != g.label:
                nodes[g.data].set_label(g.label)
            for r_old, r in zip(_flat(old[g.data].rows), _flat(g.rows)):
                if r_old.label is not r.label and r_old.label != r.label:
                    nodes[r.data].set_label(r.label)

    def _rebuild(self, groups: tuple[_Group, ...]) -> None:
        tree = self.tenant_tree
        cursor = tree.cursor_node.data if tree.cursor_node is not None else None
        cursor_parent = (
            tree.cursor_node.parent.data
            if tree.cursor_node is not None and tree.cursor_node.parent is not None
            else None
        )
        scroll_y = tree.scroll_y
        if self._groups:  # remember what the user collapsed; new groups start expanded
            for n in tree.root.children:
                if n.data is not None:
                    (self._collapsed.discard if n.is_expanded else self._collapsed.add)(n.data)
        tree.clear()
        by_data: dict[str, TreeNode[str]] = {}
        with tree.batch():
            for g in groups:
                node = tree.root.add(g.label, data=g.data, expand=g.data not in self._collapsed)
                by_data[g.data] = node
                for r in g.rows:
                    if r.children:
                        sub = by_data[r.data] = node.add(r.label, data=r.data, expand=True)
                        for c in r.children:
                            by_data[c.data] = sub.add_leaf(c.label, data=c.data)
                    else:
                        by_data[r.data] = node.add_leaf(r.label, data=r.data)
        target = by_data.get(cursor or "") or by_data.get(cursor_parent or "")
        if target is None and groups:
            target = tree.root.children[0]  # start on the first tenant, not nowhere

        def restore() -> None:  # node lines exist only once the tree has laid them out
            tree.scroll_to(y=scroll_y, animate=False, immediate=True)
            if target is not None:
                tree.move_cursor(target, animate=False)

        self.call_after_refresh(restore)

    # -- actions

    def selected_workload(self) -> Workload | None:
        node = self.tenant_tree.cursor_node
        if node is None or self._state is None or not (node.data or "").startswith("w:"):
            return None
        return self._state.workload(node.data[2:])

    def on_tree_node_selected(self, event: Tree.NodeSelected[str]) -> None:
        if (event.node.data or "").startswith("w:"):
            event.stop()
            self.action_open_workload()

    def action_open_workload(self) -> None:
        w = self.selected_workload()
        if w is not None:
            self.post_message(WorkloadSelected(w))

    def action_expand_all(self) -> None:
        self._collapsed.clear()
        for n in self.tenant_tree.root.children:
            n.expand()

    def action_collapse_all(self) -> None:
        for n in self.tenant_tree.root.children:
            n.collapse()
            if n.data is not None:
                self._collapsed.add(n.data)


def _shape(groups: tuple[_Group, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((g.data, tuple(r.data for r in _flat(g.rows))) for g in groups)


def _flat(rows: tuple[_Row, ...]) -> list[_Row]:
    """Rows and, after each, its children (a namespace's containers)."""
    return [x for r in rows for x in (r, *r.children)]


def _walk(node: TreeNode[str]):  # type: ignore[no-untyped-def]
    for child in node.children:
        yield child
        yield from _walk(child)
