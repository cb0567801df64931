"""Containers, networks and daemon settings from a real dockerd (tests/fixtures/dockerd.py).

One daemon serves the whole module (started once, removed with everything it added at the
end); the containers below are started once and each test reads what it needs. The daemon's
data-root is not /var/lib/docker, so names and labels come only from its API (issue 14 item
5: before the API path they were `docker:<id>` with no labels).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, replace

import pytest

from probes.checks.base import run_checks
from probes.config import parse
from probes.hosts.local import LocalHost
from probes.inventory import runtime_api
from probes.inventory.containers import ContainerProbe, discover
from probes.inventory.runtimes import RuntimeView
from probes.inventory.runtimes import observe as observe_runtimes
from probes.model import Finding, Host, HostState, Placement, PublishedPort, State, Status, Workload
from probes.network.predict import predict
from probes.network.prober import probe_matrix
from probes.network.segments import endpoints, runtime_networks
from probes.network.topology import TopologyProbe
from probes.resources.model import ResourceSnapshot
from probes.resources.probe import ResourcesProbe
from probes.session import Options
from probes.tenancy import assign
from tests.fixtures.dockerd import ICC_SYSCTL, IMAGE, DockerEnv, dockerd_env  # noqa: F401
from tests.fixtures.sshd import Sshd, ssh_host, sshd  # noqa: F401


@dataclass(frozen=True)
class Scene:
    env: DockerEnv
    ids: dict[str, str]  # short name -> container id
    shared: str  # network ids
    quiet: str
    hs: HostState  # one observation of the host, containers and topology

    def name(self, short: str) -> str:
        return f"{self.env.prefix}-{short}"

    def workload(self, short: str) -> Workload:
        w = next((w for w in self.hs.workloads if w.name == self.name(short)), None)
        assert w is not None, f"{self.name(short)} not in {[w.name for w in self.hs.workloads]}"
        return w


def observe() -> HostState:
    async def go() -> HostState:
        host = LocalHost(libvirt_uri=None)
        scan = await ContainerProbe().collect(host)
        topo = await TopologyProbe().collect(host)
        hs = ContainerProbe().merge(HostState(Host(host.name)), scan)
        res = ResourcesProbe(libvirt=False, host_totals=False)  # live cgroup limits for CTR-07
        hs = res.merge(hs, ResourceSnapshot())
        hs = res.merge(hs, await res.collect(host))
        return replace(hs, topology=topo)

    return asyncio.run(go())


@pytest.fixture(scope="module")
def scene(dockerd_env: DockerEnv) -> Scene:
    env = dockerd_env
    p = env.prefix
    shared = env.network("shared")
    quiet = env.network("quiet", "-o", "com.docker.network.bridge.enable_icc=false")
    parent = env.parent_link(f"tsdmv{os.getpid() % 100000}")
    env.network("lan", "-d", "macvlan", "-o", f"parent={parent}", "--subnet", "10.231.0.0/24")
    t = "com.example.tenant"
    ids = {
        "acme-web": env.run(
            "acme-web",
            *("--label", f"{t}=acme", "--network", f"{p}-shared"),
            *("--restart", "unless-stopped", "-p", "127.0.0.1::80"),
        ),
        "globex-web": env.run("globex-web", "--label", f"{t}=globex", "--network", f"{p}-shared"),
        "acme-q": env.run("acme-q", "--label", f"{t}=acme", "--network", f"{p}-quiet"),
        "globex-q": env.run("globex-q", "--label", f"{t}=globex", "--network", f"{p}-quiet"),
        "acme-lan": env.run("acme-lan", "--label", f"{t}=acme", "--network", f"{p}-lan"),
        "globex-lan": env.run("globex-lan", "--label", f"{t}=globex", "--network", f"{p}-lan"),
        "risky": env.run(
            "risky",
            *("--label", f"{t}=initech", "--cap-add", "SYS_ADMIN", "--pid", "host"),
            *("-v", f"{env.socket}:/var/run/docker.sock"),
        ),
        "hostnet": env.run("hostnet", "--network", "host"),
        "hardened": env.run(
            "hardened",
            *("--label", f"{t}=acme", "--cap-drop", "ALL"),
            *("--memory", "64m", "--pids-limit", "64", "--cpus", "0.5"),
        ),
    }
    return Scene(env, ids, shared, quiet, observe())


CONFIG = parse(
    """
[[tenant]]
name = "acme"
containers = ["com.example.tenant=acme"]

[[tenant]]
name = "globex"
containers = ["com.example.tenant=globex"]

[[tenant]]
name = "initech"
containers = ["com.example.tenant=initech", "tsd*-hostnet"]
""",
    "docker-test.toml",
)


def placed(scene: Scene) -> HostState:
    st = assign(State(hosts=(scene.hs,)), Options(config=CONFIG))
    return st.hosts[0]


# ------------------------------------------------------------------ issue 14 item 5, issue 17.1


def test_names_and_labels_come_from_the_api_outside_the_default_data_root(scene: Scene):
    w = scene.workload("acme-web")
    c = w.container
    assert c is not None
    assert c.runtime == "docker" and c.container_id == scene.ids["acme-web"]
    assert c.name_source == "api"
    assert ("com.example.tenant", "acme") in c.labels
    assert c.image == IMAGE
    assert c.daemon == scene.env.socket


def test_networks_ports_and_restart_policy_as_docker_names_them(scene: Scene):
    c = scene.workload("acme-web").container
    assert c is not None
    (net,) = c.networks
    assert net.name == scene.name("shared") and net.network_id == scene.shared
    assert net.address.count(".") == 3 and net.address.endswith("/16") and net.gateway
    (port,) = c.ports
    assert port.container_port == 80 and port.protocol == "tcp" and port.host_ip == "127.0.0.1"
    assert port.host_port > 0 and port == PublishedPort(80, "tcp", "127.0.0.1", port.host_port)
    assert c.restart_policy == "unless-stopped"
    assert scene.workload("globex-web").container.restart_policy == "no"  # type: ignore[union-attr]
    assert scene.workload("hostnet").container.network_mode == "host"  # type: ignore[union-attr]


def test_label_selectors_and_name_globs_place_docker_containers(scene: Scene):
    hs = placed(scene)
    by = {w.name: w for w in hs.workloads}
    for short, tenant in [("acme-web", "acme"), ("globex-q", "globex"), ("risky", "initech")]:
        w = by[scene.name(short)]
        assert (w.tenant, w.placed_by) == (tenant, Placement.CONFIG), w
        assert "com.example.tenant" in w.placed_rule
    w = by[scene.name("hostnet")]
    assert (w.tenant, w.placed_by) == ("initech", Placement.CONFIG) and "hostnet" in w.placed_rule


async def test_without_the_api_the_daemons_data_root_files_name_containers(scene: Scene):
    """The fallback: the socket unreadable, dockerd's --data-root (from its command line)
    still leads to config.v2.json; with neither, the name is made up and says so."""
    host = LocalHost(libvirt_uri=None)
    data_root = str(scene.env.dir / "data")
    ws = await discover(host, api=RuntimeView(data_roots=(data_root,)))
    w = next(w for w in ws if w.container and w.container.container_id == scene.ids["acme-web"])
    assert w.name == scene.name("acme-web") and w.container.name_source == "docker"  # type: ignore[union-attr]
    assert ("com.example.tenant", "acme") in w.container.labels  # type: ignore[union-attr]
    ws = await discover(host, api=RuntimeView())
    w = next(w for w in ws if w.container and w.container.container_id == scene.ids["acme-web"])
    assert w.name == f"docker:{scene.ids['acme-web'][:12]}" and w.container.name_source == ""  # type: ignore[union-attr]


def test_the_daemon_its_settings_and_networks(scene: Scene):
    (d,) = [d for d in scene.hs.runtimes if d.socket == scene.env.socket]
    assert d.runtime == "docker" and d.api == "ok" and d.pid == scene.env.pid and not d.rootless
    assert d.version.startswith("20.") or d.version[:2].isdigit()
    icc = d.setting("icc")
    assert icc is not None and (icc.value, icc.source) == ("false", "dockerd --icc=false")
    lr = d.setting("live-restore")
    assert lr is not None and lr.value == "true" and lr.source.endswith("daemon.json")
    assert d.setting("data-root").value == str(scene.env.dir / "data")  # type: ignore[union-attr]
    assert (d.socket_owner, d.socket_mode) == ("root", 0o660)
    assert any(o.startswith("name=seccomp") for o in d.security_options)
    nets = {n.name: n for n in d.networks}
    assert nets["bridge"].bridge == "docker0" and nets["bridge"].icc is False
    assert nets[scene.name("shared")].bridge == f"br-{scene.shared[:12]}"
    assert nets[scene.name("shared")].icc is True and nets[scene.name("quiet")].icc is False
    assert nets["host"].driver == "host" and nets["host"].icc is None
    assert d.containers >= len(scene.ids)


# ------------------------------------------------------------------ docker networks in the topology (17.2)


def _findings(hs: HostState, *ids: str) -> list[Finding]:
    st = assign(State(hosts=(hs,)), Options(config=CONFIG))
    return list(run_checks(st, list(ids)))


def test_docker_networks_are_segments_and_net02_names_the_network(scene: Scene):
    hs = placed(scene)
    eps = {e.name: e for e in endpoints(hs)}
    shared_seg = f"br:/br-{scene.shared[:12]}"
    for short in ("acme-web", "globex-web"):
        assert shared_seg in [a.segment for a in eps[scene.name(short)].attachments]
    nets = runtime_networks(hs)
    assert nets[shared_seg][1].name == scene.name("shared") and nets["br:/docker0"][1].name == "bridge"
    got = {f.summary: f for f in _findings(hs, "NET-02")}
    shared = next(f for s, f in got.items() if f"docker network {scene.name('shared')})" in s)
    assert shared.status == Status.FAIL and {"acme", "globex"} <= set(shared.tenants)
    assert "enable_icc=true" in shared.evidence[0].detail and "docker network connect" in shared.fix
    quiet = next(f for s, f in got.items() if f"docker network {scene.name('quiet')})" in s)
    assert quiet.status == Status.WARN and "inter-container communication off" in quiet.summary
    assert {"acme", "globex"} <= set(quiet.tenants)


def test_a_macvlan_network_is_a_segment_of_its_parent(scene: Scene):
    hs = placed(scene)
    eps = {e.name: e for e in endpoints(hs)}
    parent = next(n.parent for d in hs.runtimes for n in d.networks if n.name == scene.name("lan"))
    seg = f"mv:/{parent}"
    for short in ("acme-lan", "globex-lan"):
        assert [a.segment for a in eps[scene.name(short)].attachments] == [seg]
    got = [f for f in _findings(hs, "NET-02") if seg.split("/")[1] in f.summary]
    assert len(got) == 1 and got[0].status == Status.FAIL
    assert f"macvlan/ipvlan parent {parent} (docker network {scene.name('lan')})" in got[0].summary
    assert "driver macvlan" in got[0].evidence[0].detail and f"parent {parent}" in got[0].evidence[0].detail


def test_a_host_network_container_shares_the_hosts_segments(scene: Scene):
    hs = placed(scene)
    eps = {e.name: e for e in endpoints(hs)}
    hostnet, host = eps[scene.name("hostnet")], eps["host"]
    assert hostnet.netns == "" and hostnet.attachments == host.attachments
    assert "br:/docker0" in [a.segment for a in hostnet.attachments]
    assert set(hostnet.addresses) == set(host.addresses)


def test_prediction_follows_inter_container_communication(scene: Scene):
    hs = placed(scene)
    pairs = {(p.src, p.dst): p for p in predict(hs)}
    key = {s: scene.workload(s).key for s in ("acme-web", "globex-web", "acme-q", "globex-q")}
    open_pair = pairs[(key["acme-web"], key["globex-web"])]
    assert open_pair.reachable and f"(docker network {scene.name('shared')})" in open_pair.path
    blocked = pairs[(key["acme-q"], key["globex-q"])]
    assert not blocked.reachable and "inter-container communication is off" in blocked.path
    assert f"(docker network {scene.name('quiet')})" in blocked.path


@pytest.mark.skipif(
    not os.path.exists(ICC_SYSCTL) or open(ICC_SYSCTL).read().strip() != "1",
    reason="needs br_netfilter with bridge-nf-call-iptables=1 (docker's ICC rules act on bridged traffic only then)",
)
async def test_the_prober_probes_to_and_from_containers_on_docker_networks(scene: Scene):
    hs = placed(scene)
    mine = {scene.workload(s).key for s in ("acme-web", "globex-web", "acme-q", "globex-q")}
    hs = replace(hs, workloads=tuple(w for w in hs.workloads if w.key in mine))
    m = await probe_matrix(hs, timeout=0.5, trace=False)
    res = {(r.src, r.dst): r for r in m.results if r.method == "icmp"}
    k = {s: scene.workload(s).key for s in ("acme-web", "globex-web", "acme-q", "globex-q")}
    assert res[(k["acme-web"], k["globex-web"])].outcome == "reply"
    assert res[(k["globex-web"], k["acme-web"])].outcome == "reply"
    assert not res[(k["acme-q"], k["globex-q"])].reached  # ICC off: docker's DROP rule
    assert res[(k["acme-q"], k["globex-q"])].outcome == "timeout"


# ------------------------------------------------------------------ checks on the real daemon (17.3, 17.4)


def test_daemon_checks_on_a_real_dockerd(scene: Scene):
    """The fixture's daemon: --icc=false as a flag, live-restore and no-new-privileges in its
    daemon.json, the rest at Docker's defaults."""
    hs = replace(scene.hs, runtimes=tuple(d for d in scene.hs.runtimes if d.socket == scene.env.socket))
    got = {f.check_id: f for f in _findings(hs, *(f"RT-0{i}" for i in range(1, 10)))}
    want = {
        "RT-01": Status.FAIL,  # no userns-remap
        "RT-02": Status.PASS,  # --icc=false
        "RT-03": Status.PASS,  # unix socket only
        "RT-04": Status.PASS,  # daemon.json live-restore
        "RT-05": Status.PASS,  # daemon.json no-new-privileges
        "RT-06": Status.WARN,  # no default ulimits
        "RT-07": Status.WARN,  # userland proxy on (the default)
        "RT-08": Status.PASS,  # root:docker 660
        "RT-09": Status.WARN,  # runs as root
    }
    assert {k: f.status for k, f in got.items()} == want
    assert got["RT-02"].evidence[0].where == "dockerd --icc=false"
    assert got["RT-04"].evidence[0].where.endswith("daemon.json")
    assert scene.workload("acme-web").key in got["RT-01"].workloads and "acme" in got["RT-01"].tenants


def test_container_checks_on_real_docker_containers(scene: Scene):
    hs = placed(scene)
    fs = _findings(hs, "CTR-02", "CTR-03", "CTR-07", "CTR-08")
    bad = {(f.check_id, w) for f in fs if f.status in (Status.FAIL, Status.WARN) for w in f.workloads}
    k = {s: scene.workload(s).key for s in scene.ids}
    assert ("CTR-02", k["risky"]) in bad  # --cap-add SYS_ADMIN
    assert ("CTR-08", k["risky"]) in bad  # the docker socket mounted
    assert ("CTR-03", k["risky"]) in bad  # --pid host
    assert ("CTR-03", k["hostnet"]) in bad  # --network host
    assert ("CTR-07", k["risky"]) in bad  # no limits
    for cid in ("CTR-02", "CTR-03", "CTR-07", "CTR-08"):
        assert (cid, k["hardened"]) not in bad, cid


# ------------------------------------------------------------------ the same over SSH


async def test_over_ssh_the_api_gives_the_same_containers_and_daemon(scene: Scene, sshd: Sshd):
    """A real sshd on loopback: the API is read by one remote python3 program per request
    batch (and by curl where there is no python3); the answers equal the local ones."""
    remote = ssh_host(sshd)
    try:
        view = await observe_runtimes(remote)
        local = await observe_runtimes(LocalHost(libvirt_uri=None))

        def mine(v: RuntimeView) -> list[object]:
            return sorted(
                (c.id, c.name, c.labels, c.networks, c.ports)
                for c in v.containers.values()
                if c.daemon == scene.env.socket
            )

        assert mine(view) == mine(local) and len(mine(view)) >= len(scene.ids)
        (rd,) = [d for d in view.daemons if d.socket == scene.env.socket]
        (ld,) = [d for d in local.daemons if d.socket == scene.env.socket]
        assert rd == ld
        via_curl = await runtime_api._get_curl(remote, scene.env.socket, "/containers/json", 10.0)
        assert via_curl.ok and scene.ids["acme-web"] in via_curl.body
        with pytest.raises(runtime_api.ApiError):
            await runtime_api.get_many(remote, str(scene.env.dir / "absent.sock"), ["/version"])
    finally:
        await remote.close()


# ------------------------------------------------------------------ events before polls


async def test_docker_events_wake_the_probe_and_unchanged_containers_are_not_inspected_again(scene: Scene):
    probe = ContainerProbe()
    woke = asyncio.Event()
    loop = asyncio.get_running_loop()
    probe.attach(lambda: loop.call_soon_threadsafe(woke.set))
    host = LocalHost(libvirt_uri=None)
    sock = scene.env.socket
    try:
        await probe.collect(host)
        feed = probe.feed()
        assert feed.mode == "events" and sock in feed.detail
        first = {i: v[1] for (s, i), v in probe._inspected.items() if s == sock}
        assert set(first) >= set(scene.ids.values())
        woke.clear()
        late = await asyncio.to_thread(scene.env.run, "late", "--label", "com.example.tenant=acme")
        await asyncio.wait_for(woke.wait(), 10)  # the `docker run` itself woke the probe
        scan = await probe.collect(host)
        assert scene.name("late") in {w.name for w in scan.workloads}
        again = {i: v[1] for (s, i), v in probe._inspected.items() if s == sock}
        assert all(again[i] == first[i] for i in scene.ids.values())  # reused, not inspected again
        assert late in again and late not in first
    finally:
        await probe.close()
    assert probe._followers == {} and probe.feed().mode == "polled"


async def test_over_ssh_one_remote_command_follows_the_daemons_events(scene: Scene, sshd: Sshd):
    probe = ContainerProbe()
    woke = asyncio.Event()
    loop = asyncio.get_running_loop()
    probe.attach(lambda: loop.call_soon_threadsafe(woke.set))
    remote = ssh_host(sshd)
    try:
        await probe.collect(remote)
        assert probe.feed().mode == "events" and scene.env.socket in probe.feed().detail
        await asyncio.sleep(0.5)  # the remote program connects to the socket
        woke.clear()
        await asyncio.to_thread(scene.env.run, "late-ssh")
        await asyncio.wait_for(woke.wait(), 10)
        scan = await probe.collect(remote)
        assert scene.name("late-ssh") in {w.name for w in scan.workloads}
    finally:
        await probe.close()
        await remote.close()
    assert probe.feed().mode == "polled"


async def test_a_daemon_that_accepts_but_never_answers_is_listed_with_why(tmp_path):
    """A real unix socket that accepts and stays silent stands in for a hung daemon: its API is
    given up after the deadline, the daemon is still listed, the inventory is not held up."""
    import socket as socketlib
    import time

    from probes.inventory.runtimes import read_api_bounded
    from probes.model import RuntimeDaemon

    path = str(tmp_path / "hung.sock")
    srv = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
    srv.bind(path)
    srv.listen(16)
    try:
        t0 = time.monotonic()
        d, cs = await read_api_bounded(
            LocalHost(libvirt_uri=None), RuntimeDaemon("docker", path), deadline=0.5
        )
        assert time.monotonic() - t0 < 3
        assert cs == [] and d.api == "no answer within 0.5 s" and d.socket == path
    finally:
        srv.close()


def test_tenantscope_check_on_this_host_sees_the_docker_tenants(scene: Scene, tmp_path, capsys):
    """The whole composition, as a user runs it: `tenantscope check --format json --config F`
    on this machine while the module's dockerd runs (the session registers the probes)."""
    import json

    from tui.cli import main

    cfg = tmp_path / "tenants.toml"
    cfg.write_text(
        '[[tenant]]\nname = "acme"\ncontainers = ["com.example.tenant=acme"]\n\n'
        '[[tenant]]\nname = "globex"\ncontainers = ["com.example.tenant=globex"]\n'
    )
    rc = main(["check", "--format", "json", "--config", str(cfg)])
    doc = json.loads(capsys.readouterr().out)
    assert rc in (0, 1)
    res = doc["results"]
    net02 = [
        r
        for r in res
        if r["check_id"] == "NET-02" and f"docker network {scene.name('shared')})" in r["summary"]
    ]
    assert len(net02) == 1 and net02[0]["status"] == "fail" and {"acme", "globex"} <= set(net02[0]["tenants"])
    rt = [r for r in res if r["check_id"] == "RT-02" and scene.env.socket in r["summary"]]
    assert [r["status"] for r in rt] == ["pass"]
    assert not [r for r in res if r["summary"].startswith("check failed")]
