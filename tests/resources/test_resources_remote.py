"""Network-namespace counters (locally through setns, over SSH through `ip -all netns exec`)
and cgroup counters over a real SSH connection to a real sshd on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import subprocess

import pytest

from probes.hosts.local import LocalHost
from probes.model import ContainerDetails, HostState, NetnsDetails, Workload, WorkloadKind
from probes.resources.model import ResourceSnapshot
from probes.resources.probe import ResourcesProbe
from tests.fixtures.cgroups import BURN, IDLE, cgroup_factory  # noqa: F401
from tests.fixtures.sshd import ssh_host, sshd  # noqa: F401
from tests.helpers import needs_root, needs_tool


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@pytest.fixture
def netns_pair():
    """A namespace tsh-ns-PID with a veth to the host (10.251.x.1 <-> .2); removed by name."""
    ns, host_if, ns_if = f"tsh-ns-{os.getpid()}", f"tshh{os.getpid() % 10**6}", f"tshn{os.getpid() % 10**6}"
    net = f"10.251.{os.getpid() % 250}"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", ns)
        sh("ip", "addr", "add", f"{net}.1/30", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        sh("ip", "-n", ns, "addr", "add", f"{net}.2/30", "dev", ns_if)
        sh("ip", "-n", ns, "link", "set", ns_if, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield ns, f"{net}.2"
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def ping(addr: str, n: int = 20, size: int = 1000) -> None:
    subprocess.run(
        ["ping", "-q", "-c", str(n), "-i", "0.01", "-s", str(size), "-W", "1", addr],
        capture_output=True,
        timeout=20,
    )


@needs_root
@needs_tool("ip", "ping")
async def test_named_netns_counters_locally(netns_pair):
    ns, addr = netns_pair
    host = LocalHost("tsh-local", libvirt_uri=None)
    w = Workload(WorkloadKind.NETNS, ns, host.name, netns=NetnsDetails(path=f"/run/netns/{ns}"))
    p = ResourcesProbe(libvirt=False, host_totals=False)
    hs = p.merge(HostState(host.host, workloads=(w,)), ResourceSnapshot())  # inventory known
    hs = p.merge(hs, await p.collect(host))
    assert hs.samples.sample(w.key).net_rx_bps is None  # first sample
    ping(addr)
    await asyncio.sleep(0.2)
    hs = p.merge(hs, await p.collect(host))
    s = hs.samples.sample(w.key)
    assert s.source == "netns" and s.net_rx_bps > 1000 and s.net_tx_bps > 1000, s
    # the reader thread came back to our own namespace
    assert os.readlink("/proc/self/ns/net") == os.readlink(f"/proc/{os.getpid()}/task/{os.getpid()}/ns/net")
    await p.close()


@needs_root
@needs_tool("ip", "ping")
async def test_cgroups_host_totals_and_netns_over_ssh(sshd, cgroup_factory, netns_pair):
    ns, addr = netns_pair
    cg = cgroup_factory()
    init = cg.spawn(IDLE)
    cg.spawn(BURN)
    host = ssh_host(sshd)
    try:
        c = Workload(
            WorkloadKind.CONTAINER,
            cg.name,
            host.name,
            container=ContainerDetails(cgroup=cg.path, init_pid=init),
        )
        n = Workload(WorkloadKind.NETNS, ns, host.name, netns=NetnsDetails(path=f"/run/netns/{ns}"))
        p = ResourcesProbe(libvirt=False)
        hs = p.merge(HostState(host.host, workloads=(c, n)), ResourceSnapshot())  # inventory known
        hs = p.merge(hs, await p.collect(host))
        await asyncio.sleep(0.5)
        ping(addr)
        hs = p.merge(hs, await p.collect(host))
        snap = hs.samples
        assert snap.problems == ()
        s = snap.sample(c.key)
        assert s.source.startswith("cgroup v1") and s.cpu_pct is not None and s.cpu_pct > 20, s
        assert s.pids == 2 and s.live is not None and s.live.pids_known
        assert snap.sample(n.key).net_rx_bps > 1000
        t = snap.totals
        assert t.source == "/proc" and t.cpus == os.cpu_count() and t.mem_total > 0
        assert t.cpu_pct is not None and 0 <= t.cpu_pct <= 100
    finally:
        await host.close()
