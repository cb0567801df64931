"""`tenantscope demo`: the console on the bundled demo fleet (libvirt test driver)."""

from __future__ import annotations

import argparse

from tui.commands import run as console

NAME = "demo"
HELP = "open the console on the bundled demo fleet (libvirt test driver)"


def arguments(p: argparse.ArgumentParser) -> None:
    return None


def run(args: argparse.Namespace) -> int:
    return console.run(args, demo=True)
