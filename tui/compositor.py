"""Textual's partial screen updates without rendering widgets that lie outside the update.

When a few widgets change, Textual's compositor renders the bounding box of their regions
(the crop) and writes out only the changed spans. To find what to render it keeps every
widget whose *clip* overlaps the crop; a widget's clip is its container's visible area, so a
pane's scrollbars, the panes in the other half of the screen, the footer and the containers
around them are all rendered too (their cached lines, then cut up for rows they do not
reach). At idle, each figures refresh of the console (the header's time, the Resources
summary and chart) rendered ~19 widgets for 3 changed ones, ~2-3.5 ms a pass.

`install()` makes a partial update render only the widgets whose visible region overlaps one
of the changed regions and is not painted over there by a widget in front of it (the
Resources summary changing alone, as at every refresh of an idle console: the summary, not
its pane, the panes' container and the screen behind it). Nothing else can reach the output:
a partial update writes only the changed regions' spans, a widget that overlaps none of
them has no cell there, and where a widget in front covers its cells the front one's are
written ("the first widget painted wins", cut by cut; a widget's lines fill its visible
region, whose edges are cuts). One difference in bytes, none on screen: for a cut that
starts exactly where a span ends Textual writes a cursor move and no cell; for such a cut
left unrendered, the move is left out too. Full renders are unchanged.
`_get_renders` is Textual's own (https://github.com/Textualize/textual, MIT licence, Copyright
(c) 2021 Will McGugan) with that one test added, and `render_partial_update` is
Textual's, wrapped to tell it the changed regions; both are installed only while Textual's
source is the one they were written against (tests/tui/test_compositor.py pins it and proves
the output identical on the console's screen).
"""

from __future__ import annotations

import inspect
import zlib
from collections.abc import Iterable
from typing import Any

from textual._compositor import Compositor
from textual.geometry import Region
from textual.strip import Strip

# CRC-32 of the source of Textual's functions this module copies or wraps (to notice an upgrade;
# not hashlib: its OpenSSL is ~3 MiB resident that a local console needs for nothing else)
TEXTUAL_SOURCES = {"_get_renders": "5fa356a4", "render_partial_update": "040360a3"}

_original = Compositor._get_renders
_original_partial = Compositor.render_partial_update
_UPDATING = "_tsh_updating"  # the changed regions of the partial update being rendered


def _render_partial_update(self: Compositor) -> Any:
    """Textual's render_partial_update, with the regions it is about to render noted."""
    setattr(self, _UPDATING, tuple(self._dirty_regions))
    try:
        return _original_partial(self)
    finally:
        setattr(self, _UPDATING, None)


def _get_renders(
    self: Compositor, crop: Region | None = None
) -> Iterable[tuple[Region, Region, list[Strip]]]:
    """Compositor._get_renders (Textual's); in a partial update, only the widgets that
    overlap one of the changed regions."""
    _rich_traceback_guard = True  # (Textual's: no traceback frames from here)

    _Region = Region

    visible_widgets = self.visible_widgets
    updating: tuple[Region, ...] | None = getattr(self, _UPDATING, None)

    if crop and updating:
        crop_overlaps = crop.overlaps
        widget_regions = []
        painted: list[Region] = []  # the visible parts of the widgets kept, front first
        for widget, (region, clip) in visible_widgets.items():
            if not crop_overlaps(clip):
                continue
            visible = region.intersection(clip)
            reached = [r for u in updating if (r := visible.intersection(u)).area]
            if not reached or all(any(p.contains_region(r) for p in painted) for r in reached):
                continue  # none of its cells is written, or a widget in front paints them all
            widget_regions.append((widget, region, clip))
            painted.append(visible)
    elif crop:
        crop_overlaps = crop.overlaps
        widget_regions = [
            (widget, region, clip)
            for widget, (region, clip) in visible_widgets.items()
            if crop_overlaps(clip)
        ]
    else:
        widget_regions = [(widget, region, clip) for widget, (region, clip) in visible_widgets.items()]

    intersection = _Region.intersection
    contains_region = _Region.contains_region

    for widget, region, clip in widget_regions:
        if contains_region(clip, region):
            yield (
                region,
                clip,
                widget.render_lines(
                    _Region(
                        0,
                        0,
                        region.width,
                        region.height,
                    )
                ),
            )
        else:
            new_x, new_y, new_width, new_height = intersection(region, clip)
            if new_width and new_height:
                yield (
                    region,
                    clip,
                    widget.render_lines(
                        _Region(
                            new_x - region.x,
                            new_y - region.y,
                            new_width,
                            new_height,
                        )
                    ),
                )


def textual_sources() -> dict[str, str]:
    return {
        name: f"{zlib.crc32(inspect.getsource(fn).encode()):08x}"
        for name, fn in (("_get_renders", _original), ("render_partial_update", _original_partial))
    }


def install() -> bool:
    """Use the narrowed partial updates (once; only over the Textual code they were written
    against). True when installed."""
    if Compositor._get_renders is _get_renders:
        return True
    if textual_sources() != TEXTUAL_SOURCES:
        return False
    Compositor._get_renders = _get_renders  # type: ignore[method-assign]
    Compositor.render_partial_update = _render_partial_update  # type: ignore[method-assign]
    return True
