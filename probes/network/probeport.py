"""Temporary probe ports: probing from a VM's segment without touching the guest.

For a VM source, a new network namespace gets one end of a veth pair; the other end joins the
VM's segment: a port of its Linux bridge, or a port of its Open vSwitch bridge with the VM
port's VLAN tag (a veth, not an OVS internal port: a userspace-datapath internal port does not
follow a move into a namespace, a veth works with every datapath). The namespace gets an
address in the VM's subnet that an ARP probe (sender 0.0.0.0, as in duplicate address
detection) found unanswered, then the ordinary prober runs from it ("from segment").

This is the only probe source that adds anything to the host, so it is strict about it:
- refused in read-only mode (the caller checks; `plan_ports` only plans);
- every object is written to a record file (RUN_DIR/probe-ports-PID.json, atomically) BEFORE it
  is created, and removed after the run, on cancel, and at the next start (`sweep`) when
  tenantscope was killed mid-run (a record whose process is gone);
- `describe` lists exactly what will be added to which bridge, for the confirmation.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import re
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from probes.model import HostState
from probes.network.model import ReachResult, Route, Topology
from probes.network.nsenter import in_netns
from probes.network.segments import Attachment, Endpoint, endpoints, segment_label

RUN_DIR = Path(os.environ.get("TENANTSCOPE_RUN_DIR", "/run/tenantscope"))
NAME_PREFIX = "tsp"  # namespaces tsp-XXXXXX, host-side veths tspXXXXXXh
_IFNAME = re.compile(r"[A-Za-z0-9_.@+:-]{1,15}")
ARP_WAIT = 0.2  # seconds an address must stay unanswered (a neighbour on the same bridge answers in ms)
MAX_TRIES = 6  # candidate addresses tried per port


@dataclass(frozen=True)
class PortPlan:
    """One probe port to add, computed before anything exists."""

    vm: str  # workload key
    vm_name: str
    tenant: str
    segment: str  # segment id (br:/NAME or ovs:BR#TAG)
    bridge: str
    kind: str  # linux or ovs
    tag: int | None  # OVS VLAN tag (None: untagged)
    netns: str
    host_if: str
    subnet: str  # CIDR the address is taken from
    candidates: tuple[str, ...]  # addresses tried in order (each checked free by ARP)
    vm_addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skipped:
    vm: str
    tenant: str
    why: str


@dataclass
class Record:
    """What one run created (written before each creation)."""

    pid: int
    start: int  # process start time (clock ticks): (pid, start) names one process
    netns: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    ovs_ports: list[list[str]] = field(default_factory=list)  # [db ("" default), bridge, port]


def plan_ports(hs: HostState, vms: Sequence[str] | None = None) -> tuple[list[PortPlan], list[Skipped]]:
    """One port per VM (its first NIC on a Linux bridge of the root namespace or an OVS
    bridge); the VMs that cannot get one, with why."""
    from hashlib import sha256  # here: hashlib loads OpenSSL (~3 MiB), for a probe the user asked for

    topo = hs.topology or Topology()
    plans: list[PortPlan] = []
    skipped: list[Skipped] = []
    taken = _known_addresses(topo)
    eps = [e for e in endpoints(hs) if e.netns is None and e.workload != "host"]
    for e in eps:
        if vms is not None and e.workload not in vms:
            continue
        att = next((a for a in e.attachments if _joinable(a)), None)
        if att is None:
            why = (
                "its NIC is on no Linux bridge or OVS VLAN known here"
                if not e.attachments
                else (f"{segment_label(e.attachments[0].segment)} cannot take a probe port")
            )
            skipped.append(Skipped(e.workload, e.tenant, why))
            continue
        if not e.addresses:
            skipped.append(Skipped(e.workload, e.tenant, "its address is unknown (no subnet to join)"))
            continue
        subnet = _subnet(hs, e, att, topo)
        # the same names the confirmation listed: derived from the VM and this process
        token = sha256(f"{e.workload}|{os.getpid()}".encode()).hexdigest()[:6]
        cands = _candidates(subnet, taken | set(e.addresses))
        if not cands:
            skipped.append(Skipped(e.workload, e.tenant, f"no free address left in {subnet}"))
            continue
        kind, bridge, tag = _where(att)
        plans.append(
            PortPlan(
                e.workload,
                e.name,
                e.tenant,
                att.segment,
                bridge,
                kind,
                tag,
                f"{NAME_PREFIX}-{token}",
                f"{NAME_PREFIX}{token}h",
                str(subnet),
                cands,
                e.addresses,
            )
        )
        taken |= set(cands[:1])
    return plans, skipped


def describe(plans: Sequence[PortPlan]) -> list[str]:
    """Exactly what a segment run adds and removes, one line per port (for the confirmation)."""
    out = []
    for p in plans:
        where = f"OVS bridge {p.bridge}" + (f" with VLAN tag {p.tag}" if p.tag else " untagged")
        if p.kind == "linux":
            where = f"Linux bridge {p.bridge}"
        out.append(
            f"add network namespace {p.netns} and veth {p.host_if} as a port of {where} "
            f"(the segment of VM {p.vm_name}), address {p.candidates[0]} from {p.subnet} "
            f"(checked free by ARP first); all removed after the run"
        )
    return out


def _joinable(a: Attachment) -> bool:
    if a.segment.startswith("br:"):
        return a.segment[3:].rpartition("/")[0] == ""  # a bridge of the root namespace
    return a.segment.startswith("ovs:") and not a.segment.endswith("#none")


def _where(a: Attachment) -> tuple[str, str, int | None]:
    if a.segment.startswith("br:"):
        return "linux", a.segment[3:].rpartition("/")[2], None
    br, _, tag = a.segment[4:].partition("#")
    return "ovs", br, (int(tag) or None) if tag.isdigit() else None


def _known_addresses(topo: Topology) -> set[str]:
    out = {a.split("/")[0] for lk in topo.links for a in lk.addresses}
    out |= {n.address for n in topo.neighbours}
    return out


def _subnet(hs: HostState, e: Endpoint, att: Attachment, topo: Topology) -> ipaddress.IPv4Network:
    """The VM's subnet: a prefix its address source knows, else the prefix of an address on
    the same segment that contains the VM's address, else a /24 around it."""
    from probes.network.segments import attach
    from probes.network.vmaddr import vm_addresses

    ip = ipaddress.IPv4Address(e.addresses[0])
    for nic in vm_addresses(hs).get(e.workload, ()):
        for a in nic.addresses:
            if a.address == str(ip) and 8 <= a.prefix < 31:
                return ipaddress.IPv4Network(f"{ip}/{a.prefix}", strict=False)
    for lk in topo.links:
        if not lk.addresses:
            continue
        b = attach(topo, lk)
        if b is None or b.segment != att.segment:
            continue
        for cidr in lk.addresses:
            net = ipaddress.ip_interface(cidr).network
            if isinstance(net, ipaddress.IPv4Network) and ip in net and net.prefixlen < 31:
                return net
    return ipaddress.IPv4Network(f"{ip}/24", strict=False)


def _candidates(net: ipaddress.IPv4Network, taken: set[str]) -> tuple[str, ...]:
    """From the top of the subnet down (gateways usually sit at .1 or .254: skip .254)."""
    out: list[str] = []
    top = int(net.broadcast_address) - 2
    for i in range(top, int(net.network_address), -1):
        a = str(ipaddress.IPv4Address(i))
        if a not in taken:
            out.append(a)
        if len(out) >= MAX_TRIES:
            break
    return tuple(out)


# ---------------------------------------------------------------- the record


def _start_time(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


class Recorder:
    """The record file of this run; each name is saved before the object is created."""

    def __init__(self, run_dir: Path | None = None) -> None:
        self.dir = run_dir or RUN_DIR
        self.rec = Record(os.getpid(), _start_time(os.getpid()))
        self.path = self.dir / f"probe-ports-{os.getpid()}-{os.urandom(2).hex()}.json"  # secrets.token_hex(2)
        self._lock = threading.Lock()

    def save(self) -> None:
        with self._lock:  # ports are made in parallel threads
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(self.rec)) + "\n")
            os.replace(tmp, self.path)

    def forget(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def remove_recorded(rec: Record) -> list[str]:
    """Blocking: remove everything a record names (OVS ports, links, namespaces), the ports in
    parallel; what could not be removed, as text. Objects already gone are fine."""
    from concurrent.futures import ThreadPoolExecutor

    def ovs_port(item: list[str]) -> list[str]:
        db, bridge, port = item
        r = _vsctl(db, "--if-exists", "del-port", bridge, port)
        return [f"OVS port {port} on {bridge} ({r})"] if r else []

    def link(name: str) -> list[str]:
        if not os.path.exists(f"/sys/class/net/{name}"):
            return []
        r = _run(["ip", "link", "del", name])
        return [f"link {name} ({r})"] if r and os.path.exists(f"/sys/class/net/{name}") else []

    def netns(ns: str) -> list[str]:
        if not os.path.exists(f"/run/netns/{ns}"):
            return []
        r = _run(["ip", "netns", "del", ns])
        return [f"network namespace {ns} ({r})"] if r else []

    left: list[str] = []
    with ThreadPoolExecutor(max(1, min(16, len(rec.links) + len(rec.ovs_ports)))) as pool:
        for step, items in ((ovs_port, rec.ovs_ports), (link, rec.links), (netns, rec.netns)):
            for part in pool.map(step, items):
                left += part
    return left


def sweep(run_dir: Path | None = None) -> tuple[list[str], list[str]]:
    """Blocking: remove what killed runs left (records whose process is gone). Returns (what
    was removed, what could not be)."""
    d = run_dir or RUN_DIR
    removed: list[str] = []
    left: list[str] = []
    for path in sorted(d.glob("probe-ports-*.json")) if d.is_dir() else []:
        try:
            doc = json.loads(path.read_text())
            rec = Record(**{k: doc[k] for k in ("pid", "start", "netns", "links", "ovs_ports")})
        except (OSError, ValueError, KeyError, TypeError):
            left.append(f"{path}: unreadable probe-port record (remove what it lists by hand)")
            continue
        if rec.start and _start_time(rec.pid) == rec.start:
            continue  # its process lives: its run is going (here or in another tenantscope)
        problems = remove_recorded(rec)
        left += problems
        if not problems:
            removed += rec.netns + rec.links + [p for _, _, p in rec.ovs_ports]
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return removed, left


def _run(argv: list[str], stdin: str | None = None) -> str:
    r = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        timeout=20,
    )
    return "" if r.returncode == 0 else (r.stderr.strip()[:200] or f"exit {r.returncode}")


def _vsctl(db: str, *args: str) -> str:
    return _run(["ovs-vsctl", *([f"--db={db}"] if db else []), "--timeout=10", *args])


# ---------------------------------------------------------------- making a port


@dataclass
class Made:
    plan: PortPlan
    address: str = ""
    error: str = ""


def _make(plan: PortPlan, recorder: Recorder, ovs_db: str | None) -> Made:
    """Blocking: create the port, recorded first; choose a free address by ARP."""
    rec = recorder.rec
    with recorder._lock:
        rec.netns.append(plan.netns)
        rec.links.append(plan.host_if)
        if plan.kind == "ovs":
            rec.ovs_ports.append([ovs_db or "", plan.bridge, plan.host_if])
    recorder.save()
    # `ip -batch`: one process for the host side and one inside the namespace (forks dominate
    # the cost of a port). The bridge name is host text: a kernel link name has no blanks, but
    # it is checked here anyway, so it can only ever be one word of one batch line.
    if not _IFNAME.fullmatch(plan.bridge):
        return Made(plan, error=f"bridge name {plan.bridge!r} is not a plain interface name: not joined")
    host_side = [
        f"netns add {plan.netns}",
        f"link add {plan.host_if} type veth peer name eth0 netns {plan.netns}",
    ]
    if plan.kind == "linux":
        if not os.path.exists(f"/sys/class/net/{plan.bridge}/bridge"):
            return Made(plan, error=f"bridge {plan.bridge} does not exist (any more)")
        host_side.append(f"link set {plan.host_if} master {plan.bridge} up")
    err = _run(["ip", "-batch", "-"], "\n".join(host_side) + "\n")
    if err:
        return Made(plan, error=f"making the port: {err}")
    if plan.kind == "ovs":
        err = _vsctl(
            ovs_db or "", "add-port", plan.bridge, plan.host_if, *([f"tag={plan.tag}"] if plan.tag else [])
        ) or _run(["ip", "link", "set", plan.host_if, "up"])
        if err:
            return Made(plan, error=f"joining {plan.bridge}: {err}")
    err = _run(["ip", "-n", plan.netns, "-batch", "-"], "link set lo up\nlink set eth0 up\n")
    if err:
        return Made(plan, error=f"in {plan.netns}: {err}")
    prefix = plan.subnet.split("/")[1]
    path = f"/run/netns/{plan.netns}"
    for cand in plan.candidates:
        owner = in_netns(path, lambda c=cand: arp_owner("eth0", c))  # type: ignore[misc]
        if owner:
            continue
        err = _run(["ip", "-n", plan.netns, "addr", "add", f"{cand}/{prefix}", "dev", "eth0"])
        if err:
            return Made(plan, error=f"address {cand}: {err}")
        return Made(plan, address=cand)
    return Made(plan, error=f"every candidate address in {plan.subnet} answered ARP: none free")


def arp_owner(dev: str, address: str, wait: float = ARP_WAIT) -> str:
    """Blocking, in the namespace of `dev`: the MAC that answers ARP for `address` ('' = free).

    An ARP request with sender address 0.0.0.0 (RFC 5227 probe), so no neighbour table learns
    a mapping from it; any ARP packet whose sender is `address` counts as an answer."""
    ETH_P_ARP = 0x0806
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    try:
        s.bind((dev, ETH_P_ARP))
        mac = s.getsockname()[4][:6]
        target = socket.inet_aton(address)
        arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, b"\0" * 4, b"\0" * 6, target)
        frame = b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP) + arp
        end = time.monotonic() + wait
        s.send(frame)
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return ""
            s.settimeout(left)
            try:
                data = s.recv(128)
            except TimeoutError:
                return ""
            if len(data) >= 42 and data[12:14] == b"\x08\x06" and data[28:32] == target:
                return ":".join(f"{b:02x}" for b in data[22:28])
    finally:
        s.close()


# ---------------------------------------------------------------- the run


@dataclass(frozen=True)
class SegmentRun:
    results: tuple[ReachResult, ...]
    changes: tuple[str, ...]  # what was added and removed, for the record of the run
    errors: tuple[str, ...]


async def probe_from_segments(
    hs: HostState,
    *,
    timeout: float = 0.5,
    ports: Sequence[int] = (),
    ovs_db: str | None = None,
    vms: Sequence[str] | None = None,
    run_dir: Path | None = None,
    after_setup: object = None,
) -> SegmentRun:
    """Probe every destination from a temporary port on each VM's segment. Cancellable: the
    ports are removed on every way out (a killed process leaves its record for `sweep`)."""
    from probes.network import prober
    from probes.network.plan import Source, plan

    plans, skipped = plan_ports(hs, vms)
    results: list[ReachResult] = []
    errors: list[str] = []
    changes: list[str] = []
    _, dests, _ = plan(hs)
    for s in skipped:
        for d in dests:
            if d.workload != s.vm:
                results.append(
                    ReachResult(
                        s.tenant,
                        d.tenant,
                        s.vm,
                        d.workload,
                        "",
                        "predicted",
                        "not-testable",
                        detail=f"no probe port on its segment: {s.why}",
                        via="segment",
                    )
                )
    if not plans:
        return SegmentRun(tuple(results), (), ())
    recorder = Recorder(run_dir)
    made: list[Made] = []
    try:
        await asyncio.to_thread(lambda: sweep(run_dir))
        made = await asyncio.gather(*(asyncio.to_thread(_make, p, recorder, ovs_db) for p in plans))
        if callable(after_setup):  # tests: change the host while the ports exist
            r = after_setup(made)
            if asyncio.iscoroutine(r):
                await r
        topo = hs.topology or Topology()
        by_key = {e.workload: e for e in endpoints(hs)}
        tasks: list[asyncio.Future[list[ReachResult]] | None] = []
        for m in made:
            p = m.plan
            changes.append(describe([p])[0].replace("; all removed after the run", ""))
            if m.error:
                errors.append(f"probe port for {p.vm_name}: {m.error}")
                tasks.append(None)
                continue
            vm = by_key[p.vm]
            me = replace(vm, netns=p.netns, addresses=(m.address,))
            topo2 = replace(topo, routes=topo.routes + (Route(p.netns, p.subnet, dev="eth0"),))
            src = Source(me, f"/run/netns/{p.netns}", via="segment")
            tasks.append(
                asyncio.ensure_future(
                    prober._probe_source(
                        src,
                        dests,
                        topo2,
                        timeout=timeout,
                        ports=ports,
                        trace=True,
                        owners={},
                    )
                )
            )
        outs = await asyncio.gather(*(t for t in tasks if t is not None))
        it = iter(outs)
        for m, t in zip(made, tasks):
            p = m.plan
            if t is None:
                for d in dests:
                    if d.workload != p.vm:
                        results.append(
                            ReachResult(
                                p.tenant,
                                d.tenant,
                                p.vm,
                                d.workload,
                                "",
                                "icmp",
                                "error",
                                detail=f"from segment: probe port failed: {m.error}",
                                via="segment",
                            )
                        )
                continue
            out = next(it)
            lost = await asyncio.to_thread(_lost_bridge, p)
            note = f"from segment ({p.host_if} on {p.bridge}, {m.address})"
            for r in out:
                if lost:
                    r = replace(r, outcome="error", rtt_ms=None, detail=f"from segment: {lost}")
                else:
                    r = replace(r, detail=f"{note}; {r.detail}" if r.detail else note)
                results.append(replace(r, via="segment"))
            if lost:
                errors.append(f"probe port for {p.vm_name}: {lost}")
    finally:
        left = await asyncio.shield(asyncio.to_thread(remove_recorded, recorder.rec))
        if left:
            errors += [f"could not remove {x}: it stays recorded in {recorder.path}" for x in left]
        else:
            recorder.forget()
    return SegmentRun(tuple(results), tuple(changes), tuple(errors))


def _lost_bridge(p: PortPlan) -> str:
    """'' when the port is still on its bridge, else what happened (the bridge went away)."""
    if p.kind == "linux":
        master = os.path.realpath(f"/sys/class/net/{p.host_if}/master")
        if not os.path.exists(f"/sys/class/net/{p.bridge}"):
            return f"bridge {p.bridge} disappeared during the run: these results are not valid"
        if os.path.basename(master) != p.bridge:
            return f"the probe port left bridge {p.bridge} during the run: these results are not valid"
    return ""
