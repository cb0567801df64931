"""VM addresses: for each NIC of each running VM, its addresses and where they were learned.

Pure: derived from what the probes observed, so a snapshot replays to the same addresses.
Sources, in order (the first that knows an address for a NIC wins; the others are not mixed
in, because a stale neighbour entry must not add a wrong target to a guest the agent
describes exactly):

1. agent      the QEMU guest agent (`guest-network-get-interfaces`), asked during a guest
              probe run: libvirt refuses agent calls on read-only connections, so the passive
              state never asks it
2. lease      libvirt's DHCP leases on its managed networks (read-only connection)
3. neighbour  an IPv4 neighbour (ARP) entry with the NIC's MAC in any namespace the topology
              read (through the host transport, so over SSH too; libvirt's own ARP source
              fails on some kernels)
4. config     `[network.addresses]` in the config, for static set-ups: the user said so, so
              these are added to what an earlier source found (never replaced by it)

When none knows an address, `unknown_why` says what was tried ("no agent, no lease, MAC not in
any neighbour table").
"""

from __future__ import annotations

from collections.abc import Sequence

from probes.model import HostState, Workload, WorkloadKind
from probes.network.model import NicAddresses, Topology, VmAddress


def vm_addresses(hs: HostState) -> dict[str, tuple[NicAddresses, ...]]:
    """Workload key -> one NicAddresses per NIC with a MAC, for every running VM of the host."""
    topo = hs.topology
    if topo is None:
        return {}
    agent = {(n.workload, n.mac.lower()): n for n in (hs.reach.agent_addresses if hs.reach else ())}
    leases: dict[str, list[VmAddress]] = {}
    for net in topo.libvirt_networks:
        for le in net.leases:
            leases.setdefault(le.mac.lower(), []).append(
                VmAddress(le.address, "lease", f"DHCP lease on libvirt network {net.name}", le.prefix)
            )
    neigh: dict[str, list[VmAddress]] = {}
    for nb in topo.neighbours:
        where = f"neighbour table of {nb.netns or 'host'} on {nb.dev}"
        neigh.setdefault(nb.mac.lower(), []).append(VmAddress(nb.address, "neighbour", where))
    static = dict(topo.policy.static_addresses) if topo.policy else {}
    out: dict[str, tuple[NicAddresses, ...]] = {}
    for w in hs.workloads:
        if w.kind != WorkloadKind.VM or w.vm is None:
            continue
        nics = []
        for i, nic in enumerate(n for n in w.vm.nics if n.mac):
            mac = nic.mac.lower()
            nics.append(_one(w, mac, i, agent.get((w.key, mac)), leases, neigh, static, topo))
        out[w.key] = tuple(nics)
    return out


def _one(
    w: Workload,
    mac: str,
    index: int,
    agent: NicAddresses | None,
    leases: dict[str, list[VmAddress]],
    neigh: dict[str, list[VmAddress]],
    static: dict[str, tuple[str, ...]],
    topo: Topology,
) -> NicAddresses:
    if w.state and w.state != "running":
        return NicAddresses(w.key, mac, unknown_why=f"not running ({w.state})")
    conf = [VmAddress(a, "config", "[network.addresses] in the config") for a in static.get(w.name, ())]
    conf = conf if index == 0 else []
    if agent is not None and agent.addresses:
        return NicAddresses(w.key, mac, _dedup([*agent.addresses, *conf]))
    if mac in leases:
        return NicAddresses(w.key, mac, _dedup([*leases[mac], *conf]))
    if mac in neigh:
        return NicAddresses(w.key, mac, _dedup([*neigh[mac], *conf]))
    if conf:
        return NicAddresses(w.key, mac, tuple(conf))
    why = []
    has_agent = bool(w.vm and w.vm.has_guest_agent)
    if agent is not None and agent.unknown_why:
        why.append(f"agent: {agent.unknown_why}")
    elif has_agent:
        why.append("agent not asked (only a guest probe run may call it)")
    else:
        why.append("no agent")
    on_net = any(n.mac.lower() == mac and n.type == "network" for n in (w.vm.nics if w.vm else ()))
    why.append(
        "no lease"
        if on_net or any(n.leases for n in topo.libvirt_networks)
        else "no lease (no libvirt network)"
    )
    why.append("MAC not in any neighbour table")
    return NicAddresses(w.key, mac, unknown_why=", ".join(why))


def _dedup(xs: Sequence[VmAddress]) -> tuple[VmAddress, ...]:
    seen: set[str] = set()
    out = []
    for x in xs:
        if x.address not in seen and not x.address.startswith(("127.", "169.254.")):
            seen.add(x.address)
            out.append(x)
    return tuple(out)


def addresses_of(nics: Sequence[NicAddresses]) -> tuple[str, ...]:
    """The plain IPv4 addresses of a VM (probe targets), in source order."""
    out: list[str] = []
    for n in nics:
        for a in n.addresses:
            if ":" not in a.address and a.address not in out:
                out.append(a.address)
    return tuple(out)


def describe(nics: Sequence[NicAddresses]) -> list[str]:
    """One line per NIC for the workload detail: `MAC: 10.0.0.5 (agent), ...` or why unknown."""
    lines = []
    for n in nics:
        if n.addresses:
            lines.append(
                f"{n.mac}: " + ", ".join(f"{a.address} ({a.source}: {a.detail})" for a in n.addresses)
            )
        else:
            lines.append(f"{n.mac}: address unknown ({n.unknown_why})")
    return lines
