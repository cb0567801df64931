"""`tenantscope record`: record what is observed to a file, for `tenantscope replay`."""

from __future__ import annotations

import argparse
import asyncio

from probes.session import make_engine
from tui.commands.common import UserError, options_from, positive_number

NAME = "record"
HELP = "record what is observed to a file, for `tenantscope replay`"


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--demo", action="store_true", help="record the bundled demo fleet")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the recording (e.g. incident.tsr)")
    p.add_argument(
        "--duration",
        type=positive_number,
        default=None,
        metavar="SECONDS",
        help="stop after this long (default: Ctrl-C)",
    )
    p.add_argument(
        "--max-size",
        type=positive_number,
        default=64.0,
        metavar="MIB",
        help="stop at this size (default 64 MiB)",
    )


def run(args: argparse.Namespace) -> int:
    from probes import record

    opts = options_from(args)
    try:
        n, size, why = asyncio.run(
            record.record_engine(
                make_engine(opts),
                args.output,
                duration=args.duration,
                max_bytes=int(args.max_size * 1024 * 1024),
            )
        )
    except record.RecordError as e:
        raise UserError(str(e)) from None
    except KeyboardInterrupt:
        return 130
    print(f"wrote {args.output}: {n} observation(s), {size / 1024:.1f} KiB ({why})")
    return 0
