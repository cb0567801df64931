"""A one-line label whose text changes at every refresh, redrawn without Textual's render path.

The Resources summary ("CPU 2.5% of 2 · mem 604M/23.5G ...") is what moves on an idle
console: one redraw per figures refresh. A Static takes ~0.5 ms to render its one line
(styles cache, visual, content wrapping, filters) and ~0.15 ms to take new text (visualize),
for a line whose colours do not change between refreshes.

`FigureLine` renders through Textual as any widget does, and keeps the shape of what Textual
made: the padding's, the text's and the fill's styles. When only its text changed since (no
other refresh, no style update, the same size), the next line is those styles around the new
text: the cells Textual would write (tests/tui/test_figureline.py compares them in every
theme). Anything else, or a text that is not one cell per character or does not fit, goes
through Textual again.
"""

from __future__ import annotations

import inspect
import linecache
import zlib
from typing import Any

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget

from probes.untrusted import visible
from tui.safe import untrusted

# CRC-32 of the source of the Textual methods whose behaviour this relies on: every way a
# widget is marked for repainting goes through Widget._set_dirty (refresh, a resize, a style
# reset), and Widget.render_lines renders through the styles cache. Another Textual: the
# shape is never used (every line is Textual's).
TEXTUAL_SOURCES = {"_set_dirty": "32371134", "refresh": "810844eb", "render_lines": "ed402355"}


def textual_sources() -> dict[str, str]:
    out = {
        name: f"{zlib.crc32(inspect.getsource(getattr(Widget, name)).encode()):08x}"
        for name in TEXTUAL_SOURCES
    }
    linecache.cache.pop(inspect.getsourcefile(Widget) or "", None)  # (~0.5 MiB of text, read once)
    return out


_pinned: bool | None = None


def pinned() -> bool:
    """Whether Textual is the one this module was written against (checked once)."""
    global _pinned
    if _pinned is None:
        _pinned = textual_sources() == TEXTUAL_SOURCES
    return _pinned


class _Shape:
    """What Textual made of one line: its size and the styles of its parts."""

    __slots__ = ("fill", "left", "pad", "right", "size", "text")

    def __init__(self, size: Size, left: int, right: int, pad: Style, text: Style, fill: Style) -> None:
        self.size = size
        self.left = left
        self.right = right
        self.pad = pad
        self.text = text
        self.fill = fill

    def strip(self, text: str) -> Strip | None:
        width = self.size.width
        fill = width - self.left - self.right - len(text)
        if fill < 1:
            return None
        segments = [Segment(" " * self.left, self.pad)] if self.left else []
        if text:
            segments.append(Segment(text, self.text))
        if fill:
            segments.append(Segment(" " * fill, self.fill))
        if self.right:
            segments.append(Segment(" " * self.right, self.pad))
        return Strip(segments, width)


def _shape(strip: Strip, size: Size, left: int, right: int, text: str) -> _Shape | None:
    """The styles of Textual's line for `text`, when it is the padding, the text in one
    style and a fill in one style (else None: that line is not copied)."""
    segments = list(strip)
    inner = size.width - left - right
    if not text or len(text) >= inner or strip.cell_length != size.width:
        return None
    if "".join(s.text for s in segments) != " " * left + text + " " * (inner - len(text)) + " " * right:
        return None
    styles: list[tuple[int, int, Style | None]] = []  # (start, end, style) of each segment
    x = 0
    for s in segments:
        if s.control:
            return None
        styles.append((x, x + len(s.text), s.style))
        x += len(s.text)
    parts: dict[str, set[Style | None]] = {"pad": set(), "text": set(), "fill": set()}
    for start, end, style in styles:
        for lo, hi, part in (
            (0, left, "pad"),
            (left, left + len(text), "text"),
            (left + len(text), left + inner, "fill"),
            (left + inner, size.width, "pad"),
        ):
            if start < hi and lo < end:
                parts[part].add(style)
    if any(len(v) != 1 or None in v for v in parts.values()):
        return None
    (pad,), (txt,), (fill,) = parts["pad"], parts["text"], parts["fill"]
    assert pad is not None and txt is not None and fill is not None
    return _Shape(size, left, right, pad, txt, fill)


class FigureLine(Widget):
    """One line of untrusted text (shown through `probes.untrusted.visible`, never markup);
    `set_text` redraws it. Its CSS must give it a height of 1."""

    DEFAULT_CSS = """
    FigureLine { height: 1; }
    """

    def __init__(self, text: str = "", **kw: Any) -> None:
        super().__init__(**kw)
        self._text = visible(text)
        self._shape: _Shape | None = None
        self._text_only = False  # the refresh under way is set_text's
        self.copied = 0  # lines made from the shape (tests)

    @property
    def text(self) -> str:
        return self._text

    def set_text(self, text: str) -> None:
        text = visible(text)
        if text == self._text:
            return
        self._text = text
        self._text_only = True
        try:
            self.refresh()
        finally:
            self._text_only = False

    def render(self) -> Text:
        return untrusted(self._text)  # (what a Static given untrusted(text) renders)

    def _set_dirty(self, *regions: Region) -> None:
        if not self._text_only or regions:
            self._shape = None  # something else moved: Textual renders the next line
        super()._set_dirty(*regions)

    def notify_style_update(self) -> None:
        self._shape = None
        super().notify_style_update()

    def render_lines(self, crop: Region) -> list[Strip]:
        shape = self._shape
        size = self.outer_size  # (with the padding: what the compositor asks for)
        whole = crop == Region(0, 0, size.width, 1)
        if shape is not None and whole and shape.size == size and cell_len(self._text) == len(self._text):
            strip = shape.strip(self._text)
            if strip is not None:
                self.copied += 1
                return [strip]
        lines = super().render_lines(crop)
        if (
            whole
            and size.height == 1
            and len(lines) == 1
            and cell_len(self._text) == len(self._text)
            and pinned()
        ):
            pad = self.styles.padding
            self._shape = _shape(lines[0], size, pad.left, pad.right, self._text)
        else:
            self._shape = None
        return lines
