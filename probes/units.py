"""How quantities are written for people: one unit ladder for bytes, in findings and panes."""

from __future__ import annotations

_IEC = ("B", "KiB", "MiB", "GiB", "TiB")


def fmt_bytes(v: float | None, *, rate: bool = False, compact: bool = False) -> str:
    """1536 -> "1.5 KiB" (findings, reports); compact=True -> "1.5K" (narrow table columns,
    no decimal from 100 up). None -> "—". rate=True appends "/s"."""
    if v is None:
        return "—"
    i = 0
    while abs(v) >= 1024 and i < len(_IEC) - 1:
        v /= 1024
        i += 1
    if compact:
        s = f"{v:.0f}{_IEC[i][0]}" if i == 0 or v >= 100 else f"{v:.1f}{_IEC[i][0]}"
    else:
        s = f"{v:.0f} {_IEC[i]}" if i == 0 else f"{v:.1f} {_IEC[i]}"
    return s + ("/s" if rate else "")
