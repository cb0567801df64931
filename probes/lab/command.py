"""`tenantscope lab ...`: the text the user sees, and the exit codes (0 ok, 1 not up / fault
unavailable, 2 errors: LabError is raised to the CLI, which prints it on one line)."""

from __future__ import annotations

import json
import shlex
import sys
from typing import TextIO

from probes.lab import build, faults
from probes.lab.plan import SERVICE_PORT
from probes.lab.record import LabError, Store, lab_dir


def run(
    action: str,
    *,
    fault: str = "",
    tenants: int = 3,
    ovs: str = "auto",
    vms: str = "auto",
    directory: str | None = None,
    as_json: bool = False,
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    store = Store(directory)
    lab = lab_command(store)
    if action == "list-faults":
        return list_faults(store, out)
    if action == "status":
        return show_status(store, out, as_json)
    build.require_root(action)
    if action == "up":
        b = build.up(store, tenants=tenants, ovs=ovs, vms=vms)
        p = b.plan
        n = len(p.workloads())
        ovs_t = next((t for t in p.tenants if t.ovs_tag is not None), None)
        out.write(
            f"lab up in {b.seconds:.1f} s: {len(p.tenants)} tenants, {n} workloads "
            f"({', '.join(t.name for t in p.tenants[:6])}{', ...' if len(p.tenants) > 6 else ''})"
            + (
                f"; tenant {ovs_t.name} on Open vSwitch {p.ovs_bridge} VLAN {ovs_t.ovs_tag}"
                if ovs_t
                else "; no Open vSwitch (vlan-leak unavailable)"
            )
            + (
                f"; VMs {', '.join(n for n, _ in b.record.vms)}"
                if b.record.vms
                else "; no VMs (unconfined-vm, vm-wrong-bridge unavailable)"
            )
            + "\n"
        )
        if b.record.vms and b.record.note("guest_image"):
            out.write(f"{b.record.note('guest_image')}\n")
        elif b.record.vms:
            from probes.lab import vms as labvms

            out.write(
                "VMs boot a real Linux guest: "
                + ", ".join(f"{n} at {labvms.vm_address(p, n).split('/')[0]}" for n, _ in b.record.vms)
                + f" (HTTP on {SERVICE_PORT}, guest agent)\n"
            )
        out.write(
            f"config: {store.config}\n"
            f"watch it:  tenantscope --config {store.config}\n"
            f"check it:  tenantscope check --config {store.config}\n"
            f"break it:  {lab} break shared-bridge   ({lab} list-faults)\n"
            f"remove it: {lab} down\n"
        )
        return 0
    if action == "down":
        d = build.down(store)
        if d is None:
            out.write(f"no lab recorded in {store.dir}: nothing to remove\n")
            return 0
        if d.left:
            out.write(
                f"lab down: removed {d.removed} object(s); could not remove: {', '.join(d.left)}\n"
                f"the record stays in {store.path}; run `{lab} down` again\n"
            )
            return 2
        out.write(f"lab down in {d.seconds:.1f} s: removed {d.removed} object(s)\n")
        return 0
    if action in ("break", "fix"):
        faults.get(fault)  # an unknown fault first: it is wrong wherever the lab is
        if not store.exists():
            raise LabError(
                f"no lab is up in {store.dir}: run `{lab} up` first (or give the --dir it was built in)"
            )
    if action == "break":
        f = faults.get(fault)
        out.write(f"{fault}: {faults.inject(store, fault)}\n")
        out.write(
            f"expect: {', '.join(f.findings)}"
            + (f"; possibly {f.also}" if f.also else "")
            + f" (within two refreshes)\nundo:   {lab} fix {fault}\n"
        )
        return 0
    if action == "fix":
        out.write(f"{fault}: {faults.repair(store, fault)}\n")
        return 0
    raise LabError(f"unknown lab action {action!r}")


def lab_command(store: Store) -> str:
    """`tenantscope lab`, with `--dir` when the lab is not in the directory the next command
    finds by itself: the hints printed are pasted as they are."""
    if store.dir == lab_dir():
        return "tenantscope lab"
    return f"tenantscope lab --dir {shlex.quote(str(store.dir))}"


def list_faults(store: Store, out: TextIO) -> int:
    try:
        rec = store.load()
    except LabError:
        rec = None
    for f in faults.FAULTS.values():
        why = faults.available(f, rec) if rec else ("" if f.needs != "vms" else "needs VMs")
        state = "BROKEN " if rec and f.name in rec.faults else ""
        out.write(
            f"{f.name:<16} {state}{f.what}\n{'':<17}findings: {', '.join(f.findings)}"
            + (f"; possibly {f.also}" if f.also else "")
            + (f"\n{'':<17}unavailable: {why}" if why else "")
            + "\n"
        )
    return 0


def show_status(store: Store, out: TextIO, as_json: bool) -> int:
    s = build.status(store)
    rec = s.record
    if as_json:
        doc = {
            "up": bool(rec and rec.complete),
            "recorded": rec is not None,
            "dir": str(store.dir),
            "config": str(store.config) if rec else None,
            "tenants": rec.tenants if rec else 0,
            "ovs": bool(rec and rec.ovs),
            "vms": [n for n, _ in rec.vms] if rec else [],
            "faults": list(rec.faults) if rec else [],
            "services_running": s.services_up,
            "services": s.services,
            "missing": s.missing,
        }
        out.write(json.dumps(doc, indent=1) + "\n")
        return 0 if rec and rec.complete and not s.missing else 1
    if rec is None:
        out.write(f"no lab is up (nothing recorded in {store.dir})\n")
        return 1
    if not rec.complete:
        out.write(f"a half-built lab is recorded in {store.path}: run `{lab_command(store)} down`\n")
        return 1
    out.write(
        f"lab up: {rec.tenants} tenants, {len(rec.netns)} workloads, services {s.services_up}/{s.services} "
        f"running{', Open vSwitch' if rec.ovs else ''}"
        f"{', VMs ' + ', '.join(n for n, _ in rec.vms) if rec.vms else ''}\nconfig: {store.config}\n"
        f"broken: {', '.join(rec.faults) or 'nothing'}\n"
    )
    for m in s.missing[:10]:
        out.write(f"missing: {m}\n")
    return 0 if not s.missing else 1
