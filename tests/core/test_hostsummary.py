"""The fleet view's rows (probes/hostsummary.py): pure functions of a State built here."""

from __future__ import annotations

from probes.hostsummary import rows, sorted_rows
from probes.model import Connection, ConnState, Finding, Host, HostKind, HostState, Severity, State, Status


def _host(name: str, conn: ConnState | None = ConnState.UP, seen: float = 990.0) -> HostState:
    conns = (Connection("ssh", conn),) if conn is not None else ()
    return HostState(Host(name, HostKind.SSH), connections=conns, refreshed_at=seen)


def _f(host: str, area: str, status: Status) -> Finding:
    return Finding("X-1", area, "t", status, Severity.HIGH, host=host)


STATE = State(
    hosts=(
        _host("hv-ok"),
        _host("hv-fail"),
        _host("hv-down", ConnState.UNREACHABLE, seen=0.0),
        _host("hv-warn", seen=100.0),
    ),
    findings=(
        _f("hv-fail", "network", Status.FAIL),
        _f("hv-fail", "network", Status.WARN),
        _f("hv-fail", "vm", Status.ERROR),
        _f("hv-warn", "vm", Status.WARN),
        _f("hv-ok", "vm", Status.PASS),
    ),
)


def test_rows_worst_status_per_area_and_counts():
    by = {r.host: r for r in rows(STATE, now=1000.0)}
    assert by["hv-fail"].worst_of("network") is Status.FAIL and by["hv-fail"].worst_of("vm") is Status.ERROR
    assert by["hv-fail"].worst_of("logs") is None
    assert (by["hv-fail"].fails, by["hv-fail"].warns) == (1, 1)
    assert by["hv-down"].down and by["hv-down"].stale_s is None
    assert by["hv-warn"].stale_s == 900.0 and not by["hv-warn"].down


def test_urgency_puts_down_hosts_then_failing_then_warning_first():
    order = [r.host for r in sorted_rows(rows(STATE, now=1000.0), "urgency")]
    assert order == ["hv-down", "hv-fail", "hv-warn", "hv-ok"]
    assert [r.host for r in sorted_rows(rows(STATE, 1000.0), "host")] == sorted(order)
    assert [r.host for r in sorted_rows(rows(STATE, 1000.0), "stale")][0] == "hv-down"  # never seen
