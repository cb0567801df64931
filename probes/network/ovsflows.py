"""Open vSwitch OpenFlow tables in the prediction: `ovs-appctl ofproto/trace` for the concrete
frames the prediction walks across a bridge (it follows the flows, VLAN actions, resubmits and
conntrack recirculation as OVS would), read by the topology probe through the host transport.

Conntrack: after a `ct()` action the trace resumes with the state the frame has (`--ct-next
trk,new` for the first packet, `trk,est` for a reply), as the filters' evaluator does.

A bridge whose tables hold only the default `priority=0 actions=NORMAL` flow is not traced: the
VLAN model (probes/network/segments.py) decides there. For the others, the frames come from
predict.ovs_frames (every namespace to every address, ICMP and the policy's TCP ports, and the
replies), traced locally through ovs-vswitchd's unixctl socket (Open vSwitch's own client, as
ovs-appctl does, without a process per trace), over SSH by one constant `sh` program (the flows
are its arguments) with section markers carrying a fresh nonce. Traces are kept while a bridge's flows (their text, without
counters) and the frames do not change, so a steady host traces nothing again.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from probes.hosts.base import HostTransport
from probes.network.filtermodel import OvsFlows, OvsFrame, OvsTrace
from probes.network.model import Topology

MAX_TRACES = 2000  # per topology read, over all bridges; the rest are "not traced"
DUMP = r"""
n=$1; rundir=$2; shift 2
[ -n "$rundir" ] && export OVS_RUNDIR="$rundir"
for b in "$@"; do
  printf '@@%s %s\n' "$n" "$b"; ovs-ofctl dump-flows --no-stats "$b" 2>&1; printf '\n@@%s rc %s\n' "$n" $?
done
"""
TRACE = r"""
n=$1; rundir=$2; shift 2
[ -n "$rundir" ] && export OVS_RUNDIR="$rundir"
i=0
while [ $# -ge 3 ]; do
  printf '@@%s %s\n' "$n" "$i"; ovs-appctl ofproto/trace --ct-next "$1" "$2" "$3" 2>&1; printf '\n@@%s rc %s\n' "$n" $?
  i=$((i+1)); shift 3
done
"""
# `ovs-ofctl dump-flows --no-stats` prints "priority=0 actions=NORMAL"; unixctl's bridge/dump-flows
# "priority=0,actions=NORMAL" (after its counters are taken out)
DEFAULT_FLOW = re.compile(r"^\s*(cookie=0x0,? ?)?(table(_id)?=0,? ?)?priority=0[ ,]actions=NORMAL\s*$")
COUNTERS = re.compile(r"\b(duration|n_packets|n_bytes|idle_age|hard_age)=[^, ]*,? ?")
TABLE_LINE = re.compile(r"^\s*(\d+)\. (.*)$")


def rundir_of(db: str | None) -> str:
    """OVS_RUNDIR for a private instance named by its database socket (unix:DIR/db.sock);
    "" for the default one."""
    if db and db.startswith("unix:"):
        return os.path.dirname(db[5:])
    return ""


def split(out: str, nonce: str) -> dict[str, tuple[int, str]]:
    mark = f"@@{nonce} "
    res: dict[str, tuple[int, str]] = {}
    cur: str | None = None
    buf: list[str] = []
    for ln in out.split("\n"):
        if ln.startswith(mark):
            kind, _, rest = ln[len(mark) :].partition(" ")
            if kind == "rc" and cur is not None:
                res[cur] = (int(rest) if rest.strip().isdigit() else -1, "\n".join(buf))
                cur = None
            elif kind != "rc":
                cur, buf = kind, []
        elif cur is not None:
            buf.append(ln)
    return res


def flow_lines(text: str) -> list[str]:
    """The flows of a dump, without counters (they move with traffic) and without the hidden
    internal table 254 that unixctl's bridge/dump-flows also lists."""
    out = []
    for ln in text.splitlines():
        if "actions=" not in ln or ln.lstrip().startswith("table_id=254"):
            continue
        out.append(COUNTERS.sub("", ln).strip())
    return out


def vswitchd_ctl(rundir: str) -> str | None:
    """The local ovs-vswitchd's unixctl socket (what ovs-appctl talks to), None when absent."""
    rundir = rundir or os.environ.get("OVS_RUNDIR") or "/var/run/openvswitch"
    try:
        with open(os.path.join(rundir, "ovs-vswitchd.pid")) as f:
            pid = f.read().strip()
    except OSError:
        return None
    ctl = os.path.join(rundir, f"ovs-vswitchd.{pid}.ctl")
    return ctl if pid.isdigit() and os.path.exists(ctl) else None


def _unixctl(ctl: str, calls: list[tuple[str, list[str]]]) -> list[tuple[int, str]]:
    """Blocking: unixctl commands on one connection (Open vSwitch's own client: JSON-RPC on the
    daemon's socket, as ovs-appctl does, without a process per call). (0, output) or
    (1, error) per call; a broken connection fails the rest."""
    import ovs.unixctl.client

    err, client = ovs.unixctl.client.UnixctlClient.create(ctl)
    if err or client is None:
        return [(1, f"cannot connect to {ctl}: {os.strerror(err) if err else 'no client'}")] * len(calls)
    out: list[tuple[int, str]] = []
    try:
        for cmd, argv in calls:
            e, error, result = client.transact(cmd, argv)
            if e:
                out += [(1, f"{cmd}: {os.strerror(e)}")] * (len(calls) - len(out))
                break
            out.append((1, str(error)) if error is not None else (0, str(result or "")))
    finally:
        client.close()
    return out


def parse_trace(frame: OvsFrame, text: str) -> OvsTrace:
    """The verdict (the last `Datapath actions:` line: `drop` or nothing sent is a drop) and the
    flow that decided it (the last table line the trace walked, with its actions)."""
    where = f"OVS {frame.bridge}"
    actions = ""
    tables: list[tuple[str, str, str]] = []  # (table, match, first action line)
    lines = text.splitlines()
    for i, ln in enumerate(lines):
        if ln.startswith("Datapath actions:"):
            actions = ln.partition(":")[2].strip()
        m = TABLE_LINE.match(ln)
        if m and i + 1 < len(lines):
            tables.append((m.group(1), m.group(2).strip(), lines[i + 1].strip()))
    if not actions and not tables:
        first = next((x.strip() for x in lines if x.strip()), "no output")
        return OvsTrace(frame, "undecided", f"{where}: ofproto/trace failed: {first[:160]}")
    verdict = "drop" if actions in ("", "drop") else "accept"
    rule = ""
    if tables:
        t, match, act = tables[-1]
        rule = f"{where} table {t}: {match}: {act}"
    path = tuple(f"table {t}" for t, _, _ in tables)
    return OvsTrace(frame, verdict, rule, path, actions)


# Flows have no change event here (OVSDB does not hold them): with the bridges unchanged, a
# bridge's tables are dumped again at most this often (the topology's safety period), so an
# event-driven topology read spawns nothing for them in between.
FLOWS_MAX_AGE = 30.0


@dataclass
class OvsFlowCache:
    """Per bridge: its flows' text and the traces made under it; the last dump and when
    (owned by the topology probe)."""

    flows: dict[str, tuple[str, dict[OvsFrame, OvsTrace]]] = field(default_factory=dict)
    dumped: tuple[object, float, dict[str, OvsFlows], dict[str, str]] | None = None
    max_age: float = FLOWS_MAX_AGE
    clock: Callable[[], float] = time.monotonic
    # the frames of the last topology (the walks are redone only when what they read changed)
    frames_for: tuple[object, ...] | None = None
    frames: list[OvsFrame] = field(default_factory=list)


async def _dump(
    host: HostTransport, bridges: list[str], rundir: str, timeout: float, ctl: str | None
) -> tuple[dict[str, OvsFlows], dict[str, str]]:
    if ctl is not None:  # locally: the daemon's own socket, no process
        got = await asyncio.to_thread(_unixctl, ctl, [("bridge/dump-flows", [b]) for b in bridges])
        dumps = dict(zip(bridges, got))
    else:
        nonce = os.urandom(8).hex()  # secrets.token_hex(8), without hmac's OpenSSL (~3 MiB)
        try:
            res = await host.run(["sh", "-c", DUMP, "sh", nonce, rundir, *bridges], timeout=timeout)
        except Exception as e:
            return {b: OvsFlows(b, error=f"cannot read the flows: {e}") for b in bridges}, {}
        dumps = split(res.stdout, nonce)
    out: dict[str, OvsFlows] = {}
    texts: dict[str, str] = {}
    for b in bridges:
        rc, text = dumps.get(b, (127, ""))
        if rc != 0:
            why = "ovs-ofctl missing" if rc == 127 else (text.strip().splitlines() or [f"exit {rc}"])[0][:200]
            out[b] = OvsFlows(b, error=f"flows not read: {why}")
            continue
        lines = flow_lines(text)
        texts[b] = "\n".join(lines)
        out[b] = OvsFlows(b, custom=any(not DEFAULT_FLOW.match(ln) for ln in lines), flows=len(lines))
    return out, texts


async def read_ovs_flows(
    host: HostTransport,
    topo: Topology,
    *,
    db: str | None = None,
    cache: OvsFlowCache | None = None,
    timeout: float = 20.0,
) -> tuple[OvsFlows, ...]:
    """The OpenFlow tables of every OVS bridge in `topo`, with traces where they are custom."""
    from probes.network.predict import ovs_frames  # imports the network model

    bridges = [b.name for b in topo.ovs]
    if not bridges or topo.ovs_state != "ok":
        return ()
    rundir = rundir_of(db)
    # locally: unixctl on ovs-vswitchd's socket (no process); over SSH: one sh program
    ctl = vswitchd_ctl(rundir) if host.is_local and not host.root else None
    cache = cache if cache is not None else OvsFlowCache()
    now = cache.clock()
    d = cache.dumped
    if d is not None and d[0] == topo.ovs and now - d[1] < cache.max_age:
        out, texts = dict(d[2]), d[3]
    else:
        out, texts = await _dump(host, bridges, rundir, timeout, ctl)
        cache.dumped = (topo.ovs, now, dict(out), texts)
    custom = frozenset(b for b, o in out.items() if o.custom)
    for b in list(cache.flows):
        if b not in custom or cache.flows[b][0] != texts.get(b):
            del cache.flows[b]  # flows changed: every trace under them is stale
    if custom:
        key = (
            custom,
            topo.links,
            topo.routes,
            topo.namespaces,
            topo.ovs,
            topo.filters,
            topo.policy,
            topo.neighbours,
            topo.libvirt_networks,
        )
        if key != cache.frames_for:  # tuples of the same objects compare by identity first: cheap
            cache.frames = ovs_frames(replace(topo, ovs_flows=tuple(out.values())), custom)
            cache.frames_for = key
        frames = cache.frames
        todo = [f for f in frames if f not in cache.flows.get(f.bridge, ("", {}))[1]]
        limited = len(todo) > MAX_TRACES
        todo = todo[:MAX_TRACES]
        traced = await _trace(host, todo, rundir, timeout, ctl) if todo else {}
        for b in custom:
            kept = cache.flows.get(b, (texts[b], {}))[1]
            kept.update({f: t for f, t in traced.items() if f.bridge == b})
            want = {f for f in frames if f.bridge == b}
            kept = {f: t for f, t in kept.items() if f in want}
            cache.flows[b] = (texts[b], kept)
            out[b] = replace(
                out[b],
                traces=tuple(kept.values()),
                untraced=f"more than {MAX_TRACES} frames to trace" if limited else "",
            )
    return tuple(out[b] for b in bridges)


async def _trace(
    host: HostTransport, frames: list[OvsFrame], rundir: str, timeout: float, ctl: str | None
) -> dict[OvsFrame, OvsTrace]:
    if ctl is not None:
        calls = [("ofproto/trace", ["--ct-next", f.ct_next, f.bridge, f.flow]) for f in frames]
        got = await asyncio.to_thread(_unixctl, ctl, calls)
        return {
            f: parse_trace(f, text)
            if rc == 0
            else OvsTrace(f, "undecided", f"OVS {f.bridge}: ofproto/trace failed: {text.strip()[:160]}")
            for f, (rc, text) in zip(frames, got)
        }
    nonce = os.urandom(8).hex()
    args: list[str] = []
    for f in frames:
        args += [f.ct_next, f.bridge, f.flow]
    try:
        res = await host.run(["sh", "-c", TRACE, "sh", nonce, rundir, *args], timeout=timeout)
    except Exception as e:
        return {f: OvsTrace(f, "undecided", f"OVS {f.bridge}: ofproto/trace not run: {e}") for f in frames}
    sections = split(res.stdout, nonce)
    out = {}
    for i, f in enumerate(frames):
        rc, text = sections.get(str(i), (-1, ""))
        if rc != 0:
            first = next((x.strip() for x in text.splitlines() if x.strip()), f"exit {rc}")
            out[f] = OvsTrace(f, "undecided", f"OVS {f.bridge}: ofproto/trace failed: {first[:160]}")
        else:
            out[f] = parse_trace(f, text)
    return out
