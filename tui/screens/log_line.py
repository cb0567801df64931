"""One log line in full: Enter in the Logs pane. The pane shows a line cut to its column (an
AVC denial is hundreds of characters); here it is whole, wrapped, with what tenantscope made
of it: source, parser, program and PID, severity, the isolation signals it carries, the tenant
and workload it was attributed to and by what evidence, and the fields the parser kept.
Every value is host text and goes through untrusted().
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType

from tui.safe import untrusted
from tui.screens.detail import DetailScreen
from tui.screens.finding import workload_text


def log_line_text(e: Any) -> Text:
    """`e` is a LogEntry (a LogEvent or a lazy line: reading its fields parses it)."""
    out = Text()
    out.append(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.at)), style="bold")
    out.append("  host ")
    out.append_text(untrusted(e.host))
    out.append("  #")
    out.append(str(e.seq))

    def row(label: str, value: str) -> None:
        if value:
            out.append(f"\n{label}: ", style="bold")
            out.append_text(untrusted(value))

    row("source", e.source)
    row("parsed as", e.kind)
    row("program", f"{e.program}[{e.pid}]" if e.pid else e.program)
    row("severity", e.severity)
    row("isolation signals", ", ".join(e.tags))

    def workload(label: str, key: str) -> None:
        if key:  # 'acme-db-1 (vm on demo-hv1)', as the finding detail names it
            out.append(f"\n{label}: ", style="bold")
            out.append_text(workload_text(key))

    if e.tenant:
        row("tenant", e.tenant)
        workload("workload", e.workload)
        row("attributed by", e.attributed_by)
    else:
        out.append("\ntenant: ", style="bold")
        out.append("none (nothing in the line names a workload)", style="italic")
    row("touched tenant", getattr(e, "target_tenant", ""))
    workload("touched workload", getattr(e, "target_workload", ""))
    for k, v in getattr(e, "fields", ()):
        row(k, v)
    out.append("\n\nmessage\n", style="bold underline")
    out.append_text(untrusted(e.message))
    return out


class LogLineScreen(DetailScreen):
    NAME, TITLE = "log-line", "Log line"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close", id="log-line-close"),
    ]

    def __init__(self, entry: Any) -> None:
        super().__init__()
        self.entry = entry

    def body(self) -> Text:
        return log_line_text(self.entry)
