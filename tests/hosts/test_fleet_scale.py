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
