"""Typed messages between the app, its panes and its screens.

The State travels as a whole: panes pick the part they render and skip the work when that part
did not change (tui/panes/base.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from probes.model import Finding, State, Workload


@dataclass
class StateChanged(Message):
    """A new State to render; posted by the app at most every `App.COALESCE` seconds."""

    state: State


@dataclass
class FindingSelected(Message):
    """The user asked for the detail of a finding (Enter in the Findings pane)."""

    finding: Finding


@dataclass
class WorkloadSelected(Message):
    """The user asked for everything about a workload (Enter on it in the Tenants pane)."""

    workload: Workload
