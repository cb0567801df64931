"""Classification: which lines are isolation signals, and which check they feed.

Tags and the check they raise:
  mac-denial   SELinux AVC `denied` or AppArmor `DENIED`          -> LOG-01
  qemu-error   KVM internal error, emulation failure, entry failed,
               libvirtd's "process exited while connecting to monitor" and
               "qemu unexpectedly closed the monitor"             -> LOG-02
  disk-lock    qemu could not lock a disk image (`Failed to get "write" lock`,
               `Is another process using the image [PATH]?`): another
               process has it open; with VM-09, live sharing     -> LOG-02
  guest-crash  a guest crashed or panicked (event, qemu log)       -> LOG-02
  oom-kill     the kernel's OOM killer killed a process            -> LOG-03
  oom-context  the `oom-kill:` line naming the victim's cgroup     (attribution)
  bridge-port  a bridge port changed state                         (context)
  martian      the kernel saw a packet from an impossible source   (context)
  libvirt-error an error from libvirtd                             (context)
  lifecycle    a domain started, stopped, migrated                 (context)

`SIGNAL_PATTERNS` are plain POSIX ERE too: bench/logs.py gives the same list to `grep -E`.
The first cheap test is substring search (C speed); the regex runs only on candidates.
"""

from __future__ import annotations

import re
from typing import Any

from probes.logs.fastlog import native
from probes.logs.model import SEVERITY_RANK

MAC_DENIAL = "mac-denial"
QEMU_ERROR = "qemu-error"
GUEST_CRASH = "guest-crash"
OOM_KILL = "oom-kill"
OOM_CONTEXT = "oom-context"
BRIDGE_PORT = "bridge-port"
MARTIAN = "martian"
LIBVIRT_ERROR = "libvirt-error"
LIFECYCLE = "lifecycle"
DISK_LOCK = "disk-lock"

# tag -> check id (tags without a check are context for the engineer)
CHECK_OF = {
    MAC_DENIAL: "LOG-01",
    QEMU_ERROR: "LOG-02",
    GUEST_CRASH: "LOG-02",
    DISK_LOCK: "LOG-02",
    OOM_KILL: "LOG-03",
}
SIGNAL_TAGS = frozenset(CHECK_OF) | {OOM_CONTEXT, MARTIAN, BRIDGE_PORT, LIBVIRT_ERROR}

# (tag, severity it implies, ERE) in the order they are tried
SIGNAL_PATTERNS: tuple[tuple[str, str, str], ...] = (
    (MAC_DENIAL, "warning", r"avc: +denied"),
    (MAC_DENIAL, "warning", r"apparmor=\"DENIED\""),
    (OOM_KILL, "err", r"Killed process [0-9]+"),
    (OOM_CONTEXT, "", r"oom-kill:"),
    # qemu block/file-posix.c: raw_check_lock_bytes and its hint (before the libvirtd line
    # below, which quotes qemu's log: the disk is the more useful tag)
    (DISK_LOCK, "err", r'Failed to get (shared )?"[a-z ]+" lock'),
    (DISK_LOCK, "err", r"Is another process using the image \[[^]]*\]\?"),
    # libvirt src/qemu/qemu_process.c / qemu_monitor.c: QEMU died before or while libvirt
    # talked to its monitor (libvirtd 9.0 says "qemu unexpectedly closed the monitor: ...")
    (QEMU_ERROR, "err", r"process exited while connecting to monitor"),
    (QEMU_ERROR, "err", r"[Qq][Ee][Mm][Uu] unexpectedly closed the monitor"),
    # qemuMonitorOpenUnix: QEMU died before its monitor socket took a connection (seen from a
    # real libvirtd refusing a second domain on a locked disk, depending on timing)
    (QEMU_ERROR, "err", r"failed to connect to monitor socket"),
    (QEMU_ERROR, "err", r"KVM internal error"),
    (QEMU_ERROR, "err", r"emulation failure"),
    (QEMU_ERROR, "err", r"KVM: entry failed"),
    (GUEST_CRASH, "err", r"reason=crashed"),
    (GUEST_CRASH, "err", r"guest-panicked"),
    (MARTIAN, "warning", r"martian source"),
    (BRIDGE_PORT, "", r": port [0-9]+\([^)]*\) entered [a-z]+ state"),
)

# literal needles that every pattern contains, for the substring pre-test
_NEEDLES = (
    "denied",
    "DENIED",
    "Killed process",
    "oom-kill:",
    "Failed to get ",
    "Is another process using",
    "process exited while",
    "unexpectedly closed the monitor",
    "failed to connect to monitor socket",
    "KVM",
    "emulation failure",
    "reason=crashed",
    "guest-panicked",
    "martian source",
    ") entered ",
)
# per pattern, a literal it contains: tested first (`in`: C speed); a pattern that is all
# literal is not run at all (the literal is the match)
_LITERALS = (
    "denied",
    'apparmor="DENIED"',
    "Killed process ",
    "oom-kill:",
    "Failed to get ",
    "Is another process using the image [",
    "process exited while connecting to monitor",
    " unexpectedly closed the monitor",
    "failed to connect to monitor socket",
    "KVM internal error",
    "emulation failure",
    "KVM: entry failed",
    "reason=crashed",
    "guest-panicked",
    "martian source",
    ") entered ",
)


def _compiled() -> tuple[tuple[str, str | None, str, re.Pattern[str] | None], ...]:
    out = []
    for (tag, sev, p), lit in zip(SIGNAL_PATTERNS, _LITERALS, strict=True):
        p = p.replace(r"\"", '"')
        literal = p == lit and not any(c in p for c in ".^$*+?{}[]\\|()")
        out.append((tag, sev or None, lit, None if literal else re.compile(p)))
    return tuple(out)


_COMPILED = _compiled()
# per needle k (the first needle a message contains): the patterns, in order, whose literals
# contain no needle before k (a pattern whose literal holds an absent needle cannot match)
_AFTER = tuple(
    tuple(c for c in _COMPILED if all(n not in c[2] for n in _NEEDLES[:k])) for k in range(len(_NEEDLES))
)


def first_needle(msg: str, needles: tuple[str, ...]) -> int:
    """The index of the first needle `msg` contains, -1 when none (the reference of
    probes/logs/_fastlog.c's first_needle)."""
    for k, n in enumerate(needles):
        if n in msg:
            return k
    return -1


def classify(msg: str, kind: str = "", program: str = "") -> tuple[str | None, str | None]:
    """(tag, implied severity) of a message; (None, None) for ordinary lines."""
    return classify_with(native(), msg)


def classify_with(fast: Any, msg: str) -> tuple[str | None, str | None]:
    """classify, with native() given (the parsers have it at hand)."""
    k = fast.first_needle(msg, _NEEDLES) if fast is not None else first_needle(msg, _NEEDLES)
    if k < 0:
        return None, None
    for tag, sev, lit, rx in _AFTER[k]:
        if lit in msg and (rx is None or rx.search(msg)):
            return tag, sev
    return None, None


def more_severe(a: str, b: str) -> bool:
    """True when syslog severity `a` is more severe than `b`."""
    return SEVERITY_RANK.get(a, 6) < SEVERITY_RANK.get(b, 6)


def check_of(tags: tuple[str, ...]) -> str | None:
    for t in tags:
        c = CHECK_OF.get(t)
        if c:
            return c
    return None


def is_signal(tags: tuple[str, ...]) -> bool:
    return any(t in SIGNAL_TAGS for t in tags)
