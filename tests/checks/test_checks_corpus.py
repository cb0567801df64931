"""The XML parser and the VM checks over the corpus of real-world domain XML (libvirt's own
test suite, ../shared/corpus/libvirt-domains, read in place; skipped when absent), with a
dozen files annotated with what the checks must say about them."""

from __future__ import annotations

from pathlib import Path

import pytest

from probes.checks.base import load_catalog, run_checks
from probes.inventory.domxml import DomainXmlError, error_details, parse_domain
from probes.model import Status, Workload, WorkloadKind
from tests.fixtures.checks import FACTS_DIR, HOST, collect_facts, make_tree, xml_state
from tests.helpers import CORPUS, REPO

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus absent: {CORPUS}")

VM_CHECKS = sorted(
    c for c, v in load_catalog().items() if v.spec.area == "vm" and v.fn.__module__ == "probes.checks.vm"
)


def _load(path: Path, tenant: str = "") -> Workload:
    """A corpus file as a workload; a file the parser refuses becomes a workload with the error."""
    name = f"{tenant or 'corpus'}-{path.stem}"
    try:
        vm = parse_domain(path.read_bytes(), name_hint=path.stem, secure=True).vm
    except DomainXmlError as e:
        vm = error_details(str(e))
    return Workload(kind=WorkloadKind.VM, name=name, host=HOST, state="running", vm=vm)


def _files() -> list[Path]:
    return sorted(CORPUS.glob("*.xml")) if CORPUS.is_dir() else []


def test_every_vm_check_runs_over_the_whole_corpus_without_crashing(tmp_path):
    """All ~150 files at once (one host, tenants by name prefix: every file its own tenant
    would be noise, so two halves): no check may raise; errors only for refused XML."""
    files = _files()
    assert len(files) > 100
    ws = [_load(p, "acme" if i % 2 else "globex") for i, p in enumerate(files)]
    facts = collect_facts(make_tree("hardened", tmp_path))
    out = run_checks(xml_state(extra=ws, facts=facts), VM_CHECKS + ["NET-08"])
    crashed = [f for f in out if f.summary.startswith("check failed")]
    assert not crashed, [(f.check_id, f.summary) for f in crashed]
    refused = {w.name for w in ws if w.vm and w.vm.parse_error}
    errors = [f for f in out if f.status == Status.ERROR]
    assert all(any(r in f.summary for r in refused) or "cpuset" in f.summary for f in errors), [
        f.summary for f in errors
    ]


# file -> (check id, expected statuses of the findings about this file)
ANNOTATED: dict[str, tuple[tuple[str, set[Status]], ...]] = {
    "seclabel-none.xml": (("VM-01", {Status.FAIL}),),
    "seclabel-dynamic-none.xml": (("VM-01", {Status.FAIL}),),  # type none, model none
    "seclabel-dac-none.xml": (("VM-01", {Status.FAIL}),),  # DAC off: QEMU keeps the daemon's uid
    "seclabel-static.xml": (("VM-03", {Status.WARN}), ("VM-01", set())),  # relabel='no'
    "seclabel-static-relabel.xml": (("VM-03", set()),),
    "graphics-vnc-socket.xml": (("VM-08", set()),),  # a unix socket: no network listener
    "graphics-vnc-no-listen-attr.xml": (("VM-08", {Status.FAIL}),),  # a global IPv6 address, no passwd
    "graphics-spice.xml": (("VM-08", {Status.WARN}),),  # loopback, TLS, but no password
    "disk-cdrom.xml": (("VM-07", {Status.WARN}),),  # an IDE disk (the IDE cdroms do not count)
    "net-user.xml": (("VM-07", {Status.WARN}),),  # rtl8139 (and an IDE disk)
    "disk-virtio.xml": (("VM-07", {Status.WARN}), ("VM-13", {Status.WARN})),  # its first disk is IDE
    "encrypted-disk.xml": (("VM-13", set()),),  # LUKS
    "hostdev-pci-address.xml": (("VM-11", {Status.FAIL}),),  # with the weak tree: no IOMMU
    "cputune.xml": (("VM-06", set()),),  # pinned, and alone
}


@pytest.mark.parametrize("name", sorted(ANNOTATED))
def test_annotated_corpus_file(name, tmp_path):
    path = CORPUS / name
    assert path.is_file(), f"{name}: annotated here but not in the corpus {CORPUS}"
    w = _load(path, "acme")
    assert w.vm and not w.vm.parse_error
    facts = collect_facts(make_tree("weak", tmp_path))
    state = xml_state(extra=[w], facts=facts)
    for cid, expected in ANNOTATED[name]:
        got = {
            f.status
            for f in run_checks(state, [cid])
            if f.check_id == cid and w.key in f.workloads and f.status != Status.PASS
        }
        assert got == expected, (name, cid, [f.summary for f in run_checks(state, [cid])])


def test_two_tenants_pinned_like_cputune_xml_share_cpus():
    a = _load(CORPUS / "cputune.xml", "acme")
    b = _load(CORPUS / "cputune.xml", "globex")
    out = [f for f in run_checks(xml_state(extra=[a, b]), ["VM-06"]) if f.status == Status.FAIL]
    assert out and out[0].tenants == ("acme", "globex") and "0-1" in out[0].summary


def test_corpus_is_read_in_place_not_copied():
    assert not list((REPO / "tests").rglob("seclabel-none.xml"))
    assert FACTS_DIR.is_dir()
