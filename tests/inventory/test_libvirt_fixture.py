"""The libvirtd fixtures themselves: a real domain starts, shows its tap, and goes away."""

from __future__ import annotations

import os

from tests.fixtures.libvirtd import DomainFactory, libvirtd, qemu_domain  # noqa: F401


def test_qemu_domain_runs_with_its_tap(qemu_domain: DomainFactory) -> None:
    import libvirt

    d = qemu_domain()
    conn = libvirt.openReadOnly(qemu_domain.uri)
    try:
        dom = conn.lookupByName(d.name)
        assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        assert f"dev='{d.tap}'" in dom.XMLDesc(0)
        assert os.path.exists(f"/sys/class/net/{d.tap}")
    finally:
        conn.close()
    qemu_domain.close()
    conn = libvirt.openReadOnly(qemu_domain.uri)
    try:
        assert d.name not in [x.name() for x in conn.listAllDomains()]
    finally:
        conn.close()
