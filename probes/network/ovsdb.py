"""Open vSwitch through one long-lived OVSDB session (a monitor), instead of `ovs-vsctl` per poll.

The client is Open vSwitch's own Python library (the `ovs` package, ovs.db.idl: the IDL
that neutron and ovsdbapp use): it asks the server for the schema, monitors the Bridge, Port
and Interface columns that the checks read, keeps a replica up to date from the server's
update notifications, reconnects with back-off, and answers the server's echo probes. It is a
blocking library with its own poll loop, so it runs in one daemon thread; each change is
turned into the same OvsBridge tuples that `ovs-vsctl --format=json list` gives (ovs.build),
handed to the event loop, and wakes the topology probe. Local only: over SSH the topology
probe runs `ovs-vsctl` as before.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from probes.network.model import OvsBridge, OvsInterface, OvsPort

log = logging.getLogger(__name__)

COLUMNS = {
    "Bridge": ["name", "datapath_type", "ports"],
    "Port": ["name", "tag", "trunks", "vlan_mode", "interfaces"],
    "Interface": ["name", "type", "ofport", "mac_in_use", "external_ids", "error"],
}
RETRY_MAX = 30.0  # seconds between attempts to reach a server that is not there


def _one(v: Any) -> Any:
    """An optional column in the IDL: a list of 0 or 1 values."""
    if isinstance(v, list):
        return v[0] if len(v) == 1 else None
    return v


def bridges_from_idl(tables: Any) -> tuple[OvsBridge, ...]:
    """The monitored rows as OvsBridges, exactly as ovs.build makes them from ovs-vsctl."""
    out: list[OvsBridge] = []
    for b in sorted(tables["Bridge"].rows.values(), key=lambda r: str(r.name)):
        ports: list[OvsPort] = []
        for p in b.ports:
            tag = _one(p.tag)
            ifaces: list[OvsInterface] = []
            for i in p.interfaces:
                ofport = _one(i.ofport)
                ifaces.append(
                    OvsInterface(
                        name=str(i.name),
                        type=str(i.type or ""),
                        ofport=int(ofport) if isinstance(ofport, int) else None,
                        mac=str(_one(i.mac_in_use) or ""),
                        external_ids=tuple(sorted((str(k), str(v)) for k, v in dict(i.external_ids).items())),
                        error=str(_one(i.error) or ""),
                    )
                )
            ports.append(
                OvsPort(
                    name=str(p.name),
                    bridge=str(b.name),
                    tag=int(tag) if isinstance(tag, int) else None,
                    trunks=tuple(sorted(int(x) for x in p.trunks)),
                    vlan_mode=str(_one(p.vlan_mode) or ""),
                    interfaces=tuple(ifaces),
                )
            )
        out.append(
            OvsBridge(
                name=str(b.name),
                datapath_type=str(b.datapath_type or ""),
                ports=tuple(sorted(ports, key=lambda p: p.name)),
            )
        )
    return tuple(out)


class OvsMonitor:
    """A monitor of one OVSDB server; `snapshot` is (bridges, state) as ovs.read_ovs gives."""

    def __init__(self, remote: str, on_change: Callable[[], None]) -> None:
        self.remote = remote
        self._on_change = on_change
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self.snapshot: tuple[tuple[OvsBridge, ...], str] = ((), "error: connecting to the OVSDB server")
        self.connected = False
        self.updates = 0  # changes received (tests, bench)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._thread is not None:
            return
        self._loop = loop
        self._thread = threading.Thread(target=self._main, name="tsf-ovsdb", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        try:
            os.write(self._w, b"x")
        except OSError:
            pass
        t, self._thread = self._thread, None
        if t is not None:
            t.join(2.0)
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._r = self._w = -1

    # -- the thread

    def _deliver(self, snap: tuple[tuple[OvsBridge, ...], str], connected: bool) -> None:
        self.snapshot, self.connected = snap, connected
        self.updates += 1
        self._on_change()

    def _publish(self, snap: tuple[tuple[OvsBridge, ...], str], connected: bool) -> None:
        loop = self._loop
        if loop is None or self._stop.is_set():
            return
        try:
            loop.call_soon_threadsafe(self._deliver, snap, connected)
        except RuntimeError:  # the loop is closed
            self._stop.set()

    def _schema(self) -> Any:
        import ovs.db.idl
        import ovs.jsonrpc
        import ovs.stream

        err, stream = ovs.stream.Stream.open_block(ovs.stream.Stream.open(self.remote), timeout=3000)
        if err:
            raise OSError(err, os.strerror(err))
        rpc = ovs.jsonrpc.Connection(stream)
        try:
            err, reply = rpc.transact_block(
                ovs.jsonrpc.Message.create_request("get_schema", ["Open_vSwitch"])
            )
        finally:
            rpc.close()
        if err or reply is None or reply.error is not None:
            raise OSError(err or 0, f"get_schema: {os.strerror(err) if err else reply and reply.error}")
        helper = ovs.db.idl.SchemaHelper(schema_json=reply.result)
        for table, cols in COLUMNS.items():
            helper.register_columns(table, cols)
        return helper

    def _wait(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _main(self) -> None:
        try:
            import ovs.db.idl
            import ovs.poller
        except ImportError:
            self._publish(((), "error: the ovs Python package is not installed"), False)
            return
        delay = 1.0
        helper = None
        while not self._stop.is_set() and helper is None:
            try:
                helper = self._schema()
            except Exception as e:  # not there (yet): say so, retry with back-off
                self._publish(((), f"error: {self.remote}: {e}"[:200]), False)
                self._wait(delay)
                delay = min(delay * 2, RETRY_MAX)
        if helper is None:
            return
        idl = ovs.db.idl.Idl(self.remote, helper)
        seq = -1
        connected = False
        try:
            while not self._stop.is_set():
                idl.run()
                now = bool(idl._session.is_connected()) and idl.has_ever_connected()
                if idl.change_seqno != seq or now != connected:
                    seq, connected = idl.change_seqno, now
                    if connected:
                        snap = (bridges_from_idl(idl.tables), "ok")
                    else:
                        snap = (self.snapshot[0], f"error: {self.remote}: connection lost, reconnecting")
                    self._publish(snap, connected)
                poller = ovs.poller.Poller()
                idl.wait(poller)
                poller.fd_wait(self._r, ovs.poller.POLLIN)
                poller.block()
                try:
                    os.read(self._r, 64)
                except OSError:
                    pass
        except Exception:
            log.exception("OVSDB monitor of %s", self.remote)
            self._publish(((), "error: OVSDB monitor failed (see the log)"), False)
        finally:
            idl.close()
