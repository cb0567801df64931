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

# the host's own system daemon: what a local host opens unless told otherwise
DEFAULT_URI = "qemu:///system"
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


def display_uri(uri: str | None) -> str:
    """A URI as findings and messages show it: a test driver fleet file by its name only
    (`test:///…/fleet.xml`), so what is shown does not depend on where it is installed."""
    if not uri:
        return ""
    parts = urlsplit(uri)
    if is_simulated(uri) and parts.path not in ("", "/", "/default") and "/" in parts.path.strip("/"):
        return f"{parts.scheme}:///…/{parts.path.rsplit('/', 1)[-1]}"
    return uri


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


def seen_only_through_libvirt(uri: str | None) -> bool:
    """Whether `--libvirt URI` names a hypervisor that is not this machine: another host, or a
    test driver fleet file. Its domains must not be combined with this machine's kernel,
    files and logs. (`test:///default`, libvirt's built-in test host with no fleet, stays a
    stand-in on this machine, as tests and users use it for "no real hypervisor here".)"""
    if not uri:
        return False
    if is_simulated(uri):
        return urlsplit(uri).path not in ("", "/", "/default")
    return bool(place(uri).remote_host)


VIEW = "libvirt's view"


def why_not_read(host: str, uri: str | None, what: str) -> str:
    """Why `what` ("host facts", "logs", ...) of a host seen only through libvirt is unknown."""
    if is_simulated(uri):
        return f"{VIEW} only ({display_uri(uri)}): a simulated hypervisor has no {what} to read"
    return (
        f"{VIEW} only ({display_uri(uri)}): {what} of {host} are not read from here "
        f"(add --host {host} to read them over SSH)"
    )


def hostless_for_remote_targets(uri: str | None) -> str:
    """The problem with `--libvirt URI` next to SSH targets when the URI names no host
    (`qemu:///system`): libvirt would open THIS machine's hypervisor and show its domains as
    the remote host's. '' when there is none."""
    if not uri or is_simulated(uri) or uri_host(uri):
        return ""
    return (
        f"--libvirt {uri}: that is this machine's libvirt, but --host/--hosts-file/--inventory "
        "watch other hosts: drop --libvirt (each host's libvirt goes through its SSH connection) "
        "or name the host (qemu+ssh://HOST/system)"
    )
