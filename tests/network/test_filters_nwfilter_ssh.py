"""libvirt nwfilter bindings of an SSH host, read through its forwarded read-only libvirt
socket (probes/hosts/libvirt_forward.py), as the local host's are.

Real parts: the fixture's OpenSSH sshd on 127.0.0.1 and the real libvirtd behind it (the
"remote" libvirt is this machine's, seen through sshd); a real nwfilter binding that libvirtd
instantiates (`virsh nwfilter-binding-create`, its ebtables/iptables rules) on a veth the test
creates, a VM NIC's binding without booting a guest. Names: veth tf3-nwp/tf3-nwq, binding on
tf3-nwp, removed by name.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from probes.hosts.local import LocalHost
from probes.network.filtereval import Packet
from probes.network.nwfilter import decide_nic
from probes.network.topology import TopologyProbe
from tests.fixtures.libvirtd import libvirtd  # noqa: F401
from tests.fixtures.sshd import forwarded, ssh_trap, sshd  # noqa: F401

DEV, PEER = "tf3-nwp", "tf3-nwq"
BINDING = f"""<filterbinding>
  <owner><name>tf3-owner</name><uuid>d2b1e5a0-3f00-4c1e-9a7b-00000000f3f3</uuid></owner>
  <portdev name='{DEV}'/>
  <mac address='52:54:00:f3:00:01'/>
  <filterref filter='clean-traffic'><parameter name='IP' value='10.79.3.2'/></filterref>
</filterbinding>
"""


def _virsh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["virsh", "-c", "qemu:///system", *args], capture_output=True, text=True, check=check, timeout=60
    )


def _cleanup() -> None:
    _virsh("nwfilter-binding-delete", DEV, check=False)
    subprocess.run(["ip", "link", "del", DEV], capture_output=True)


@pytest.fixture
def binding(libvirtd: str, tmp_path) -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root (veth, nwfilter binding)")
    _cleanup()
    try:
        subprocess.run(["ip", "link", "add", DEV, "type", "veth", "peer", "name", PEER], check=True)
        subprocess.run(["ip", "link", "set", DEV, "up"], check=True)
        xml = tmp_path / "binding.xml"
        xml.write_text(BINDING)
        _virsh("nwfilter-binding-create", str(xml))
        yield DEV
    finally:
        _cleanup()


@pytest.mark.timeout(300)
async def test_ssh_host_bindings_read_through_the_forward_equal_local(sshd, binding, ssh_trap) -> None:
    remote = forwarded(sshd)
    over_ssh, here = TopologyProbe(), TopologyProbe()
    try:
        topo = await over_ssh.collect(remote)
        local = await here.collect(LocalHost("tf3-local", libvirt_uri="qemu:///system"))
        fwd = remote.libvirt_forward
        assert fwd is not None and fwd.path is not None  # read through the forwarded socket
    finally:
        await over_ssh.close()
        await here.close()
        await remote.close()
    nics = {n.portdev: n for n in topo.nic_filters}
    nf = nics[binding]
    assert (nf.domain, nf.filter, nf.mac) == ("tf3-owner", "clean-traffic", "52:54:00:f3:00:01")
    assert ("IP", "10.79.3.2") in nf.params and not nf.error and nf.chains
    assert nf == {n.portdev: n for n in local.nic_filters}[binding]  # the same expansion as locally
    # expanded as libvirt instantiates it: a spoofed source is dropped leaving the NIC
    bad = decide_nic(nf, Packet("10.79.3.99", "10.79.3.1"), "out")
    assert bad.verdict == "drop" and "no-ip-spoofing" in bad.text
    assert decide_nic(nf, Packet("10.79.3.2", "10.79.3.1"), "out").verdict == "accept"
    assert not ssh_trap.exists(), f"the system ssh ran: {ssh_trap.read_text()}"
