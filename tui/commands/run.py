"""`tenantscope run` (the default) and `tenantscope demo`: open the console."""

from __future__ import annotations

import argparse

from tui.commands.baseline import add_baseline_arg, with_baseline
from tui.commands.common import console_extras, options_from

NAME = "run"
HELP = "open the console (the default)"


def arguments(p: argparse.ArgumentParser) -> None:
    add_baseline_arg(p)


def run(args: argparse.Namespace, *, demo: bool = False) -> int:
    from tui.app import TenantScopeApp
    from tui.readonly import env_read_only

    opts = with_baseline(options_from(args, demo=demo), getattr(args, "baseline", None))
    app = TenantScopeApp(opts, read_only=bool(getattr(args, "read_only", False)) or env_read_only())
    console_extras(app, args, opts)
    from tui import malloc

    app.call_later(app.set_timer, malloc.TRIM_AFTER, malloc.trim)  # the start-up's garbage, once
    app.run()
    return app.return_code or 0
