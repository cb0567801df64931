"""Resources: who uses what right now, who spiked, who has no limit.

- model.py      Sample, Limits, History, Spike, HostTotals, ResourceSnapshot (HostState.samples)
- probe.py      ResourcesProbe: one refresh = libvirt bulk stats + cgroup files + netns
                counters + host totals, turned into rates, history and spikes
- domstats.py   VMs: one getAllDomainStats call (NOWAIT, with fallback); live limits
- cgroups.py    cgroup v1/v2/hybrid layout, counters and limits read straight from the files
- netcounters.py  interface counters inside network namespaces (setns thread / ip -all netns)
- hosttotals.py host CPU (with steal), memory, disk, network: from /proc (locally kept open)
- rates.py      counter deltas to rates (first sample, counter resets)
- baseline.py   EWMA baselines and spike detection (RES-01)
- tenants.py    per-tenant sums and shares of the host (the pane and RES-02)
"""
