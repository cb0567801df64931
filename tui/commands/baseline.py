"""`--baseline` for `check` and the console; atomic `--output` (not a command of its own).

A baseline is a snapshot or an instant of a recording (probes/baseline.py). Recordings hold
raw observations: they are derived (tenancy, checks) by the same session code as live before
they are compared, so a diff of two instants says what the console would have shown.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from probes.model import State
from probes.session import Options, make_deriver
from tui.commands.common import UserError

if TYPE_CHECKING:  # probes.baseline is imported when a baseline is given: it brings the
    # recording format (msgspec and ~10 modules, ~0.6 MiB) into every start otherwise
    from probes.baseline import Instant


def add_baseline_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--baseline",
        default=None,
        metavar="FILE[@TIME]",
        help="compare with a known-good state: a snapshot (`tenantscope snapshot -o FILE`) or a "
        "recording at HH:MM[:SS]; findings are marked new or unchanged, cleared ones listed (C in the console)",
    )


def derived(instant: Instant, opts: Options) -> State:
    """A recording's raw observation through this session's derive step (no baseline of its own)."""
    if not instant.raw:
        return instant.state
    derive: Callable[[State], State] = make_deriver(replace(opts, baseline=None, baseline_label=""))
    return derive(instant.state)


def load_instant(spec: str) -> Instant:
    from probes.baseline import BaselineError, load

    try:
        return load(spec)
    except BaselineError as e:
        raise UserError(str(e)) from None


def with_baseline(opts: Options, spec: str | None) -> Options:
    if not spec:
        return opts
    instant = load_instant(spec)
    return replace(opts, baseline=derived(instant, opts), baseline_label=instant.label)


def write_atomically(path: str, text: str) -> None:
    """Write `text` to a temp file beside `path`, then rename: a reader (node_exporter's
    textfile collector) sees the old file or the new one, never half of one."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        tmp.replace(target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"{path}: cannot write: {e.strerror}") from None
