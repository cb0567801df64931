"""Issue 18 item 2 (a fleet in one console): a libvirt-view host keeps one libvirt connection
for its networks across polls, and stopping a session twice (the app stops its source on exit,
the owner again) closes nothing twice.

Real parts: libvirt's test driver (tests/data/fleets/*.xml) through the real Engine, probes
and deriver."""

from __future__ import annotations

import asyncio
import logging

import pytest

from probes.engine import Engine
from probes.hosts.libvirt_view import LibvirtViewHost
from probes.network.libvirtnet import NetworkReader
from probes.session import Options, Session, make_deriver, make_probes
from tests.helpers import DATA

URI = f"test://{DATA / 'fleets' / 'two-tenants-one-bridge.xml'}"

pytest.importorskip("libvirt")


async def test_networks_read_over_one_kept_connection():
    reader = NetworkReader()
    first = await reader.read(URI)
    conn = reader._conn
    again = await reader.read(URI)
    assert first and again == first  # the fleet file's networks, twice
    assert conn is not None and reader._conn is conn  # not a new connection per read
    await reader.close()
    assert reader._conn is None
    assert await reader.read(URI) == ()  # closed: reads nothing, opens nothing
    await reader.close()  # a second close does nothing


async def test_session_stopped_twice_closes_once(caplog):
    opts = Options(interval=0.5)
    hosts = [LibvirtViewHost(URI, name=f"tsfp-hv{i}") for i in range(2)]
    engine = Engine(hosts, make_probes(opts), make_deriver(opts), lead=("libvirt",))
    session = Session(opts, engine=engine)
    session.start()
    for _ in range(100):
        if all(h.workloads for h in session.state.hosts):
            break
        await asyncio.sleep(0.05)
    assert all(h.workloads for h in session.state.hosts)
    with caplog.at_level(logging.ERROR):
        await session.stop()
        await session.stop()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_a_hosts_probes_share_one_libvirt_connection_and_thread():
    """Inventory, domain statistics and networks of one host: one connection (the
    inventory's), one thread; the others open none of their own while it is up, and open
    their own again when it is gone (libvirt_link.py)."""
    import threading

    from probes.inventory.libvirt import LibvirtProbe
    from probes.network.topology import TopologyProbe
    from probes.resources.probe import ResourcesProbe

    host = LibvirtViewHost(URI, name="tsfp-link")
    probes = {p.name: p for p in make_probes(Options(interval=0.5))(host)}
    inv, res, topo = probes["libvirt"], probes["resources"], probes["topology"]
    assert (
        isinstance(inv, LibvirtProbe) and isinstance(res, ResourcesProbe) and isinstance(topo, TopologyProbe)
    )
    engine = Engine([host], lambda h: list(probes.values()), make_deriver(Options()))
    try:
        before = {t.name for t in threading.enumerate()}
        st = await engine.refresh_once()
        hs = st.hosts[0]
        assert hs.workloads and hs.samples is not None and hs.samples.samples  # figures came through
        assert hs.topology is not None and hs.topology.libvirt_networks  # networks too
        link = inv._link
        assert link is not None and link.borrow(URI) is inv._conn is not None
        assert res._dom is not None and res._dom._conn is None  # borrowed, none of its own
        assert topo._networks._conn is None
        new = {t.name for t in threading.enumerate()} - before
        assert len([n for n in new if n.startswith("libvirt")]) == 1, new  # one thread for the three
        await asyncio.get_running_loop().run_in_executor(inv._thread, inv._disconnect)
        assert link.borrow(URI) is None
        await engine.run_probe_now("tsfp-link", res)  # the inventory's is gone: its own again
        assert res._dom._conn is not None
    finally:
        await engine.stop()
