"""The faults a trainee diagnoses: each breaks one isolation property of the lab, in a way a
real host breaks, and `fix` puts it back exactly. Each fault states the findings it produces
(check ids), which the tests assert appear after `break` and go after `fix`.

Faults only change what the lab created (its links, namespaces, cgroups, services, log file)
and note in the record what they must restore.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from probes.lab import cgroup
from probes.lab import ovs as labovs
from probes.lab.plan import CPU_PERIOD_US, CPU_QUOTA_US, CPU_SHARES, MEM_LIMIT, PIDS_MAX, LabPlan, make_plan
from probes.lab.proc import signal_proc
from probes.lab.record import LabError, LabRecord, Store


@dataclass
class Ctx:
    store: Store
    rec: LabRecord
    plan: LabPlan
    mounts: cgroup.Mounts

    def save(self) -> None:
        self.store.save(self.rec)


@dataclass(frozen=True)
class Fault:
    name: str
    what: str  # one line: what breaks
    findings: tuple[str, ...]  # check ids that must appear (others may accompany them)
    also: str  # findings that may accompany them, in words
    needs: str  # "" | "ovs" | "vms"
    apply: Callable[[Ctx], str]
    undo: Callable[[Ctx], str]


def _sysctl(path: str, value: str) -> None:
    cgroup.write(path, value)


def _ipr(ns: str | None = None):
    from pyroute2 import IPRoute

    return IPRoute(netns=ns, flags=0) if ns else IPRoute()


# ---------------------------------------------------------------- shared-bridge


def _victim(p: LabPlan):
    t = p.tenants[1]
    return t, t.workloads[0], p.tenants[0]


def shared_break(c: Ctx) -> str:
    t, w, other = _victim(c.plan)
    with _ipr() as ipr:
        ipr.link(
            "set", index=ipr.link_lookup(ifname=w.host_if)[0], master=ipr.link_lookup(ifname=other.bridge)[0]
        )
    return f"{w.name} (tenant {t.name}) now plugged into {other.bridge}, tenant {other.name}'s bridge"


def shared_fix(c: Ctx) -> str:
    t, w, _ = _victim(c.plan)
    with _ipr() as ipr:
        ipr.link(
            "set", index=ipr.link_lookup(ifname=w.host_if)[0], master=ipr.link_lookup(ifname=t.bridge)[0]
        )
    return f"{w.name} back on {t.bridge}"


# ---------------------------------------------------------------- vlan-leak


def _ovs_tenant(p: LabPlan):
    t = next((t for t in p.tenants if t.ovs_tag is not None), None)
    if t is None:
        raise LabError("this lab has no tenant on Open vSwitch (built without OVS)")
    return t, t.workloads[0]


def vlan_break(c: Ctx) -> str:
    t, w = _ovs_tenant(c.plan)
    labovs.vsctl(c.store.ovs, "clear", "Port", w.host_if, "tag")
    return f"OVS port {w.host_if} (tenant {t.name}) lost its tag {t.ovs_tag}: it now trunks every VLAN"


def vlan_fix(c: Ctx) -> str:
    t, w = _ovs_tenant(c.plan)
    labovs.vsctl(
        c.store.ovs, "set", "Port", w.host_if, f"tag={t.ovs_tag}", "--", "clear", "Port", w.host_if, "trunks"
    )
    return f"OVS port {w.host_if} tagged {t.ovs_tag} again"


# ---------------------------------------------------------------- forwarding


def _pair(p: LabPlan):
    a, b = p.tenants[0], p.tenants[1]
    return a, b


def fwd_break(c: Ctx) -> str:
    a, b = _pair(c.plan)
    with _ipr() as ipr:
        for t in (a, b):
            ipr.addr("add", index=ipr.link_lookup(ifname=t.bridge)[0], address=t.gateway, prefixlen=24)
    for t in (a, b):
        _sysctl(f"/proc/sys/net/ipv4/conf/{t.bridge}/forwarding", "1")
    for src, dst in ((a, b), (b, a)):
        with _ipr(src.workloads[0].name) as n:
            n.route("add", dst=dst.subnet, gateway=src.gateway)
    return (
        f"the host routes between {a.bridge} ({a.gateway}) and {b.bridge} ({b.gateway}) with "
        f"forwarding on and no filter; {a.workloads[0].name} and {b.workloads[0].name} route via it"
    )


def fwd_fix(c: Ctx) -> str:
    a, b = _pair(c.plan)
    for src, dst in ((a, b), (b, a)):
        try:
            with _ipr(src.workloads[0].name) as n:
                n.route("del", dst=dst.subnet, gateway=src.gateway)
        except Exception:
            pass
    for t in (a, b):
        try:
            _sysctl(f"/proc/sys/net/ipv4/conf/{t.bridge}/forwarding", "0")
        except OSError:
            pass
    with _ipr() as ipr:
        for t in (a, b):
            try:
                ipr.addr("del", index=ipr.link_lookup(ifname=t.bridge)[0], address=t.gateway, prefixlen=24)
            except Exception:
                pass
    return f"no host addresses or forwarding on {a.bridge}, {b.bridge}"


# ---------------------------------------------------------------- no-limits


def _unlimited(p: LabPlan):
    return p.tenants[0].workloads[1]


def nolimits_break(c: Ctx) -> str:
    w = _unlimited(c.plan)
    cgroup.set_limits(
        c.mounts, w.cgroup, quota_us=None, period_us=CPU_PERIOD_US, shares=None, mem=None, pids=None
    )
    return f"{w.name}: CPU quota, memory limit and pids limit removed from cgroup /{w.cgroup}"


def nolimits_fix(c: Ctx) -> str:
    w = _unlimited(c.plan)
    cgroup.set_limits(
        c.mounts,
        w.cgroup,
        quota_us=CPU_QUOTA_US,
        period_us=CPU_PERIOD_US,
        shares=CPU_SHARES,
        mem=MEM_LIMIT,
        pids=PIDS_MAX,
    )
    return f"{w.name}: limits restored"


# ---------------------------------------------------------------- noisy-neighbour

NOISY_SHARES = 8 * CPU_SHARES  # the noisy tenant also raised its weight: it wins on a busy host


def _weights(c: Ctx, rel: str, shares: int) -> None:
    """cpu.shares of the workload's parent groups up to the lab's root group (v1: a group
    competes with its siblings, so on a busy host the lab's groups need weight to be noisy; the
    workload's own weight, its configured share among tenants, stays)."""
    cpu = c.mounts.v1_mount("cpu")
    if not cpu:
        return
    parts = rel.strip("/").split("/")
    for i in range(1, len(parts)):
        cgroup.write(os.path.join(cpu, *parts[:i], "cpu.shares"), str(shares))


def _noisy(p: LabPlan):
    return p.tenants[1], p.tenants[1].workloads[1]


def _service(c: Ctx, name: str):
    p = next((p for p in c.rec.procs if p.what == f"service {name}"), None)
    if p is None:
        raise LabError(f"no service recorded for {name}")
    return p


def noisy_break(c: Ctx) -> str:
    t, w = _noisy(c.plan)
    ncpu = os.cpu_count() or 1
    cgroup.set_limits(
        c.mounts,
        w.cgroup,
        quota_us=ncpu * CPU_PERIOD_US,
        period_us=CPU_PERIOD_US,
        shares=CPU_SHARES,
        mem=MEM_LIMIT,
        pids=PIDS_MAX,
    )
    _weights(c, w.cgroup, NOISY_SHARES)
    if not signal_proc(_service(c, w.name), signal.SIGUSR1):
        raise LabError(f"{w.name}: its service is not running (lab status)")
    return f"{w.name} (tenant {t.name}): CPU quota raised to {ncpu} core(s) and two CPU burners started"


def noisy_fix(c: Ctx) -> str:
    t, w = _noisy(c.plan)
    signal_proc(_service(c, w.name), signal.SIGUSR2)
    _weights(c, w.cgroup, CPU_SHARES)
    cgroup.set_limits(
        c.mounts,
        w.cgroup,
        quota_us=CPU_QUOTA_US,
        period_us=CPU_PERIOD_US,
        shares=CPU_SHARES,
        mem=MEM_LIMIT,
        pids=PIDS_MAX,
    )
    return f"{w.name}: burners stopped, quota back to {CPU_QUOTA_US / CPU_PERIOD_US:.2f} core"


# ---------------------------------------------------------------- mac-denial

MARK = 'tsl_lab="simulated by tenantscope lab break mac-denial, not a real denial"'


def denial_lines(c: Ctx, now: float | None = None) -> list[str]:
    a, b = c.plan.tenants[0], c.plan.tenants[1]
    src, dst = a.workloads[0], b.workloads[-1]
    pid = _service(c, src.name).pid
    now = time.time() if now is None else now
    host = socket.gethostname()
    out = []
    for i, (op, obj, mask) in enumerate(
        (
            ("open", f"/run/netns/{dst.name}", "r"),
            ("open", f"/sys/fs/cgroup/memory/{dst.cgroup}/memory.limit_in_bytes", "w"),
            ("connect", f"/run/{dst.name}.sock", "w"),
        )
    ):
        t = now + i * 0.001
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}+00:00"
        out.append(
            f'{stamp} {host} kernel: audit: type=1400 audit({t:.3f}:{9000 + i}): apparmor="DENIED" '
            f'operation="{op}" profile="{src.name}" name="{obj}" pid={pid} comm="{src.name}" '
            f'requested_mask="{mask}" denied_mask="{mask}" fsuid=65534 ouid=0 {MARK}'
        )
    return out


def denial_break(c: Ctx) -> str:
    lines = denial_lines(c)
    with open(c.store.log, "a") as f:
        f.write("".join(line + "\n" for line in lines))
    a, b = c.plan.tenants[0], c.plan.tenants[1]
    return (
        f"{len(lines)} simulated AppArmor denials appended to {c.store.log}: tenant {a.name}'s "
        f"{a.workloads[0].name} touching tenant {b.name}'s {b.workloads[-1].name}"
    )


def denial_fix(c: Ctx) -> str:
    try:
        with open(c.store.log) as f:
            keep = [line for line in f if MARK not in line]
    except FileNotFoundError:
        keep = []
    with open(c.store.log, "w") as f:
        f.writelines(keep)
    return (
        f"the simulated denials were removed from {c.store.log} (a console already running keeps them "
        f"in its history until restarted)"
    )


# ---------------------------------------------------------------- unconfined-vm


def _vm(c: Ctx) -> tuple[str, str, int]:
    from probes.lab import vms

    if not c.rec.vms:
        raise LabError("this lab has no VMs (built where libvirtd + QEMU did not run, or with --vms no)")
    name, uid = c.rec.vms[0]
    i, (_, bridge, tap) = next((i, v) for i, v in enumerate(vms.vm_names(c.plan)) if v[0] == name)
    return name, uid, i


def _restart_vm(c: Ctx, unconfined: bool) -> str:
    from probes.lab import vms
    from probes.lab.proc import start_time

    name, uid, i = _vm(c)
    _, bridge, tap = vms.vm_names(c.plan)[i]
    why = vms.destroy(uid)
    if why:
        raise LabError(f"{name}: {why}")
    pid = vms.create(name, uid, bridge, tap, i, unconfined=unconfined)
    c.rec.procs = [p for p in c.rec.procs if p.what != f"qemu {name}"]
    if pid:
        from probes.lab.record import Proc

        c.rec.procs.append(Proc(pid, start_time(pid) or 0, f"qemu {name}"))
    c.save()
    return name


def unconfined_break(c: Ctx) -> str:
    name = _restart_vm(c, True)
    return f"{name} restarted with <seclabel type='none'/>: QEMU runs unconfined (as libvirtd's user)"


def unconfined_fix(c: Ctx) -> str:
    name = _restart_vm(c, False)
    return f"{name} restarted with libvirt's default labelling"


# ---------------------------------------------------------------- vm-wrong-bridge


def _moved_vm(c: Ctx) -> tuple[str, str, str, str]:
    """(VM name, its tap, its own bridge, the other tenant's bridge)."""
    from probes.lab import vms

    name, _, i = _vm(c)
    _, bridge, tap = vms.vm_names(c.plan)[i]
    other = next(t.bridge for t in c.plan.tenants if t.ovs_tag is None and t.bridge != bridge)
    return name, tap, bridge, other


def vm_bridge_break(c: Ctx) -> str:
    name, tap, _, other = _moved_vm(c)
    with _ipr() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=tap)[0], master=ipr.link_lookup(ifname=other)[0])
    return f"{name}'s NIC ({tap}) now plugged into {other}, another tenant's bridge"


def vm_bridge_fix(c: Ctx) -> str:
    name, tap, bridge, _ = _moved_vm(c)
    with _ipr() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=tap)[0], master=ipr.link_lookup(ifname=bridge)[0])
    return f"{name}'s NIC back on {bridge}"


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault(
            "shared-bridge",
            "a workload of globex is re-plugged into acme's bridge",
            ("NET-02", "NET-04"),
            "",
            "",
            shared_break,
            shared_fix,
        ),
        Fault(
            "vlan-leak",
            "initech's OVS port loses its VLAN tag and trunks every VLAN",
            ("NET-03",),
            "",
            "ovs",
            vlan_break,
            vlan_fix,
        ),
        Fault(
            "forwarding",
            "the host gets addresses on acme's and globex's bridges and forwards between them",
            ("NET-07",),
            "NET-06 (tenants reach a host address), NET-05 (predicted, or observed with --probe)",
            "",
            fwd_break,
            fwd_fix,
        ),
        Fault(
            "no-limits",
            "acme's db loses its CPU quota, memory limit and pids limit",
            ("CTR-07",),
            "",
            "",
            nolimits_break,
            nolimits_fix,
        ),
        Fault(
            "noisy-neighbour",
            "a CPU burner runs in globex's db, its quota raised to every core",
            ("RES-02",),
            "RES-01 (the spike against the workload's own baseline)",
            "",
            noisy_break,
            noisy_fix,
        ),
        Fault(
            "mac-denial",
            "simulated AppArmor denials: acme's web touching globex's files, in the lab's log",
            ("LOG-01",),
            "",
            "",
            denial_break,
            denial_fix,
        ),
        Fault(
            "vm-wrong-bridge",
            "acme's VM is moved onto globex's bridge (needs VMs)",
            ("NET-02", "NET-04"),
            "with --probe the VM's cells are observed from its segment (still blocked at L3: it keeps acme's subnet)",
            "vms",
            vm_bridge_break,
            vm_bridge_fix,
        ),
        Fault(
            "unconfined-vm",
            "acme's VM is restarted with <seclabel type='none'/> (needs VMs)",
            ("VM-01",),
            "",
            "vms",
            unconfined_break,
            unconfined_fix,
        ),
    )
}


def available(f: Fault, rec: LabRecord | None) -> str:
    """'' when `f` can be injected in the lab `rec`, else why not."""
    if f.needs == "ovs" and not (rec and rec.ovs):
        return "needs a tenant on Open vSwitch (the lab was built without OVS)"
    if f.needs == "vms" and not (rec and rec.vms):
        return "needs VMs (the lab was built without: libvirtd + QEMU not running, or --vms no)"
    return ""


def context(store: Store) -> Ctx:
    rec = store.load()
    if rec is None:
        raise LabError("no lab is up: run `tenantscope lab up` first")
    if not rec.complete:
        raise LabError("the lab was half-built: run `tenantscope lab down`, then `tenantscope lab up`")
    plan = make_plan(rec.tenants, ovs=rec.ovs, prefix=rec.prefix)
    return Ctx(store, rec, plan, cgroup.mounts())


def get(name: str) -> Fault:
    f = FAULTS.get(name)
    if f is None:
        raise LabError(f"unknown fault {name!r}; faults: {', '.join(FAULTS)} (`tenantscope lab list-faults`)")
    return f


def inject(store: Store, name: str) -> str:
    f = get(name)
    if not store.exists():
        raise LabError("no lab is up: run `tenantscope lab up` first")
    with store.locked():
        c = context(store)
        why = available(f, c.rec)
        if why:
            raise LabError(f"{name}: {why}")
        if name in c.rec.faults:
            return f"{name} is already broken"
        c.rec.faults.append(name)  # recorded first: `fix` and `down` undo a half-applied fault
        c.save()
        return f.apply(c)


def repair(store: Store, name: str) -> str:
    f = get(name)
    if not store.exists():
        raise LabError("no lab is up: run `tenantscope lab up` first")
    with store.locked():
        c = context(store)
        if name not in c.rec.faults:
            return f"{name} is not broken"
        msg = f.undo(c)
        c.rec.faults.remove(name)
        c.save()
        return msg
