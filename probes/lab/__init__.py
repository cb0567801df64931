"""The training lab: a real multi-tenant host built on this machine, with injectable faults.

`tenantscope lab up` builds tenants as network namespaces on per-tenant bridges (one tenant on
a private userspace Open vSwitch with a VLAN tag where OVS is installed), each workload running
a small TCP service in its own cgroup with CPU, memory and pids limits; `lab break FAULT` and
`lab fix FAULT` inject and remove one isolation failure; `lab down` removes exactly what the
lab created. Everything is named with the lab prefix (`tsl-`) and recorded in a state file
before it is created, so `down` works after a crash or a half-built `up` and never touches
anything else.

Modules: plan (names and addresses), record (the state file), cgroup, proc (the workload
service launcher), ovs (a private ovsdb-server/ovs-vswitchd), build (up, down, status),
faults, command (the CLI's text). Needs root; everything here blocks (no asyncio).
"""
