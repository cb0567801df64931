"""RT-* daemon checks on daemons as the runtime inventory describes them. The states here are
built by hand (a fake: a rootless dockerd, a TCP socket, Podman's service cannot all run on
this machine at once); the same checks against a real dockerd are in
tests/inventory/test_docker.py."""

from __future__ import annotations

import pytest

from probes.checks.base import run_checks
from probes.inventory.runtimes import parse_dockerd_argv, parse_network
from probes.model import (
    ContainerDetails,
    DaemonSetting,
    Host,
    HostState,
    RuntimeDaemon,
    RuntimeNetwork,
    State,
    Status,
    Workload,
    WorkloadKind,
)

SOCK = "/run/docker.sock"


def _state(*daemons: RuntimeDaemon) -> State:
    ctr = Workload(
        WorkloadKind.CONTAINER,
        "web",
        "h",
        tenant="acme",
        container=ContainerDetails(runtime="docker", daemon=SOCK),
    )
    return State(hosts=(HostState(Host("h"), workloads=(ctr,), runtimes=daemons),))


def _docker(*settings: tuple[str, str], **kw: object) -> RuntimeDaemon:
    base: dict[str, object] = dict(
        socket=SOCK,
        pid=42,
        api="ok",
        hosts=(f"unix://{SOCK}",),
        socket_owner="root",
        socket_group="docker",
        socket_mode=0o660,
        networks=(RuntimeNetwork("bridge", driver="bridge", bridge="docker0", icc=True),),
    )
    base.update(kw)
    return RuntimeDaemon(
        "docker",
        settings=tuple(DaemonSetting(k, v, f"dockerd --{k}={v}") for k, v in settings),
        **base,  # type: ignore[arg-type]
    )


def _status(state: State, cid: str) -> list[tuple[Status, str]]:
    return [(f.status, f.summary) for f in run_checks(state, [cid])]


DEFAULTS = _docker()
HARDENED = _docker(
    ("userns-remap", "default"),
    ("icc", "false"),
    ("live-restore", "true"),
    ("no-new-privileges", "true"),
    ("default-ulimits", "nofile=1024:2048"),
    ("userland-proxy", "false"),
    networks=(RuntimeNetwork("bridge", driver="bridge", bridge="docker0", icc=False),),
)


@pytest.mark.parametrize(
    "cid, default_status",
    [
        ("RT-01", Status.FAIL),
        ("RT-02", Status.FAIL),
        ("RT-04", Status.WARN),
        ("RT-05", Status.WARN),
        ("RT-06", Status.WARN),
        ("RT-07", Status.WARN),
        ("RT-09", Status.WARN),
    ],
)
def test_docker_defaults_are_reported_and_hardened_settings_pass(cid: str, default_status: Status):
    [(got, summary)] = _status(_state(DEFAULTS), cid)
    assert got == default_status and summary.startswith(f"docker daemon {SOCK}: ")
    if cid != "RT-09":
        assert [s for s, _ in _status(_state(HARDENED), cid)] == [Status.PASS]
    f = run_checks(_state(DEFAULTS), [cid])[0]
    assert f.tenants == ("acme",) and f.workloads == ("h/container/web",) and f.evidence


def test_tcp_without_tls_fails_with_tls_verify_passes():
    tcp = ("unix:///run/docker.sock", "tcp://0.0.0.0:2375")
    [(s, summary)] = _status(_state(_docker(hosts=tcp)), "RT-03")
    assert s == Status.FAIL and "tcp://0.0.0.0:2375 without TLS" in summary
    [(s, summary)] = _status(_state(_docker(("tls", "true"), hosts=tcp)), "RT-03")
    assert s == Status.FAIL and "no client verification" in summary
    assert _status(_state(_docker(("tlsverify", "true"), hosts=tcp)), "RT-03")[0][0] == Status.PASS
    assert _status(_state(DEFAULTS), "RT-03")[0][0] == Status.PASS


def test_socket_owner_and_mode():
    assert _status(_state(_docker(socket_mode=0o666)), "RT-08")[0][0] == Status.FAIL
    assert _status(_state(_docker(socket_owner="alice")), "RT-08")[0][0] == Status.FAIL
    assert _status(_state(_docker(socket_mode=0o664)), "RT-08")[0][0] == Status.WARN
    assert _status(_state(DEFAULTS), "RT-08")[0][0] == Status.PASS
    rootless = _docker(socket="/run/user/1000/docker.sock", uid=1000, rootless=True, socket_owner="alice")
    assert _status(_state(rootless), "RT-08")[0][0] == Status.PASS


def test_rootless_is_a_strength_and_counts_as_user_namespaces():
    rootless = _docker(uid=1000, rootless=True)
    [(s, summary)] = _status(_state(rootless), "RT-09")
    assert s == Status.PASS and "rootless (uid 1000)" in summary
    assert _status(_state(rootless), "RT-01")[0][0] == Status.PASS


def test_podman_gets_the_checks_that_apply_to_it_and_docker_only_ones_skip():
    podman = RuntimeDaemon(
        "podman", "/run/podman/podman.sock", pid=7, api="ok", socket_owner="root", socket_mode=0o600
    )
    st = _state(podman)
    assert _status(st, "RT-01")[0][0] == Status.WARN
    assert _status(st, "RT-08")[0][0] == Status.PASS
    [(s, why)] = _status(st, "RT-04")
    assert s == Status.SKIPPED and "no docker daemon" in why
    [(s, why)] = _status(State(hosts=(HostState(Host("h")),)), "RT-01")
    assert s == Status.SKIPPED and "no Docker or Podman daemon" in why


def test_dockerd_command_line_flags():
    argv = [
        "/usr/bin/dockerd",
        "-H",
        "fd://",
        "--host=tcp://0.0.0.0:2376",
        "--icc=false",
        "--live-restore",
        "--default-ulimit",
        "nofile=1024:2048",
        "-g",
        "/srv/docker",
        "--tlsverify",
        "--userns-remap=default",
    ]
    got = {k: v for k, v, _ in parse_dockerd_argv(argv)}
    assert got["icc"] == "false" and got["live-restore"] == "true" and got["tlsverify"] == "true"
    assert got["data-root"] == "/srv/docker" and got["userns-remap"] == "default"
    assert got["default-ulimits"] == "nofile=1024:2048"
    assert [v for k, v, _ in parse_dockerd_argv(argv) if k == "hosts"] == ["fd://", "tcp://0.0.0.0:2376"]


def test_a_macvlan_network_names_its_parent_and_a_user_bridge_its_bridge():
    mv = parse_network({"Name": "lan", "Id": "f" * 64, "Driver": "macvlan", "Options": {"parent": "eth0"}})
    assert (mv.driver, mv.parent, mv.bridge, mv.icc) == ("macvlan", "eth0", "", None)
    br = parse_network({"Name": "t1", "Id": "a" * 64, "Driver": "bridge", "Options": {}})
    assert (br.bridge, br.icc) == ("br-" + "a" * 12, True)


def test_daemons_survive_a_snapshot_and_judge_the_same_in_replay():
    from probes import snapshot

    st = _state(HARDENED, _docker(hosts=("tcp://0.0.0.0:2375",), socket="/srv/d.sock"))
    back = snapshot.loads(snapshot.dumps(st))
    assert back.hosts[0].runtimes == st.hosts[0].runtimes
    ids = [f"RT-0{i}" for i in range(1, 10)]
    assert run_checks(back, ids) == run_checks(st, ids)
