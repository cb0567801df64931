"""Issue 14 item 4: libvirtd's "process exited while connecting to monitor" and qemu's image
lock failures are errors that raise LOG-02 (they read as "info" before), and a lock failure
on a disk attached to two tenants' domains links LOG-02 and VM-09 both ways, as evidence that
the sharing is live.

A real QEMU is refused a lock held by another real QEMU (the last test). The other lines are libvirt's and QEMU's own messages (tests/data/logs/real-messages.json names
each one's origin: repository, path and the quoted format string or test output), written in
the log formats tenantscope reads; they go through the real parsers, attribution and checks."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest

from probes.checks.base import run_checks
from probes.logs import classify, parsers
from probes.logs.attribute import Attributor, Index
from probes.logs.model import parse_ref
from probes.model import Disk, Status
from tests.fixtures.journal import fleet_state
from tests.fixtures.libvirtd import libvirtd, qemu_domain  # noqa: F401
from tests.helpers import DATA, needs_tool
from tests.logs.test_logs_parse import view_of

MESSAGES = json.loads((DATA / "logs" / "real-messages.json").read_text())["lines"]
SHARED = "/var/lib/libvirt/images/shared.qcow2"


def test_every_line_names_its_origin():
    for m in MESSAGES:
        assert m["origin"], m["line"]
        for o in m["origin"]:
            assert o["repo"] in ("libvirt/libvirt", "qemu/qemu") and o["path"] and o["quote"]


@pytest.mark.parametrize("m", MESSAGES, ids=[f"{i}-{m['read_as']}" for i, m in enumerate(MESSAGES)])
def test_real_messages_are_classified(m):
    src = m["read_as"]
    e = parsers.parser_for(src)(m["line"], "hv1", src)
    want = m["expect"]
    assert (e.tags[0] if e.tags else None) == want["tag"]
    assert classify.check_of(e.tags) == want["check"]
    if "severity" in want:
        assert e.severity == want["severity"]
    for k in ("disk", "lock"):
        if k in want:
            assert e.field(k) == want[k]


def _shared_state():
    """The journal fixture's fleet (acme-web, globex-db), both domains given the same writable
    disk image: VM-09's case."""
    st = fleet_state()
    hs = st.hosts[0]
    ws = tuple(
        replace(w, vm=replace(w.vm, disks=(Disk("file", "disk", "virtio", "vda", SHARED),)))
        if w.vm is not None
        else w
        for w in hs.workloads
    )
    return replace(st, hosts=(replace(hs, workloads=ws),))


def _lock_lines(st):
    """globex-db's qemu log: the lock failure and qemu's hint, as QEMU writes them."""
    att = Attributor(Index(st))
    src = "file:/var/log/libvirt/qemu/globex-db.log"
    lines = [m["line"] for m in MESSAGES if m["read_as"] == src and m["expect"]["tag"] == "disk-lock"][:2]
    return [att.attribute(parsers.parse_qemu(line, "hv1", src)) for line in lines]


def test_lock_failure_on_a_shared_disk_links_log02_and_vm09():
    st = _shared_state()
    events = _lock_lines(st)
    assert {e.workload for e in events} == {"hv1/vm/globex-db"}
    st = replace(st, hosts=(replace(st.hosts[0], logs=view_of(events)),))

    (log02,) = [f for f in run_checks(st, ["LOG-02"]) if f.workloads == ("hv1/vm/globex-db",)]
    assert log02.status == Status.FAIL and log02.related == ("VM-09",)
    assert "disk-lock" in log02.summary and "VM-09" in log02.summary
    link = [e for e in log02.evidence if e.where == "VM-09"]
    assert link and SHARED in link[0].detail and "acme, globex" in link[0].detail

    (vm09,) = [f for f in run_checks(st, ["VM-09"]) if f.status == Status.FAIL]
    assert vm09.tenants == ("acme", "globex") and vm09.related == ("LOG-02",)
    refs = [parse_ref(e.where) for e in vm09.evidence if e.detail.startswith("LOG-02")]
    assert refs == [("hv1", e.seq) for e in view_of(events).events]  # jumps to the log lines

    from tui.screens.finding import detail_text

    assert "See also\nLOG-02" in detail_text(vm09, {}).plain


def test_no_link_without_the_lock_line_or_without_sharing():
    st = _shared_state()
    (vm09,) = [f for f in run_checks(st, ["VM-09"]) if f.status == Status.FAIL]
    assert vm09.related == () and not any(e.detail.startswith("LOG-02") for e in vm09.evidence)
    # the same lock failure on a disk only one tenant uses: an error, but no VM-09 link
    plain = fleet_state()
    events = _lock_lines(plain)
    plain = replace(plain, hosts=(replace(plain.hosts[0], logs=view_of(events)),))
    (log02,) = [f for f in run_checks(plain, ["LOG-02"]) if f.workloads == ("hv1/vm/globex-db",)]
    assert log02.status == Status.FAIL and log02.related == ()


QEMU = "qemu-system-x86_64"


def _qemu_argv(image: str, *extra: str) -> list[str]:
    return [QEMU, "-machine", "pc,accel=tcg", "-nodefaults", "-display", "none", "-m", "32", "-S"] + [
        "-drive",
        f"file={image},format=raw,if=virtio",
        *extra,
    ]


@needs_tool(QEMU)
@pytest.mark.timeout(60)
def test_a_real_qemu_lock_failure_is_an_error_linked_to_vm09(tmp_path):
    """The real thing: one QEMU holds a disk image, a second one is refused the lock and writes
    its messages as in a domain log (`-msg timestamp=on`, as libvirt starts it)."""
    import subprocess
    import time

    image = tmp_path / "shared.raw"
    image.write_bytes(b"\0" * (1 << 20))
    holder = subprocess.Popen(_qemu_argv(str(image)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 20
        while time.monotonic() < end and holder.poll() is None:  # until it has the image open
            fds = os.listdir(f"/proc/{holder.pid}/fd")
            if any(os.path.realpath(f"/proc/{holder.pid}/fd/{f}") == str(image) for f in fds):
                break
            time.sleep(0.05)
        second = subprocess.run(
            _qemu_argv(str(image), "-msg", "timestamp=on"), capture_output=True, text=True, timeout=30
        )
    finally:
        holder.kill()  # by PID: the one this test started
        holder.wait()
    assert second.returncode != 0
    lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
    src = "file:/var/log/libvirt/qemu/globex-db.log"
    events = [parsers.parse_qemu(ln, "hv1", src) for ln in lines]
    locks = [e for e in events if classify.DISK_LOCK in e.tags]
    assert len(locks) == 2, lines  # the failure and qemu's hint
    assert all(e.severity == "err" and classify.check_of(e.tags) == "LOG-02" for e in locks)
    assert {e.field("disk") for e in locks} == {str(image)}
    assert locks[0].field("lock") == "write"
    # on a host where two tenants' domains have this image: LOG-02 <-> VM-09
    st = fleet_state()
    hs = st.hosts[0]
    ws = tuple(
        replace(w, vm=replace(w.vm, disks=(Disk("file", "disk", "virtio", "vda", str(image)),)))
        if w.vm is not None
        else w
        for w in hs.workloads
    )
    att = Attributor(Index(replace(st, hosts=(replace(hs, workloads=ws),))))
    view = view_of([att.attribute(e) for e in events])
    st = replace(st, hosts=(replace(hs, workloads=ws, logs=view),))
    (log02,) = [f for f in run_checks(st, ["LOG-02"]) if f.workloads == ("hv1/vm/globex-db",)]
    assert log02.related == ("VM-09",)
    (vm09,) = [f for f in run_checks(st, ["VM-09"]) if f.status == Status.FAIL]
    assert vm09.related == ("LOG-02",)


IMAGES = "/var/lib/libvirt/images"  # qemu's user can reach it; /tmp/pytest-* is root-only


@pytest.mark.libvirtd
@pytest.mark.timeout(300)
def test_a_real_libvirtd_refusing_a_second_domain_on_a_shared_disk(libvirtd, qemu_domain):
    """The real thing: libvirtd starts one domain on a disk image, a second domain on the same
    image fails; the error libvirtd reports (and logs, at error priority: in a syslog file
    that priority is lost) is a LOG-02 error naming the disk."""
    import libvirt

    if not os.path.isdir(IMAGES):
        pytest.skip(f"needs {IMAGES} (libvirt-daemon-system)")
    image = os.path.join(IMAGES, f"tsa-lock-{os.getpid()}.img")
    with open(image, "wb") as f:
        f.write(b"\0" * (1 << 20))
    disk = f"<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{image}'/><target dev='vda' bus='virtio'/></disk>"
    try:
        qemu_domain(extra_devices=disk, nic=False, domain_type="qemu", memory_mib=32)
        with pytest.raises(libvirt.libvirtError) as err:
            qemu_domain(extra_devices=disk, nic=False, domain_type="qemu", memory_mib=32)
    finally:
        os.unlink(image)
    msg = str(err.value)
    first = msg.splitlines()[0]
    line = f"Dec  6 15:14:45 hv1 libvirtd[4242]: {first}"  # how a syslog file holds it
    e = parsers.parse_syslog(line, "hv1", "file:/var/log/syslog")
    assert classify.check_of(e.tags) == "LOG-02" and e.severity == "err", msg
    if "lock" in first:  # libvirt 9.0 quotes qemu's lock failure on the first line
        assert e.tags == (classify.DISK_LOCK,) and e.field("lock") == "write"
    hint = [ln for ln in msg.splitlines() if ln.startswith("Is another process")]
    if hint:  # the rest of qemu's message, as a following log line
        h = parsers.parse_syslog(
            f"Dec  6 15:14:45 hv1 libvirtd[4242]: {hint[0]}", "hv1", "file:/var/log/syslog"
        )
        assert h.tags == (classify.DISK_LOCK,) and h.field("disk") == image
