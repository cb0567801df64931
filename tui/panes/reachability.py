"""Reachability pane: can tenant A reach tenant B? Expected against observed, per pair.

A Cyclonus-style matrix, one row per source tenant and one column per destination tenant
(plus the host's own addresses). Each cell shows two symbols, expected (policy) then actual
(observed by the last probe run, or predicted from the topology when not probed), and a
marker when they disagree: status never depends on colour. The summary line counts wrong,
ignored (nothing to predict or observe) and correct cells. Selecting a cell shows the workload
pairs behind it, the path from the topology, and every probe result with method and RTT.

Active probes are a user action (key p, after a confirmation that says what will be sent);
they run in a worker with a progress bar and can be cancelled (key x).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.coordinate import Coordinate
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, ProgressBar, Static

from probes.hosts.libvirt_uri import is_simulated
from probes.model import HostKind, HostState, State
from probes.network.plan import plan
from probes.network.predict import Cell, Matrix, contradictions, matrix
from probes.requests import ActiveProbe, RequestState
from probes.untrusted import visible
from tui.panes.base import Pane
from tui.readonly import is_read_only
from tui.safe import untrusted
from tui.status import theme_style


def _simulated(h: HostState) -> bool:
    return h.host.kind == HostKind.LIBVIRT and is_simulated(h.host.libvirt_uri)


YES, NO, UNKNOWN = "✓", "✗", "?"
LEGEND = (
    "cell: expected then actual  ✓ reach  ✗ blocked  ~ predicted (not probed)  ? unknown  ‼ wrong"
    "  ⇅ exposed by a trunk port\nfilters: ƒ✗ blocked by a filter  ƒ✓ through a filter  ƒ? undecided"
)
FILTER_MARK = {"blocked-by-filter": " ƒ✗", "reach-through-filter": " ƒ✓", "filter-undecided": " ƒ?"}


def _sym(v: bool | None) -> str:
    return UNKNOWN if v is None else YES if v else NO


def cell_label(c: Cell) -> str:
    actual = _sym(c.actual)
    if c.observed is None and c.predicted is not None:
        actual = "~" + actual
    mark = " ‼" if c.status == "wrong" else ""
    filt = FILTER_MARK.get(c.filter_state, "")
    return f"{_sym(c.expected)} {actual}{mark}{' ⇅' if c.exposed else ''}{filt}"


class ConfirmProbe(ModalScreen[bool | str]):
    """Says exactly what will be sent (and added to the host) before anything is. `y` sends
    from the namespaces and the VMs' segments; `g` also from inside the guests it names (opt-in
    per run); `n` cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Send", id="reachability-confirm-yes"),
        Binding("g", "answer('guest')", "Send, and from guests", id="reachability-confirm-guests"),
        Binding("n,escape", "answer(False)", "Cancel", id="reachability-confirm-no"),
    ]
    DEFAULT_CSS = """
    ConfirmProbe { align: center middle; }
    ConfirmProbe > Vertical { width: 80; height: auto; border: round $accent; padding: 1 2; background: $surface; }
    ConfirmProbe Horizontal { height: auto; margin-top: 1; }
    """

    def __init__(self, text: str, guests: bool = False) -> None:
        super().__init__()
        self.text = text
        self.guests = guests

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.text))
            with Horizontal():
                yield Button("Send probes (y)", id="yes", variant="warning")
                if self.guests:
                    yield Button("Also from guests (g)", id="guest", variant="warning")
                yield Button("Cancel (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss("guest" if event.button.id == "guest" else event.button.id == "yes")

    def action_answer(self, yes: bool | str) -> None:
        if yes == "guest" and not self.guests:
            return
        self.dismiss(yes)


class ProgressWithoutEta(ProgressBar):
    """A ProgressBar without Textual's 1 s timer, which only recomputes the ETA (not shown
    here): the bar sits hidden in the pane all day, and the timer woke the console every
    second for nothing. The bar itself moves with `update` as before."""

    def _on_mount(self, event: events.Mount) -> None:
        event.prevent_default()  # not ProgressBar's on_mount: update(), the 1 s timer, a clock reset
        super()._on_mount(event)  # (Widget's)
        self.update()


class ReachabilityPane(Pane):
    pane_id: ClassVar[str] = "reachability"
    title: ClassVar[str] = "Reachability"
    position: ClassVar[int] = 3
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "probe", "Probe now", id="reachability-probe"),
        Binding("x", "cancel_probe", "Cancel probes", id="reachability-cancel"),
    ]
    DEFAULT_CSS = """
    ReachabilityPane #reach-summary { height: auto; }
    ReachabilityPane #reach-progress { height: 1; display: none; }
    ReachabilityPane.-probing #reach-progress { display: block; }
    ReachabilityPane #reach-matrix { height: auto; max-height: 60%; }
    ReachabilityPane #reach-detail-box { height: 1fr; border-top: solid $panel-lighten-1; }
    """

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._rkey: tuple[object, ...] | None = None
        self._rshown: tuple[object, ...] | None = None  # what the table shows (show() skips equal)
        self._rmatrices: list[tuple[HostState, Matrix]] = []
        self._rcells: dict[str, tuple[HostState, Cell]] = {}
        self._rstate: State | None = None
        self._rnote = ""
        self._rdetail: object = None  # the detail Static's content
        self._rid: int | None = None  # the active-probe request this pane started

    def compose(self) -> ComposeResult:
        yield Static(Text("no topology observed yet"), id="reach-summary")
        # a total: an indeterminate bar animates 15 times a second even while hidden (idle CPU)
        yield ProgressWithoutEta(id="reach-progress", show_eta=False, total=1)
        yield DataTable(id="reach-matrix", cursor_type="cell", zebra_stripes=False)
        with VerticalScroll(id="reach-detail-box"):
            yield Static(Text(LEGEND, style="dim"), id="reach-detail")

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#reach-matrix", DataTable)

    # -- rendering

    def show(self, state: State) -> None:
        self._rstate = state
        self._show_progress(state)
        key = tuple((h.host.name, h.topology, h.workloads, h.reach) for h in state.hosts)
        if key == self._rkey:
            return
        self._rkey = key
        self._rmatrices = [(h, matrix(h)) for h in state.hosts if h.topology is not None]
        # Workloads and topology change on most polls while what the pane shows (matrices,
        # probe results, problems) does not: then keep the table (a refill is a layout pass)
        # and only point the cells at the new host states.
        shown = (
            self._rnote,
            tuple(
                (h.host.name, m, h.reach, h.topology.problems if h.topology else ())
                for h, m in self._rmatrices
            ),
        )
        if shown == self._rshown and self._rcells:
            hosts = {h.host.name: h for h, _ in self._rmatrices}
            self._rcells = {k: (hosts.get(hs.host.name, hs), c) for k, (hs, c) in self._rcells.items()}
            self._show_detail()
            return
        self._rshown = shown
        self._refill()

    def _refill(self) -> None:
        table = self.table
        cursor = table.cursor_coordinate
        table.clear(columns=True)
        self._rcells = {}
        if not self._rmatrices:
            self.query_one("#reach-summary", Static).update(Text("no topology observed yet" + self._rnote))
            return
        variables = self.app.theme_variables
        multi = len(self._rmatrices) > 1
        dsts: list[str] = []
        for _, m in self._rmatrices:
            dsts += [d for d in m.destinations if d not in dsts]
        table.add_column(Text("from \\ to"), key="src")
        for d in dsts:
            table.add_column(untrusted(d), key=f"d:{d}")
        parts = []
        for hs, m in self._rmatrices:
            w, i, c = m.counts()
            view = (
                " (libvirt's view: predicted from domain XML and libvirt networks)"
                if hs.host.kind == "libvirt"
                else ""
            )
            parts.append((f"{visible(hs.host.name)}: " if multi else "") + m.summary() + view)
            for s in m.sources:
                row = [untrusted(f"{hs.host.name}: {s}" if multi else s)]
                for d in dsts:
                    cell = m.cell(s, d)
                    if cell is None:
                        row.append(Text(""))
                        continue
                    self._rcells[f"{hs.host.name}|{s}|{d}"] = (hs, cell)
                    style = (
                        (theme_style(variables, "status-fail", bold=True) + _reverse())
                        if cell.status == "wrong"
                        else theme_style(variables, "status-skip")
                        if cell.status == "ignored"
                        else ""
                    )
                    row.append(Text(cell_label(cell), style=style))
                table.add_row(*row, key=f"{hs.host.name}|{s}")
        probed = [h.reach for h, _ in self._rmatrices if h.reach]
        when = ""
        if probed:
            r = probed[0]
            from datetime import datetime

            at = datetime.fromtimestamp(r.finished_at, tz=getattr(self.app, "_tz", None))
            when = (
                f" · probed {at:%H:%M:%S}"
                f" ({r.finished_at - r.started_at:.2f} s, {len(r.results)} results"
                + (", cancelled" if r.cancelled else "")
                + ")"
            )
        else:
            # (read-only, e.g. a replay: `p` is disabled, so no "p to probe")
            when = (
                " · not probed (read-only session)"
                if is_read_only(self)
                else " · not probed yet (p to probe)"
            )
        problems = [p for h, _ in self._rmatrices for p in (h.topology.problems if h.topology else ())]
        problems += [e for h, _ in self._rmatrices if h.reach for e in h.reach.errors]
        summary = Text("; ".join(parts) + when + self._rnote)
        for p in problems[:3]:
            summary.append("\n! ")
            summary.append_text(untrusted(p))
        self.query_one("#reach-summary", Static).update(summary)
        if table.row_count:
            table.cursor_coordinate = Coordinate(
                min(cursor.row, table.row_count - 1), min(max(cursor.column, 1), len(table.columns) - 1)
            )
            self._show_detail()

    def select_cell(self, src: str, dst: str, host: str | None = None) -> bool:
        """Put the cursor on the cell src -> dst (the finding detail's jump key); False when
        the matrix has no such cell."""
        for key in self._rcells:
            h, s, d = key.split("|", 2)
            if s == src and d == dst and (host is None or h == host):
                table = self.table
                row = table.get_row_index(f"{h}|{s}")
                col = table.get_column_index(f"d:{d}")
                table.cursor_coordinate = Coordinate(row, col)
                self._show_detail()
                return True
        return False

    def on_data_table_cell_highlighted(self, event: DataTable.CellHighlighted) -> None:
        self._show_detail()

    def _selected(self) -> tuple[HostState, Cell] | None:
        table = self.table
        if not table.row_count:
            return None
        coord = table.cursor_coordinate
        row_key, col_key = table.coordinate_to_cell_key(coord)
        if not str(col_key.value).startswith("d:"):
            return None
        return self._rcells.get(f"{row_key.value}|{str(col_key.value)[2:]}")

    def _show_detail(self) -> None:
        sel = self._selected()
        detail = self.query_one("#reach-detail", Static)
        text = Text(LEGEND, style="dim") if sel is None else describe(*sel, read_only=is_read_only(self))
        if text == self._rdetail:  # unchanged: no layout pass
            return
        self._rdetail = text
        detail.update(text)

    # -- active probes

    def action_probe(self) -> None:
        from tui.readonly import refuse

        if refuse(self, "sending active network probes"):
            return
        state = self._rstate
        if state is None or not self._rmatrices:
            self.notify("No topology yet: nothing to probe.", severity="warning")
            return
        if self._probing_now():
            self.notify("Probes are already running (x cancels).")
            return
        if state.source == "demo" or all(_simulated(h) for h, _ in self._rmatrices):
            # the test driver's domains have no interfaces to send from or guests to ask: the
            # confirmation offered "0 ICMP echo requests", then "probed" while nothing changed
            self.notify(
                "Nothing to probe: a simulated hypervisor (libvirt test driver) has no namespaces "
                "or guests to send from; the cells stay predicted (~).",
                severity="warning",
            )
            return
        if os.geteuid() != 0 and any(self._is_local(h.host.name) for h, _ in self._rmatrices):
            self.notify("Active probes need root (raw sockets inside namespaces).", severity="error")
            return
        text, guests = self._what_will_be_sent()
        self.app.push_screen(ConfirmProbe(text, guests=bool(guests)), self._confirmed)

    def _what_will_be_sent(self) -> tuple[str, list[str]]:
        """The confirmation's text (every probe port it will add, by name and bridge) and the
        guests `g` would run commands in."""
        from probes.network.guestprobe import guests
        from probes.network.probeport import describe as describe_ports
        from probes.network.probeport import plan_ports

        n_src = n_addr = n_pairs = 0
        untestable = 0
        ports_text: list[str] = []
        guest_names: list[str] = []
        skipped: list[str] = []
        for h, _ in self._rmatrices:
            if self._is_local(h.host.name):
                plans, skip = plan_ports(h)
                ports_text += describe_ports(plans)
                skipped += [f"{_short(x.vm)}: {x.why}" for x in skip]
            guest_names += [_short(k) for k in guests(h)]
            sources, dests, rest = plan(h)
            n_src += len(sources)
            n_addr += sum(len(d.addresses) for d in dests)
            n_pairs += sum(
                len(d.addresses) for s in sources for d in dests if d.workload != s.endpoint.workload
            )
            untestable += len({r.src for r in rest})
        ports = self._ports()
        lines = [
            f"Send from inside {n_src} tenant network namespace(s) to {n_addr} address(es):",
            f"  • {n_pairs} ICMP echo request(s), one per pair, timeout {self._timeout():g} s",
        ]
        if ports:
            lines.append(
                f"  • {n_pairs * len(ports)} TCP connect(s) to port(s) {', '.join(map(str, ports))} (closed at once)"
            )
        lines += [
            "  • for pairs that answer through a router: a few TTL-limited echoes (traceroute)",
            "Nothing else is sent, and no setting in any tenant's namespace is changed.",
            "Over SSH: the same probes, run by one python3 helper per host (`ip netns exec NS ping` where the host has no python3).",
        ]
        if ports_text:
            lines.append("From each VM's segment, without touching the guest (this ADDS to the host):")
            lines += [f"  • {x}" for x in ports_text]
        if skipped:
            lines.append(f"No probe port for {len(skipped)} VM(s): " + "; ".join(skipped[:4]))
        if guest_names:
            lines.append(
                f"g: also run ping / nc inside {len(guest_names)} guest(s) through their guest agent "
                f"(a read-write libvirt connection for this run): {', '.join(guest_names[:8])}"
                + (" …" if len(guest_names) > 8 else "")
            )
        if untestable and not ports_text and not guest_names:
            lines.append(
                f"{untestable} workload(s) (VMs) cannot be entered: their cells stay predicted only."
            )
        return "\n".join(lines), guest_names

    def _confirmed(self, yes: bool | str | None) -> None:
        from tui.readonly import refuse

        if yes and not refuse(self, "sending active network probes"):
            sources = ("namespace", "segment") + (("guest",) if yes == "guest" else ())
            self.run_worker(
                self._probe(sources), exclusive=True, group="reach-probe", name="reachability probes"
            )

    def action_cancel_probe(self) -> None:
        if self._probing_now() and self._rid is not None:
            self.cancel_request(self._rid)
            self._rnote = " · probe run cancelled"
            self.remove_class("-probing")
            self._refill()

    def _probing_now(self) -> bool:
        return any(w.group == "reach-probe" and w.is_running for w in self.workers)

    def _is_local(self, host: str) -> bool:
        hs = next((h for h, _ in self._rmatrices if h.host.name == host), None)
        return hs is None or hs.host.kind == HostKind.LOCAL

    def _config(self) -> Any:
        try:
            from probes.tenancy import config_for

            return config_for(getattr(self.app, "opts", None))
        except Exception:
            return None

    def _ports(self) -> tuple[int, ...]:
        from probes.network.policy import network_options

        try:
            return network_options(self._config())[0]
        except ValueError:
            return ()

    def _timeout(self) -> float:
        from probes.network.policy import network_options

        try:
            return network_options(self._config())[1]
        except ValueError:
            return 0.5

    def _show_progress(self, state: State) -> None:
        """The progress of this pane's probe run, from State.requests."""
        st = next((r for r in state.requests if r.id == self._rid and r.kind == "active-probe"), None)
        if st is not None and st.state == RequestState.RUNNING and st.total:
            self.query_one("#reach-progress", ProgressBar).update(total=st.total, progress=st.done)

    async def _probe(self, sources: tuple[str, ...] = ("namespace",)) -> None:
        """Ask the session for a probe run (probes/requests.py) and wait for its outcome; the
        results arrive in the State (HostState.reach), the progress in State.requests."""
        bar = self.query_one("#reach-progress", ProgressBar)
        bar.update(total=None, progress=0)
        self.add_class("-probing")
        self._rnote = " · probing…"
        self._refill()
        handle = self.request(ActiveProbe(sources=sources))
        self._rid = handle.id
        try:
            st = await handle.result()
            if st.state == RequestState.DONE:
                self._rnote = ""
            elif st.state == RequestState.CANCELLED:
                self._rnote = " · probe run cancelled"
            else:
                self._rnote = f" · probes {st.state.value}: {st.message}"
                self.notify(f"Probes {st.state.value}: {st.message}", severity="warning")
        finally:
            self.remove_class("-probing")
            if bar.total is None:  # never started: stop the indeterminate animation
                bar.update(total=1, progress=0)
            if self._rnote == " · probing…":
                self._rnote = " · probe run cancelled"
            self._rkey = None
            if self._rstate is not None:
                self.show(self._rstate)


def _reverse() -> Style:
    return Style(reverse=True)


def describe(hs: HostState, c: Cell, *, read_only: bool = False) -> Text:
    """The detail of one cell: verdict, pairs and paths, probe results."""
    t = Text()
    t.append_text(untrusted(f"{c.src} → {c.dst}"))
    t.append(f"   on {hs.host.name}\n", style="dim")
    if hs.host.kind == "libvirt":
        t.append(
            "libvirt's view: predicted from domain XML and libvirt networks; the host's kernel was not read\n"
        )
    if c.allowed_ports:
        t.append(f"expected: blocked except TCP {', '.join(map(str, c.allowed_ports))} (policy)\n")
    else:
        t.append(f"expected: {'reach (allowed by policy)' if c.expected else 'blocked (policy: isolated)'}\n")
    if c.violations:
        t.append(f"{len(c.violations)} answered probe(s) the policy does not allow\n", style="bold")
    t.append(
        f"predicted: {_word(c.predicted)}   observed: {_word(c.observed)}   → {c.status.upper()}\n",
        style="bold" if c.status == "wrong" else "",
    )
    if c.filter_state:
        t.append(f"filter: {c.filter_state}\n", style="bold")
    if c.exposed:
        t.append("⇅ a trunk port lets a workload tag frames into the other tenant's VLAN (NET-03)\n")
    if c.pairs:
        t.append("\nworkload pairs (topology):\n", style="bold")
        for p in sorted(c.pairs, key=lambda p: not p.reachable)[:20]:
            t.append(f"  {YES if p.reachable else NO} ")
            t.append_text(untrusted(f"{_short(p.src)} → {_short(p.dst)} {p.address}: {p.path}"))
            t.append("\n")
            for d in p.filters:
                if d.verdict == "none":  # nothing decided there (what was not read is listed below)
                    continue
                t.append("      filter: ", style="dim")
                t.append_text(untrusted(d.text))
                t.append("\n")
            if p.methods:
                t.append(
                    "      per packet: " + ", ".join(f"{m} {YES if ok else NO}" for m, ok in p.methods) + "\n"
                )
    if c.results:
        t.append("\nprobe results:\n", style="bold")
        for r in sorted(c.results, key=lambda r: (not r.reached, r.src, r.address))[:40]:
            rtt = f" {r.rtt_ms:.2f} ms" if r.rtt_ms is not None else ""
            via = (" via " + " > ".join(f"{h.where or '?'} ({h.address})" for h in r.hops)) if r.hops else ""
            kind = f"from {r.via}" if r.via else ""
            line = f"  {YES if r.reached else NO} {r.method:<7} {kind:<14} {_short(r.src)} → {_short(r.dst)} {r.address}  {r.outcome}{rtt}{via}"
            t.append_text(untrusted(line + (f"  [{r.detail}]" if r.detail else "")))
            t.append("\n")
    elif c.observed is None:
        t.append(
            "\nnot probed (read-only session: no probes are sent)\n"
            if read_only
            else "\nnot probed: press p to send probes\n",
            style="dim",
        )
    unread = sorted({f"{d.netns or 'host'}: {n}" for p in c.pairs for d in p.filters for n in d.not_read})
    if unread:
        t.append("\nfilters not evaluated (the prediction could not use them):\n", style="bold")
        for n in unread[:8]:
            t.append("  ")
            t.append_text(untrusted(n))
            t.append("\n")
    against = contradictions(c)
    if against:
        t.append(f"\n‼ {len(against)} probe result(s) contradict the prediction:\n", style="bold")
        for x in against[:10]:
            t.append("  ")
            t.append_text(untrusted(x.text))
            t.append("\n")
    return t


def _word(v: bool | None) -> str:
    return "unknown" if v is None else "reach" if v else "blocked"


def _short(key: str) -> str:
    return key.rsplit("/", 1)[-1]
