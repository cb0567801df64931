"""Tenant assignment: every rule, their order, unplaced workloads, tenants across hosts."""

from __future__ import annotations

from dataclasses import replace

from probes.config import Config, PrefixRule, parse
from probes.model import (
    ContainerDetails,
    Host,
    HostState,
    MetadataItem,
    NetnsDetails,
    Placement,
    State,
    VmDetails,
    Workload,
    WorkloadKind,
)
from probes.session import Options, make_deriver
from probes.tenancy import assign, nova_project

NOVA = "http://openstack.org/xmlns/libvirt/nova/1.1"
CONFIG = parse(
    """
[[tenant]]
name = "acme"
domains = ["acme-*", "special-vm"]
netns = ["blue-*"]
cgroups = ["/machine.slice/*acme*"]
containers = ["shop-*", "com.example.tenant=acme*"]

[[tenant]]
name = "globex"
domains = ["acme-legacy-*"]
metadata = [{namespace = "http://example.com/t/1", path = "tenant/@id", value = "gx"},
            {path = "billing/account", value = "GX-*"}]

[[tenant]]
name = "nobody"
""",
    "t.toml",
)


def vm(name: str, host: str = "h1", md: tuple[MetadataItem, ...] = ()) -> Workload:
    return Workload(WorkloadKind.VM, name, host, vm=VmDetails(metadata=md))


def ctr(name: str, cgroup: str = "/", labels=(), source: str = "docker", host: str = "h1") -> Workload:
    return Workload(
        WorkloadKind.CONTAINER,
        name,
        host,
        container=ContainerDetails(cgroup=cgroup, labels=labels, name_source=source),
    )


def ns(name: str, named: bool = True, host: str = "h1") -> Workload:
    return Workload(WorkloadKind.NETNS, name, host, netns=NetnsDetails(named=named))


def nova(project: str, uuid: str = "p-uuid") -> MetadataItem:
    return MetadataItem(NOVA, "instance/owner/project", project, (("uuid", uuid),))


def place(ws: list[Workload], config: Config = CONFIG) -> dict[str, Workload]:
    hosts: dict[str, list[Workload]] = {}
    for w in ws:
        hosts.setdefault(w.host, []).append(w)
    st = State(hosts=tuple(HostState(Host(h), workloads=tuple(v)) for h, v in hosts.items()))
    out = assign(st, Options(config=config))
    return {w.key: w for w in out.workloads()} | {"__state__": out}  # type: ignore[dict-item]


def placed(w: Workload) -> tuple[str, Placement, str]:
    return w.tenant, w.placed_by, w.placed_rule


def test_every_config_selector():
    ws = [
        vm("acme-db"),
        vm("x", md=(MetadataItem("http://example.com/t/1", "tenant", "", (("id", "gx"),)),)),
        vm("y", md=(MetadataItem("urn:any", "billing/account", "GX-7"),)),
        ns("blue-1"),
        ctr("shop-web"),
        ctr("c1", labels=(("com.example.tenant", "acme-prod"),)),
        ctr("c2", cgroup="/machine.slice/libpod-acme-1.scope"),
    ]
    got = {k.split("/", 2)[2]: placed(w) for k, w in place(ws).items() if k != "__state__"}
    assert got == {
        "acme-db": ("acme", Placement.CONFIG, "domains 'acme-*'"),
        "x": ("globex", Placement.CONFIG, "metadata {http://example.com/t/1}tenant/@id = 'gx'"),
        "y": ("globex", Placement.CONFIG, "metadata billing/account = 'GX-*'"),
        "blue-1": ("acme", Placement.CONFIG, "netns 'blue-*'"),
        "shop-web": ("acme", Placement.CONFIG, "containers 'shop-*'"),
        "c1": ("acme", Placement.CONFIG, "containers 'com.example.tenant=acme*'"),
        "c2": ("acme", Placement.CONFIG, "cgroups '/machine.slice/*acme*'"),
    }


def test_selectors_apply_to_their_kind_only():
    # a netns named like a domain glob, a VM named like a netns glob: neither is config-placed
    got = place([ns("special-vm"), vm("blue-2"), ctr("acme-db")])
    assert got["h1/netns/special-vm"].placed_by == Placement.PREFIX
    assert placed(got["h1/vm/blue-2"]) == ("blue", Placement.PREFIX, "name prefix before '-'")
    assert placed(got["h1/container/acme-db"])[:2] == ("acme", Placement.PREFIX)


def test_metadata_must_match_namespace_attribute_and_value():
    wrong_ns = MetadataItem("http://evil.example/", "tenant", "", (("id", "gx"),))
    wrong_val = MetadataItem("http://example.com/t/1", "tenant", "", (("id", "gy"),))
    text_not_attr = MetadataItem("http://example.com/t/1", "tenant", "gx")
    got = place([vm("a", md=(wrong_ns,)), vm("b", md=(wrong_val,)), vm("c", md=(text_not_attr,))])
    assert all(got[f"h1/vm/{n}"].placed_by == Placement.UNPLACED for n in "abc")


def test_rule_order_config_then_nova_then_prefix():
    got = place(
        [
            vm("acme-legacy-1"),  # matches acme's and globex's globs: the first tenant in the file wins
            vm("acme-with-nova", md=(nova("other"),)),  # config beats Nova
            vm("globex-vm", md=(nova("initech"),)),  # Nova beats the prefix
            vm("globex-vm2"),  # the prefix
        ]
    )
    assert placed(got["h1/vm/acme-legacy-1"]) == ("acme", Placement.CONFIG, "domains 'acme-*'")
    assert placed(got["h1/vm/acme-with-nova"])[:2] == ("acme", Placement.CONFIG)
    assert placed(got["h1/vm/globex-vm"]) == ("initech", Placement.NOVA, "nova:owner/nova:project")
    assert placed(got["h1/vm/globex-vm2"]) == ("globex", Placement.PREFIX, "name prefix before '-'")


def test_nova_metadata():
    assert nova_project((nova("demo"),)) == "demo"
    assert nova_project((nova("", uuid="f00"),)) == "f00"  # no name: the project uuid
    assert nova_project((MetadataItem("urn:other", "instance/owner/project", "x"),)) == ""
    assert nova_project((MetadataItem(NOVA, "instance/owner/user", "admin"),)) == ""


def test_unplaced_workloads_stay_visible():
    got = place(
        [
            vm("standalone"),
            ns("net:[4026532999]", named=False),
            ctr("sleep[123]", source=""),
            ctr("web-1", source=""),
        ]
    )
    st = got["__state__"]
    for k in (
        "h1/vm/standalone",
        "h1/netns/net:[4026532999]",
        "h1/container/sleep[123]",
        "h1/container/web-1",
    ):  # made-up names are never prefix-placed
        assert placed(got[k]) == ("", Placement.UNPLACED, "")
    assert len(st.workloads()) == 4
    assert "" not in {t.name for t in st.tenants}


def test_tenants_span_hosts_and_include_configured_ones():
    st = place([vm("acme-1", "h1"), vm("acme-2", "h2"), ns("blue-x", host="h2"), vm("zeta-1", "h1")])[
        "__state__"
    ]
    t = {x.name: x for x in st.tenants}
    assert t["acme"].hosts == ("h1", "h2")
    assert t["acme"].workloads == ("h1/vm/acme-1", "h2/netns/blue-x", "h2/vm/acme-2")
    assert t["zeta"].workloads == ("h1/vm/zeta-1",)
    assert t["nobody"].workloads == () and t["globex"].workloads == ()  # configured, nothing found
    assert [x.name for x in st.tenants] == sorted(t)


def test_prefix_rule_settings():
    got = place([vm("acme_db"), vm("globex-db")], Config(prefix=PrefixRule(separator="_")))
    assert got["h1/vm/acme_db"].tenant == "acme" and got["h1/vm/globex-db"].tenant == ""
    got = place([vm("globex-db")], Config(prefix=PrefixRule(enabled=False)))
    assert got["h1/vm/globex-db"].placed_by == Placement.UNPLACED
    got = place([vm("-leading"), vm("trailing-")], Config())
    assert got["h1/vm/-leading"].tenant == "" and got["h1/vm/trailing-"].tenant == "trailing"


def test_hostile_names_are_data():
    names = ["$(id)-vm", "x;touch /tmp/pwned-a", "[@click=app.quit]-b", "\x1b]0;t\x07-c", "acme-`id`"]
    got = place([vm(n) for n in names])
    assert got["h1/vm/$(id)-vm"].tenant == "$(id)"
    assert got["h1/vm/x;touch /tmp/pwned-a"].tenant == "x;touch /tmp/pwned"
    assert got["h1/vm/[@click=app.quit]-b"].tenant == "[@click=app.quit]"
    assert got["h1/vm/\x1b]0;t\x07-c"].tenant == "\x1b]0;t\x07"  # stored raw; escaped when shown
    assert placed(got["h1/vm/acme-`id`"])[:2] == ("acme", Placement.CONFIG)
    # a glob-looking name is matched literally, not as a pattern
    got = place([vm("acme-[x]*"), vm("*")])
    assert got["h1/vm/acme-[x]*"].tenant == "acme" and got["h1/vm/*"].tenant == ""


def test_assign_is_idempotent_and_reuses_unchanged_hosts():
    st = place([vm("acme-1"), vm("zeta-1", "h2")])["__state__"]
    again = assign(st, Options(config=CONFIG))
    assert again == st
    assert all(a is b for a, b in zip(again.hosts, st.hosts))  # nothing re-built
    # a probe's fresh workload (tenant "") for one host only rebuilds that host
    h1 = replace(st.hosts[0], workloads=(vm("acme-1"),))
    third = assign(replace(st, hosts=(h1, st.hosts[1])), Options(config=CONFIG))
    assert third == st and third.hosts[1] is st.hosts[1]


def test_the_deriver_places_workloads(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[tenant]]\nname = "t1"\ndomains = ["db*"]\n')
    st = State(hosts=(HostState(Host("h"), workloads=(vm("db1", "h"),)),))
    for opts in (Options(config_path=str(cfg)), Options(config=parse(cfg.read_text(), str(cfg)))):
        out = make_deriver(opts)(st)
        assert placed(out.workloads()[0]) == ("t1", Placement.CONFIG, "domains 'db*'")


def test_first_tenant_in_the_file_wins_across_selector_kinds():
    cfg = parse(
        '[[tenant]]\nname = "first"\ncgroups = ["/k/*"]\n'
        'metadata = [{path = "t", value = "*"}]\n'
        '[[tenant]]\nname = "second"\ncontainers = ["web*"]\ndomains = ["vm*"]\n',
        "o.toml",
    )
    got = place(
        [
            ctr("web1", cgroup="/k/x"),
            ctr("web2", cgroup="/other"),
            vm("vm1", md=(MetadataItem("urn:x", "t", "v"),)),
            vm("vm2"),
        ],
        cfg,
    )
    assert placed(got["h1/container/web1"]) == ("first", Placement.CONFIG, "cgroups '/k/*'")
    assert placed(got["h1/container/web2"]) == ("second", Placement.CONFIG, "containers 'web*'")
    assert placed(got["h1/vm/vm1"]) == ("first", Placement.CONFIG, "metadata t = '*'")
    assert placed(got["h1/vm/vm2"]) == ("second", Placement.CONFIG, "domains 'vm*'")


def test_generated_names_make_no_tenant():
    """Issue 14 item 3: tools' names (Nova, libvirt/virt-install defaults, counters, UUIDs)
    are unplaced and listed with the reason, not made into tenants "instance", "vm", ..."""
    gen = [
        "instance-0000abcd",  # Nova's instance_name_template instance-%08x, no Nova metadata
        "vm-3",
        "guest-12",
        "debian12-2",  # virt-install: the osinfo short id, then -N
        "ubuntu22.04-1",
        "generic-3",
        "6f1c2a3e-8d4b-4c1f-9a2e-0123456789ab",  # a UUID as the name
        "cni-6f1c2a3e-8d4b-4c1f-9a2e-0123456789ab",  # CNI / podman namespace
        "3f2a9c1e77d0-web",  # starts with a container id
    ]
    people = [
        "acme-web-1",
        "globex-db",
        "vmware-1",
        "instance-web",
        "acme-6f1c2a3e-8d4b-4c1f-9a2e-0123456789ab",
    ]
    got = place([vm(n, md=()) for n in gen + people], Config())
    for n in gen:
        w = got[f"h1/vm/{n}"]
        assert (w.tenant, w.placed_by) == ("", Placement.UNPLACED), n
        assert w.placed_rule.startswith("generated name"), n
    assert {got[f"h1/vm/{n}"].tenant for n in people} == {"acme", "globex", "vmware", "instance"}
    st = got["__state__"]
    assert {t.name for t in st.tenants} == {"acme", "globex", "vmware", "instance"}
    assert len(st.workloads()) == len(gen) + len(people)  # unplaced ones stay listed
    # a namespace named by CNI: also unplaced
    n = place([ns("cni-6f1c2a3e-8d4b-4c1f-9a2e-0123456789ab")], Config())
    assert n["h1/netns/cni-6f1c2a3e-8d4b-4c1f-9a2e-0123456789ab"].tenant == ""
    # Nova metadata still places an instance-N domain
    got = place([vm("instance-0000abcd", md=(nova("demo"),))], Config())
    assert got["h1/vm/instance-0000abcd"].tenant == "demo"


def test_generated_names_can_be_replaced_in_the_config():
    cfg = parse('[prefix]\ngenerated = ["build-*"]\n', "t.toml")
    got = place([vm("build-7"), vm("vm-3")], cfg)
    assert got["h1/vm/build-7"].tenant == "" and "build-*" in got["h1/vm/build-7"].placed_rule
    assert got["h1/vm/vm-3"].tenant == "vm"  # the user's list replaces the built-in one
    got = place([vm("vm-3")], parse("[prefix]\ngenerated = []\n", "t.toml"))
    assert got["h1/vm/vm-3"].tenant == "vm"


def test_the_tenants_pane_lists_a_generated_name_as_unplaced():
    from tui.panes.tenants import build_groups

    st = place([vm("instance-0000abcd"), vm("acme-1")], Config())["__state__"]
    groups = build_groups(st)
    assert [g.label.plain.split()[0] for g in groups][:1] == ["acme"]
    unplaced = groups[-1]
    assert any(
        "instance-0000abcd" in r.label.plain and "generated name" in r.label.plain for r in unplaced.rows
    )


def test_a_sessions_placer_places_again_only_the_hosts_whose_workloads_changed():
    """assign with the session's Placer over successive States equals assign with a fresh one,
    and a host whose workloads did not change keeps its placed workloads (not placed again)."""
    from probes.tenancy import Placer

    cfg = Config()

    def wl(host: str, *names: str) -> tuple[Workload, ...]:
        return tuple(Workload(WorkloadKind.NETNS, n, host) for n in names)

    a = HostState(Host("a"), workloads=wl("a", "acme-web", "globex-db"))
    b = HostState(Host("b"), workloads=wl("b", "acme-db"))
    placer = Placer(cfg)
    first = assign(State(hosts=(a, b)), Options(config=cfg), placer)
    a2 = replace(a, workloads=wl("a", "acme-web", "initech-x"))
    second = assign(State(hosts=(a2, b)), Options(config=cfg), placer)
    assert second == assign(State(hosts=(a2, b)), Options(config=cfg))
    assert second.hosts[1].workloads is first.hosts[1].workloads  # b: kept as placed
    assert [w.tenant for w in second.hosts[0].workloads] == ["acme", "initech"]
    assert {t.name for t in second.tenants} == {"acme", "initech"}
