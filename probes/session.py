"""The composition root: from the user's options to hosts, probes and the derive step.

The TUI and the headless commands (check, snapshot) both build their Engine here, so what
they observe and conclude is one code path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from probes.config import Config
from probes.engine import Engine, Probe
from probes.hosts.base import HostTransport
from probes.hosts.local import LocalHost
from probes.model import HostKind, State


@dataclass(frozen=True)
class Options:
    libvirt_uri: str | None = None  # None: qemu:///system on local hosts
    demo: bool = False
    config_path: str | None = None
    config: Config | None = None  # the parsed config file (tui/cli.py loads it once)
    hosts: tuple[str, ...] = ()  # ssh targets; empty: the local host
    known_hosts: str | None = None
    accept_new_host_keys: bool = False
    hosts_file: str | None = None  # one ssh target a line
    inventory: str | None = None  # Ansible inventory, INI or YAML
    limit: str | None = None  # inventory groups or host names, comma-separated
    identity: tuple[str, ...] = ()  # ssh key files; default: agent, ~/.ssh/config, ~/.ssh/id_*
    ssh_config: str | None = None  # default ~/.ssh/config
    interval: float = 2.0
    root: str = ""  # prefix for host files (tests)
    checks: tuple[str, ...] = ()
    extra: tuple[tuple[str, str], ...] = field(default=())


def demo_uri() -> str:
    from importlib.resources import files

    return "test://" + str(files("probes.demo") / "fleet.xml")


def make_hosts(opts: Options) -> list[HostTransport]:
    if opts.demo:
        return [LocalHost("demo-hv1", libvirt_uri=demo_uri(), root=opts.root)]
    from probes.hosts.libvirt_uri import seen_only_through_libvirt

    uri = opts.libvirt_uri
    if opts.hosts or opts.hosts_file or opts.inventory:
        from probes.hosts.ssh import hosts_from_targets  # type: ignore[import-not-found]

        if not seen_only_through_libvirt(uri):
            return list(hosts_from_targets(opts))
        return _pair_with_targets(list(hosts_from_targets(replace(opts, libvirt_uri=None))), uri or "")
    if seen_only_through_libvirt(uri):  # another host's (or a simulated) hypervisor: its own host
        from probes.hosts.libvirt_view import LibvirtViewHost

        return [LibvirtViewHost(uri or "")]
    return [LocalHost(libvirt_uri=uri or "qemu:///system", root=opts.root)]


def _pair_with_targets(hosts: list[HostTransport], uri: str) -> list[HostTransport]:
    """`--host hv2 --libvirt qemu+tcp://hv2/system`: that target's libvirt is the URI (both
    views merge); a URI naming no target is a host of its own, seen only through libvirt."""
    from probes.hosts.libvirt_uri import same_host
    from probes.hosts.libvirt_view import LibvirtViewHost

    for h in hosts:
        addr = getattr(getattr(h, "target", None), "address", None)
        if same_host(uri, h.host.name) or (addr and same_host(uri, addr)):
            h.host = replace(h.host, libvirt_uri=uri)
            return hosts
    return [*hosts, LibvirtViewHost(uri)]


def make_probes(opts: Options) -> Any:
    def for_host(host: HostTransport) -> Sequence[Probe[Any]]:
        if host.host.kind == HostKind.LIBVIRT:
            return _libvirt_view_probes(opts)
        probes: list[Probe[Any]] = []
        if host.host.kind == "ssh":  # first: the others share its connection
            from probes.hosts.connection import ConnectionProbe

            probes.append(ConnectionProbe(host, interval=opts.interval))
        # each area registers its probes here
        try:
            from probes.inventory.libvirt import LibvirtProbe

            if host.host.libvirt_uri:
                probes.append(LibvirtProbe(interval=opts.interval))
        except ImportError:
            pass
        # local hosts: netlink + inotify notifications drive the netns and topology probes
        # (probes/network/events.py); their polls become a slow safety net
        events = None
        if host.is_local and not host.root and not opts.demo:
            from probes.network.events import LocalNetEvents

            events = LocalNetEvents()
        if not opts.demo:  # the demo shows only the bundled libvirt fleet
            from probes.inventory.containers import ContainerProbe
            from probes.inventory.netns import NetnsProbe

            every = max(opts.interval, 5.0)
            probes += [NetnsProbe(interval=every, events=events), ContainerProbe(interval=every)]
        from probes.resources.probe import ResourcesProbe

        probes.append(ResourcesProbe(interval=opts.interval, host_totals=not opts.demo))
        if not opts.demo:  # host files of this machine say nothing about the simulated demo host
            from probes.facts.probe import FactsProbe

            probes.append(
                FactsProbe(interval=max(opts.interval, 60.0), updates=("updates", "1") in opts.extra)
            )
            from probes.xen.probe import XenProbe  # a Xen dom0's toolstack; nothing elsewhere

            probes.append(XenProbe(interval=max(opts.interval, 60.0)))
        # network topology (probes/network; the demo: libvirt's view only); active probes only on request
        from probes.network.policy import from_config
        from probes.network.topology import TopologyProbe
        from probes.tenancy import config_for

        probes.append(
            TopologyProbe(
                interval=opts.interval if opts.demo else max(opts.interval, 5.0),
                policy=from_config(config_for(opts)),
                libvirt_only=opts.demo,
                ovs_db=_ovs_db(opts),
                events=events,
            )
        )
        if not opts.demo:  # logs: journal, files, libvirt events (probes/logs/service.py)
            from probes.logs.service import log_probes

            probes += log_probes(host, opts)
        return probes

    return for_host


def _libvirt_view_probes(opts: Options) -> list[Probe[Any]]:
    """A host seen only through libvirt: its domains, their live figures, and the topology of
    libvirt's view (domain interfaces, libvirt networks and bridges, OVS virtualport, nwfilter).
    This machine's namespaces, containers, facts and logs are not that host's: not read."""
    from probes.inventory.libvirt import LibvirtProbe
    from probes.network.policy import from_config
    from probes.network.topology import TopologyProbe
    from probes.resources.probe import ResourcesProbe
    from probes.tenancy import config_for

    return [
        LibvirtProbe(interval=opts.interval),
        ResourcesProbe(interval=opts.interval, host_totals=False),
        TopologyProbe(interval=opts.interval, policy=from_config(config_for(opts)), libvirt_only=True),
    ]


def _ovs_db(opts: Options) -> str | None:
    """`[network] ovsdb`: a private OVS database to read (the training lab runs its own)."""
    cfg = opts.config
    v = cfg.table("network").get("ovsdb") if cfg is not None else None
    return v if isinstance(v, str) and v else None


def make_deriver(opts: Options):
    from probes.checks.base import CheckRunner
    from probes.checks.silence import silences_from

    silences = silences_from(opts.config)  # validated by cmd_check / the app before this
    checks = CheckRunner()  # this session's: reuses a check's result while its inputs stay the same

    def derive(state: State) -> State:
        try:
            from probes.tenancy import assign  # type: ignore[import-not-found]

            state = assign(state, opts)
        except ImportError:
            pass
        from probes.network.libvirtnet import current_views  # libvirt's view follows its domains

        state = current_views(state)
        from probes.checks import silence  # the config's [checks] silence: accepted warnings

        findings = silence.apply(
            checks.run(state, opts.checks or None),
            silences,
            opts.config.path if opts.config and opts.config.path else "config",
        )
        return replace(state, findings=findings)

    return derive


def make_engine(opts: Options) -> Engine:
    # lead: the inventory shows first; the other probes start once it was published
    engine = Engine(
        make_hosts(opts),
        make_probes(opts),
        make_deriver(opts),
        source="demo" if opts.demo else "live",
        lead=("libvirt",),
    )
    from probes.logs.service import bind_engine

    bind_engine(engine)  # the logs service publishes batches through engine.update_host
    return engine
