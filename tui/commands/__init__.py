"""The commands of `tenantscope`, one module each, in the order `--help` lists them.

A command module has NAME, HELP, `arguments(parser)` (its own options) and `run(args) -> int`;
COMMON = False when it takes none of the common options (tui/commands/common.py, defined
once). tui/cli.py builds the parser and dispatches from this table.
"""

from __future__ import annotations

from types import ModuleType

from tui.commands import alerting, check, demo, diff, lab, record, replay, report, run, serve, snapshot

COMMANDS: dict[str, ModuleType] = {
    m.NAME: m for m in (run, demo, check, snapshot, diff, report, record, replay, lab, serve, alerting)
}
DEFAULT = "run"  # no command: the console
