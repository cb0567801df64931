"""Xen: no Xen hypervisor runs here, so nothing in this module is tested against a live one.

- The libvirt path: libvirt's own Xen test domains (tests/data/xen/libvirt/*.xml, from
  libvirt's tests/libxlxml2domconfigdata and tests/xlconfigdata, see the README there) loaded
  into libvirt's test driver (the real libvirt API and XML round trip, a simulated hypervisor),
  read by the real inventory, placed by the real tenancy rules and judged by the checks.
- The toolstack path: recorded `xl` output (tests/data/xen/xl/: `xl info` from Xen's xl(1)
  manual, `xl list -l` assembled from libvirt's libxl domain-config JSON in the layout xl
  prints) answered by a fake transport (named FakeXlHost: it replays those files for the exact
  argv the probe runs; everything else is refused), parsed by the real probe.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from probes.checks.base import run_checks
from probes.config import parse
from probes.hosts.base import CommandResult, HostError, HostTransport
from probes.inventory.libvirt import LibvirtProbe
from probes.model import Host, HostState, State, Status
from probes.session import Options
from probes.tenancy import assign
from probes.xen.model import XenHost
from probes.xen.parse import parse_getenforce, parse_xenstore_ls, parse_xl_info, parse_xl_list_l
from probes.xen.probe import XenProbe
from tests.helpers import DATA

XEN = DATA / "xen"
DOMAINS = ("basic-pv.xml", "basic-hvm.xml", "test-paravirt-maxvcpus.xml", "test-pvh-type.xml")
CONFIG = parse(
    """
[[tenant]]
name = "acme"
domains = ["test-pv", "test-hvm"]

[[tenant]]
name = "globex"
domains = ["XenGuest1"]

[[tenant]]
name = "initech"
domains = ["XenGuest2"]
""",
    "xen-test.toml",
)


def node_uri(tmp_path: Path) -> str:
    """libvirt's Xen test domains, verbatim, in one test-driver node file."""
    body = "".join((XEN / "libvirt" / f).read_text().replace("<?xml", "<!--") for f in DOMAINS)
    node = tmp_path / "xen-node.xml"
    node.write_text(f"<node>\n{body}</node>\n")
    return f"test://{node}"


async def libvirt_state(tmp_path: Path, xen: XenHost | None = None) -> State:
    uri = node_uri(tmp_path)
    probe = LibvirtProbe(interval=1.0)
    try:
        from probes.hosts.local import LocalHost

        host = LocalHost("xen-hv1", libvirt_uri=uri)
        hs = probe.merge(HostState(host=host.host), await probe.collect(host))
    finally:
        await probe.close()
    return assign(State(hosts=(replace(hs, xen=xen),)), Options(config=CONFIG))


# ------------------------------------------------------------------ the libvirt path


async def test_xen_domains_through_libvirt_with_their_guest_types(tmp_path: Path):
    st = await libvirt_state(tmp_path)
    vms = {w.name: w for w in st.hosts[0].workloads}
    assert {n: w.vm.xen_guest for n, w in vms.items()} == {  # type: ignore[union-attr]
        "test-pv": "pv",
        "test-hvm": "hvm",
        "XenGuest1": "pv",
        "XenGuest2": "pvh",
    }
    assert vms["test-hvm"].vm.emulator == "/bin/true" and vms["test-hvm"].vm.domain_type == "xen"  # type: ignore[union-attr]
    assert vms["XenGuest2"].vm.os_type == "xenpvh"  # type: ignore[union-attr]
    assert {n: w.tenant for n, w in vms.items()} == {
        "test-pv": "acme",
        "test-hvm": "acme",
        "XenGuest1": "globex",
        "XenGuest2": "initech",
    }


async def test_pv_guests_of_two_tenants_and_a_device_model_in_dom0(tmp_path: Path):
    st = await libvirt_state(tmp_path)
    fs = {f.check_id: f for f in run_checks(st, ["XEN-01", "XEN-03"])}
    pv = fs["XEN-01"]
    assert pv.status == Status.FAIL and set(pv.tenants) == {"acme", "globex"}
    assert "test-pv" in pv.summary and "XenGuest1" in pv.summary and "XenGuest2" not in pv.summary
    dm = fs["XEN-03"]
    assert dm.status == Status.FAIL and dm.summary == "test-hvm: HVM device model runs in dom0"
    assert "/bin/true" in dm.evidence[0].detail


async def test_the_vm_checks_run_on_xen_domains(tmp_path: Path):
    """The VM checks judge Xen domains as KVM ones: nothing errors, and the graphics check sees
    the VNC console on 0.0.0.0 without a password that libvirt's basic-pv/basic-hvm have."""
    st = await libvirt_state(tmp_path)
    fs = run_checks(st, None)
    assert [f for f in fs if f.status == Status.ERROR] == []
    vnc = [f for f in fs if f.check_id == "VM-08" and f.status == Status.FAIL]
    assert {w.split("/")[-1] for f in vnc for w in f.workloads} >= {"test-pv", "test-hvm"}


# ------------------------------------------------------------------ the toolstack path (recorded output)


class FakeXlHost(HostTransport):
    """A fake dom0: answers the Xen probe's commands from recorded output files (there is no
    Xen here). Any other command fails as on a host without it."""

    def __init__(self, answers: dict[tuple[str, ...], str | None], caps: str = "control_d\n") -> None:
        self.host = Host("xen-hv1")
        self.answers = answers
        self.caps = caps
        self.ran: list[tuple[str, ...]] = []

    async def run(
        self, argv: Sequence[str], *, timeout: float = 10.0, input: str | None = None
    ) -> CommandResult:
        argv = tuple(argv)
        self.ran.append(argv)
        out = self.answers.get(argv)
        if out is None:
            return CommandResult(argv, 127, "", f"{argv[0]}: command not found")
        return CommandResult(argv, 0, out, "")

    async def read_text(self, path: str, *, timeout: float = 5.0, limit: int = 4 << 20) -> str:
        if path == "/proc/xen/capabilities" and self.caps:
            return self.caps
        raise FileNotFoundError(path)

    async def stream(self, argv: Sequence[str]) -> AsyncIterator[str]:
        raise HostError("not supported")
        yield ""


INFO = (XEN / "xl" / "info-docs.txt").read_text()
LIST = (XEN / "xl" / "list-l.json").read_text()


def answers(info: str = INFO, enforce: str | None = None, store: str | None = None) -> dict:
    return {
        ("xl", "info"): info,
        ("xl", "list", "-l"): LIST,
        ("xl", "getenforce"): enforce,
        ("xenstore-ls", "-f", "-p", "/local/domain"): store,
    }


def test_xl_info_from_the_manual():
    info = parse_xl_info(INFO)
    assert info["xen_major"] == "4" and info["xen_scheduler"] == "credit"
    assert info["xen_commandline"] == "com1=115200,8n1 guest_loglvl=all dom0_mem=750M console=com1"
    assert info["xen_changeset"].startswith("Wed Nov 02 17:09:09 2011")  # a value with colons


def test_xl_list_l_domains_and_types():
    doms = {d.name: d for d in parse_xl_list_l(LIST)}
    assert {n: (d.domid, d.guest_type) for n, d in doms.items()} == {
        "test-pv": (1, "pv"),
        "test-hvm": (2, "hvm"),
        "test-pvh": (5, "pvh"),
    }
    assert doms["test-hvm"].device_model == "/bin/true" and not doms["test-hvm"].stubdomain
    with pytest.raises(ValueError):
        parse_xl_list_l('{"not": "a list"}')


async def test_the_probe_reads_a_dom0_and_nothing_elsewhere():
    h = FakeXlHost(answers())
    xen = await XenProbe().collect(h)
    assert xen is not None and xen.version == "4.2-unstable" and xen.scheduler == "credit"
    assert xen.total_memory_mb == 6141 and xen.free_memory_mb == 4274 and xen.domains_read
    assert xen.flask == "disabled" and "no flask=" in xen.flask_source
    assert not xen.xenstore_read and any("xenstore-ls" in e for e in xen.errors)
    domu = FakeXlHost(answers(), caps="")  # a domU or a host without Xen: no command is run
    assert await XenProbe().collect(domu) is None and domu.ran == []


async def test_toolstack_checks_on_recorded_output(tmp_path: Path):
    xen = await XenProbe().collect(FakeXlHost(answers()))
    st = await libvirt_state(tmp_path, xen)
    fs = {f.check_id: f for f in run_checks(st, ["XEN-02", "XEN-04", "XEN-05", "XEN-06", "XEN-07"])}
    assert fs["XEN-02"].status == Status.WARN  # no FLASK
    assert fs["XEN-04"].status == Status.WARN and "test-pvh (domid 5, pvh)" in fs["XEN-04"].summary
    assert fs["XEN-05"].status == Status.WARN and "SMT on" in fs["XEN-05"].summary
    assert fs["XEN-06"].status == Status.PASS and fs["XEN-06"].summary == "dom0_mem=750M"
    assert fs["XEN-07"].status == Status.SKIPPED


async def test_mitigations_off_flask_and_dom0_mem_from_the_command_line(tmp_path: Path):
    """The manual's `xl info` with xen_commandline changed (a derived fixture: the options are
    Xen's documented ones, docs/misc/xen-command-line.pandoc)."""
    old = "com1=115200,8n1 guest_loglvl=all dom0_mem=750M console=com1"
    weak = INFO.replace(old, "console=com1 spec-ctrl=no smt=1 flask=permissive")
    xen = await XenProbe().collect(FakeXlHost(answers(weak, enforce="Permissive\n")))
    assert xen is not None and xen.flask == "permissive" and xen.flask_source == "xl getenforce"
    st = await libvirt_state(tmp_path, xen)
    fs = {f.check_id: f for f in run_checks(st, ["XEN-02", "XEN-05", "XEN-06"])}
    assert fs["XEN-02"].status == Status.FAIL
    assert fs["XEN-05"].status == Status.FAIL and "spec-ctrl=no" in fs["XEN-05"].summary
    assert fs["XEN-06"].status == Status.WARN
    strong = INFO.replace(old, f"{old} smt=0 flask=enforcing")
    xen = await XenProbe().collect(FakeXlHost(answers(strong, enforce="Enforcing\n")))
    st = await libvirt_state(tmp_path, xen)
    fs = {f.check_id: f for f in run_checks(st, ["XEN-02", "XEN-05"])}
    assert fs["XEN-02"].status == Status.PASS and fs["XEN-05"].status == Status.PASS
    assert parse_getenforce("Flask XSM Disabled\n") == "disabled"


XENSTORE = """\
/local/domain/0/name = "Domain-0"  . . . . . . . . . . . . . . . . . . . . .  (n0)
/local/domain/1/name = "test-pv"  . . . . . . . . . . . . . . . . . . . . . .  (n0,r1)
/local/domain/1/device/vif/0/state = "4"  . . . . . . . . . . . . . . . . .  (n1,r0)
/local/domain/2/data/shared = "x"  . . . . . . . . . . . . . . . . . . . . .  (n2,b1)
/local/domain/2/control/shutdown = ""  . . . . . . . . . . . . . . . . . . .  (b0)
"""


async def test_xenstore_keys_writable_by_another_guest():
    """Lines in the layout `xenstore-ls -f -p` prints (tools/xs-clients/xenstore_client.c: key,
    value, dots, the permission list): written for this test, not recorded from a host."""
    grants = parse_xenstore_ls(XENSTORE)
    assert [(g.path, g.owner, g.writers) for g in grants] == [
        ("/local/domain/2/data/shared", 2, (1,)),
        ("/local/domain/2/control/shutdown", 0, (-1,)),
    ]
    xen = await XenProbe().collect(FakeXlHost(answers(store=XENSTORE)))
    assert xen is not None and xen.xenstore_read
    fs = run_checks(State(hosts=(HostState(Host("xen-hv1"), xen=xen),)), ["XEN-07"])
    assert sorted(f.summary for f in fs) == [
        "/local/domain/2/control/shutdown (owner domain 0) is writable by every domain",
        "/local/domain/2/data/shared (owner domain 2) is writable by domain 1",
    ]
    assert all(f.status == Status.FAIL for f in fs)


def test_no_xen_anywhere_skips_with_the_reason():
    fs = run_checks(State(hosts=(HostState(Host("kvm1")),)), ["XEN-01", "XEN-02"])
    assert [(f.status, f.summary) for f in fs] == [
        (Status.SKIPPED, "no Xen host or Xen domain observed"),
        (Status.SKIPPED, "no Xen toolstack read (not a Xen dom0, or xl not reachable)"),
    ]


def test_probe_registered_for_real_hosts_only():
    from probes.hosts.local import LocalHost
    from probes.session import make_probes

    assert [p for p in make_probes(Options())(LocalHost("hv1", libvirt_uri=None)) if p.name == "xen"]
    assert not [p for p in make_probes(Options(demo=True))(LocalHost("demo")) if p.name == "xen"]
    assert asyncio.iscoroutinefunction(XenProbe().collect)


def test_xen_uris_are_placed_like_qemu_ones():
    """xen:///system is this machine (its toolstack is read here); xen+ssh://hv2/system is
    another host, seen through libvirt unless --host hv2 names it too."""
    from probes.hosts.libvirt_uri import place

    assert place("xen:///system").this_machine
    assert place("xen+ssh://hv2.example/system").remote_host == "hv2.example"


async def test_xen_facts_survive_a_snapshot():
    from probes import snapshot

    xen = await XenProbe().collect(FakeXlHost(answers(store=XENSTORE)))
    st = State(hosts=(HostState(Host("xen-hv1"), xen=xen),))
    back = snapshot.loads(snapshot.dumps(st))
    assert back.hosts[0].xen == xen


async def test_kvm_only_advice_is_not_given_for_xen_domains(tmp_path: Path):
    """VM-05's memtune limit is a QEMU process limit (Xen caps a domain at its maximum memory
    itself); NET-01's nwfilter does not exist in libvirt's libxl driver (Xen filters with the
    vif script's ip=)."""
    st = await libvirt_state(tmp_path)
    vm05 = [f for f in run_checks(st, ["VM-05"]) if f.status != Status.PASS]
    assert vm05 == [] or all(f.status == Status.SKIPPED for f in vm05)
    net01 = [f for f in run_checks(st, ["NET-01"]) if f.status == Status.FAIL]
    assert net01 and all("ip=GUEST-IP" in f.fix and "filterref" not in f.fix for f in net01)
