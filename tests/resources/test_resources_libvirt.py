"""Resources probe against a real libvirtd + QEMU domain: bulk stats, live limits, VM-04/05/12.

The guest has no OS: under KVM here SeaBIOS spends several seconds in POST (CPU busy) and then
reads the boot sector of its disk, which gives a CPU rate and a block read rate; frames sent
into its tap cannot be received by a guest without a driver, so they show as drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import socket

import pytest

from probes.checks.base import run_checks
from probes.hosts.local import LocalHost
from probes.model import HostState, State, Status
from probes.resources.probe import ResourcesProbe
from tests.fixtures.libvirtd import libvirtd, qemu_domain  # noqa: F401

IMAGES = "/var/lib/libvirt/images"  # qemu's user can reach it; /tmp/pytest-* is root-only


def bad(state: State, cid: str, key: str) -> list:
    return [
        f for f in run_checks(state, [cid]) if f.status in (Status.WARN, Status.FAIL) and key in f.workloads
    ]


def flood(tap: str, mac: str, n: int = 300) -> None:
    """Ethernet frames from the host into the domain's tap (loopback-like: this host only)."""
    frame = bytes.fromhex(mac.replace(":", "")) + bytes.fromhex("020000000001") + b"\x88\xb5" + b"x" * 500
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((tap, 0))
        for _ in range(n):
            try:
                s.send(frame)
            except OSError:  # the tap's queue is full: the rest would be dropped anyway
                break


@pytest.fixture
def disk_image():
    if not os.path.isdir(IMAGES):
        pytest.skip(f"needs {IMAGES} (libvirt-daemon-system)")
    path = os.path.join(IMAGES, f"tsh-{os.getpid()}.img")
    with open(path, "wb") as f:
        f.write(b"\0" * (1 << 20))
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


async def test_domain_samples_limits_and_drift(libvirtd, qemu_domain, disk_image):
    import libvirt

    from probes.inventory.libvirt import LibvirtProbe

    disk = (
        f"<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
        f"<source file='{disk_image}'/><target dev='vda' bus='virtio'/></disk>"
    )
    d = qemu_domain(
        cputune="<cputune><shares>512</shares><period>100000</period><quota>50000</quota></cputune>",
        extra_devices=disk,
    )
    host = LocalHost("tsh-hv", libvirt_uri=libvirtd)
    inv = LibvirtProbe(events=False)
    res = ResourcesProbe(interval=1.0, limits_every=1, host_totals=False)
    hs = HostState(host.host)
    key = f"{host.name}/vm/{d.name}"

    async def refresh() -> State:
        nonlocal hs
        hs = inv.merge(hs, await inv.collect(host))
        hs = res.merge(hs, await res.collect(host))
        return State(hosts=(hs,))

    seen = {"cpu": 0.0, "blk": 0.0, "drops": 0.0, "mem": 0}
    try:
        state = await refresh()
        first = hs.samples.sample(key)
        assert first is not None and first.cpu_pct is None  # a first sample has no rate
        for _ in range(25):  # KVM's POST takes several seconds before the disk is read
            flood(d.tap, d.mac)
            await asyncio.sleep(1.0)
            state = await refresh()
            s = hs.samples.sample(key)
            assert s is not None and s.source == "libvirt" and s.vcpus == 1
            seen["cpu"] = max(seen["cpu"], s.cpu_pct or 0.0)
            seen["blk"] = max(seen["blk"], s.blk_read_bps or 0.0)
            seen["drops"] = max(seen["drops"], s.net_drops_ps or 0.0)
            seen["mem"] = max(seen["mem"], s.mem_bytes or 0)
            for v in (
                s.cpu_pct,
                s.blk_read_bps,
                s.blk_write_bps,
                s.net_rx_bps,
                s.net_tx_bps,
                s.net_drops_ps,
                s.steal_pct,
            ):
                assert v is not None and v >= 0  # never a negative rate
            assert s.cpu_pct <= 100 * (s.vcpus + 1)  # vCPU quota 0.5 + emulator threads
            assert s.blk_read_bps <= 10e6 and s.net_rx_bps <= 10e6
            if seen["cpu"] > 0 and (seen["blk"] > 0 or d.domain_type == "qemu") and seen["drops"] > 0:
                break
        assert seen["cpu"] > 0, "CPU time of the domain must grow"
        assert 1 << 20 < seen["mem"] < 512 << 20, "balloon/RSS of a 64 MiB guest"
        if seen["blk"] == 0 and d.domain_type == "qemu":
            # under TCG the BIOS reads the boot sector before the first sample: the counter
            # (the domain's own, from the same bulk call) must show it instead of a rate
            from probes.resources.domstats import DomainStats

            ds = DomainStats(libvirtd)
            try:
                [r] = [r for r in ds.collect(False) if r.name == d.name]
            finally:
                ds.close()
            assert r.blk_read and r.blk_read >= 512
        else:
            assert seen["blk"] > 0, "the BIOS reading the boot sector must show as a read rate"
        assert seen["drops"] > 0, "frames the guest cannot take must show as drops"
        assert hs.samples.history_of(key) is not None

        s = hs.samples.sample(key)
        assert s.live is not None and s.live.cpu_quota_cores == pytest.approx(0.5)
        assert s.live.cpu_shares == 512
        assert bad(state, "VM-04", key) == []
        assert bad(state, "VM-12", key) == []
        assert len(bad(state, "VM-05", key)) == 1  # 64 MiB guest, no memtune hard_limit

        rw = libvirt.open(libvirtd)  # the test changes its own domain; the probes stay read-only
        try:
            dom = rw.lookupByName(d.name)
            dom.setSchedulerParametersFlags({"vcpu_quota": -1}, libvirt.VIR_DOMAIN_AFFECT_LIVE)
            dom.setMemoryParameters({"hard_limit": 512 * 1024}, libvirt.VIR_DOMAIN_AFFECT_LIVE)
            state = await refresh()
            f = bad(state, "VM-04", key)
            assert len(f) == 1 and "no CPU quota" in f[0].summary, "quota removed: VM-04 appears"
            assert bad(state, "VM-05", key) == [], "hard limit set: VM-05 goes"

            # Drift: libvirt believes in a quota, the kernel enforces none (cgroup written directly)
            dom.setSchedulerParametersFlags({"vcpu_quota": 50000}, libvirt.VIR_DOMAIN_AFFECT_LIVE)
            state = await refresh()
            assert bad(state, "VM-04", key) == []
            files = glob.glob(
                f"/sys/fs/cgroup/cpu/machine/qemu-{dom.ID()}-*/vcpu0/cpu.cfs_quota_us"
            ) + glob.glob(f"/sys/fs/cgroup/machine.slice/*qemu*{dom.ID()}*/libvirt/vcpu0/cpu.max")
            assert files, f"the cgroup of domain {dom.ID()} was not found: the drift part cannot run"
            with open(files[0], "w") as fh:
                fh.write("-1" if files[0].endswith("quota_us") else "max")
            state = await refresh()
            drift = bad(state, "VM-12", key)
            assert len(drift) == 1 and "CPU quota" in drift[0].summary and "live none" in drift[0].summary
        finally:
            rw.close()
    finally:
        await res.close()
        await inv.close()
