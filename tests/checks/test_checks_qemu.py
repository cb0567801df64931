"""`tenantscope check` on this machine with a real libvirtd + QEMU domain (the CI fixture):
the domain is seen, its world-readable disk image is caught by VM-10 (the facts probe's second
pass stats it), its QEMU process is accounted for (HOST-11), and no check of the catalog errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.fixtures.libvirtd import libvirtd, qemu_domain  # noqa: F401 - fixtures
from tui.cli import main

IMAGES = Path("/var/lib/libvirt/images")
MINE = {"HOST", "VM", "CTR", "SW"}


@pytest.fixture
def world_readable_image():
    if not IMAGES.is_dir():
        pytest.skip(f"{IMAGES} absent (libvirt-daemon-system not installed)")
    p = IMAGES / f"tsd-{os.getpid()}.img"
    with open(p, "wb") as f:
        f.truncate(1 << 20)
    os.chmod(p, 0o644)
    try:
        yield p
    finally:
        p.unlink(missing_ok=True)


def test_check_on_real_libvirtd_and_qemu(qemu_domain, world_readable_image, capsys):
    disk = (
        f"<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
        f"<source file='{world_readable_image}'/><target dev='vda' bus='virtio'/></disk>"
    )
    d = qemu_domain(extra_devices=disk)
    rc = main(["check", "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc in (0, 1)
    res = doc["results"]
    key = f"/vm/{d.name}"

    def about(cid):
        return [r for r in res if r["check_id"] == cid and any(w.endswith(key) for w in r["workloads"])]

    vm10 = about("VM-10")
    assert vm10 and vm10[0]["status"] == "fail" and "0644" in vm10[0]["summary"]
    # a running domain with only the dac label (no SELinux/AppArmor here): a warning, not a pass
    assert [r["status"] for r in about("VM-01")] == ["warn"]
    h11 = [r for r in res if r["check_id"] == "HOST-11"]
    assert [r["status"] for r in h11] == ["pass"], h11
    errors = [
        (r["check_id"], r["summary"])
        for r in res
        if r["status"] == "error" and r["check_id"].split("-")[0] in MINE
    ]
    assert not errors, errors
