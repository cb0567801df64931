"""`tenantscope replay`: the console on a recording (read-only)."""

from __future__ import annotations

import argparse

from tui.commands.baseline import add_baseline_arg, with_baseline
from tui.commands.common import UserError, console_extras, options_from

NAME = "replay"
HELP = "open the console on a recording (read-only)"


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="a recording made by `tenantscope record` or --record")
    p.add_argument("--speed", type=float, default=1.0, metavar="X", help="playback speed (default 1)")
    p.add_argument(
        "--since",
        default=None,
        metavar="HH:MM[:SS]",
        help="changes since this instant of the recording (UTC): findings marked new, C lists the "
        "changes; B in the console sets it too",
    )
    add_baseline_arg(p)


def run(args: argparse.Namespace) -> int:
    from probes import record
    from tui.replay import ReplaySource, replay_app_class

    try:
        rec = record.load(args.file)
    except record.RecordError as e:
        raise UserError(str(e) + _snapshot_hint(args.file)) from None
    if not rec.states:
        raise UserError(f"{args.file}: {rec.problem or 'the recording holds no observation'}")
    opts = with_baseline(options_from(args, demo=False), args.baseline)
    source = ReplaySource(rec, opts, speed=args.speed)
    if args.since is not None and (msg := source.since(args.since)):
        raise UserError(f"--since: {msg}")
    app = replay_app_class()(opts, source=source, read_only=True)  # replay: never changes anything
    console_extras(app, args, opts)
    if rec.problem:
        app.call_later(app.notify, rec.problem, title="recording", severity="warning", timeout=15)
    app.run()
    return app.return_code or 0


def _snapshot_hint(path: str) -> str:
    """A saved State (`snapshot -o`, `check --format json`) is not a recording: say what opens it."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096).lstrip()
    except OSError:
        return ""
    if head.startswith(b"{") and b'"schema"' in head and b'"state"' in head:
        return (
            "; it looks like a saved State (snapshot): `tenantscope report --from FILE` shows it, "
            "`tenantscope diff FILE OTHER` compares it"
        )
    return ""
