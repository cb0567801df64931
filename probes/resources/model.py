"""Resource samples. Owned by the resources area. Must not import probes.model."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    workload: str  # workload key
    at: float
    cpu_pct: float | None = None
    mem_bytes: int | None = None
    mem_limit_bytes: int | None = None
    blk_read_bps: float | None = None
    blk_write_bps: float | None = None
    net_rx_bps: float | None = None
    net_tx_bps: float | None = None


@dataclass(frozen=True)
class ResourceSnapshot:
    samples: tuple[Sample, ...] = ()
    at: float = 0.0
