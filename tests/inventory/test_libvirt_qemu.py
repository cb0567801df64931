"""LibvirtProbe against a real libvirtd + QEMU (root): a running domain with its NIC, its
disappearance, whether its consoles have passwords (never their text), and a private libvirtd stopped mid-run (unreachable, VMs kept stale) and
started again (recovered)."""

from __future__ import annotations

import asyncio

from probes.engine import Engine
from probes.hosts.local import LocalHost
from probes.inventory.libvirt import LibvirtProbe
from probes.model import ConnState, WorkloadKind
from tests.fixtures.libvirtd import (  # noqa: F401 - fixtures
    DomainFactory,
    PrivateDaemon,
    libvirtd,
    private_libvirtd,
    qemu_domain,
    tiny_domain_xml,
)

META = "<ts:tenant xmlns:ts='http://example.com/tenantscope/1' name='acme'/>"


async def test_a_running_qemu_domain_is_inventoried(qemu_domain: DomainFactory) -> None:
    d = qemu_domain(metadata=META)
    h = LocalHost("hv", libvirt_uri=qemu_domain.uri)
    p = LibvirtProbe()
    try:
        r = await p.collect(h)
        w = next(w for w in r.vms if w.name == d.name)
        assert (w.kind, w.uuid, w.state, w.host) == (WorkloadKind.VM, d.uuid, "running", "hv")
        vm = w.vm
        assert vm.domain_type == d.domain_type and vm.memory_kib == 64 * 1024 and vm.vcpus == 1
        (nic,) = vm.nics
        assert (nic.type, nic.target_dev, nic.mac, nic.model) == ("ethernet", d.tap, d.mac, "virtio")
        # the live XML of real libvirt carries the DAC label it gave the process
        assert vm.seclabels and vm.seclabels[0].model == "dac" and vm.seclabels[0].label
        assert any(m.path == "tenant" and ("name", "acme") in m.attrs for m in vm.metadata)
        assert r.events and not r.xml_errors  # change detection by libvirt events

        # destroyed: gone at the next refresh
        qemu_domain.destroy(d.name)
        r = await p.collect(h)
        assert d.name not in [w.name for w in r.vms]
    finally:
        await p.close()


async def test_graphics_passwords_known_without_their_text(qemu_domain: DomainFactory) -> None:
    """The read-only connection never gets `passwd` (libvirt refuses secure XML to it); the probe
    learns from libvirt's own status file whether each console has a password, and keeps only
    that: a console with one and a console without are told apart, the text is nowhere."""
    secret = "tsa-pw-1"  # VNC takes at most 8 characters
    gfx = (
        f"<graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1' passwd='{secret}'/>"
        "<graphics type='spice' port='-1' autoport='yes' listen='127.0.0.1'/>"
    )
    d = qemu_domain(extra_devices=gfx, nic=False)
    h = LocalHost("hv", libvirt_uri=qemu_domain.uri)
    p = LibvirtProbe()
    try:
        r = await p.collect(h)
    finally:
        await p.close()
    w = next(w for w in r.vms if w.name == d.name)
    assert [(g.type, g.passwd_known, g.passwd_set) for g in w.vm.graphics] == [
        ("vnc", True, True),
        ("spice", True, False),
    ]
    assert secret not in repr(r)


async def test_private_daemon_stopped_then_back(private_libvirtd: PrivateDaemon) -> None:
    for i in (1, 2):
        private_libvirtd.define(tiny_domain_xml(f"tsa-priv-{i}", f"tsapriv{i}", f"52:54:00:7a:00:0{i}"))
    h = LocalHost("hv", libvirt_uri=private_libvirtd.uri)
    p = LibvirtProbe(interval=0.2)
    eng = Engine([h], lambda _h: [p])
    try:
        st = (await eng.refresh_once()).hosts[0]
        assert st.connection("libvirt").state == ConnState.UP
        vms = {w.name: w for w in st.workloads if w.kind == WorkloadKind.VM}
        assert set(vms) == {"tsa-priv-1", "tsa-priv-2"}
        assert {w.state for w in vms.values()} == {"shut off"}

        private_libvirtd.stop()  # the daemon goes away mid-run
        st = (await eng.refresh_once()).hosts[0]
        c = st.connection("libvirt")
        assert c.state == ConnState.UNREACHABLE, c
        assert c.detail.startswith("unreachable since ") and "retrying" in c.detail
        stale = {w.name: w for w in st.workloads if w.kind == WorkloadKind.VM}
        assert set(stale) == {"tsa-priv-1", "tsa-priv-2"}
        assert all(w.vm.stale for w in stale.values())
        assert any(e.probe == "libvirt" for e in st.probe_errors)
        # still down: still unreachable, same start of the streak
        st2 = (await eng.refresh_once()).hosts[0]
        assert st2.connection("libvirt").since == c.since

        private_libvirtd.start()  # back
        st = (await eng.refresh_once()).hosts[0]
        assert st.connection("libvirt").state == ConnState.UP
        back = {w.name: w for w in st.workloads if w.kind == WorkloadKind.VM}
        assert set(back) == {"tsa-priv-1", "tsa-priv-2"}
        assert not any(w.vm.stale for w in back.values())
        assert not any(e.probe == "libvirt" for e in st.probe_errors)
    finally:
        await eng.stop()


async def test_engine_loop_recovers_by_itself(private_libvirtd: PrivateDaemon) -> None:
    """The engine's own schedule (with back-off) reconnects without being poked."""
    private_libvirtd.define(tiny_domain_xml("tsa-priv-loop", "tsaprivl", "52:54:00:7a:01:01"))
    h = LocalHost("hv", libvirt_uri=private_libvirtd.uri)
    p = LibvirtProbe(interval=0.1)
    eng = Engine([h], lambda _h: [p])
    seen: list[ConnState] = []
    changed = asyncio.Event()

    def on_state(state) -> None:
        c = state.hosts[0].connection("libvirt")
        if c is not None and (not seen or seen[-1] != c.state):
            seen.append(c.state)
            changed.set()

    eng.subscribe(on_state)

    async def wait_for(s: ConnState) -> None:
        while not seen or seen[-1] != s:
            changed.clear()
            await asyncio.wait_for(changed.wait(), 20)

    eng.start()
    try:
        await wait_for(ConnState.UP)
        private_libvirtd.stop()
        await wait_for(ConnState.UNREACHABLE)
        private_libvirtd.start()
        await wait_for(ConnState.UP)
    finally:
        await eng.stop()
    assert seen == [ConnState.UP, ConnState.UNREACHABLE, ConnState.UP]


async def test_display_passwords_from_libvirts_own_files(qemu_domain: DomainFactory) -> None:
    """Read-only XML hides `passwd`; the status file says whether one is set (never what)."""
    with_pw = qemu_domain(
        extra_devices="<graphics type='vnc' autoport='yes' listen='127.0.0.1' passwd='tsa-pw1'/>"
    )
    without = qemu_domain(extra_devices="<graphics type='vnc' autoport='yes' listen='127.0.0.1'/>")
    h = LocalHost("hv", libvirt_uri=qemu_domain.uri)
    p = LibvirtProbe()
    try:
        r = await p.collect(h)
        g = {w.name: w.vm.graphics[0] for w in r.vms if w.name in (with_pw.name, without.name)}
        assert (g[with_pw.name].passwd_known, g[with_pw.name].passwd_set) == (True, True)
        assert (g[without.name].passwd_known, g[without.name].passwd_set) == (True, False)
        assert "tsa-pw1" not in repr(r)
        again = await p.collect(h)
        assert again.vms is r.vms  # unchanged: no file read again, same objects

        p.read_status_files = False
        p.resync = 0
        r = await p.collect(h)
        g = {w.name: w.vm.graphics[0] for w in r.vms if w.name == with_pw.name}
        assert not g[with_pw.name].passwd_known  # the read-only XML alone cannot tell
    finally:
        await p.close()
