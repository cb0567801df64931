"""`tenantscope diff A B`: what changed between two snapshots or two instants of a recording."""

from __future__ import annotations

import argparse
import json
import sys

from probes.drift import Drift, diff
from probes.drift.text import drift_text
from tui.commands.baseline import derived, load_instant
from tui.commands.common import UserError, options_from

NAME = "diff"
HELP = "what changed between two snapshots or two instants of a recording (rec.tsr@14:02)"
SCHEMA_ID = "https://tenantscope.invalid/schema/diff-1.json"


def arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "A and B are snapshots (`tenantscope snapshot -o FILE`) or recordings, optionally at an "
        "instant: rec.tsr@14:02 (HH:MM[:SS] local time), an ISO time, or unix seconds."
    )
    p.add_argument("a", nargs="?", metavar="A", help="the earlier state (the baseline)")
    p.add_argument("b", nargs="?", metavar="B", help="the later state")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--schema", action="store_true", help="print the JSON Schema of --format json and exit")


def schema() -> dict[str, object]:
    import msgspec

    out: dict[str, object] = msgspec.json.schema(Drift)
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["$id"] = SCHEMA_ID
    out["title"] = "tenantscope diff"
    return out


def as_json(drift: Drift) -> str:
    import msgspec

    return msgspec.json.format(msgspec.json.encode(drift), indent=1).decode() + "\n"


def run(args: argparse.Namespace) -> int:
    """Exit 0 when nothing changed, 1 when something did (like diff(1)), 2 on bad input."""
    if args.schema:
        sys.stdout.write(json.dumps(schema(), indent=1) + "\n")
        return 0
    if not args.a or not args.b:
        raise UserError("diff needs two states: tenantscope diff A B (snapshots or recording@HH:MM)")
    opts = options_from(args)
    a, b = load_instant(args.a), load_instant(args.b)
    drift = diff(derived(a, opts), derived(b, opts), a.label)
    sys.stdout.write(as_json(drift) if args.format == "json" else drift_text(drift))
    return 1 if drift.changes else 0
