"""The Tenants pane says what kind of VM or container a row is, where known: the runtime and
image of a container (from its runtime's API), the guest type of a Xen domain."""

from __future__ import annotations

from probes.model import ContainerDetails, VmDetails, Workload, WorkloadKind
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
