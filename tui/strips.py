"""Textual's Strip.divide without its cache (issue 16: memory of an idle console).

The compositor divides each rendered line of a widget at the screen's cuts (where the widgets
of that row begin and end), and Strip.divide kept the pieces in a cache on the line: up to four
lists of new Strips per line, each Strip with its own seven (empty) FIFO caches, for as long as
the widget keeps the line. That was ~1,500 Strips, ~2.5 MiB of the idle console at 160x48.
The pieces are used once, to write the frame: dividing again is a few microseconds a line, and
an idle console's refresh renders a few lines (tui/compositor.py). `divide` is Textual's (https://github.com/Textualize/textual,
MIT licence, Copyright (c) 2021 Will McGugan) without the two lines of the cache; installed only
while Textual's source is the one it was written against (tests/tui/test_strips.py pins it and
proves the frames identical).
"""

from __future__ import annotations

import inspect
import zlib
from collections.abc import Iterable, Sequence

from rich.segment import Segment
from textual.strip import Strip

# CRC-32 of the source of Textual's Strip.divide (to notice an upgrade)
TEXTUAL_SOURCE = "235ac02e"

_original = Strip.divide


def divide(self: Strip, cuts: Iterable[int]) -> Sequence[Strip]:
    """Strip.divide (Textual's), the pieces not cached on the strip."""
    pos = 0
    cell_length = self.cell_length
    cuts = [cut for cut in cuts if cut <= cell_length]

    strips: list[Strip]
    if cuts == [cell_length]:
        strips = [self]
    else:
        strips = []
        add_strip = strips.append
        for segments, cut in zip(Segment.divide(self._segments, cuts), cuts):
            add_strip(Strip(segments, cut - pos))
            pos = cut

    return strips


def textual_source() -> str:
    return f"{zlib.crc32(inspect.getsource(_original).encode()):08x}"


def install() -> bool:
    """Divide without the cache (once; only over the Textual code it was written against).
    True when installed."""
    if Strip.divide is divide:
        return True
    if textual_source() != TEXTUAL_SOURCE:
        return False
    Strip.divide = divide  # type: ignore[method-assign]
    return True
