"""Recordings: the stream of observed States in a compact file that survives being cut short.

Format (`.tsr`): the magic line `TSREC1\n`, then frames. A frame is
`length (4 bytes, big-endian) · CRC-32 of the payload (4 bytes) · payload`, the payload a
zlib-compressed msgspec JSON document. Frame 0 is the Header; every other frame a Frame holding
the time and only the HostStates that changed since the previous frame (every KEYFRAME-th frame
holds all hosts). Host names in `order` say which hosts exist, so a host that went away leaves.

Why this shape:
- each frame is compressed on its own, so a file cut anywhere (a crash, a full disk, a copy
  interrupted) opens up to its last complete frame; a CRC mismatch stops there too, with a
  message saying where;
- zlib from the standard library: no new dependency, and on this JSON it gives ~10x; zstd would
  compress better per frame only with a trained dictionary, which a recording this small does
  not need;
- deltas of whole HostStates (unchanged hosts are the same object in the engine's State, so
  the comparison is an identity check) keep a fleet recording from growing with its size;
- a size limit (`max_bytes`) stops recording, never the console.

Recordings hold raw observations; replay feeds them through the same derive step (tenancy and
checks, probes/session.py) as live, so what replay shows is what live would have shown.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from probes.model import HostState, State

MAGIC = b"TSREC1\n"
KEYFRAME = 50
_HDR = struct.Struct(">II")
MAX_FRAME = 256 * 1024 * 1024


class RecordError(Exception):
    pass


class Header(msgspec.Struct):
    version: int
    created_at: float
    hosts: tuple[str, ...]
    source: str = "live"


class Frame(msgspec.Struct):
    t: float
    order: tuple[str, ...]
    hosts: tuple[HostState, ...]  # the changed ones (all of them in a keyframe)
    full: bool = False


_enc = msgspec.json.Encoder()
_dec_header = msgspec.json.Decoder(Header)
_dec_frame = msgspec.json.Decoder(Frame)


def _pack(obj: object) -> bytes:
    payload = zlib.compress(_enc.encode(obj), 6)
    return _HDR.pack(len(payload), zlib.crc32(payload)) + payload


class Recorder:
    """Appends States to a recording. `add` returns False once the size limit is reached."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int = 64 * 1024 * 1024,
        min_interval: float = 0.0,
        source: str = "live",
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.min_interval = min_interval
        try:
            self._f = open(self.path, "wb")
        except OSError as e:
            raise RecordError(f"{path}: cannot write: {e.strerror}") from None
        self._f.write(MAGIC)
        self._source = source
        self._header_written = False
        self._prev: dict[str, HostState] = {}
        self._order: tuple[str, ...] = ()
        self.frames = 0
        self.size = len(MAGIC)
        self.full = False  # the size limit was reached
        self._last_t = -1e18

    def add(self, state: State, *, force: bool = False) -> bool:
        if self.full or self._f.closed:
            return False
        now = state.taken_at or time.time()
        if not force and now - self._last_t < self.min_interval:
            return True
        if not self._header_written:
            self._write(Header(1, now, tuple(h.host.name for h in state.hosts), state.source or self._source))
            self._header_written = True
        order = tuple(h.host.name for h in state.hosts)
        key = self.frames % KEYFRAME == 0
        changed = tuple(h for h in state.hosts if key or self._prev.get(h.host.name) is not h)
        if not changed and order == self._order and not key:
            return True
        data = _pack(Frame(now, order, changed, key))
        if self.size + len(data) > self.max_bytes:
            self.full = True
            return False
        self._f.write(data)
        self._f.flush()
        self.size += len(data)
        self.frames += 1
        self._last_t = now
        self._prev = {h.host.name: h for h in state.hosts}
        self._order = order
        return True

    def _write(self, obj: object) -> None:
        data = _pack(obj)
        self._f.write(data)
        self.size += len(data)

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()


@dataclass
class Recording:
    path: str
    header: Header | None
    times: list[float] = field(default_factory=list)
    states: list[State] = field(default_factory=list)  # raw: derive before showing
    problem: str = ""  # why it stopped before the end of the file ("" when complete)


def is_recording(path: str | os.PathLike[str]) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def load(path: str | os.PathLike[str]) -> Recording:
    """Every good frame; a truncated or corrupted tail is reported in `problem`, not raised."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise RecordError(f"{path}: cannot read: {e.strerror}") from None
    if not data.startswith(MAGIC):
        raise RecordError(f"{path}: not a tenantscope recording (no {MAGIC.strip().decode()} header)")
    rec = Recording(str(path), None)
    pos = len(MAGIC)
    hosts: dict[str, HostState] = {}
    index = 0
    while pos < len(data):
        where = f"{path}: frame {index} at byte {pos}"
        if pos + _HDR.size > len(data):
            rec.problem = (
                f"{where}: the file is cut short; showing the first {len(rec.states)} observation(s)"
            )
            break
        n, crc = _HDR.unpack_from(data, pos)
        body = data[pos + _HDR.size : pos + _HDR.size + n]
        if n > MAX_FRAME or len(body) < n:
            rec.problem = (
                f"{where}: the file is cut short; showing the first {len(rec.states)} observation(s)"
            )
            break
        if zlib.crc32(body) != crc:
            rec.problem = (
                f"{where}: corrupted (checksum mismatch); showing the first {len(rec.states)} observation(s)"
            )
            break
        try:
            raw = zlib.decompress(body)
            if rec.header is None:
                rec.header = _dec_header.decode(raw)
            else:
                fr = _dec_frame.decode(raw)
                if fr.full:
                    hosts = {}
                for h in fr.hosts:
                    hosts[h.host.name] = h
                missing = [n for n in fr.order if n not in hosts]
                if missing:
                    raise ValueError(f"no data for host {missing[0]} before this frame")
                rec.times.append(fr.t)
                rec.states.append(
                    State(hosts=tuple(hosts[n] for n in fr.order), taken_at=fr.t, source=rec.header.source)
                )
        except (zlib.error, msgspec.DecodeError, ValueError) as e:
            rec.problem = f"{where}: unreadable ({e}); showing the first {len(rec.states)} observation(s)"
            break
        pos += _HDR.size + n
        index += 1
    if rec.header is None and not rec.problem:
        rec.problem = f"{path}: empty recording"
    return rec


async def record_engine(
    engine,
    path: str | os.PathLike[str],
    *,
    duration: float | None = None,  # type: ignore[no-untyped-def]
    max_bytes: int = 64 * 1024 * 1024,
    min_interval: float = 1.0,
) -> tuple[int, int, str]:
    """Run `engine` and record what it publishes until `duration`, the size limit, or a cancel
    (Ctrl-C). Returns (frames, bytes, why it stopped)."""
    rec = Recorder(
        path, max_bytes=max_bytes, min_interval=min_interval, source=getattr(engine, "source", "live")
    )
    full = asyncio.Event()
    latest: list[State] = []

    def on_state(state: State) -> None:
        latest[:] = [state]
        if not rec.add(state):
            full.set()

    why = "duration reached" if duration is not None else "stopped"
    engine.subscribe(on_state)
    engine.start()
    try:
        try:
            await asyncio.wait_for(full.wait(), duration)
            why = f"size limit {max_bytes // (1024 * 1024)} MiB reached"
        except TimeoutError:
            pass
    except (asyncio.CancelledError, KeyboardInterrupt):
        why = "interrupted"
    finally:
        if latest and not rec.full:
            rec.add(latest[0], force=True)  # the last state, even inside min_interval
        rec.close()
        await engine.stop()
    return rec.frames, rec.size, why
