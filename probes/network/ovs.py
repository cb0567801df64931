"""Open vSwitch from `ovs-vsctl --format=json list Bridge|Port|Interface`.

The db's JSON encodes an empty value as `["set", []]`, a map as `["map", [[k, v], ...]]` and a
reference as `["uuid", U]`. A row can exist with no ofport (the interface is not really on the
switch, e.g. a kernel-bridge row under a userspace datapath): the db alone is not trusted, the
ofport says whether the port carries traffic.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from probes.hosts.base import HostError, HostTransport
from probes.network.model import OvsBridge, OvsInterface, OvsPort

TABLES = ("Bridge", "Port", "Interface")


def _atom(v: Any) -> Any:
    """One OVSDB JSON value to Python: sets to lists, maps to lists of pairs, uuids to str."""
    if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str):
        tag, body = v
        if tag == "set":
            return [_atom(x) for x in body]
        if tag == "map":
            return [(str(_atom(k)), str(_atom(x))) for k, x in body]
        if tag in ("uuid", "named-uuid"):
            return str(body)
    return v


def _one(v: Any) -> Any:
    """An optional column: `[]` (empty set) is None, a 1-element set its element."""
    v = _atom(v)
    if isinstance(v, list):
        return v[0] if len(v) == 1 else None if not v else v
    return v


def _ints(v: Any) -> tuple[int, ...]:
    v = _atom(v)
    if isinstance(v, list):
        return tuple(sorted(int(x) for x in v))
    return (int(v),) if isinstance(v, int) else ()


def _uuids(v: Any) -> list[str]:
    v = _atom(v)
    return [str(x) for x in v] if isinstance(v, list) else [str(v)]


def parse_table(text: str, what: str) -> list[dict[str, Any]]:
    try:
        doc = json.loads(text)
        heads = doc["headings"]
        return [dict(zip(heads, row)) for row in doc["data"]]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise HostError(f"ovs-vsctl list {what}: unreadable output ({e})") from None


def build(bridges: list[dict], ports: list[dict], ifaces: list[dict]) -> tuple[OvsBridge, ...]:
    iface_by = {}
    for i in ifaces:
        ofport = _one(i.get("ofport"))
        iface_by[_atom(i["_uuid"])] = OvsInterface(
            name=str(i.get("name", "")),
            type=str(_one(i.get("type")) or ""),
            ofport=int(ofport) if isinstance(ofport, int) else None,
            mac=str(_one(i.get("mac_in_use")) or ""),
            external_ids=tuple(sorted(_atom(i.get("external_ids")) or ())),
            error=str(_one(i.get("error")) or ""),
        )
    port_rows = {_atom(p["_uuid"]): p for p in ports}
    out = []
    for b in sorted(bridges, key=lambda b: str(b.get("name"))):
        bports = []
        for pu in _uuids(b.get("ports")):
            p = port_rows.get(pu)
            if p is None:
                continue
            tag = _one(p.get("tag"))
            bports.append(
                OvsPort(
                    name=str(p.get("name", "")),
                    bridge=str(b.get("name", "")),
                    tag=int(tag) if isinstance(tag, int) else None,
                    trunks=_ints(p.get("trunks")),
                    vlan_mode=str(_one(p.get("vlan_mode")) or ""),
                    interfaces=tuple(iface_by[u] for u in _uuids(p.get("interfaces")) if u in iface_by),
                )
            )
        out.append(
            OvsBridge(
                name=str(b.get("name", "")),
                datapath_type=str(_one(b.get("datapath_type")) or ""),
                ports=tuple(sorted(bports, key=lambda p: p.name)),
            )
        )
    return tuple(out)


def db_socket(db: str | None) -> str | None:
    """The local path of the OVSDB unix socket `db` names (default: ovs-vsctl's), None for a
    remote (tcp:, ssl:) database."""
    if db is None:
        rundir = os.environ.get("OVS_RUNDIR") or "/var/run/openvswitch"
        return os.path.join(rundir, "db.sock")
    if db.startswith("unix:"):
        return db[5:]
    return None


def _db_present(db: str | None) -> bool:
    path = db_socket(db)
    return path is None or os.path.exists(path)


async def read_ovs(host: HostTransport, *, db: str | None = None) -> tuple[tuple[OvsBridge, ...], str]:
    """(bridges, state): state is `absent` when there is no ovs-vsctl or no database, `ok`, or
    `error: ...`."""
    if host.is_local and (shutil.which("ovs-vsctl") is None or not _db_present(db)):
        return (), "absent"  # known without running ovs-vsctl
    base = ["ovs-vsctl", "--timeout=3", *([f"--db={db}"] if db else []), "--format=json"]
    rows = []
    for table in TABLES:
        try:
            res = await host.run([*base, "list", table], timeout=5.0)
        except HostError as e:
            if "not found" in str(e):
                return (), "absent"
            return (), f"error: {e}"
        if not res.ok:
            err = res.stderr.strip()
            if res.returncode == 127 or "No such file" in err or "database connection failed" in err:
                return (), "absent"
            return (), f"error: {err[:200] or f'exit {res.returncode}'}"
        try:
            rows.append(parse_table(res.stdout, table))
        except HostError as e:
            return (), f"error: {e}"
    return build(*rows), "ok"
