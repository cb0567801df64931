"""`tenantscope` entry point: the parser and the dispatch; each command is a module of
tui/commands/ (its options and its run), listed in tui/commands/__init__.py.

Users never see a traceback: errors print one line naming what was wrong and exit 2; the
details go to the debug log when `--log-file` is given.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tui import lazyssl  # noqa: F401  (first: its import makes asyncio load OpenSSL only for TLS)
from tui.commands import COMMANDS, DEFAULT
from tui.commands.common import UserError, add_common, log, options_from, setup_logging, version

__all__ = ["UserError", "build_parser", "main", "options_from"]


class _VersionAction(argparse.Action):
    """--version, looked up only when asked: importlib.metadata brings email, zipfile and ~40
    other modules (about 1 MiB resident) that the console itself never needs."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kw: object) -> None:
        super().__init__(
            option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show the version and exit"
        )

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(f"tenantscope {version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tenantscope",
        description="Find out whether tenants on Linux virtualization hosts are still isolated.",
    )
    add_common(p, sub=False)
    p.add_argument("--version", action=_VersionAction)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        cp = sub.add_parser(name, help=command.HELP)
        if getattr(command, "COMMON", True):
            add_common(cp)
        command.arguments(cp)
    return p


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """parse_args, with an unknown option reported by the command it was given to (its usage,
    `tenantscope check: error: ...`) instead of the top-level usage, which lists none of the
    command's options."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        command = _subparser(parser, args.command)
        if command is not None:
            nested = getattr(args, f"{args.command}_action", None) or getattr(
                args, f"{args.command}_command", None
            )
            command = _subparser(command, nested) or command
        (command or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _subparser(parser: argparse.ArgumentParser, name: str | None) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            found: argparse.ArgumentParser = action.choices[name]
            return found
    return None


def main(argv: Sequence[str] | None = None) -> int:
    from tui import malloc

    malloc.fewer_arenas()  # before any thread starts
    parser = build_parser()
    args = parse_args(parser, argv)
    try:
        setup_logging(args.log_file)
        command: int = COMMANDS[args.command or DEFAULT].run(args)
        return command
    except UserError as e:
        print(f"tenantscope: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # the last line of defence: no tracebacks for users
        log.exception("unexpected error")
        hint = (
            f" (details in {args.log_file})" if args.log_file else " (run with --log-file FILE for details)"
        )
        print(f"tenantscope: error: {type(e).__name__}: {e}{hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
