"""Issue 14 item 6: the libvirt test driver (a simulated hypervisor, real libvirt API) makes up
its live values (schedinfo shares 50, memtune), so VM-12 skips there with that reason instead of
reporting drift; the same domains and live values from a real URI still give VM-12 warnings."""

from __future__ import annotations

from dataclasses import replace

from probes.checks.base import run_checks
from probes.engine import Engine
from probes.inventory.libvirt import LibvirtProbe
from probes.model import Status
from probes.resources.probe import ResourcesProbe
from probes.session import Options, make_deriver, make_hosts


async def observe_demo_with_live_limits():
    """The bundled fleet on the real test driver: domains and their live limits."""
    opts = Options(demo=True)
    probes = lambda h: [LibvirtProbe(), ResourcesProbe(host_totals=False)]  # noqa: E731
    engine = Engine(make_hosts(opts), probes, make_deriver(opts), source="demo", lead=("libvirt",))
    try:
        await engine.refresh_once()
        return await engine.refresh_once()  # the resources probe runs after the lead published
    finally:
        await engine.stop()


async def test_vm12_skips_on_the_test_driver_and_still_works_on_real_hosts():
    state = await observe_demo_with_live_limits()
    assert all((h.host.libvirt_uri or "").startswith("test://") for h in state.hosts)
    [vm12] = run_checks(state, ["VM-12"])
    assert vm12.status == Status.SKIPPED
    assert "simulated hypervisor" in vm12.summary and "test://" in vm12.summary
    # the very same observations from a real hypervisor's URI are evidence: drift is reported
    real = replace(
        state,
        hosts=tuple(replace(h, host=replace(h.host, libvirt_uri="qemu:///system")) for h in state.hosts),
    )
    drift = [f for f in run_checks(real, ["VM-12"]) if f.status == Status.WARN]
    assert drift and any("cpu shares XML 1024 vs live 50" in f.summary for f in drift)
