"""`lab up`, `lab down` and `lab status`.

`up` refuses to start when any name it would create already exists (a namespace, a link, a
cgroup, its lab directory's record), records every name before creating it, and on an error
removes what it built. `down` removes exactly what the record lists, in the order that lets
each step succeed (processes, OVS, namespaces, links, cgroups, files), tolerates anything
already gone, and forgets the record only when everything went.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from probes.lab import cgroup
from probes.lab import ovs as labovs
from probes.lab.plan import (
    CPU_PERIOD_US,
    CPU_QUOTA_US,
    CPU_SHARES,
    MEM_LIMIT,
    PIDS_MAX,
    SERVICE_PORT,
    LabPlan,
    make_plan,
)
from probes.lab.proc import alive, kill_all, spawn_services, start_time
from probes.lab.record import LabError, LabRecord, Proc, Store

NETDEV = "ovs-netdev"  # Open vSwitch's userspace datapath device (outlives its vswitchd)


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise LabError(f"`tenantscope lab {what}` changes this machine's network and cgroups: run it as root")


def existing_links() -> set[str]:
    try:
        return set(os.listdir("/sys/class/net"))
    except OSError:
        return set()


def existing_netns() -> set[str]:
    try:
        return set(os.listdir("/run/netns"))
    except OSError:
        return set()


def collisions(plan: LabPlan, store: Store, m: cgroup.Mounts, with_vms: bool = False) -> list[str]:
    out = []
    links, nss = existing_links(), existing_netns()
    if with_vms:
        from probes.lab import vms

        for name, _, tap in vms.vm_names(plan):
            if vms.domain_exists(name):
                out.append(f"libvirt domain {name}")
            if tap in links:
                out.append(f"link {tap}")
    for t in plan.tenants:
        if t.ovs_tag is None and t.bridge in links:
            out.append(f"link {t.bridge}")
        for w in t.workloads:
            if w.name in nss:
                out.append(f"network namespace {w.name}")
            if w.host_if in links:
                out.append(f"link {w.host_if}")
    if plan.ovs_bridge and plan.ovs_bridge in links:
        out.append(f"link {plan.ovs_bridge}")
    for root in m.roots():
        d = os.path.join(root, plan.cgroup_root)
        if os.path.exists(d):
            out.append(f"cgroup {d}")
    if store.ovs.exists():
        out.append(f"directory {store.ovs}")
    return out


def ovs_wanted(mode: str) -> bool:
    if mode == "no":
        return False
    why = labovs.available()
    if why and mode == "yes":
        raise LabError(f"--ovs yes: Open vSwitch cannot run here: {why}")
    return not why


@dataclass
class Built:
    record: LabRecord
    plan: LabPlan
    seconds: float


def vms_wanted(mode: str) -> bool:
    """VMs when libvirt answers, or when libvirtd is installed and `up` may start it."""
    if mode == "no":
        return False
    from probes.lab import vms

    why = vms.available()
    if why and not vms.startable():
        return True  # installed, not running: up starts it
    if why and mode == "yes":
        raise LabError(f"--vms yes: VMs cannot run here: {why}")
    return not why


def up(store: Store, *, tenants: int = 3, ovs: str = "auto", prefix: str = "tsl-", vms: str = "no") -> Built:
    require_root("up")
    t0 = time.monotonic()
    with store.locked():
        old = store.load()
        if old is not None:
            what = "is up" if old.complete else "was half-built (an `up` that did not finish)"
            raise LabError(f"a lab {what}, recorded in {store.path}: run `tenantscope lab down` first")
        try:
            plan = make_plan(tenants, ovs=ovs_wanted(ovs), prefix=prefix)
        except ValueError as e:
            raise LabError(str(e)) from None
        m = cgroup.mounts()
        if not m.roots():
            raise LabError(
                "no cgroup hierarchy is mounted (/proc/mounts): the lab needs cgroups for its limits"
            )
        want_vms = vms_wanted(vms)
        clash = collisions(plan, store, m, want_vms)
        if clash:
            raise LabError(
                "these names exist already and the lab will not touch what it did not create: "
                + ", ".join(clash[:8])
                + (f" (and {len(clash) - 8} more)" if len(clash) > 8 else "")
            )
        rec = LabRecord(prefix=prefix, tenants=tenants, ovs=bool(plan.ovs_bridge), created_at=time.time())
        store.save(rec)
        try:
            _build(store, rec, plan, m, want_vms)
            if want_vms:
                _start_libvirtd(store, rec)
                _build_vms(store, rec, plan)
        except BaseException as e:
            try:
                _teardown(store, rec)
            except Exception:  # keep the record: `lab down` retries
                pass
            if isinstance(e, LabError):
                raise LabError(f"lab up failed and was rolled back: {e}") from None
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            raise LabError(f"lab up failed and was rolled back: {type(e).__name__}: {e}") from None
        rec.complete = True
        store.save(rec)
    return Built(rec, plan, time.monotonic() - t0)


def _build(store: Store, rec: LabRecord, plan: LabPlan, m: cgroup.Mounts, with_vms: bool = False) -> None:
    from pyroute2 import IPRoute, netns

    # 1. bridges (and the private OVS)
    rec.links += list(plan.linux_bridges())
    store.save(rec)
    with IPRoute() as ipr:
        for br in plan.linux_bridges():
            ipr.link("add", ifname=br, kind="bridge")
            idx = ipr.link_lookup(ifname=br)[0]
            _quiet_bridge(br)
            ipr.link("set", index=idx, state="up")
        if plan.ovs_bridge:
            rec.ovs_dir = str(store.ovs)
            if NETDEV not in existing_links():
                # the userspace datapath's own (persistent) tap, made by our vswitchd: ours to remove
                rec.links.append(NETDEV)
            store.save(rec)

            def on_daemon(p: Proc) -> None:
                rec.ovs_daemons.append(p)
                store.save(rec)

            labovs.start(store.ovs, on_daemon)
            rec.ovs_bridges.append(plan.ovs_bridge)
            store.save(rec)
            labovs.add_bridge(store.ovs, plan.ovs_bridge)

        # 2. namespaces and veths, recorded tenant by tenant before they are made
        ovs_ports: list[tuple[str, int]] = []
        for t in plan.tenants:
            rec.netns += [w.name for w in t.workloads]
            rec.links += [w.host_if for w in t.workloads]
            store.save(rec)
            br_idx = ipr.link_lookup(ifname=t.bridge)[0] if t.ovs_tag is None else None
            for w in t.workloads:
                netns.create(w.name)
                ipr.link(
                    "add", ifname=w.host_if, kind="veth", peer={"ifname": "tslpeer", "net_ns_fd": w.name}
                )
                idx = ipr.link_lookup(ifname=w.host_if)[0]
                if br_idx is not None:
                    ipr.link("set", index=idx, master=br_idx)
                else:
                    ovs_ports.append((w.host_if, t.ovs_tag or 0))
                ipr.link("set", index=idx, state="up")
                with IPRoute(netns=w.name, flags=0) as n:
                    i = n.link_lookup(ifname="tslpeer")[0]
                    n.link("set", index=i, ifname="eth0")
                    n.addr("add", index=i, address=w.address, prefixlen=24)
                    n.link("set", index=i, state="up")
                    n.link("set", index=n.link_lookup(ifname="lo")[0], state="up")
        if ovs_ports:
            args: list[str] = []
            for port, tag in ovs_ports:
                args += ["--", "add-port", plan.ovs_bridge, port, f"tag={tag}"]
            labovs.vsctl(store.ovs, *args[1:])

    # 3. cgroups with limits
    for w in plan.workloads():
        new = [d for d in cgroup.dirs_for(m, w.cgroup) if d not in rec.cgroups]
        rec.cgroups += new
    store.save(rec)
    for d in rec.cgroups:
        os.makedirs(d, exist_ok=True)
    cgroup.enable_v2_controllers(
        m, [plan.cgroup_root] + [f"{plan.cgroup_root}/{t.name}" for t in plan.tenants]
    )
    for w in plan.workloads():
        cgroup.set_limits(
            m,
            w.cgroup,
            quota_us=CPU_QUOTA_US,
            period_us=CPU_PERIOD_US,
            shares=CPU_SHARES,
            mem=MEM_LIMIT,
            pids=PIDS_MAX,
        )

    # 4. files: the config that maps the lab, the lab's own log
    rec.files += [str(store.config), str(store.log)]
    store.save(rec)
    store.log.touch(mode=0o600)
    store.config.write_text(config_text(plan, store, with_vms))

    # 5. one service per workload
    def on_start(p: Proc) -> None:
        rec.procs.append(p)
        store.save(rec)

    spawn_services(
        [
            (w.name, f"/run/netns/{w.name}", cgroup.leaves(m, w.cgroup), SERVICE_PORT)
            for w in plan.workloads()
        ],
        on_start,
    )


def _start_libvirtd(store: Store, rec: LabRecord) -> None:
    """libvirtd installed but not running: start it (and virtlogd), recorded for `down`."""
    from probes.lab import vms
    from probes.lab.proc import start_time

    if not vms.available():
        return
    kvm = vms.open_kvm()
    if kvm is not None:
        rec.set_note("kvm_mode", kvm)
        store.save(rec)

    def started(what: str, pid: int) -> None:
        rec.procs.append(Proc(pid, start_time(pid) or 0, what))
        store.save(rec)

    why = vms.start_daemons(str(store.dir / "libvirt"), started)
    if why:
        raise LabError(f"libvirtd is installed but could not be started: {why}")


def _build_vms(store: Store, rec: LabRecord, plan: LabPlan) -> None:
    """The VMs, started in parallel (each takes about half a second; the guest inside boots in
    about 2 s more). The guest image is built first (once per machine: probes/lab/guestimage.py);
    without it the VMs are diskless and the record notes why."""
    from concurrent.futures import ThreadPoolExecutor

    from probes.lab import guestimage, vms

    why = guestimage.why_not()
    if not why:
        try:
            guestimage.build_image()
        except (OSError, RuntimeError, subprocess.SubprocessError, StopIteration) as e:
            why = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
    if why:
        rec.set_note("guest_image", f"no guest OS in the lab's VMs: {why}")
    todo = []
    for i, (name, bridge, tap) in enumerate(vms.vm_names(plan)):
        uid = vms.new_uuid()
        rec.vms.append([name, uid])
        rec.links.append(tap)
        todo.append((name, uid, bridge, tap, i, "" if why else vms.vm_address(plan, name)))
    store.save(rec)
    with ThreadPoolExecutor(max(1, len(todo))) as pool:
        pids = list(pool.map(lambda a: vms.create(*a[:5], address=a[5]), todo))
    for (name, *_), pid in zip(todo, pids):
        if pid:
            rec.procs.append(Proc(pid, start_time(pid) or 0, f"qemu {name}"))
    store.save(rec)


def _destroy_vms(rec: LabRecord) -> list[str]:
    from concurrent.futures import ThreadPoolExecutor

    from probes.lab import vms

    if not rec.vms:
        return []
    with ThreadPoolExecutor(len(rec.vms)) as pool:
        errs = list(pool.map(lambda v: vms.destroy(v[1]), rec.vms))
    for (name, _), e in zip(rec.vms, errs):
        if not e:  # gone: the QEMU log libvirt keeps of it goes too (it grew with every lab run)
            vms.remove_log(name)
    return [f"libvirt domain {name} ({e})" for (name, _), e in zip(rec.vms, errs) if e]


def _quiet_bridge(br: str) -> None:
    """No STP delay, no IPv6 link-local chatter on the lab's bridges (a new bridge would also get
    a host address of its own: fe80::, which NET-06 would rightly call a host address)."""
    for path, value in ((f"/proc/sys/net/ipv6/conf/{br}/disable_ipv6", "1"),):
        with contextlib.suppress(OSError):
            cgroup.write(path, value)


def config_text(plan: LabPlan, store: Store, with_vms: bool = False) -> str:
    """The config that maps the lab's workloads to their tenants (by namespace name and by
    cgroup path) and says no tenant may reach another."""
    q = _toml_str
    lines = [
        "# Generated by `tenantscope lab up`; removed by `tenantscope lab down`.",
        f"# Use: tenantscope --config {store.config}",
        "",
    ]
    for t in plan.tenants:
        lines += [
            "[[tenant]]",
            f"name = {q(t.name)}",
            f"netns = [{q(plan.prefix + t.name + '-*')}]",
            f"cgroups = [{q('/' + plan.cgroup_root + '/' + t.name + '/*')}]",
            f"domains = [{q(plan.prefix + t.name + '-*')}]",
            "",
        ]
    lines += [
        "[prefix]",
        "enabled = false  # everything the lab does not map stays unplaced",
        "",
        "[policy]",
        "allow = []  # full isolation: no tenant may reach another",
        "",
        "[logs]",
        f"files = [{q(str(store.log))}]",
        "journal = false",
        "",
    ]
    if plan.ovs_bridge:
        lines += ["[network]", f"ovsdb = {q(labovs.db(store.ovs))}", f"probe_ports = [{SERVICE_PORT}]", ""]
    else:
        lines += ["[network]", f"probe_ports = [{SERVICE_PORT}]", ""]
    if with_vms:
        from probes.lab import vms

        lines += ["[network.addresses]  # the VMs' static addresses (probe targets before any traffic)"]
        lines += [f"{q(n)} = [{q(vms.vm_address(plan, n).split('/')[0])}]" for n, _, _ in vms.vm_names(plan)]
        lines.append("")
    return "\n".join(lines)


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------- down


@dataclass
class TornDown:
    removed: int
    left: list[str]
    seconds: float


def down(store: Store) -> TornDown | None:
    """None when no lab is recorded."""
    require_root("down")
    t0 = time.monotonic()
    with store.locked():
        rec = store.load()
        if rec is None:
            _tidy_dir(store)
            return None
        removed, left = _teardown(store, rec)
        if not left:
            store.forget()
            _tidy_dir(store)
        else:
            store.save(rec)
    return TornDown(removed, left, time.monotonic() - t0)


def _tidy_dir(store: Store) -> None:
    with contextlib.suppress(OSError):
        (store.dir / ".lock").unlink()
    with contextlib.suppress(OSError):
        store.dir.rmdir()


def lab_pids(rec: LabRecord) -> list[Proc]:
    """The recorded processes still alive, and every process inside the lab's own cgroups (the
    noisy-neighbour burners, anything a trainee started there)."""
    out = [p for p in rec.procs + [] if alive(p)]
    seen = {p.pid for p in out}
    for d in rec.cgroups:
        for pid in cgroup.procs_in(d):
            st = start_time(pid)
            if pid not in seen and st is not None:
                out.append(Proc(pid, st, f"in {d}"))
                seen.add(pid)
    return out


def _teardown(store: Store, rec: LabRecord) -> tuple[int, list[str]]:
    from pyroute2 import IPRoute, netns

    removed = 0
    left: list[str] = []
    # VMs through libvirt (a QEMU that libvirt cannot stop is killed below by its recorded PID)
    vm_problems = _destroy_vms(rec)
    removed += len(rec.vms) - len(vm_problems)
    # processes
    stuck = kill_all(lab_pids(rec))
    left += [f"process {p.pid} ({p.what})" for p in stuck]
    removed += len(rec.procs)
    # OVS: its ports and bridge go with its daemons and private database
    if rec.ovs_daemons or rec.ovs_dir:
        d = Path(rec.ovs_dir) if rec.ovs_dir else None
        if d is not None and (d / "db.sock").exists():
            for br in rec.ovs_bridges:
                labovs.vsctl(d, "--if-exists", "del-br", br, check=False)
        still = labovs.stop(rec.ovs_daemons, d)
        left += [f"process {p.pid} ({p.what})" for p in still]
        removed += len(rec.ovs_daemons)
    # root-namespace links first (deleting a veth removes its peer at once; a namespace's
    # removal is finished by the kernel later, which would leave the veth for a moment), then
    # the namespaces
    links = existing_links()
    with IPRoute() as ipr:
        for name in reversed(rec.links):
            if name not in links:
                continue
            idx = ipr.link_lookup(ifname=name)
            if not idx:
                continue
            try:
                ipr.link("del", index=idx[0])
                removed += 1
            except Exception as e:
                if ipr.link_lookup(ifname=name):
                    left.append(f"link {name} ({e})")
    nss = existing_netns()
    for name in rec.netns:
        if name in nss:
            try:
                netns.remove(name)
                removed += 1
            except OSError as e:
                left.append(f"network namespace {name} ({e.strerror})")
    # cgroups, children first
    for d in reversed(rec.cgroups):
        if not os.path.exists(d):
            continue
        if cgroup.remove(d):
            removed += 1
        else:
            left.append(f"cgroup {d}")
    for name, uid in rec.vms:  # libvirt could not destroy it, but its QEMU is gone: forget it
        if any(name in v for v in vm_problems) and not any(
            p.what == f"qemu {name}" and alive(p) for p in rec.procs
        ):
            vm_problems = [v for v in vm_problems if name not in v]
    left += vm_problems
    for f in rec.files:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f)
            removed += 1
    kvm = rec.note("kvm_mode")
    if kvm:
        from probes.lab import vms

        vms.restore_kvm(kvm)
        rec.set_note("kvm_mode", None)
    rec.faults = []
    return removed, left


# ---------------------------------------------------------------- status


@dataclass
class Status:
    record: LabRecord | None
    services_up: int
    services: int
    missing: list[str]


def status(store: Store) -> Status:
    rec = store.load()
    if rec is None:
        return Status(None, 0, 0, [])
    services = [p for p in rec.procs if p.what.startswith("service ")]
    up_ = sum(1 for p in services if alive(p))
    nss, links = existing_netns(), existing_links()
    missing = [f"network namespace {n}" for n in rec.netns if n not in nss]
    missing += [f"link {n}" for n in rec.links if n not in links]
    missing += [f"cgroup {d}" for d in rec.cgroups if not os.path.isdir(d)]
    missing += [f"process {p.pid} ({p.what})" for p in services if not alive(p)]
    missing += [f"process {p.pid} ({p.what})" for p in rec.ovs_daemons if not alive(p)]
    return Status(rec, up_, len(services), missing)
