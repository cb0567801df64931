"""Active probes of an SSH host through the remote python3 helper (probes/network/
remote_prober.py): the same answers as the local prober, over a real sshd on 127.0.0.1, on a
real lab of namespaces and bridges; the exec-ping fallback says why it was used."""

from __future__ import annotations

import asyncio
import json

import pytest

from probes.hosts.local import LocalHost
from probes.network import prober, remote
from probes.network.measure import SourceMeasurement, SourceProbe
from probes.network.remote_prober import MAX_ARG, RemoteProber, _frame, config_args
from probes.network.topology import TopologyProbe
from tests.fixtures.netlab import NetLab, netlab  # noqa: F401
from tests.fixtures.sshd import ssh_host, sshd  # noqa: F401
from tests.helpers import needs_root, needs_tool

T = 1.0  # generous: a late reply must not look like isolation on a loaded machine


def cells(rm) -> dict[tuple[str, str, str], str]:
    return {(r.src, r.address, r.method): r.outcome for r in rm.results}


@needs_root
@needs_tool("ip")
async def test_remote_helper_over_ssh_gives_the_local_answers(netlab: NetLab, sshd) -> None:
    await asyncio.to_thread(netlab.move, "tsf-acme-db", "tsf-brg")
    topo = await TopologyProbe().collect(LocalHost(netlab.host, libvirt_uri=None))
    hs = netlab.state(topo)
    host = ssh_host(sshd)
    try:
        over_ssh = await remote.probe_remote(host, hs, timeout=T, ports=(9,))
        local = await prober.probe_matrix(hs, timeout=T, ports=(9,))
    finally:
        await host.close()
    assert not [e for e in over_ssh.errors if "ip netns exec" in e]  # no fallback
    assert cells(over_ssh) == cells(local)
    got = cells(over_ssh)
    db, web = netlab.key("tsf-acme-db"), netlab.key("tsf-acme-web")
    # what exec-ping cannot tell: L2 separation, and a TCP port that answers with a reset
    assert got[(db, "10.71.2.1", "icmp")] == "reply" and got[(web, "10.71.2.1", "icmp")] == "no-arp"
    assert got[(db, "10.71.2.1", "tcp:9")] == "refused"
    assert over_ssh.ports == (9,)


@needs_root
@needs_tool("ip")
async def test_host_without_python3_falls_back_to_exec_ping_and_says_why(netlab: NetLab, sshd) -> None:
    topo = await TopologyProbe().collect(LocalHost(netlab.host, libvirt_uri=None))
    hs = netlab.state(topo)
    host = ssh_host(sshd)
    try:
        rm = await remote.probe_remote(host, hs, timeout=T, python="tse-no-python3")
    finally:
        await host.close()
    assert rm.errors[0].startswith("no tse-no-python3 on the host: probed with `ip netns exec ... ping`")
    assert rm.results and {r.outcome for r in rm.results if r.method == "icmp"} <= {"reply", "timeout"}


def test_big_runs_are_split_into_arguments_that_fit_and_keep_their_order() -> None:
    reqs = [
        SourceProbe(f"/run/netns/tss-{i}", 0, tuple(f"10.9.{j // 250}.{j % 250}" for j in range(300)), (22,))
        for i in range(120)
    ]
    args = config_args(reqs)
    assert len(args) > 1 and all(len(a) <= MAX_ARG + 2000 for a in args)
    seen = []
    for a in args:
        cfg = json.loads(a)
        for d in cfg["requests"]:
            assert [cfg["table"][k] for k in d["addresses"]] == list(reqs[d["i"]].addresses)
            seen.append(d["i"])
    assert seen == list(range(120))


def test_hostile_or_broken_frames_are_dropped_not_raised() -> None:
    good = '["M",0,{"echoes":[],"tcp":[],"neighbours":[],"error":"x"}]'
    assert _frame(good) == ("M", (0, SourceMeasurement(error="x")))
    for bad in (
        '["M",0,{"echoes":[{"address":1}],"tcp":[],"neighbours":[],"error":""}]',  # wrong type
        '["M",x,{}]',
        '["M",0,{"echoes":"[red]"',
        "\x1b]0;title\x07",
        "[1,2,3]",
        "",
    ):
        assert _frame(bad) == ("", None), bad
    assert _frame('["X","boom"]') == ("X", "boom") and _frame('["D"]') == ("D", None)


@pytest.mark.parametrize("python", ["tse-no-python3"])
async def test_unavailable_says_why(python: str) -> None:
    assert await RemoteProber(LocalHost("tse", libvirt_uri=None), python).unavailable() == (
        f"no {python} on the host"
    )
    assert await RemoteProber(LocalHost("tse", libvirt_uri=None)).unavailable() == ""


def test_the_shipped_program_is_stdlib_only_python38_and_runs() -> None:
    """The remote helper is the source of nsenter.py, neigh.py, icmp.py and measure.py: an
    import of another probes module there, or syntax or asyncio API newer than Python 3.8,
    would break every remote probe run (hosts run older Pythons than this one)."""
    import ast
    import subprocess
    import sys

    from probes.network import icmp, measure, neigh, nsenter
    from probes.network.remote_prober import PROGRAM

    shipped = {"probes.network.icmp", "probes.network.neigh", "probes.network.nsenter"}
    for mod in (nsenter, neigh, icmp, measure):
        for node in ast.walk(ast.parse(open(mod.__file__).read())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("probes"):
                assert node.module in shipped, f"{mod.__name__} imports {node.module}"
            names = [a.name for a in node.names] if isinstance(node, (ast.Import, ast.ImportFrom)) else []
            mods = names if isinstance(node, ast.Import) else [node.module or ""] if names else []
            for m in mods:
                top = m.split(".")[0]
                assert top == "probes" or top in sys.stdlib_module_names, f"{mod.__name__} imports {m}"
    ast.parse(PROGRAM, feature_version=(3, 8))
    for newer in ("asyncio.timeout(", "TaskGroup", "except*"):
        assert newer not in PROGRAM, newer
    r = subprocess.run(
        [sys.executable, "-c", PROGRAM, '{"table": [], "requests": [], "concurrency": 1}'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.stdout == '["D"]\n', r.stderr[-500:]


@needs_root
@needs_tool("ip")
async def test_guest_probes_of_an_ssh_host_never_run_the_system_ssh(
    netlab: NetLab, sshd, tmp_path, monkeypatch
):
    """An SSH host's libvirt URI (qemu+ssh://...) is for display: guest probes say why they
    cannot run instead of opening it (which would start the system ssh)."""
    trap, marker = tmp_path / "trap", tmp_path / "ssh-ran"
    trap.mkdir()
    (trap / "ssh").write_text(f'#!/bin/sh\necho "$@" >> {marker}\nexit 255\n')
    (trap / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{trap}:/usr/sbin:/usr/bin:/sbin:/bin")
    topo = await TopologyProbe().collect(LocalHost(netlab.host, libvirt_uri=None))
    hs = netlab.state(topo)
    host = ssh_host(sshd, forward_libvirt=True, libvirt_uri=f"qemu+ssh://127.0.0.1:{sshd.port}/system")
    try:
        rm = await prober.probe_host(host, hs, timeout=T, sources=("namespace", "guest"))
    finally:
        await host.close()
    assert any(e.startswith("guest probes: this SSH host's libvirt is reached read-only") for e in rm.errors)
    assert rm.results and not marker.exists()
