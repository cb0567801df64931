"""The Tenants pane says what kind of VM or container a row is, where known: the runtime and
image of a container (from its runtime's API), the guest type of a Xen domain."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from probes.model import ContainerDetails, NetnsDetails, Placement, VmDetails, Workload, WorkloadKind
from tui.panes.tenants import workload_label


def test_container_rows_show_runtime_and_image_as_untrusted_text():
    w = Workload(
        WorkloadKind.CONTAINER,
        "acme-web",
        "h",
        container=ContainerDetails(runtime="docker", image="shop:1\x1b[2J"),
    )
    label = workload_label(w)
    assert "container (docker shop:1\\x1b[2J)" in label.plain and "\x1b" not in label.plain


def test_xen_rows_show_the_guest_type_and_others_stay_as_they_were():
    xen = Workload(WorkloadKind.VM, "g1", "h", vm=VmDetails(domain_type="xen", xen_guest="pvh"))
    assert "vm (xen pvh) ·" in workload_label(xen).plain
    kvm = Workload(WorkloadKind.VM, "g2", "h", vm=VmDetails(domain_type="kvm"))
    plain = Workload(WorkloadKind.CONTAINER, "c", "h", container=ContainerDetails(runtime="lxc"))
    assert "g2  vm ·" in workload_label(kvm).plain and "c  container ·" in workload_label(plain).plain


def _assembled(w: Workload) -> Text:
    """The label as the pane built it before issue 16 (Text.assemble of untrusted pieces)."""
    from tui.panes.tenants import _kind_detail, namespace_name
    from tui.safe import untrusted

    ns, detail = namespace_name(w), _kind_detail(w)
    if w.placed_by == Placement.UNPLACED or not w.tenant:
        placement = (
            Text.assemble(("unplaced: ", "italic"), untrusted(w.placed_rule))
            if w.placed_rule
            else Text("no rule matched", style="italic")
        )
    else:
        placement = Text(f"{w.placed_by.value}")
        if w.placed_rule:
            placement.append(": ")
            placement.append_text(untrusted(w.placed_rule))
    return Text.assemble(
        untrusted(w.name, style="bold"),
        "  ",
        (w.kind.value, "italic"),
        *((" (", untrusted(detail), ")") if detail else ()),
        *((" in netns ", untrusted(ns)) if ns else ()),
        " · ",
        untrusted(w.state or "?"),
        " · ",
        untrusted(w.host),
        " · ",
        placement,
    )


def _cells(t: Text) -> list[tuple[str, str]]:
    console = Console(width=400, color_system="truecolor", force_terminal=True)
    return [(ch, str(seg.style)) for seg in console.render(t) for ch in seg.text if seg.text != "\n"]


def test_labels_render_as_the_assembled_ones():
    """The labels built at once (issue 16: 1,000 rows) draw exactly as the assembled ones did,
    hostile text included."""
    hostile = "x\x1b[31mred\x07\u202eevil\n"
    cases = [
        Workload(
            WorkloadKind.VM,
            "acme-db-1",
            "hv1",
            state="running",
            tenant="acme",
            placed_by=Placement.PREFIX,
            placed_rule="name prefix before '-'",
            vm=VmDetails(domain_type="xen", xen_guest="pv"),
        ),
        Workload(
            WorkloadKind.CONTAINER,
            hostile,
            hostile,
            state=hostile,
            container=ContainerDetails(runtime="docker", image=hostile),
        ),
        Workload(
            WorkloadKind.CONTAINER,
            "c",
            "h",
            placed_rule=hostile,
            container=ContainerDetails(runtime="podman"),
            netns=NetnsDetails(path="/run/netns/" + hostile),
        ),
        Workload(WorkloadKind.NETNS, "ns1", "h", tenant="t", placed_by=Placement.CONFIG, placed_rule=""),
        Workload(WorkloadKind.VM, "", "", state=""),
    ]
    for w in cases:
        new, old = workload_label(w), _assembled(w)
        assert new.plain == old.plain
        assert _cells(new) == _cells(old), w.name


def test_the_unplaced_row_of_a_host_with_no_workload_says_so():
    """A host never reached (or an empty one) has no workload: the unplaced row said "none:
    every workload has a tenant", vouching for workloads nobody saw."""
    from probes.model import Host, HostState, State
    from tui.panes.tenants import build_groups

    (unplaced,) = build_groups(State(hosts=(HostState(host=Host("tsp2-h")),)))
    assert unplaced.label.plain == "⊘ unplaced  none: no workload observed"
