"""Workload detail: everything observed about one VM, container or namespace, and the findings
that name it.

Rendered generically from the model's dataclasses (every field with a value, nested ones
indented), so new fields observed by the probes show up without touching this screen. Every
value is host text and goes through untrusted(); passwords are never in the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from enum import Enum
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType

from probes.model import Finding, Workload
from probes.network.model import NicAddresses
from tui.safe import untrusted
from tui.screens.detail import DetailScreen
from tui.status import finding_sort_key, status_text

_SKIP = {"name", "kind", "host", "uuid", "state", "tenant", "placed_by", "placed_rule"}


def _empty(v: object) -> bool:
    return v is None or v == "" or v == () or v is False


def _scalar(v: object) -> Text:
    if isinstance(v, Enum):
        v = v.value
    if isinstance(v, bool):
        return Text("yes" if v else "no")
    return untrusted(str(v))


def _value(out: Text, v: object, indent: int) -> None:
    pad = "  " * indent
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        _fields(out, v, indent + 1)
    elif isinstance(v, tuple) and v and all(dataclasses.is_dataclass(x) for x in v):
        for x in v:
            out.append(f"\n{pad}  •")
            _fields(out, x, indent + 2, inline_first=True)
    elif isinstance(v, tuple):
        parts = [("=".join(str(p) for p in x) if isinstance(x, tuple) else str(x)) for x in v]
        out.append(" ")
        out.append_text(untrusted(", ".join(parts)))
    else:
        out.append(" ")
        out.append_text(_scalar(v))


def _fields(out: Text, obj: object, indent: int, inline_first: bool = False) -> None:
    pad = "  " * indent
    first = True
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        v = getattr(obj, f.name)
        if _empty(v) or (
            dataclasses.is_dataclass(v) and all(_empty(getattr(v, g.name)) for g in dataclasses.fields(v))
        ):
            continue
        label = f.name.replace("_", " ")
        out.append(f" {label}:" if inline_first and first else f"\n{pad}{label}:", style="bold")
        first = False
        _value(out, v, indent)


def workload_text(
    w: Workload,
    findings: tuple[Finding, ...],
    variables: dict[str, str],
    addresses: Sequence[NicAddresses] = (),
) -> Text:
    out = Text()
    out.append_text(untrusted(w.name, style="bold"))
    out.append(f"  {w.kind.value} · ")
    out.append_text(untrusted(w.state or "?"))
    out.append(" · host ")
    out.append_text(untrusted(w.host))
    if w.uuid:
        out.append("\nuuid ")
        out.append_text(untrusted(w.uuid))
    out.append("\ntenant ", style="bold")
    if w.tenant:
        out.append_text(untrusted(w.tenant))
        out.append(f"  placed by {w.placed_by.value}")
        if w.placed_rule:
            out.append(": ")
            out.append_text(untrusted(w.placed_rule))
    else:
        out.append("none (no rule matched)", style="italic")

    out.append("\n\nFindings\n", style="bold underline")
    mine = sorted((f for f in findings if w.key in f.workloads), key=finding_sort_key)
    if not mine:
        out.append("none names this workload", style="italic")
    for i, f in enumerate(mine):
        if i:
            out.append("\n")
        out.append_text(status_text(f.status, variables))
        out.append("  ")
        out.append_text(untrusted(f.check_id, style="bold"))
        out.append("  ")
        out.append_text(untrusted(f.summary or f.title))

    if addresses:  # a VM's addresses and where they came from (probes/network/vmaddr.py)
        from probes.network.vmaddr import describe

        out.append("\n\nAddresses", style="bold underline")
        for line in describe(addresses):
            out.append("\n")
            out.append_text(untrusted(line))

    for title, details in (
        ("Virtual machine", w.vm),
        ("Container", w.container),
        ("Network namespace", w.netns),
    ):
        if details is not None:
            out.append(f"\n\n{title}", style="bold underline")
            _fields(out, details, 0)
    return out


class WorkloadScreen(DetailScreen):
    NAME, TITLE = "workload", "Workload"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close", id="workload-close"),
    ]

    def __init__(
        self, workload: Workload, findings: tuple[Finding, ...], addresses: Sequence[NicAddresses] = ()
    ) -> None:
        super().__init__()
        self.workload = workload
        self.findings = findings
        self.addresses = addresses

    def body(self) -> Text:
        return workload_text(self.workload, self.findings, self.app.theme_variables, self.addresses)
