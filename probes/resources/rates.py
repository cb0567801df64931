"""Counters to rates: the difference between two readings of a monotonic counter over time.

Kernel and libvirt counters (CPU nanoseconds, bytes read, bytes received) only grow, except
when their owner restarts: a restarted domain, a recreated cgroup or a re-plugged tap starts
again from zero. A reading lower than the last one is therefore a reset, not a negative rate:
the rate for that interval is unknown (None) and the new reading becomes the reference. The
first reading of a counter likewise has no rate yet.
"""

from __future__ import annotations


class RateTracker:
    """Keeps the last reading of each (owner, counter) and turns new readings into rates.

    `owner` is a workload key; `forget_missing` drops owners that disappeared so the table
    does not grow without bound when workloads come and go.
    """

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[float, float]] = {}  # -> (value, at)
        self.resets = 0  # counter resets seen (for diagnostics and tests)

    def rate(self, owner: str, counter: str, value: float | int | None, at: float) -> float | None:
        """Per-second rate of `counter` since its last reading; None on the first reading,
        after a reset, when the value is missing, or when no time has passed."""
        key = (owner, counter)
        if value is None:
            self._last.pop(key, None)
            return None
        prev = self._last.get(key)
        self._last[key] = (float(value), at)
        if prev is None:
            return None
        dt = at - prev[1]
        if dt <= 0:
            return None
        if value < prev[0]:
            self.resets += 1
            return None
        return (value - prev[0]) / dt

    def still(self, owner: str, counters: tuple[str, ...], at: float) -> bool:
        """The same readings of `counters` again at `at`: when each has a reading from before
        `at`, its time moves to `at` and True is returned (every rate would be 0.0, as `rate`
        with the same values makes it); else nothing changes and False is returned."""
        last = self._last
        keys = [(owner, c) for c in counters]
        values = []
        for k in keys:
            p = last.get(k)
            if p is None or at - p[1] <= 0:
                return False
            values.append(p[0])
        for k, v in zip(keys, values):
            last[k] = (v, at)
        return True

    def forget_missing(self, owners: set[str]) -> None:
        """Drop counters of owners not in `owners`. An owner `KEY#GEN` (a VM's key and its
        domain id, so that a restart starts fresh counters) belongs to owner KEY."""
        for key in [k for k in self._last if k[0].split("#", 1)[0] not in owners]:
            del self._last[key]

    def __len__(self) -> int:
        return len(self._last)


def cpu_percent(ns_per_s: float | None) -> float | None:
    """CPU nanoseconds used per second of wall time, as % of one core."""
    return None if ns_per_s is None else ns_per_s / 1e7
