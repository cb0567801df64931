"""Names that a tool made up, not a person: the name-prefix tenancy rule must not read a tenant
into them (Nova's `instance-0000abcd` would make tenant "instance").

A name is generated when it is an id (a UUID, a long hex string), when the part before the
separator is one (`3f2a9c1e-web`), or when a generic word is followed by a counter or an id:
`vm-3`, `guest-12`, `instance-0000abcd` (Nova's `instance-%08x`), `cni-<uuid>` (CNI and
Podman namespaces), `debian12-2` (virt-install names a guest after its OS and adds `-N`).
The user's `[prefix] generated = [globs]` replaces this built-in list.
"""

from __future__ import annotations

import fnmatch
import re

# Words that name a kind of thing, not an owner: a tool's default stem before a counter.
GENERIC_WORDS = (
    "vm|vms|guest|domain|dom|instance|inst|server|srv|node|host|machine|box|test|default|new|"
    "unnamed|untitled|container|ctr|netns|ns|cni|pod|sandbox|qemu|kvm|libvirt|virt|generic|linux"
)
# virt-install / virt-manager name a new guest after its osinfo short id (debian12, win10,
# ubuntu22.04, centos-stream9 ...), then add "-2", "-3" ... for the next one.
OS_STEMS = (
    "debian|ubuntu|fedora|rhel|centos|centos-stream|rocky|almalinux|alma|opensuse\\w*|sles|sled|"
    "alpinelinux|alpine|archlinux|arch|freebsd|openbsd|netbsd|win\\w*|windows\\w*|gentoo|mageia|"
    "slackware|ol|oraclelinux|cirros|silverblue|coreos|fedora-coreos|rhcos"
)
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_HEX_ID = r"(?=[0-9a-f]*[0-9])[0-9a-f]{12,}"  # docker ids, machine ids (at least one digit)
_COUNTER = rf"(?:\d+|[0-9a-f]{{6,}}|{_UUID})"

_ID_RX = re.compile(rf"(?:{_UUID}|{_HEX_ID})", re.IGNORECASE)
_STEM_RX = re.compile(rf"(?:{GENERIC_WORDS}|(?:{OS_STEMS})[0-9.]*)", re.IGNORECASE)
_COUNTER_RX = re.compile(rf"{_COUNTER}(?:[-_.]{_COUNTER})*", re.IGNORECASE)


def generated_why(name: str, separator: str = "-", globs: tuple[str, ...] | None = None) -> str:
    """Why `name` was made up by a tool (a short phrase for the unplaced list), or '' when a
    person chose it. `globs`: the user's list instead of the built-in rules (case-sensitive)."""
    if globs is not None:
        g = next((g for g in globs if fnmatch.fnmatchcase(name, g)), None)
        return f"matches [prefix] generated {g!r}" if g is not None else ""
    if _ID_RX.fullmatch(name):
        return "an id"
    head, sep, rest = name.partition(separator) if separator else (name, "", "")
    if not sep:
        return ""
    if _ID_RX.fullmatch(head):
        return "starts with an id"
    if _STEM_RX.fullmatch(head) and _COUNTER_RX.fullmatch(rest):
        return "a generic word and a counter or id"
    return ""
