"""Where a baseline comes from: a snapshot file, or one instant of a recording.

`FILE` is a snapshot (`tenantscope snapshot -o FILE`) or a recording (its last observation);
`FILE@WHEN` picks the last observation of a recording at or before WHEN, given as HH:MM[:SS]
(local time, on the recording's first day, or the next day when the recording ran past
midnight), an ISO date and time, or unix seconds. Snapshots are derived already (tenants and
findings inside); recordings hold raw observations, which the caller derives (`raw=True`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from probes import record, snapshot
from probes.model import State


class BaselineError(Exception):
    """A baseline that cannot be read: the message names the file and what was wrong."""


@dataclass(frozen=True)
class Instant:
    state: State
    raw: bool  # observations only: derive (tenancy, checks) before comparing
    label: str  # what to call it in output: the file, and the time picked in a recording


_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def split_spec(spec: str) -> tuple[str, str]:
    """`rec.tsr@14:02` -> (`rec.tsr`, `14:02`); a path with no @ has no time."""
    path, sep, when = spec.rpartition("@")
    if not sep or not path:
        return spec, ""
    return path, when


def _when(when: str, first: float, last: float, tz: tzinfo | None) -> float:
    m = _CLOCK.match(when)
    if m:
        h, mi, s = int(m[1]), int(m[2]), int(m[3] or 0)
        if h > 23 or mi > 59 or s > 59:
            raise ValueError(f"{when!r} is not a time of day")
        start = datetime.fromtimestamp(first, tz)
        t = start.replace(hour=h, minute=mi, second=s, microsecond=0)
        if t.timestamp() < first - 1 and (t + timedelta(days=1)).timestamp() <= last + 1:
            t += timedelta(days=1)  # the recording ran past midnight: the next day's clock
        return t.timestamp()
    try:
        return float(when)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(when)
    except ValueError:
        raise ValueError(f"{when!r}: give HH:MM[:SS], an ISO date and time, or unix seconds") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=tz) if tz else dt.astimezone()).timestamp()


def load(spec: str, *, tz: tzinfo | None = None) -> Instant:
    path, when = split_spec(spec)
    if record.is_recording(path):
        try:
            rec = record.load(path)
        except record.RecordError as e:
            raise BaselineError(str(e)) from None
        if not rec.states:
            raise BaselineError(f"{path}: no observation in the recording ({rec.problem or 'empty'})")
        i = len(rec.states) - 1
        if when:
            try:
                t = _when(when, rec.times[0], rec.times[-1], tz)
            except ValueError as e:
                raise BaselineError(f"{spec}: {e}") from None
            earlier = [k for k, at in enumerate(rec.times) if at <= t + 0.001]
            if not earlier:
                first = datetime.fromtimestamp(rec.times[0], tz).strftime("%Y-%m-%d %H:%M:%S")
                raise BaselineError(f"{spec}: the recording starts later, at {first}")
            i = earlier[-1]
        picked = datetime.fromtimestamp(rec.times[i], tz).strftime("%H:%M:%S")
        return Instant(rec.states[i], raw=True, label=f"{path}@{picked}")
    if when and not os.path.exists(path):  # (not "is not a recording": there is no file)
        raise BaselineError(f"{path}: cannot read: No such file or directory")
    if when:
        raise BaselineError(f"{spec}: @TIME picks an instant of a recording; {path} is not a recording")
    try:
        return Instant(snapshot.load(path), raw=False, label=path)
    except snapshot.SnapshotError as e:
        raise BaselineError(str(e)) from None
