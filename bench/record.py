"""Recording cost: size and time of the .tsr format (zlib frames, only changed hosts) against
the baseline of saving the whole State as a snapshot JSON at every observation.

A fleet of N hosts where one host changes per observation (the usual case: probes finish one
at a time). Run: .venv/bin/python -m bench.record
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import replace

from probes import record, snapshot


def fleet(n_hosts: int):  # type: ignore[no-untyped-def]
    from tests.fixtures.runbook import incident_state

    base = incident_state()
    hs = base.hosts[0]
    hosts = tuple(replace(hs, host=replace(hs.host, name=f"hv{i}")) for i in range(n_hosts))
    return replace(base, hosts=hosts)


def run(n_hosts: int, frames: int) -> None:
    st = fleet(n_hosts)
    states = []
    for i in range(frames):
        hosts = list(st.hosts)
        j = i % n_hosts
        hosts[j] = replace(hosts[j], refreshed_at=hosts[j].refreshed_at + i)
        st = replace(st, hosts=tuple(hosts), taken_at=st.taken_at + 1)
        states.append(st)
    with tempfile.TemporaryDirectory(prefix="tsj-bench-") as d:
        t0 = time.perf_counter()
        total_json = 0
        for s in states:  # baseline: a snapshot per observation
            total_json += len(snapshot.dumps(s))
        t_json = time.perf_counter() - t0
        p = os.path.join(d, "b.tsr")
        t0 = time.perf_counter()
        r = record.Recorder(p)
        for s in states:
            r.add(s)
        r.close()
        t_rec = time.perf_counter() - t0
        t0 = time.perf_counter()
        loaded = record.load(p)
        t_load = time.perf_counter() - t0
        assert len(loaded.states) == frames
        print(
            f"{n_hosts:3d} hosts x {frames} obs: snapshot-JSON {total_json / 1024:8.1f} KiB {t_json * 1000:7.1f} ms | "
            f".tsr {r.size / 1024:7.1f} KiB {t_rec * 1000:7.1f} ms (load {t_load * 1000:6.1f} ms) | "
            f"size ratio {total_json / r.size:5.1f}x, time ratio {t_json / t_rec:4.2f}x"
        )


if __name__ == "__main__":
    for n in (1, 10, 50):
        run(n, 200)
