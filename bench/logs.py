"""Benchmark: the log pipeline (read + classify + parse and attribute what must be) against
`grep -c -E`, and the TUI's key latency while 20,000 lines/s arrive.

    .venv/bin/python -m bench.logs [--lines 1000000] [--old-lines 200000] [--skip-tui]

1. Writes N mixed lines (10% isolation signals: AVC/AppArmor denials, OOM kills, KVM errors,
   martians, bridge port changes; the rest ordinary syslog, libvirtd and qemu lines, a third of
   them naming a tenant's tap, MAC, domain or address) to a temp file.
2. The pipeline as the logs service runs it for a local file (probes/logs/lazy.py): the real
   FileFollower reads the file in blocks, one compiled pattern finds the candidate lines of
   each block, candidates are parsed, classified and attributed, the rest kept raw in the
   ring; CPU time of one core, against a fleet of 60 VMs in 20 tenants.
3. Runs `grep -c -E` with the same signal patterns over the same file: the floor. grep and
   the pipeline each run twice, interleaved, and each one's smaller time counts (one run of
   the pipeline against the better of two greps made the ratio swing by +-10% on its own).
   Both must count the same signals.
4. The per-line path (every line parsed and attributed: what it was before lazy lines) on the
   first --old-lines lines, for the ratio new/old in the same run.
5. Starts the app (Pilot) with the Logs pane focused while a feeder appends 20,000 lines/s
   to the live ring (blocks ingested as the service does, in a worker thread) and publishes
   the State every 0.25 s; measures how long key presses take to be handled.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

from probes.logs import classify, parsers
from probes.logs.attribute import Attributor, Index
from probes.model import (
    Disk,
    Host,
    HostState,
    Nic,
    Placement,
    SecLabel,
    State,
    Tenant,
    VmDetails,
    Workload,
    WorkloadKind,
)


def fleet(n_tenants: int = 20, per: int = 3) -> State:
    ws = []
    k = 0
    for t in range(n_tenants):
        for j in range(per):
            k += 1
            name = f"t{t:02d}-vm{j}"
            ws.append(
                Workload(
                    WorkloadKind.VM,
                    name,
                    "hv1",
                    uuid=f"{k:08x}-1111-4222-8333-{k:012x}",
                    tenant=f"t{t:02d}",
                    placed_by=Placement.PREFIX,
                    vm=VmDetails(
                        seclabels=(
                            SecLabel(
                                "dynamic", "selinux", True, f"system_u:system_r:svirt_t:s0:c{k},c{k + 500}"
                            ),
                        ),
                        nics=(
                            Nic(
                                "bridge", mac=f"52:54:00:00:{k >> 8:02x}:{k & 255:02x}", target_dev=f"tap{k}"
                            ),
                        ),
                        disks=(
                            Disk("file", "disk", "virtio", "vda", f"/var/lib/libvirt/images/{name}.qcow2"),
                        ),
                    ),
                )
            )
    hs = HostState(Host("hv1"), workloads=tuple(ws))
    tenants = tuple(Tenant(f"t{t:02d}") for t in range(n_tenants))
    return State(hosts=(hs,), tenants=tenants)


def make_lines(n: int, seed: int = 7) -> list[str]:
    rnd = random.Random(seed)
    k = 60
    ordinary = [
        "Nov 27 10:{m:02d}:{s:02d} hv1 systemd[1]: Started Session {i} of user root.",
        "Nov 27 10:{m:02d}:{s:02d} hv1 sshd[{p}]: Accepted publickey for ops from 10.0.0.{b} port {p} ssh2: ED25519 SHA256:abcdef",
        "Nov 27 10:{m:02d}:{s:02d} hv1 CRON[{p}]: (root) CMD (run-parts /etc/cron.hourly)",
        "Nov 27 10:{m:02d}:{s:02d} hv1 dnsmasq-dhcp[999]: DHCPACK(virbr0) 192.168.122.{b} 52:54:00:00:00:{v:02x} t{t:02d}-vm0",
        "Nov 27 10:{m:02d}:{s:02d} hv1 kernel: [{p}.{i}] device tap{v} entered promiscuous mode",
        "Nov 27 10:{m:02d}:{s:02d} hv1 libvirtd[812]: internal error: client socket is closed",
        "Nov 27 10:{m:02d}:{s:02d} hv1 ovs-vsctl: ovs|00001|vsctl|INFO|Called as ovs-vsctl --timeout=5 -- --if-exists del-port tap{v}",
        "2026-11-27 10:{m:02d}:{s:02d}.123+0000: 812: info : virObjectUnref:378 : OBJECT_UNREF: obj=0x7f{p}",
        "2026-11-27T10:{m:02d}:{s:02d}.045615Z qemu-system-x86_64: warning: host doesn't support requested feature: CPUID.01H:ECX.vmx [bit 5]",
        "Nov 27 10:{m:02d}:{s:02d} hv1 systemd-networkd[300]: vnet{b}: Gained carrier",
    ]
    signals = [
        'Nov 27 10:{m:02d}:{s:02d} hv1 kernel: [{p}.1] audit: type=1400 audit(1795773601.{i}:{p}): avc:  denied  {{ read }} for  pid={p} comm="qemu-system-x86" name="t{t:02d}-vm1.qcow2" dev="dm-0" ino={i} scontext=system_u:system_r:svirt_t:s0:c{v},c{w} tcontext=system_u:object_r:svirt_image_t:s0:c{x},c{y} tclass=file permissive=0',
        'Nov 27 10:{m:02d}:{s:02d} hv1 kernel: [{p}.2] audit: type=1400 audit(1795773601.{i}:{p}): apparmor="DENIED" operation="open" profile="libvirt-{u}" name="/var/lib/libvirt/images/t{t:02d}-vm2.qcow2" pid={p} comm="qemu-system-x86" requested_mask="r" denied_mask="r" fsuid=64055 ouid=64055',
        "Nov 27 10:{m:02d}:{s:02d} hv1 kernel: [{p}.3] Memory cgroup out of memory: Killed process {p} (qemu-system-x86) total-vm:2345678kB, anon-rss:1048576kB, file-rss:20480kB, shmem-rss:0kB, UID:64055",
        "2026-11-27T10:{m:02d}:{s:02d}.045615Z qemu-system-x86_64: KVM internal error. Suberror: 1",
        "Nov 27 10:{m:02d}:{s:02d} hv1 kernel: [{p}.4] IPv4: martian source 10.9.0.{b} from 10.9.1.{b}, on dev tap{v}",
        "Nov 27 10:{m:02d}:{s:02d} hv1 kernel: [{p}.5] br0: port {b}(tap{v}) entered forwarding state",
    ]
    out = []
    for i in range(n):
        v = rnd.randint(1, k)
        tpl = rnd.choice(signals) if i % 10 == 0 else rnd.choice(ordinary)
        out.append(
            tpl.format(
                m=(i // 60) % 60,
                s=i % 60,
                i=i,
                p=1000 + i % 50000,
                b=i % 250,
                v=v,
                w=v + 500,
                x=(v % k) + 1,
                y=(v % k) + 501,
                t=(v - 1) // 3,
                u=f"{v:08x}-1111-4222-8333-{v:012x}",
            )
        )
    return out


def bench_lazy(path: str, state: State) -> tuple[float, float, int, int, int]:
    """The service's path for a local file: FileFollower blocks -> lazy.ingest -> the ring."""
    from probes.logs import parsers
    from probes.logs.lazy import SourceContext, ingest
    from probes.logs.ring import Ring
    from probes.logs.sources import FileFollower

    parsers._ts_cache.clear()  # each run starts as cold as the first (the parsers' memos)
    parsers._pairs.clear()
    att = Attributor(Index(state))
    ctx = SourceContext("hv1", "file:/var/log/syslog")
    ring = Ring()
    sig = attributed = 0
    t0 = time.perf_counter()
    c0 = time.process_time()
    f = FileFollower(path, start_lines=1 << 30)
    f._first = False  # from the start of the file (a file that grew while followed)
    while True:
        block = f.poll_block()
        if not block:
            break
        chunk, found = ingest(block, ctx, att)
        for e in ring.append_chunk(chunk, found):
            if e.tags and e.tags[0] in _GREP_TAGS:
                sig += 1
            if e.tenant:
                attributed += 1
    f.close()
    return time.perf_counter() - t0, time.process_time() - c0, sig, attributed, ring.total


def journal_lines(lines: list[str]) -> list[str]:
    """The bench's messages as `journalctl -o json` lines (priority 6, or 3 for the signals)."""
    import json

    out = []
    for i, line in enumerate(lines):
        msg = line.split(": ", 1)[1] if ": " in line else line
        e = {
            "PRIORITY": "3" if i % 10 == 0 else "6",
            "SYSLOG_IDENTIFIER": "kernel" if "kernel:" in line else "sshd",
            "_PID": str(1000 + i % 50000),
            "MESSAGE": msg,
            "__REALTIME_TIMESTAMP": str(1795773601000000 + i),
            "__CURSOR": f"s=0123456789abcdef;i={i:x};b=0;m=0;t=0;x=0",
        }
        out.append(json.dumps(e, separators=(",", ":"), ensure_ascii=False))
    return out


def bench_journal(jlines: list[str], state: State) -> tuple[float, float, int, int]:
    """CPU of the per-line journal path and of the lazy one over the same lines; signals of each."""
    from probes.logs.lazy import SourceContext, ingest
    from probes.logs.ring import Ring

    att = Attributor(Index(state))
    c0 = time.process_time()
    old_sig = 0
    for line in jlines:
        e = att.attribute(parsers.parse_journal_line(line, "hv1", "journal")[0])
        old_sig += bool(e.tags)
    old = time.process_time() - c0
    att = Attributor(Index(state))
    ctx = SourceContext("hv1", "journal", journal=True)
    ring = Ring()
    new_sig = 0
    c0 = time.process_time()
    for k in range(0, len(jlines), 4096):  # the service gathers up to 4,096 lines a block
        block = ("\n".join(jlines[k : k + 4096]) + "\n").encode()
        new_sig += sum(1 for e in ring.append_chunk(*ingest(block, ctx, att)) if e.tags)
    return old, time.process_time() - c0, old_sig, new_sig


def bench_pipeline(lines: list[str], state: State) -> tuple[float, float, int, int]:
    att = Attributor(Index(state))
    parse = parsers.parse_auto
    attribute = att.attribute
    sig = 0
    attributed = 0
    t0 = time.perf_counter()
    c0 = time.process_time()
    for line in lines:
        e = attribute(parse(line, "hv1", "file:/var/log/syslog"))
        if e.tags and e.tags[0] in _GREP_TAGS:
            sig += 1
        if e.tenant:
            attributed += 1
    return time.perf_counter() - t0, time.process_time() - c0, sig, attributed


_GREP_TAGS = {tag for tag, _sev, _p in classify.SIGNAL_PATTERNS}


def bench_grep(path: str) -> tuple[float, int]:
    pattern = "|".join(p for _tag, _sev, p in classify.SIGNAL_PATTERNS).replace(r"\"", '"')
    import resource

    t0 = time.perf_counter()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(
        ["grep", "-c", "-E", pattern, path], capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"}
    )
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return time.perf_counter() - t0, cpu, int(r.stdout.strip() or 0)


async def bench_tui(rate: int = 20_000, seconds: float = 6.0) -> dict[str, list[float]]:
    from dataclasses import replace

    from probes.logs.model import LogView
    from probes.logs.ring import Ring
    from tests.fixtures.tui import make_app

    # "handled" = the key's action has run (its effect is in the widget state; the paint
    # follows on the next refresh): time it from the key press to the end of the action
    from tui.panes.logs import LogLines, LogsPane

    done: list[float] = []
    saved = {}

    def timed(cls, name):
        orig = saved[(cls, name)] = getattr(cls, name)

        def wrapper(self, *a):
            r = orig(self, *a)
            done.append(time.perf_counter())
            return r

        setattr(cls, name, wrapper)

    for cls, names in (
        (LogLines, ("action_cursor",)),
        (LogsPane, ("action_toggle_follow", "action_cycle_severity", "action_cycle_tenant")),
    ):
        for n in names:
            timed(cls, n)
    from probes.logs.lazy import SourceContext, ingest

    st = fleet()
    lines = make_lines(rate)
    att = Attributor(Index(st))
    ctx = SourceContext("hv1", "file:/var/log/syslog")
    ring = Ring()
    app, source = make_app(st, rings={"hv1": ring})  # the ring a session would own
    lat: dict[str, list[float]] = {}
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.press("4")
            await pilot.pause()
            stop = asyncio.Event()

            async def feeder() -> None:
                i = 0
                per = rate // 4  # the service flushes every 0.25 s
                nxt = time.perf_counter()

                def work(i: int) -> tuple:  # in a worker thread, as the logs service does
                    a = i % len(lines)
                    part = lines[a : a + per]
                    if len(part) < per:
                        part += lines[: per - len(part)]
                    return ingest(("\n".join(part) + "\n").encode(), ctx, att)

                async def work_chunked(i: int) -> list:
                    """On the loop in chunks of CHUNK lines, yielding between them (the
                    logs service does this: a worker thread would fight the loop for the GIL)."""
                    out: list = []
                    for a in range(0, per, CHUNK):
                        out += [
                            att.attribute(
                                parsers.parse_auto(lines[(i + j) % len(lines)], "hv1", "file:/var/log/syslog")
                            )
                            for j in range(a, min(per, a + CHUNK))
                        ]
                        await asyncio.sleep(0)
                    return out

                while not stop.is_set() and per:
                    if THREAD:
                        ring.append_chunk(*await asyncio.to_thread(work, i))
                    else:
                        ring.append_many(await work_chunked(i))
                    i += per
                    source.push(
                        replace(
                            st,
                            hosts=(
                                replace(
                                    st.hosts[0],
                                    logs=LogView(
                                        events=ring.newest(500), dropped=ring.dropped, total=ring.total
                                    ),
                                ),
                            ),
                        )
                    )
                    nxt += 0.25
                    await asyncio.sleep(max(0.0, nxt - time.perf_counter()))

            task = asyncio.create_task(feeder())
            await asyncio.sleep(1.0)
            ll = app.query_one(LogLines)
            pane = app.query_one(LogsPane)
            pressed = [0.0, 0]  # when the last filter key was pressed, the filter job before it

            async def filter_watch() -> None:
                """A filter shows the newest matches at once and the rest in slices between
                keys: how long until the whole store was filtered (after the last filter key)."""
                while not stop.is_set():
                    if pressed[0] and pane._filter_job != pressed[1] and pane._filtering is None:
                        lat.setdefault("_filtered", []).append(time.perf_counter() - pressed[0])
                        pressed[0] = 0.0
                    await asyncio.sleep(0.002)

            watch = asyncio.create_task(filter_watch())
            end = time.perf_counter() + seconds
            keys = ["up", "down", "f", "f", "s", "s", "s", "s", "t"]
            while time.perf_counter() < end:
                for k in keys:
                    done.clear()
                    t0 = time.perf_counter()
                    if k in ("s", "t"):
                        pressed[:] = [t0, pane._filter_job]
                    await pilot.press(k)
                    t1 = time.perf_counter()
                    lat.setdefault(k, []).append((done[0] if done else t1) - t0)
                    lat.setdefault("_idle", []).append(t1 - t0)
                    await asyncio.sleep(0.05)
            stop.set()
            await task
            await watch
            lat["_received"] = [float(ring.total), float(len(ll.lines))]
    finally:
        for (cls, n), f in saved.items():
            setattr(cls, n, f)
    return lat


CHUNK = 500
THREAD = os.environ.get("TSG_BENCH_THREAD", "1") == "1"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.logs")
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--old-lines", type=int, default=200_000)
    ap.add_argument("--journal-lines", type=int, default=200_000)
    ap.add_argument("--skip-tui", action="store_true")
    args = ap.parse_args(argv)
    st = fleet()
    print(f"generating {args.lines:,} lines ...", flush=True)
    lines = make_lines(args.lines)
    with tempfile.NamedTemporaryFile("w", prefix="tsg-bench-", suffix=".log", delete=False) as f:
        f.write("\n".join(lines) + "\n")
        path = f.name
    try:
        size = os.path.getsize(path)
        g_t, g_c, g_n = bench_grep(path)
        p_t, p_c, p_n, attributed, kept = bench_lazy(path, st)
        g_t2, g_c2, g_n2 = bench_grep(path)
        p_t2, p_c2, *_ = bench_lazy(path, st)
        print(f"pipeline runs: cpu {p_c:.3f} s, {p_c2:.3f} s; grep runs: cpu {g_c:.3f} s, {g_c2:.3f} s")
        p_t, p_c = min(p_t, p_t2), min(p_c, p_c2)
        old_n = min(args.old_lines, args.lines)
        o_t, o_c, o_sig, _ = bench_pipeline(lines[:old_n], st) if old_n else (0.0, 0.0, 0, 0)
        g_t, g_c = min(g_t, g_t2), min(g_c, g_c2)
    finally:
        os.unlink(path)
    n = args.lines
    print(
        f"file: {size / 1e6:.1f} MB, {n:,} lines; load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs (CPU time is the fair figure on a shared machine)"
    )
    from probes.logs.fastlog import native

    print(
        "native helpers (probes/logs/_fastlog.c): "
        + ("loaded" if native() is not None else "NOT BUILT: the Python fallback ran (pip install -e .)")
    )
    print(
        f"grep -c -E (floor):       wall {g_t:7.3f} s  cpu {g_c:7.3f} s  "
        f"{n / max(g_c, 1e-9):12,.0f} lines/s (cpu)  {g_n:,} signal lines"
    )
    print(
        f"lazy pipeline (read+ingest): wall {p_t:7.3f} s  cpu {p_c:7.3f} s  "
        f"{n / p_c:12,.0f} lines/s (cpu)  {p_n:,} signal lines ({attributed:,} attributed), "
        f"{kept:,} lines kept"
    )
    if old_n:
        print(
            f"per-line path (before), first {old_n:,} lines: cpu {o_c:7.3f} s  "
            f"{old_n / o_c:12,.0f} lines/s (cpu)  {o_sig:,} signal lines"
        )
    rate = n / p_c
    print(
        f"ratio: the pipeline takes {p_c / max(g_c, 1e-9):.1f}x grep's CPU time (target <= 10x); "
        f"{rate / 150_000:.2f}x the 150,000 lines/s target (wall: {n / p_t:,.0f} lines/s)"
        + (f"; {rate / (old_n / o_c):.1f}x the per-line path's lines/s" if old_n else "")
    )
    if p_n != g_n or kept != n:
        print(f"MISMATCH: grep counted {g_n} signal lines, the pipeline {p_n} ({kept} of {n} lines kept)")
    jn = min(args.journal_lines, n)
    if jn:
        j_old, j_new, j_os, j_ns = bench_journal(journal_lines(lines[:jn]), st)
        print(
            f"journal (the same messages as journalctl JSON, {jn:,} lines): per-line {jn / j_old:,.0f} lines/s, "
            f"lazy {jn / j_new:,.0f} lines/s (cpu): {j_old / j_new:.1f}x; signal entries {j_os:,} / {j_ns:,}"
            + ("" if j_os == j_ns else "  MISMATCH")
        )
    if not args.skip_tui:
        summary = {}
        p95s = {}
        for rate in (0, 20_000):  # the same key presses with no lines arriving: the baseline
            lat = asyncio.run(bench_tui(rate=rate))
            recv = lat.pop("_received")
            idle = lat.pop("_idle")
            filtered = lat.pop("_filtered", [])
            print(
                f"TUI with {rate:,} lines/s arriving ({recv[0]:,.0f} received, "
                f"{recv[1]:,.0f} shown by the filter at the end); Pilot key press to its action done:"
            )
            allv = [v for vs in lat.values() for v in vs]
            for k, vs in lat.items():
                print(
                    f"  key {k!r:8} n={len(vs):3d}  median {statistics.median(vs) * 1000:6.1f} ms"
                    f"  max {max(vs) * 1000:6.1f} ms"
                )
            p95 = sorted(allv)[max(0, int(len(allv) * 0.95) - 1)] if allv else 0
            summary[rate] = statistics.median(allv)
            p95s[rate] = p95
            print(
                f"  all keys: median {statistics.median(allv) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms; "
                f"until Pilot saw the app idle and painted: median {statistics.median(idle) * 1000:.1f} ms"
            )
            if filtered:
                print(
                    f"  a filter key until the whole store was filtered (newest matches shown at once, "
                    f"older ones in slices between keys): median {statistics.median(filtered) * 1000:.1f} ms, "
                    f"max {max(filtered) * 1000:.1f} ms (n={len(filtered)})"
                )
        print(
            f"key latency at 20,000 lines/s: median {summary[20_000] * 1000:.1f} ms, p95 {p95s[20_000] * 1000:.1f} ms "
            f"(target p95 <= 50 ms), {summary[20_000] / summary[0]:.2f}x the idle median ({summary[0] * 1000:.1f} ms)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
