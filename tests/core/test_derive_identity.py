"""The session's derive hands on the same findings object when it concludes the same: the
console's panes and the logs service skip work by identity (figures moving at idle)."""

from __future__ import annotations

from dataclasses import replace

from probes.model import Status
from probes.session import Options, make_deriver
from tests.fixtures.journal import fleet_state


def test_same_conclusions_are_the_same_object_and_new_ones_are_not():
    derive = make_deriver(Options())
    raw = replace(fleet_state(), findings=())
    first = derive(raw).findings
    assert any(f.status in (Status.FAIL, Status.WARN) for f in first)
    # a new observation object with the same content: the same findings object
    again = derive(replace(raw, hosts=tuple(replace(h) for h in raw.hosts), taken_at=raw.taken_at + 2))
    assert again.findings is first
    # an observation that changes a conclusion: new findings
    h = raw.hosts[0]
    fewer = replace(raw, hosts=(replace(h, workloads=h.workloads[1:]),) + raw.hosts[1:])
    changed = derive(fewer).findings
    assert changed != first and changed is not first
    assert derive(fewer).findings is changed
