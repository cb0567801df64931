"""The per-host connection state as data: the "ssh" probe, staleness, and one-line summaries.

The SSH transport knows whether its connection is up; the UI and `tenantscope check` read
State only. This probe copies the transport's `Connection` into HostState.connections on
every poll (and after a failure), so the header can show each host's state (connecting, up,
unreachable since T, auth failed, host key refused) and how old the data on screen is. A
failed connection never clears the other probes' fields: what was shown stays, marked stale.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import replace

from probes.engine import Probe
from probes.hosts.base import HostTransport
from probes.model import Connection, ConnState, Feed, HostState, State
from probes.untrusted import visible

SYMBOL = {
    ConnState.CONNECTING: "…",
    ConnState.UP: "●",
    ConnState.UNREACHABLE: "✖",
    ConnState.AUTH_FAILED: "✖",
    ConnState.HOST_KEY_REFUSED: "✖",
    ConnState.ABSENT: "○",
}


def set_connection(conns: tuple[Connection, ...], conn: Connection) -> tuple[Connection, ...]:
    """`conns` with `conn` in the place of the one of its kind (appended when new); the same
    tuple when nothing changed. Probes set their connections every poll: a reordered tuple is
    a changed HostState, which made every idle poll re-derive tenants and findings."""
    for i, c in enumerate(conns):
        if c.what == conn.what:
            return conns if c == conn else conns[:i] + (conn,) + conns[i + 1 :]
    return conns + (conn,)


def with_connection(state: HostState, conn: Connection) -> HostState:
    conns = set_connection(state.connections, conn)
    return state if conns is state.connections else replace(state, connections=conns)


UP_SAFETY = 30.0  # seconds between runs while the connection is up and reports its changes


class ConnectionProbe(Probe[Connection]):
    """Keeps one SSH host's connection up (reconnecting with back-off) and reports its state.

    While the connection is up, the transport says when it changes (lost, refused): the probe
    then runs at once, and otherwise only every UP_SAFETY seconds (it ran every interval per
    host, 2 s, just to find nothing changed); while it is not up, every interval (reconnecting)."""

    name = "ssh"

    def __init__(self, transport: HostTransport, interval: float = 2.0) -> None:
        self._t = transport
        self.interval = interval
        self.poll_interval = interval
        self.timeout = float(getattr(transport, "_connect_timeout", 10.0)) + 3.0
        self._hooked = False

    def attach(self, wake: Callable[[], None]) -> None:
        super().attach(wake)
        hook = getattr(self._t, "on_state_change", None)
        if hook is not None:
            hook(self.wake)
            self._hooked = True

    def feed(self) -> Feed:
        if self._hooked and self.interval > self.poll_interval:
            return Feed(
                self.name, "events", "the SSH transport reports a lost or refused connection", self.interval
            )
        return Feed(self.name, "polled", "connecting or reconnecting", self.interval)

    async def collect(self, host: HostTransport) -> Connection:
        self.interval = self.poll_interval  # stays so when connecting fails
        await host.ensure_connected()  # type: ignore[attr-defined]
        conn: Connection = host.connection  # type: ignore[attr-defined]
        if self._hooked and conn.state == ConnState.UP:
            self.interval = max(self.poll_interval, UP_SAFETY)
        return conn

    def merge(self, state: HostState, result: Connection) -> HostState:
        return with_connection(state, self._t.connection)  # type: ignore[attr-defined]

    def failed(self, state: HostState, error: str, now: float) -> HostState:
        return with_connection(state, self._t.connection)  # type: ignore[attr-defined]


def has_data(hs: HostState) -> bool:
    return bool(hs.workloads or hs.topology or hs.facts or hs.samples or hs.logs or hs.reach)


def stale_age(hs: HostState, now: float | None = None) -> float | None:
    """Seconds since the host's data stopped being refreshed (its SSH connection went down),
    or None when it is live (or there is no data to be stale)."""
    c = hs.connection("ssh")
    if c is None or c.state == ConnState.UP or not has_data(hs):
        return None
    return max(0.0, (now if now is not None else time.time()) - c.since)


def status_line(hs: HostState, now: float | None = None) -> str:
    """`hv1 ● up` / `hv3 ● up, libvirt unavailable (<why>)` / `hv2 ✖ unreachable since
    12:03:04, data stale 45 s: <why>` (safe text)."""
    now = time.time() if now is None else now
    c = hs.connection("ssh")
    name = visible(hs.host.name)
    if c is None:
        return f"{name} ● {'local' if hs.host.kind == 'local' else 'up'}"
    text = f"{name} {SYMBOL.get(c.state, '?')} {c.state}"
    if c.state == ConnState.UP:  # up; an area behind the connection may still be down
        for a in hs.connections:
            if a.what != "ssh" and a.state not in (ConnState.UP, ConnState.ABSENT, ConnState.CONNECTING):
                text += f", {visible(a.what)} unavailable ({visible(a.detail.split('retrying: ', 1)[-1])})"
    else:
        text += " since " + time.strftime("%H:%M:%S", time.localtime(c.since))
        age = stale_age(hs, now)
        if age is not None:
            text += f", data stale {age:.0f} s"
        if c.detail:
            text += f": {visible(c.detail)}"
    return text


def connection_problems(state: State, unseen: Collection[str] = ()) -> list[str]:
    """One line per host whose SSH connection is not up, for `tenantscope check`; a host in
    `unseen` (nothing observed there) says so, and what was tried."""
    out = []
    for hs in state.hosts:
        c = hs.connection("ssh")
        if c is not None and c.state != ConnState.UP:
            detail = c.detail if c.state != ConnState.CONNECTING else f"{c.detail}: did not connect"
            if hs.host.name in unseen:
                out.append(
                    f"{visible(hs.host.name)} not observed: SSH to {visible(hs.host.address)}: "
                    f"{c.state}: {visible(detail)}"
                )
            else:
                out.append(f"{visible(hs.host.name)}: {c.state}: {visible(detail)}")
    return out
