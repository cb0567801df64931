"""`tenantscope alerting rules|install`: the fleet on an existing engine (Prometheus)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from probes import alerting

NAME = "alerting"
HELP = "Prometheus alerting rules, and a systemd timer that runs `check` for node_exporter"
COMMON = False


def arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="alerting_command", metavar="WHAT", required=True)
    sub.add_parser("rules", help="print the Prometheus alerting rules (YAML)")
    i = sub.add_parser("install", help="write tenantscope-check.service and .timer (then enable the timer)")
    i.add_argument("--unit-dir", default="/etc/systemd/system", metavar="DIR")
    i.add_argument(
        "--textfile-dir",
        default=alerting.TEXTFILE_DIR,
        metavar="DIR",
        help=f"node_exporter's --collector.textfile.directory (default {alerting.TEXTFILE_DIR})",
    )
    i.add_argument("--interval", default="5min", metavar="SPAN", help="systemd time span (default 5min)")
    i.add_argument(
        "--check-baseline",
        default=None,
        metavar="FILE",
        help="also export findings new since this snapshot (tenantscope_check_new)",
    )
    i.add_argument("--check-config", default=None, metavar="FILE", help="the config file `check` reads")


def _command() -> tuple[str, ...]:
    """The program the unit runs: `tenantscope` on PATH, else the console script beside this
    Python (a venv not activated, sudo's secure_path), else this Python with `-m tui.cli`, as
    separate words (one quoted word '.../python -m tui.cli' is no program systemd can run)."""
    found = shutil.which("tenantscope")
    if found:
        return (os.path.abspath(found),)
    beside = os.path.join(os.path.dirname(sys.executable), "tenantscope")
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return (beside,)
    return (sys.executable, "-m", "tui.cli")


def run(args: argparse.Namespace) -> int:
    if args.alerting_command == "rules":
        sys.stdout.write(alerting.rules())
        return 0
    if not os.path.isdir(args.textfile_dir):
        print(
            f"tenantscope: warning: --textfile-dir {args.textfile_dir} does not exist: the timer's check "
            "fails until it does (node_exporter's --collector.textfile.directory)",
            file=sys.stderr,
        )
    u = alerting.units(
        executable=_command(),
        textfile_dir=args.textfile_dir,
        interval=args.interval,
        baseline=args.check_baseline,
        config=args.check_config,
    )
    for path in alerting.install(u, args.unit_dir):
        print(f"wrote {path}")
    print("next: systemctl daemon-reload && systemctl enable --now tenantscope-check.timer")
    return 0
