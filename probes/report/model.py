"""Acknowledgements: a finding the engineer has looked at, with their note (this session only).

Frozen and msgspec-compatible, so the report (and a recording) can carry them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Ack:
    finding_key: str  # Finding.key
    check_id: str
    note: str
    at: float  # when it was acknowledged (epoch seconds)
