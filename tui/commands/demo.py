"""`tenantscope demo`: the console on the bundled demo fleet (libvirt test driver)."""

from __future__ import annotations

import argparse

from tui.commands import run as console
from tui.commands.baseline import add_baseline_arg

NAME = "demo"
HELP = "open the console on the bundled demo fleet (libvirt test driver)"


def arguments(p: argparse.ArgumentParser) -> None:
    add_baseline_arg(p)


def run(args: argparse.Namespace) -> int:
    return console.run(args, demo=True)
