"""Save and load the whole observed State as JSON: reports, `check --json` and replay share it.

msgspec encodes and decodes the frozen dataclasses of probes.model by their type hints, so a
loaded snapshot compares equal to the State that was saved, and a malformed file is refused
with the path of the bad field.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from probes.model import State

SCHEMA_VERSION = 1


class SnapshotError(Exception):
    pass


class _Envelope(msgspec.Struct):
    schema: int
    state: State


def dumps(state: State) -> bytes:
    return msgspec.json.format(msgspec.json.encode(_Envelope(SCHEMA_VERSION, state)), indent=1)


def loads(data: bytes | str, *, where: str = "snapshot") -> State:
    try:
        env = msgspec.json.decode(data, type=_Envelope)
    except msgspec.DecodeError as e:  # ValidationError is a subclass
        raise SnapshotError(f"{where}: not a tenantscope snapshot: {e}") from None
    if env.schema != SCHEMA_VERSION:
        raise SnapshotError(f"{where}: snapshot schema {env.schema}, this tenantscope reads {SCHEMA_VERSION}")
    return env.state


def save(state: State, path: str | Path) -> None:
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_bytes(dumps(state))
    tmp.replace(p)


def load(path: str | Path) -> State:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise SnapshotError(f"{path}: cannot read: {e.strerror}") from None
    return loads(data, where=str(path))
