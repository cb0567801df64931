"""What a libvirt URI says about where its hypervisor is.

A URI decides whose topology, facts and logs belong with its domains: `qemu:///system` is this
machine; `qemu+ssh://hv2/system`, `qemu+tcp://`, `qemu+tls://` are another host (unless the
name is this machine's); `test://...` is libvirt's test driver, a simulated hypervisor whose
live values (schedinfo, memtune, stats) are made up.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "localhost.localdomain", "ip6-localhost"})


@dataclass(frozen=True)
class UriPlace:
    """Where the hypervisor behind a URI runs."""

    simulated: bool  # the test driver: nothing runs, the values are made up
    remote_host: str  # the host name in the URI when it names another machine, else ""

    @property
    def this_machine(self) -> bool:
        return not self.simulated and not self.remote_host


def is_simulated(uri: str | None) -> bool:
    """libvirt's test driver (`test:///default`, `test:///path/node.xml`, `test+unix://...`)."""
    if not uri:
        return False
    scheme = urlsplit(uri).scheme
    return scheme == "test" or scheme.startswith("test+")


def uri_host(uri: str) -> str:
    """The host name a URI connects to ('' when none: a local driver)."""
    try:
        return urlsplit(uri).hostname or ""
    except ValueError:  # a malformed netloc ("[x"): no host we can name
        return ""


def place(uri: str | None) -> UriPlace:
    """Whether `uri` (None: the default, qemu:///system) is this machine, another host, or a
    simulation. A URI naming this machine's own host name or a loopback address is local."""
    if uri is None:
        return UriPlace(False, "")
    if is_simulated(uri):
        return UriPlace(True, "")
    host = uri_host(uri)
    if not host or _is_this_machine(host):
        return UriPlace(False, "")
    return UriPlace(False, host)


def same_host(uri: str | None, target_host: str) -> bool:
    """Whether `uri` names the machine `target_host` (an SSH target's host name or address)."""
    host = uri_host(uri or "")
    return bool(host) and host.lower().rstrip(".") == target_host.lower().rstrip(".")


def _is_this_machine(host: str) -> bool:
    h = host.lower().rstrip(".")
    if h in LOCAL_NAMES or h.startswith("127."):
        return True
    names = {socket.gethostname().lower()}
    try:
        names.add(socket.getfqdn().lower())
    except OSError:
        pass
    return h in names
