"""Probes from inside a guest, through its QEMU guest agent (opt-in per run, never read-only).

libvirt refuses agent calls on a read-only connection, so this is the one network probe that
opens a read-write libvirt connection: only for this run, closed after it, and only with the
user's explicit consent (the confirmation names the guests). Inside each guest the agent runs
`ping -c 1 -W T ADDR` and, per TCP port, `nc -z -w T ADDR PORT` (`guest-exec` with captured
output, then `guest-exec-status` until it exited); nothing is written into the guest. It also
answers `guest-network-get-interfaces`, the best source of the VM's own addresses.

An agent is untrusted: every call has a deadline (libvirt's own timeout and ours), a reply
larger than MAX_REPLY or not JSON is reported as such and never parsed further, captured
output is cut at MAX_OUTPUT, and a guest whose agent does not answer `guest-ping` is not asked
anything else. The cells then say what happened ("agent did not answer within 3 s").
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from probes.model import HostState, WorkloadKind
from probes.network.model import NicAddresses, ReachResult, VmAddress
from probes.network.segments import Endpoint, endpoints
from probes.untrusted import visible

MAX_REPLY = 1 << 20  # bytes of one agent reply
MAX_OUTPUT = 4096  # bytes of a command's captured output kept
PER_GUEST = 4  # commands at once in one guest (libvirt runs one agent call per domain at a time)
POLL = 0.05


class AgentError(Exception):
    """The agent did not give a usable answer; the message says how."""


@dataclass(frozen=True)
class GuestRun:
    results: tuple[ReachResult, ...]
    addresses: tuple[NicAddresses, ...]
    errors: tuple[str, ...]


def guests(hs: HostState, vms: Sequence[str] | None = None) -> list[str]:
    """Workload keys of the running VMs with a guest-agent channel (named in the confirmation)."""
    return [
        w.key
        for w in hs.workloads
        if w.kind == WorkloadKind.VM
        and w.vm is not None
        and w.vm.has_guest_agent
        and (not w.state or w.state == "running")
        and (vms is None or w.key in vms)
    ]


class Agent:
    """Blocking calls to one domain's agent over a read-write connection (run in threads)."""

    def __init__(self, conn: Any, name: str, timeout: float) -> None:
        self.conn, self.name, self.timeout = conn, name, timeout

    def call(self, cmd: str, args: dict[str, Any] | None = None) -> Any:
        import libvirt
        import libvirt_qemu

        req = json.dumps({"execute": cmd, **({"arguments": args} if args else {})})
        try:
            dom = self.conn.lookupByName(self.name)
            raw = libvirt_qemu.qemuAgentCommand(dom, req, max(1, round(self.timeout)), 0)
        except libvirt.libvirtError as e:
            raise AgentError(_libvirt_reason(e)) from None
        if raw is None:
            raise AgentError("agent gave no answer")
        if len(raw) > MAX_REPLY:
            raise AgentError(
                f"agent flooded: a reply of {len(raw)} bytes (more than {MAX_REPLY}) was ignored"
            )
        try:
            doc = json.loads(raw)
        except ValueError:
            raise AgentError(f"agent answered garbage: {visible(raw[:80])!s}") from None
        if not isinstance(doc, dict) or "return" not in doc:
            err = doc.get("error") if isinstance(doc, dict) else None
            desc = err.get("desc") if isinstance(err, dict) else None
            raise AgentError(
                f"agent error: {visible(str(desc)[:120])}" if desc else "agent answered garbage (no return)"
            )
        return doc["return"]


def _libvirt_reason(e: Exception) -> str:
    text = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
    if "not connected" in text:
        return "agent not connected (no agent running in the guest)"
    if "not available for now" in text or "timeout" in text.lower():
        return f"agent did not answer ({text})"
    if "due to an error" in text:
        return f"agent channel broken: it answered garbage ({text})"
    return f"agent call failed: {text}"


async def probe_from_guests(
    hs: HostState,
    uri: str,
    *,
    timeout: float = 1.0,
    ports: Sequence[int] = (),
    vms: Sequence[str] | None = None,
    agent_timeout: float = 5.0,
) -> GuestRun:
    """Probe every destination from inside every chosen guest. `agent_timeout` bounds each
    agent call; a command gets `timeout` plus that to finish."""
    import libvirt

    from probes.inventory.libvirt import quiet_libvirt

    quiet_libvirt()  # libvirt's errors are returned to us, not printed
    keys = guests(hs, vms)
    if not keys:
        return GuestRun((), (), ())
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(max_workers=min(32, PER_GUEST * len(keys)), thread_name_prefix="tsf-agent")
    try:
        conn = await loop.run_in_executor(pool, libvirt.open, uri)
    except libvirt.libvirtError as e:
        pool.shutdown(wait=False)
        return GuestRun((), (), (f"guest probes: cannot open {uri} read-write: {_libvirt_reason(e)}",))
    eps = {e.workload: e for e in endpoints(hs)}
    by_key = {w.key: w for w in hs.workloads}

    async def call(agent: Agent, cmd: str, args: dict[str, Any] | None = None) -> Any:
        fut = loop.run_in_executor(pool, agent.call, cmd, args)
        try:
            return await asyncio.wait_for(fut, agent.timeout + 1)
        except TimeoutError:
            raise AgentError(f"agent did not answer within {agent.timeout + 1:g} s") from None

    async def one(key: str) -> tuple[list[ReachResult], list[NicAddresses], list[str]]:
        w = by_key[key]
        me = eps.get(key) or Endpoint(key, w.tenant or "(unplaced)", w.name, None, (), ())
        agent = Agent(conn, w.name, agent_timeout)
        nics = [n for n in (w.vm.nics if w.vm else ()) if n.mac]
        # destinations: everything else with an address (the VM's own addresses once known)
        try:
            await call(agent, "guest-ping")
        except AgentError as e:
            why = str(e)
            return (
                _all(me, eps.values(), ports, "error", f"from guest: {why}"),
                [NicAddresses(key, n.mac.lower(), unknown_why=why) for n in nics],
                [f"{w.name}: {why}"],
            )
        addrs = await _agent_addresses(call, agent, key, [n.mac.lower() for n in nics])
        sem = asyncio.Semaphore(PER_GUEST)
        jobs = [
            (d, a, m)
            for d in eps.values()
            if d.workload != key
            for a in d.addresses
            for m in ["icmp", *(f"tcp:{p}" for p in ports)]
        ]

        async def job(d: Endpoint, a: str, method: str) -> ReachResult:
            async with sem:
                outcome, rtt, detail = await _exec_probe(call, agent, a, method, timeout)
            return ReachResult(
                me.tenant,
                d.tenant,
                key,
                d.workload,
                a,
                method,
                outcome,
                rtt_ms=rtt,
                detail=f"from guest: {detail}",
                via="guest",
            )

        results = list(await asyncio.gather(*(job(*j) for j in jobs)))
        return results, addrs, []

    try:
        parts = await asyncio.gather(*(one(k) for k in keys))
    finally:

        def close() -> None:
            try:
                conn.close()
            except libvirt.libvirtError:
                pass

        pool.submit(close)
        pool.shutdown(wait=False)
    results = [r for p in parts for r in p[0]]
    nics = [n for p in parts for n in p[1]]
    errors = [e for p in parts for e in p[2]]
    return GuestRun(tuple(results), tuple(nics), tuple(errors))


def _all(me: Endpoint, dests: Any, ports: Sequence[int], outcome: str, detail: str) -> list[ReachResult]:
    return [
        ReachResult(me.tenant, d.tenant, me.workload, d.workload, a, m, outcome, detail=detail, via="guest")
        for d in dests
        if d.workload != me.workload
        for a in d.addresses
        for m in ["icmp", *(f"tcp:{p}" for p in ports)]
    ]


async def _agent_addresses(call: Any, agent: Agent, key: str, macs: list[str]) -> list[NicAddresses]:
    try:
        ifaces = await call(agent, "guest-network-get-interfaces")
    except AgentError as e:
        return [NicAddresses(key, m, unknown_why=str(e)) for m in macs]
    found: dict[str, list[VmAddress]] = {}
    for i in ifaces if isinstance(ifaces, list) else ():
        if not isinstance(i, dict):
            continue
        mac = str(i.get("hardware-address") or "").lower()
        for a in i.get("ip-addresses") or ():
            if (
                isinstance(a, dict)
                and a.get("ip-address-type") == "ipv4"
                and isinstance(a.get("ip-address"), str)
            ):
                p = a.get("prefix")
                found.setdefault(mac, []).append(
                    VmAddress(
                        a["ip-address"],
                        "agent",
                        f"guest agent ({visible(str(i.get('name'))[:20])})",
                        p if isinstance(p, int) else 0,
                    )
                )
    return [
        NicAddresses(
            key, m, tuple(found.get(m, ())), "" if found.get(m) else "agent knows no IPv4 address on it"
        )
        for m in macs
    ]


async def _exec_probe(
    call: Any, agent: Agent, address: str, method: str, timeout: float
) -> tuple[str, float | None, str]:
    wait = str(max(1, round(timeout)))
    if method == "icmp":
        path, args, what = "ping", ["-c", "1", "-W", wait, address], "guest-exec ping"
    else:
        port = method[4:]
        path, args, what = "nc", ["-z", "-w", wait, address, port], f"guest-exec nc -z {port}"
    try:
        started = await call(agent, "guest-exec", {"path": path, "arg": args, "capture-output": True})
        pid = started.get("pid") if isinstance(started, dict) else None
        if not isinstance(pid, int):
            return "error", None, f"{what}: the agent gave no pid"
        end = time.monotonic() + timeout + agent.timeout + 1
        while True:
            st = await call(agent, "guest-exec-status", {"pid": pid})
            if isinstance(st, dict) and st.get("exited"):
                break
            if time.monotonic() > end:
                return "error", None, f"{what}: still running after {timeout + agent.timeout + 1:g} s"
            await asyncio.sleep(POLL)
    except AgentError as e:
        return "error", None, f"{what}: {e}"
    code = st.get("exitcode")
    out = _b64(st.get("out-data")) + _b64(st.get("err-data"))
    first = visible(out.strip().splitlines()[-1][:120]) if out.strip() else ""
    if method == "icmp":
        m = re.search(r"time[=<]([\d.]+) ?ms", out)
        if code == 0 and m:
            return "reply", float(m.group(1)), f"{what}: {first}"
        if "unreachable" in out.lower():
            return "no-arp", None, f"{what}: host unreachable"
        return "timeout", None, f"{what}: no reply (exit {code})"
    if code == 0:
        return "reply", None, f"{what}: connected (port open)"
    if "refused" in out.lower():
        return "refused", None, f"{what}: refused (reachable, port closed)"
    return "timeout", None, f"{what}: no connection (exit {code}{': ' + first if first else ''})"


def _b64(v: Any) -> str:
    if not isinstance(v, str):
        return ""
    try:
        return base64.b64decode(v[: MAX_OUTPUT * 4 // 3 + 4], validate=False).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""
