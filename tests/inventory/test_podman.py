"""Containers and the daemon from a real Podman API service (tests/fixtures/podman.py): names
and labels from the API, tenancy by label, the RT checks that apply to Podman."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from probes.checks.base import run_checks
from probes.config import parse
from probes.hosts.local import LocalHost
from probes.inventory.containers import ContainerProbe
from probes.model import Host, HostState, Placement, State, Status
from probes.session import Options
from probes.tenancy import assign
from tests.fixtures.dockerd import IMAGE
from tests.fixtures.podman import PodmanEnv, podman_env  # noqa: F401

CONFIG = parse(
    """
[[tenant]]
name = "acme"
containers = ["com.example.tenant=acme"]
""",
    "podman-test.toml",
)


@pytest.fixture(scope="module")
def podman_state(podman_env: PodmanEnv) -> tuple[PodmanEnv, dict[str, str], HostState]:
    ids = {
        "acme-api": podman_env.run("acme-api", "--network", "none", "--label", "com.example.tenant=acme"),
        "loose": podman_env.run("loose", "--network", "none", "--cap-add", "SYS_ADMIN"),
    }

    async def go() -> HostState:
        scan = await ContainerProbe().collect(LocalHost(libvirt_uri=None))
        return ContainerProbe().merge(HostState(Host("h")), scan)

    return podman_env, ids, asyncio.run(go())


def test_podman_containers_named_and_labelled_by_its_api(podman_state):
    env, ids, hs = podman_state
    by_id = {w.container.container_id: w for w in hs.workloads if w.container}
    w = by_id[ids["acme-api"]]
    assert w.name == f"{env.prefix}-acme-api" and w.container.runtime == "podman"
    assert w.container.name_source == "api" and w.container.daemon == env.socket
    assert ("com.example.tenant", "acme") in w.container.labels
    assert w.container.image.endswith(IMAGE) and w.container.network_mode == "none"
    st = assign(State(hosts=(hs,)), Options(config=CONFIG))
    placed = next(x for x in st.hosts[0].workloads if x.key == w.key)
    assert (placed.tenant, placed.placed_by) == ("acme", Placement.CONFIG)


def test_the_podman_service_as_a_daemon_and_its_checks(podman_state):
    env, _, hs = podman_state
    (d,) = [d for d in hs.runtimes if d.socket == env.socket]
    assert d.runtime == "podman" and d.api == "ok" and d.pid == env.pid and d.version.startswith("4.")
    assert not d.rootless and d.socket_owner == "root"
    assert any(n.name == "podman" and n.driver == "bridge" and n.bridge for n in d.networks)
    hs = replace(hs, runtimes=(d,))
    got = {f.check_id: f.status for f in run_checks(State(hosts=(hs,)), ["RT-01", "RT-04", "RT-08", "RT-09"])}
    assert got == {"RT-01": Status.WARN, "RT-04": Status.SKIPPED, "RT-08": Status.PASS, "RT-09": Status.WARN}
    fs = run_checks(State(hosts=(hs,)), ["CTR-02"])
    assert any(f.status == Status.FAIL and f"{env.prefix}-loose" in f.summary for f in fs)
