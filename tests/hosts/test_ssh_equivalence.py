"""The same machine seen through LocalHost and through SSHHost to 127.0.0.1 gives equal model
objects: network namespaces (inventory) and links (topology: netlink locally, `ip -j` over
SSH). Namespaces with shell metacharacters in their names are data, never shell text."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Iterator

import pytest

from probes.hosts.local import LocalHost
from probes.inventory import netns
from probes.network import topology
from tests.fixtures.sshd import ssh_host, sshd  # noqa: F401
from tests.helpers import needs_root, needs_tool

pytestmark = [needs_root, needs_tool("ip")]

TAG = f"tse{os.getpid() % 100000}"
PWNED = f"tse-pwned-{os.getpid()}"
HOSTILE = (f"tse-x;touch {PWNED}", f"tse-$(touch {PWNED})", f"tse-`touch {PWNED}`-{TAG}")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _wait_up(links: list[tuple[str, str]], within: float = 10.0) -> None:
    import json
    import time

    end = time.monotonic() + within
    while time.monotonic() < end:
        states = []
        for ns, dev in links:
            r = subprocess.run(
                ["ip", *(["-n", ns] if ns else []), "-j", "link", "show", "dev", dev],
                capture_output=True,
                text=True,
                timeout=10,
            )
            states.append(json.loads(r.stdout or "[{}]")[0].get("operstate"))
        if all(st == "UP" for st in states):
            return
        time.sleep(0.05)


@pytest.fixture(scope="module")
def lab() -> Iterator[dict[str, str]]:
    """Two namespaces joined by a veth pair, one of them also on a bridge in the root namespace,
    plus empty namespaces with hostile names. Everything is removed by name at the end."""
    ns_a, ns_b = f"{TAG}-a", f"{TAG}-b"
    br, host_end = f"{TAG}br", f"{TAG}h"
    names = [ns_a, ns_b, *HOSTILE]
    try:
        for n in names:
            _ip("netns", "add", n)
        _ip("link", "add", f"{TAG}a", "netns", ns_a, "type", "veth", "peer", "name", f"{TAG}b", "netns", ns_b)
        _ip("link", "add", br, "type", "bridge")
        _ip("link", "add", host_end, "type", "veth", "peer", "name", f"{TAG}p", "netns", ns_a)
        _ip("link", "set", host_end, "master", br)
        # no IPv6 link-local addresses: they appear some time after "up", and the two reads
        # must see the same thing
        for ns, dev in (("", br), ("", host_end), (ns_a, f"{TAG}a"), (ns_b, f"{TAG}b"), (ns_a, f"{TAG}p")):
            _ip(*(["-n", ns] if ns else []), "link", "set", dev, "addrgenmode", "none")
        for dev in (br, host_end):
            _ip("link", "set", dev, "up")
        _ip("-n", ns_a, "addr", "add", "10.251.7.1/30", "dev", f"{TAG}a")
        _ip("-n", ns_b, "addr", "add", "10.251.7.2/30", "dev", f"{TAG}b")
        _ip("-n", ns_a, "addr", "add", "10.251.8.1/24", "dev", f"{TAG}p")
        for ns, dev in ((ns_a, f"{TAG}a"), (ns_b, f"{TAG}b"), (ns_a, f"{TAG}p"), (ns_a, "lo")):
            _ip("-n", ns, "link", "set", dev, "up")
        # operstate settles asynchronously after "up": wait, so both reads see the same
        _wait_up([("", br), ("", host_end), (ns_a, f"{TAG}a"), (ns_b, f"{TAG}b"), (ns_a, f"{TAG}p")])
        yield {"a": ns_a, "b": ns_b, "bridge": br}
    finally:
        for dev in (host_end, br):
            subprocess.run(["ip", "link", "del", dev], capture_output=True, timeout=10)
        for n in names:
            subprocess.run(["ip", "netns", "del", n], capture_output=True, timeout=10)


def _ours(name: str) -> bool:
    return name.startswith(TAG) or name in HOSTILE


def _normalise(obj, host: str):
    """The same object with the host name replaced (the only thing that should differ)."""
    if dataclasses.is_dataclass(obj) and hasattr(obj, "host") and obj.host == host:
        obj = dataclasses.replace(obj, host="H")
    return obj


async def test_netns_inventory_is_equal_through_both_transports(lab, sshd):
    local, remote = LocalHost("tse-local", libvirt_uri=None), ssh_host(sshd)
    try:
        lw = [_normalise(w, local.name) for w in await netns.discover(local) if _ours(w.name)]
        rw = [_normalise(w, remote.name) for w in await netns.discover(remote) if _ours(w.name)]
    finally:
        await remote.close()
    assert sorted(w.name for w in lw) == sorted([lab["a"], lab["b"], *HOSTILE])
    assert sorted(lw, key=lambda w: w.name) == sorted(rw, key=lambda w: w.name)
    a = next(w for w in rw if w.name == lab["a"])
    assert {x for x in a.netns.addresses if "." in x} == {"10.251.7.1/30", "10.251.8.1/24"}
    for where in (os.path.expanduser("~"), os.getcwd(), "/", "/tmp"):
        assert not os.path.exists(os.path.join(where, PWNED)), f"a namespace name ran as shell in {where}"


async def test_topology_is_equal_netlink_locally_and_ip_json_over_ssh(lab, sshd):
    local, remote = LocalHost("tse-local", libvirt_uri=None), ssh_host(sshd)
    probe = topology.TopologyProbe()
    try:
        lt = await probe.collect(local)
        rt = await probe.collect(remote)
    finally:
        await remote.close()
    assert lt.source != rt.source  # really two code paths (netlink and ip -j)

    def links(t):
        return sorted(
            (lk for lk in t.links if _ours(lk.netns) or lk.name.startswith(TAG)),
            key=lambda lk: (lk.netns, lk.name),
        )

    def spaces(t):
        return sorted((n for n in t.namespaces if _ours(n.name)), key=lambda n: n.name)

    ll, rl = links(lt), links(rt)
    assert {(lk.netns, lk.name) for lk in ll} >= {
        (lab["a"], f"{TAG}a"),
        (lab["b"], f"{TAG}b"),
        ("", lab["bridge"]),
        ("", f"{TAG}h"),
    }
    assert [dataclasses.asdict(x) for x in ll] == [dataclasses.asdict(x) for x in rl]
    assert spaces(lt) == spaces(rt)
    assert not any(os.path.exists(os.path.join(w, PWNED)) for w in (os.path.expanduser("~"), os.getcwd()))


async def test_a_full_refresh_gives_the_same_workloads_tenants_and_findings(lab, sshd, tmp_path):
    """The 'done when' of the issue: `--host ssh://root@127.0.0.1:PORT` shows what a local run
    shows (libvirt through the test driver on both sides: qemu+ssh would need the system ssh)."""
    import re

    from probes.session import Options, make_engine

    cfg = tmp_path / "ssh_config"
    cfg.write_text("")
    states = []
    for opts in (
        Options(libvirt_uri="test:///default"),
        Options(
            libvirt_uri="test:///default",
            hosts=(sshd.target,),
            known_hosts=sshd.known_hosts,
            identity=(sshd.client_key,),
            ssh_config=str(cfg),
        ),
    ):
        engine = make_engine(opts)
        try:
            states.append(await engine.refresh_once())
        finally:
            await engine.stop()
    local, remote = states
    assert remote.hosts[0].host.kind == "ssh" and remote.hosts[0].connection("ssh").state == "up"

    def norm(st, text: str) -> str:
        return re.sub(rf"(?<![\w.:/-]){re.escape(st.hosts[0].host.name)}(?![\w.:-])", "H", text)

    # other tests on this machine add and remove their own namespaces meanwhile: compare ours,
    # and the findings about ours or about the host as a whole
    def workloads(st):
        return sorted((w.kind, w.name, w.tenant, w.placed_by) for w in st.workloads() if _ours(w.name))

    def findings(st):
        return sorted(
            (f.check_id, f.status, norm(st, f.summary))
            for f in st.findings
            if (f.area == "host" and not f.workloads)
            or (f.workloads and all(_ours(k.split("/", 2)[-1]) for k in f.workloads))
        )

    assert workloads(local) == workloads(remote)
    assert {n for _, n, _, _ in workloads(remote)} >= {lab["a"], lab["b"], *HOSTILE}
    assert findings(remote)
    # HOST-03 and HOST-11 judge the machine's QEMU processes: when another test's guest started
    # or stopped between the two refreshes they differ for that reason alone
    procs = [
        {p.pid for p in st.hosts[0].facts.hypervisor_processes} if st.hosts[0].facts else set()
        for st in (local, remote)
    ]
    if procs[0] != procs[1]:
        local_f = [f for f in findings(local) if f[0] not in ("HOST-03", "HOST-11")]
        remote_f = [f for f in findings(remote) if f[0] not in ("HOST-03", "HOST-11")]
        assert local_f and local_f == remote_f
        return
    assert findings(local) == findings(remote)
