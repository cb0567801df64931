"""Finding detail: what was found, why it matters, the evidence, and the fix to paste.

Kept simple here; the runbook work extends it (jump keys, copy, acknowledge). All text goes
through untrusted(): summaries and evidence quote host data.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType

from probes.model import Finding, WorkloadKind
from tui.safe import untrusted
from tui.screens.detail import DetailScreen
from tui.status import severity_text, status_text


def lines(text: str, style: str = "") -> Text:
    """Multi-line host text: each line made safe on its own, joined by real line breaks."""
    return Text("\n", style=style).join(untrusted(line, style=style) for line in text.split("\n"))


def workload_text(key: str) -> Text:
    """'acme-db-1 (vm on demo-hv1)' for the key 'demo-hv1/vm/acme-db-1': the name first, as
    the summaries and the Tenants pane say it (the key read as a path)."""
    for kind in WorkloadKind:
        host, sep, name = key.partition(f"/{kind.value}/")
        if sep and host and name:
            out = untrusted(name)
            out.append(" (")
            out.append_text(untrusted(f"{kind.value} on {host}"))
            out.append(")")
            return out
    return untrusted(key)


def detail_text(f: Finding, variables: dict[str, str]) -> Text:
    out = Text()
    out.append_text(status_text(f.status, variables))
    out.append("  ")
    out.append_text(untrusted(f.check_id, style="bold"))
    out.append("  ")
    out.append_text(untrusted(f.title, style="bold"))
    out.append("\nseverity ")
    out.append_text(severity_text(f.severity, variables))
    out.append(" · area ")
    out.append_text(untrusted(f.area))
    if f.host:
        out.append(" · host ")
        out.append_text(untrusted(f.host))
    out.append("\n\n")
    out.append_text(untrusted(f.summary))

    def section(title: str) -> None:
        out.append(f"\n\n{title}\n", style="bold underline")

    if f.tenants:
        section("Tenants")
        out.append_text(untrusted(", ".join(f.tenants)))
    if f.workloads:
        section("Workloads")
        out.append_text(Text("\n").join(workload_text(w) for w in f.workloads))
    section("Why it matters")
    out.append_text(lines(f.why or "—"))
    section("Evidence")
    if not f.evidence:
        out.append("—")
    for i, e in enumerate(f.evidence):
        if i:
            out.append("\n")
        out.append("• ")
        out.append_text(untrusted(e.where, style="bold"))
        if e.detail:
            out.append("\n")
            out.append_text(Text("\n").join(Text("  ") + untrusted(line) for line in e.detail.split("\n")))
    if f.related:
        section("See also")
        out.append_text(untrusted(", ".join(f.related)))
    section("Fix")
    out.append_text(lines(f.fix or "—"))
    return out


class FindingScreen(DetailScreen):
    NAME, TITLE = "finding", "Finding"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close", id="finding-close"),
    ]

    def __init__(self, finding: Finding) -> None:
        super().__init__()
        self.finding = finding

    def body(self) -> Text:
        return detail_text(self.finding, self.app.theme_variables)
