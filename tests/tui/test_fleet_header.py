"""The header counts hosts by their connection and shows per-area trouble apart (pure text)."""

from __future__ import annotations

from probes.model import Connection, ConnState, Host, HostKind, HostState, State
from tui.header import connection_text, fleet_text

T0 = 1_800_000_000.0


def _host(
    i: int, ssh: ConnState | None, libvirt: ConnState | None = ConnState.UP, why: str = ""
) -> HostState:
    conns = []
    if ssh is not None:
        conns.append(Connection("ssh", ssh, "", T0))
    if libvirt is not None:
        conns.append(Connection("libvirt", libvirt, why, T0))
    return HostState(host=Host(f"hv{i}", kind=HostKind.SSH), connections=tuple(conns), refreshed_at=T0)


def test_hosts_are_counted_by_connection_and_libvirt_trouble_apart():
    hosts = (
        [_host(i, ConnState.UP) for i in range(25)]
        + [
            _host(25 + i, ConnState.UP, ConnState.UNREACHABLE, "unreachable since 12:00, retrying: gone")
            for i in range(3)
        ]
        + [_host(28, ConnState.UP, ConnState.ABSENT, "no libvirt on this host")]  # a container host
        + [_host(29, ConnState.UNREACHABLE, ConnState.UNREACHABLE)]  # counted once: unreachable
        + [_host(30, ConnState.CONNECTING, None)]
    )
    text = fleet_text(State(hosts=tuple(hosts)), {}).plain
    assert text == (
        "31 hosts: ✓ 29 up · … 1 connecting · ✗ 1 unreachable (hv29) · libvirt ✗ on 3 (hv25, hv26, hv27)"
    )


def test_a_host_up_with_libvirt_down_says_why():
    c = Connection(
        "libvirt", ConnState.UNREACHABLE, "unreachable since 12:00, retrying: SSH connection down", T0
    )
    assert connection_text(c, None, {}).plain.startswith("✗ libvirt: unavailable since ")
    assert connection_text(c, None, {}).plain.endswith(", retrying (SSH connection down)")
    absent = Connection("libvirt", ConnState.ABSENT, "no libvirt on this host", T0)
    assert connection_text(absent, None, {}).plain == "- libvirt: absent"


def test_the_header_is_made_from_its_inputs_alone():
    """One source of truth for what the header shows and what makes it redraw: the header is
    made from header_inputs(state) alone (a field it starts to show must be there, and is then
    compared), and a State that differs elsewhere (findings, workloads, a live picture's next
    refresh) has the inputs of the one on screen."""
    from dataclasses import replace

    from tests.fixtures.tui import sample_state
    from tui.header import header_inputs, header_text

    fleet = State(hosts=tuple(_host(i, ConnState.UP, ConnState.UNREACHABLE, "gone") for i in range(5)))
    for st in (sample_state(), fleet, replace(sample_state(), source="live")):
        inputs = header_inputs(st)
        for width in (80, 200):
            assert header_text(inputs, 0.0, None, 10.0, {}, width) == header_text(
                st, 0.0, None, 10.0, {}, width
            )
    st = sample_state()
    other = replace(st, findings=(), hosts=tuple(replace(h, workloads=(), samples=None) for h in st.hosts))
    assert header_inputs(other) == header_inputs(st)
    assert header_inputs(sample_state(errors=True)) != header_inputs(st)  # the error count


def test_a_host_whose_ssh_is_down_is_said_once_with_why():
    """Two hosts never reached (140 columns): each was 'libvirt: unavailable ... (SSH connection
    down: <why>)  ssh: unreachable since T, retrying' (the why only in the libvirt part), four
    lines in a 3-line header: the second host and the refresh were cut off. A host whose SSH is
    down now shows its SSH state with the why, once; its areas are down because of it."""
    from tui.header import header_text

    def down(i: int, why: str) -> HostState:
        return HostState(
            host=Host(f"hv{i}", kind=HostKind.SSH),
            connections=(
                Connection(
                    "libvirt",
                    ConnState.UNREACHABLE,
                    f"unreachable since 12:00, retrying: SSH connection down: {why}",
                    T0,
                ),
                Connection("ssh", ConnState.UNREACHABLE, why, T0),
            ),
            refreshed_at=T0,
        )

    st = State(hosts=(down(1, "connection refused"), down(2, "Name or service not known")), source="live")
    text = header_text(st, T0 + 1, None, 10.0, {}, 120).plain
    assert len(text.split("\n")) <= 2, text
    assert "hv1  ✗ ssh: unreachable since" in text and "retrying (connection refused)" in text
    assert "(Name or service not known)" in text and "refreshed" in text and "libvirt" not in text


def test_a_fleet_where_nothing_was_observed_is_not_called_refreshed():
    """Every host never reached: the header said "refreshed < 10 s ago" (the last failed
    attempt's time), which read as a fresh picture; it says "nothing observed yet" until a host
    is observed. A replay keeps its time."""
    from dataclasses import replace

    from probes.model import ProbeError, Workload, WorkloadKind
    from tui.header import header_text

    def blind(i: int) -> HostState:
        return HostState(
            host=Host(f"hv{i}", kind=HostKind.SSH),
            connections=(Connection("ssh", ConnState.UNREACHABLE, "connection refused", T0),),
            probe_errors=(ProbeError("ssh", f"hv{i}", f"hv{i}: unreachable: connection refused", T0),),
            refreshed_at=T0,
        )

    st = State(hosts=(blind(1), blind(2)), source="live")
    text = header_text(st, T0 + 1, None, 10.0, {}, 200).plain
    assert "nothing observed yet" in text and "refreshed" not in text, text
    seen = replace(st.hosts[1], workloads=(Workload(kind=WorkloadKind.VM, name="a", host="hv2"),))
    text = header_text(replace(st, hosts=(st.hosts[0], seen)), T0 + 1, None, 10.0, {}, 200).plain
    assert "refreshed < 10 s ago" in text and "nothing observed" not in text
    replay = header_text(replace(st, source="replay"), T0 + 1, None, 10.0, {}, 200).plain
    assert "refreshed " in replay and "nothing observed" not in replay
