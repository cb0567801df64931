"""`tenantscope snapshot`: write the observed State as JSON."""

from __future__ import annotations

import argparse
import sys

from tui.commands.common import UserError, observation_problems, observe_once, options_from

NAME = "snapshot"
HELP = "write the observed state as JSON"


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--demo", action="store_true", help="snapshot the bundled demo fleet")
    p.add_argument("-o", "--output", required=True, metavar="FILE")


def run(args: argparse.Namespace) -> int:
    from probes import snapshot

    state = observe_once(options_from(args))
    try:
        snapshot.save(state, args.output)
    except OSError as e:
        raise UserError(f"{args.output}: cannot write: {e.strerror}") from None
    print(
        f"wrote {args.output}: {len(state.hosts)} host(s), {len(state.workloads())} workload(s), "
        f"{len(state.findings)} check result(s)"
    )
    # a baseline taken of a host that did not answer holds nothing of it: say so (exit 2)
    problems = observation_problems(state)
    for line in problems:
        print(f"tenantscope: {line}", file=sys.stderr)
    return 2 if problems else 0
