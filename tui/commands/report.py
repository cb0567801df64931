"""`tenantscope report`: an incident report (Markdown + JSON; secrets scrubbed)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from probes.session import Options
from tui.commands.common import UserError, observation_problems, observe_once, options_from

NAME = "report"
HELP = "write an incident report (Markdown + JSON; secrets scrubbed)"


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--demo", action="store_true", help="report on the bundled demo fleet")
    p.add_argument("-o", "--output-dir", default=".", metavar="DIR", help="where to write (default .)")
    p.add_argument(
        "--from",
        dest="from_file",
        default=None,
        metavar="FILE",
        help="report on a saved snapshot (JSON) or recording (.tsr, its last point) instead of observing",
    )


def run(args: argparse.Namespace) -> int:
    """Observe once (or load --from), then write the Markdown and JSON report."""
    from probes.report.build import build
    from tui.report import write_report

    problems: list[str] = []
    if args.from_file:
        state = _load_any(args.from_file)
    else:
        state = observe_once(options_from(args))
        problems = observation_problems(state)
    try:
        paths = write_report(state, {}, args.output_dir)
    except OSError as e:
        raise UserError(f"{args.output_dir}: cannot write the report: {e.strerror or e}") from None
    r = build(state)
    print(f"wrote {', '.join(map(str, paths))}: {len(r.findings)} finding(s) on {len(r.hosts)} host(s)")
    for line in problems:  # written all the same: the report says what could be seen
        print(f"tenantscope: {line}", file=sys.stderr)
    return 2 if problems else 0


def _load_any(path: str) -> Any:
    """A snapshot (JSON) or a recording's last good point."""
    from probes import record, snapshot

    try:
        if record.is_recording(path):
            rec = record.load(path)
            if rec.problem:
                print(f"tenantscope: {rec.problem}", file=sys.stderr)
            if not rec.states:
                raise UserError(f"{path}: the recording holds no observation")
            from probes.session import make_deriver

            return make_deriver(Options())(rec.states[-1])  # the same derive step as live
        return snapshot.load(path)
    except (snapshot.SnapshotError, record.RecordError) as e:
        raise UserError(str(e)) from None
