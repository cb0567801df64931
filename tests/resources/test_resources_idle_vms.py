"""Shut-off domains are not asked for again: when no domain ran at the resources probe's last
bulk call and the inventory has changed nothing since, the probe keeps those readings instead
of a libvirt call (at idle, one call per host every 2 s through each SSH host's forward); a
domain that starts changes the inventory and is read at once, and limits runs still call.
libvirt's test driver (the real libvirt API, a simulated hypervisor) with one domain, behind
a LibvirtLink as the inventory shares its connection, so the test can start the domain."""

from __future__ import annotations

import os

import pytest

from probes.hosts.local import LocalHost
from probes.inventory.libvirt_link import LibvirtLink
from probes.model import Host, HostState, Workload, WorkloadKind
from probes.resources import domstats
from probes.resources.model import ResourceSnapshot
from probes.resources.probe import ResourcesProbe

libvirt = pytest.importorskip("libvirt")

UUID = "6a5a5a5a-0000-4000-8000-00000000b001"
NODE = f"""<node><domain type='test'><name>tsr-idle</name><uuid>{UUID}</uuid>
<memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain></node>"""


async def test_shut_off_domains_are_read_again_only_when_the_inventory_changes(tmp_path, monkeypatch):
    node = tmp_path / "node.xml"
    node.write_text(NODE)
    uri = f"test://{os.path.abspath(node)}"
    conn = libvirt.open(uri)  # the test's own, read-write: it starts the domain
    dom = conn.lookupByName("tsr-idle")
    dom.destroy()
    link = LibvirtLink("tsr")
    link.set(conn, uri)
    calls: list[bool] = []
    real = domstats.DomainStats.collect
    monkeypatch.setattr(
        domstats.DomainStats, "collect", lambda self, lim: (calls.append(lim), real(self, lim))[1]
    )
    host = LocalHost("tsr-hv", libvirt_uri=uri)
    probe = ResourcesProbe(host_totals=False, link=link, limits_every=1000)
    vm = Workload(WorkloadKind.VM, "tsr-idle", "tsr-hv", uuid=UUID, state="shut off")
    st = HostState(Host("tsr-hv", libvirt_uri=uri), workloads=(vm,))
    for _ in range(4):  # (the probe takes the inventory's workloads from its fourth merge)
        probe.merge(st, await probe.collect(host))

    def note(snap: ResourceSnapshot) -> str:
        [s] = [s for s in snap.samples if s.workload == vm.key]
        return s.note

    try:
        assert calls == [True]  # limits at the first run; then idle: no more calls
        await probe.collect(host)
        assert calls == [True, False]  # the inventory's workloads came (4th merge): one call
        await probe.collect(host)
        assert len(calls) == 2
        dom.create()  # started, but the inventory has not said so yet
        snap = await probe.collect(host)
        off = note(snap)
        assert len(calls) == 2 and "shut off" in off  # still the shut-off reading
        running = Workload(WorkloadKind.VM, "tsr-idle", "tsr-hv", uuid=UUID, state="running")
        probe.merge(HostState(st.host, workloads=(running,)), snap)
        snap = await probe.collect(host)
        assert len(calls) == 3 and note(snap) != off  # read at once: running
        await probe.collect(host)
        await probe.collect(host)
        assert len(calls) == 5  # a running domain is read at every run
        dom.destroy()
        probe.merge(HostState(st.host, workloads=(vm,)), await probe.collect(host))
        await probe.collect(host)  # (the inventory changed: a call, shut off)
        n = len(calls)
        probe.limits_every = 3
        for _ in range(6):
            await probe.collect(host)
        assert calls[n:] == [True, True]  # idle again: no call but when limits are due
    finally:
        await probe.close()
        link.drop(conn)
        conn.close()
