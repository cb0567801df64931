"""`tenantscope serve`: the console for SSH clients (see server.py)."""

from __future__ import annotations


class ServeError(Exception):
    """A serve problem with a message complete for the user."""


def serve_main(args) -> int:  # type: ignore[no-untyped-def]
    from tui.serve.server import main

    return main(args)
