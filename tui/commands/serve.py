"""`tenantscope serve`: serve the console to SSH clients (tui/serve)."""

from __future__ import annotations

import argparse

from tui.commands.common import UserError, options_from

NAME = "serve"
HELP = "serve the console to SSH clients (public keys only; read-only by default)"


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", default="127.0.0.1:2222", metavar="ADDR:PORT", help="default 127.0.0.1:2222")
    p.add_argument(
        "--host-key",
        default=None,
        metavar="FILE",
        help="the server's SSH host key (default: $XDG_STATE_HOME/tenantscope/ssh_host_ed25519_key, "
        "created on first use)",
    )
    p.add_argument(
        "--authorized-keys",
        required=True,
        metavar="FILE",
        help="OpenSSH authorized_keys; option `tenantscope-write` lets a key change things",
    )
    p.add_argument(
        "--presenter",
        action="store_true",
        help="one session drives (the first write key), everyone else follows its screen",
    )
    p.add_argument(
        "--max-sessions", type=int, default=10, metavar="N", help="concurrent sessions (default 10)"
    )
    p.add_argument("--demo", action="store_true", help="serve the bundled demo fleet")
    p.add_argument(
        "--app-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one more argument for every session's tenantscope (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    from tui.serve import ServeError, serve_main

    options_from(args, demo=args.demo)  # a bad config or host list: one line now, not in every session
    try:
        return serve_main(args)
    except ServeError as e:
        raise UserError(f"serve: {e}") from None
