"""Rolling baselines per workload and metric, and the spikes that stand out from them (RES-01).

Each series keeps an exponentially weighted moving average of its values and of their absolute
deviation from that average (a robust, O(1) stand-in for the standard deviation). A value is
a spike when it exceeds

    mean + max(k * deviation, min_abs, rel * mean)

for `confirm` refreshes in a row, after a warm-up of `warmup` values. `min_abs` is what keeps
idle noise quiet: an idle container going from 0.1 % to 3 % CPU is a hundredfold increase but
no incident, so nothing below, e.g., a quarter of a core counts. While a spike lasts the
baseline is frozen (the spike must not teach the baseline that it is normal); if it lasts
longer than `adapt_after` seconds the new level is accepted as the baseline and the spike ends.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from probes.resources.model import Metric, Spike

MIB = 1 << 20


@dataclass(frozen=True)
class Tuning:
    alpha: float = 0.2  # EWMA weight of the newest value
    k: float = 4.0  # deviations above the mean
    min_abs: float = 25.0  # absolute margin over the mean, in the metric's unit
    rel: float = 0.0  # relative margin over the mean (0.5 = 50 % above)
    warmup: int = 5  # values before any detection
    confirm: int = 2  # consecutive values above the threshold
    adapt_after: float = 300.0  # seconds a spike may last before it becomes the baseline


# Thresholds chosen so that an idle host and the steady demo stay quiet: a spike needs a
# quarter of a core, 128 MiB (and 25 %) more memory, or 10 MB/s more disk or network traffic.
TUNING: dict[Metric, Tuning] = {
    Metric.CPU: Tuning(min_abs=25.0),
    Metric.MEM: Tuning(min_abs=128 * MIB, rel=0.25),
    Metric.DISK: Tuning(min_abs=10e6, rel=1.0),
    Metric.NET: Tuning(min_abs=10e6, rel=1.0),
    Metric.STEAL: Tuning(min_abs=20.0),
}


class Baseline:
    """One series: EWMA mean and mean absolute deviation with spike detection."""

    def __init__(self, tuning: Tuning) -> None:
        self.t = tuning
        self.n = 0
        self.mean = 0.0
        self.dev = 0.0
        self._above = 0
        self.spike: Spike | None = None  # the current (or last) spike

    def threshold(self) -> float:
        t = self.t
        return self.mean + max(t.k * self.dev, t.min_abs, t.rel * abs(self.mean))

    def _learn(self, x: float) -> None:
        if self.n == 0:
            self.mean, self.dev = x, 0.0
        else:
            a = self.t.alpha
            self.dev = (1 - a) * self.dev + a * abs(x - self.mean)
            self.mean = (1 - a) * self.mean + a * x
        self.n += 1

    def update(self, workload: str, metric: Metric, x: float | None, at: float) -> Spike | None:
        """Feed one value; returns the current spike (new, ongoing, or just ended), else None."""
        if x is None:
            return None
        t = self.t
        n = self.n
        if n < t.warmup:
            self._learn(x)
            return None
        spike = self.spike
        cur = spike if spike is not None and spike.ended_at is None else None
        mean, dev = self.mean, self.dev
        thr = mean + max(t.k * dev, t.min_abs, t.rel * abs(mean))  # (threshold(), inline)
        if x > thr:
            self._above += 1
            if cur is not None:
                if x > cur.peak:
                    cur = replace(cur, peak=x, peak_at=at)
                if at - cur.started_at > self.t.adapt_after:  # the new normal
                    cur = _ended(cur, at)
                    self.mean, self.dev, self.n = x, 0.0, 1
                self.spike = cur
                return cur
            if self._above >= self.t.confirm:
                self.spike = Spike(workload, metric, self.mean, self.dev, thr, x, at, at, first=x)
                return self.spike
            return None  # above, not yet confirmed: do not learn from it either
        self._above = 0
        if n == 0:
            self._learn(x)
        else:  # (_learn, inline: every value of every workload comes through here)
            a = t.alpha
            self.dev = (1 - a) * dev + a * abs(x - mean)
            self.mean = (1 - a) * mean + a * x
            self.n = n + 1
        if cur is not None:
            self.spike = _ended(cur, at)
            return self.spike
        return None


def _ended(s: Spike, at: float) -> Spike:
    return replace(s, ended_at=at)


class SpikeDetector:
    """Baselines for every (workload, metric); remembers spikes for `hold` seconds after
    they end so that a finding does not vanish before anyone has seen it."""

    def __init__(self, tuning: dict[Metric, Tuning] | None = None, hold: float = 600.0) -> None:
        self.tuning = dict(TUNING, **(tuning or {}))
        self.hold = hold
        self._series: dict[tuple[str, Metric], Baseline] = {}
        self._spikes: dict[tuple[str, Metric, float], Spike] = {}
        self._known: set[str] = set()

    def update(self, workload: str, metric: Metric, x: float | None, at: float) -> None:
        key = (workload, metric)
        b = self._series.get(key)
        if b is None:
            b = self._series[key] = Baseline(self.tuning[metric])
        s = b.update(workload, metric, x, at)
        if s is not None:
            self._spikes[(workload, metric, s.started_at)] = s

    def baselines(self, workload: str, metrics: tuple[Metric, ...]) -> tuple[Baseline, ...]:
        """The baselines of one workload's `metrics` (made as needed): a caller that feeds every
        metric of every workload at each refresh keeps them (update_one) instead of looking
        each one up."""
        out = []
        for m in metrics:
            b = self._series.get((workload, m))
            if b is None:
                b = self._series[(workload, m)] = Baseline(self.tuning[m])
            out.append(b)
        return tuple(out)

    def update_one(self, b: Baseline, workload: str, metric: Metric, x: float, at: float) -> None:
        """`update` through a baseline from `baselines` (still this detector's while its
        workload is known)."""
        s = b.update(workload, metric, x, at)
        if s is not None:
            self._spikes[(workload, metric, s.started_at)] = s

    def forget_missing(self, workloads: set[str], now: float) -> None:
        """Drop the baselines of workloads that are gone; their open spikes end now."""
        if workloads != self._known:
            self._known = set(workloads)
            for key in [k for k in self._series if k[0] not in workloads]:
                del self._series[key]
        for key, s in list(self._spikes.items()):
            if s.ended_at is None and s.workload not in workloads:
                self._spikes[key] = _ended(s, now)

    def spikes(self, now: float) -> tuple[Spike, ...]:
        for key in [
            k for k, s in self._spikes.items() if s.ended_at is not None and now - s.ended_at > self.hold
        ]:
            del self._spikes[key]
        return tuple(sorted(self._spikes.values(), key=lambda s: (s.started_at, s.workload)))

    def baseline(self, workload: str, metric: Metric) -> Baseline | None:
        return self._series.get((workload, metric))
