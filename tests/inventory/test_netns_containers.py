"""Issue 14 item 7: a container running inside a named network namespace is one workload (the
container, its namespace named on it), not two; a namespace with several containers lists them
under it; a tenant with 3 services counts 3.

Real parts: named namespaces (`ip netns add`), container-like processes started in them with
`ip netns exec NS unshare --pid --mount-proc ...` (the inventory recognises them as containers),
the real netns and container discovery, tenancy and the Tenants pane's tree builder."""

from __future__ import annotations

import os

from probes.config import parse
from probes.hosts.local import LocalHost
from probes.inventory import containers, netns
from probes.model import Host, HostState, State, WorkloadKind
from probes.session import Options, make_deriver
from tests.fixtures.procs import NamedNetns, Procs, named_netns, procs  # noqa: F401
from tests.helpers import needs_root, needs_tool

TAG = f"tsb-d{os.getpid() % 100000}"
ACME, GLOBEX = f"{TAG}acme", f"{TAG}globex"  # tenant names unique to this test run
CONTAINER = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--uts", "--ipc", "sleep", "600"]


@needs_root
@needs_tool("ip", "unshare")
async def test_containers_in_named_namespaces_are_one_workload_each(named_netns: NamedNetns, procs: Procs):
    a = named_netns.add(f"{TAG}-a")  # acme's one service
    b = named_netns.add(f"{TAG}-b")  # two of globex's services share this namespace
    b2 = named_netns.add(f"{TAG}-c")  # globex's third service
    empty = named_netns.add(f"{TAG}-e")  # a namespace without containers stays a workload
    started = {
        "a": procs.start(["ip", "netns", "exec", a, *CONTAINER]),
        "b1": procs.start(["ip", "netns", "exec", b, *CONTAINER]),
        "b2": procs.start(["ip", "netns", "exec", b, *CONTAINER]),
        "c": procs.start(["ip", "netns", "exec", b2, *CONTAINER]),
    }
    host = LocalHost("h")
    raw = (*await netns.discover(host), *await containers.discover(host))
    cfg = parse(
        f'[[tenant]]\nname = "{ACME}"\nnetns = ["{a}"]\n'
        f'[[tenant]]\nname = "{GLOBEX}"\nnetns = ["{b}", "{b2}", "{empty}"]\n',
        "t.toml",
    )
    st = make_deriver(Options(config=cfg))(State(hosts=(HostState(Host("h"), workloads=raw),)))

    ws = st.workloads()
    ours = {n for n in (a, b, b2, empty)}
    assert {w.name for w in ws if w.kind == WorkloadKind.NETNS} & ours == {empty}

    def holding(key: str):
        leaf = started[key].leaf
        return next(w for w in ws if w.container and leaf in w.container.pids)

    ns_of = {k: holding(k).netns.path if holding(k).netns else "" for k in started}
    assert ns_of == {
        "a": f"/run/netns/{a}",
        "b1": f"/run/netns/{b}",
        "b2": f"/run/netns/{b}",
        "c": f"/run/netns/{b2}",
    }
    assert holding("a").tenant == ACME and holding("c").tenant == GLOBEX  # placed by their namespace

    t = {x.name: x for x in st.tenants}
    assert len(t[ACME].workloads) == 1
    assert len(t[GLOBEX].workloads) == 4  # 3 services + the namespace with no container
    assert sum(1 for k in t[GLOBEX].workloads if "/container/" in k) == 3

    from tui.panes.tenants import build_groups

    groups = {g.data: g for g in build_groups(st)}
    (acme_row,) = groups[f"t:{ACME}"].rows
    assert f"in netns {a}" in acme_row.label.plain and not acme_row.children
    shared = [r for r in groups[f"t:{GLOBEX}"].rows if r.children]
    assert len(shared) == 1 and shared[0].data == f"n:h/{b}" and len(shared[0].children) == 2
    assert f"netns {b}" in shared[0].label.plain and "2 containers" in shared[0].label.plain
    assert "3 workloads" not in groups[f"t:{GLOBEX}"].label.plain  # 4: three services + the empty ns
    assert "4 workloads" in groups[f"t:{GLOBEX}"].label.plain
