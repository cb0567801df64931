"""`e`: the incident report from the console: Markdown, JSON and an SVG screenshot.

The Markdown and JSON come from probes/report/build.py (pure, shared with `tenantscope report`).
The screenshot is the screen as it is, with one difference: every line that holds a secret
(a token in a log line's command line, a key path) is scrubbed before the SVG is written, by
the same rules as the report (probes/report/scrub.py), so the picture never leaks what the
text does not. Files go to the app's report directory (`--report-dir`, default the working
directory), named tenantscope-report-HOST-YYYYmmdd-HHMMSS.{md,json,svg}.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.segment import Segment

from probes.model import State
from probes.report.build import as_json, as_markdown, build, file_stem
from probes.report.scrub import scrub


def scrubbed_svg(app: Any) -> str:
    """App.export_screenshot, with secrets scrubbed line by line from the recorded screen."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    render = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    console.print(render)
    buffer = list(console._record_buffer)
    lines = list(Segment.split_lines(buffer))
    out: list[Segment] = []
    for i, line in enumerate(lines):
        text = "".join(s.text for s in line if not s.control)
        clean = scrub(text)
        if clean != text:
            style = next((s.style for s in line if not s.control and s.text.strip()), None)
            w = cell_len(text)
            clean = clean[:w] + " " * max(0, w - cell_len(clean))
            line = [Segment(clean, style)]
        out += line
        if i < len(lines) - 1:
            out.append(Segment.line())
    console._record_buffer[:] = out
    return console.export_svg(title=app.title)


def write_report(
    state: State,
    acks: Any,
    directory: str | os.PathLike[str],
    *,
    now: float | None = None,
    svg: str | None = None,
) -> list[Path]:
    report = build(state, acks, now=now if now is not None else time.time())
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    stem = file_stem(report)
    paths = [d / f"{stem}.md", d / f"{stem}.json"]
    paths[0].write_text(as_markdown(report), encoding="utf-8")
    paths[1].write_bytes(as_json(report))
    if svg is not None:
        paths.append(d / f"{stem}.svg")
        paths[2].write_text(svg, encoding="utf-8")
    return paths


def save_from_app(app: Any) -> list[Path]:
    state = app.state
    if state is None:
        raise OSError("nothing observed yet")
    directory = getattr(app, "report_dir", None) or os.getcwd()
    now = getattr(app, "_clock", time.time)()
    return write_report(state, dict(getattr(app, "acks", {})), directory, now=now, svg=scrubbed_svg(app))
