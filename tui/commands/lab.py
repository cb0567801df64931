"""`tenantscope lab`: build, break and remove the training lab on this machine (root)."""

from __future__ import annotations

import argparse

from tui.commands.common import UserError

NAME = "lab"
HELP = "build, break and remove the training lab on this machine (root)"
COMMON = False  # the lab takes none of the observing options


DIR_HELP = "the lab's state directory (default $TENANTSCOPE_LAB_DIR or /run/tenantscope-lab)"


def arguments(lab: argparse.ArgumentParser) -> None:
    lab.add_argument("--dir", default=None, metavar="DIR", help=DIR_HELP)
    ls = lab.add_subparsers(dest="lab_action", metavar="ACTION", required=True)
    u = ls.add_parser(
        "up", help="build the lab: tenants as namespaces on their own bridges, services, limits"
    )
    u.add_argument("--tenants", type=int, default=3, metavar="N", help="number of tenants (default 3)")
    u.add_argument(
        "--ovs",
        choices=("auto", "yes", "no"),
        default="auto",
        help="put the third tenant on a private Open vSwitch (default: where OVS is installed)",
    )
    u.add_argument(
        "--vms",
        choices=("auto", "yes", "no"),
        default="auto",
        help="tiny diskless VMs on two tenants' bridges (default: where libvirtd + QEMU run)",
    )
    ls.add_parser("down", help="remove everything the lab created (and nothing else)")
    st = ls.add_parser("status", help="what the lab has, what is broken, what is missing")
    st.add_argument("--json", action="store_true")
    b = ls.add_parser("break", help="inject a fault")
    b.add_argument("fault", metavar="FAULT")
    f = ls.add_parser("fix", help="remove a fault")
    f.add_argument("fault", metavar="FAULT")
    ls.add_parser("list-faults", help="the faults and the findings each produces")
    for action in ls.choices.values():  # `lab break X --dir D` as well as `lab --dir D break X`
        action.add_argument("--dir", default=argparse.SUPPRESS, metavar="DIR", help=DIR_HELP)


def run(args: argparse.Namespace) -> int:
    from probes.lab.command import run
    from probes.lab.record import LabError

    try:
        return run(
            args.lab_action,
            fault=getattr(args, "fault", ""),
            tenants=getattr(args, "tenants", 3),
            ovs=getattr(args, "ovs", "auto"),
            vms=getattr(args, "vms", "auto"),
            directory=args.dir,
            as_json=getattr(args, "json", False),
        )
    except LabError as e:
        raise UserError(f"lab: {e}") from None
