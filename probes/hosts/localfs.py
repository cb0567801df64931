"""Native local answers to the small read-only shell scripts that probes send to a host.

Over SSH a probe reads many files in one round trip with a constant script (`grep -H`, a
`[ -e ]` loop, `stat --printf`). On the local host the same answers come from os calls, in the
very output format of those commands, so one parser serves both and tests can compare the two
byte for byte; reading files, directories and links then never spawns a process.
"""

from __future__ import annotations

import glob
import grp
import os
import pwd
import stat as st
from collections.abc import Iterable, Sequence


def expand(rootdir: str, patterns: Iterable[str]) -> list[str]:
    """The shell's expansion of unquoted relative patterns under `rootdir`: matches sorted,
    an unmatched pattern kept as it is (it then names a missing file)."""
    out: list[str] = []
    for p in patterns:
        if any(c in p for c in "*?["):
            found = sorted(glob.glob(p, root_dir=rootdir))
            out.extend(found or [p])
        else:
            out.append(p)
    return out


def grep_first_lines(rootdir: str, patterns: Sequence[str], max_lines: int = 64) -> str:
    """What `cd ROOT; grep -sHa -m MAX "" PATTERNS` prints: `path:line` for the first lines of
    every readable file (directories and unreadable files silently left out)."""
    out: list[str] = []
    for rel in expand(rootdir, patterns):
        try:
            with open(os.path.join(rootdir, rel), "rb") as f:
                data = f.read(1 << 20)
        except OSError:
            continue
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        for line in lines[:max_lines]:
            out.append(f"{rel}:{line.decode('utf-8', 'replace')}\n")
    return "".join(out)


def existing(rootdir: str, patterns: Sequence[str]) -> str:
    """What `for f in PATTERNS; do [ -e "$f" ] && printf '%s\\n' "$f"; done` prints."""
    return "".join(
        f"{rel}\n" for rel in expand(rootdir, patterns) if os.path.exists(os.path.join(rootdir, rel))
    )


_KINDS = (
    (st.S_ISDIR, "directory"),
    (st.S_ISLNK, "symbolic link"),
    (st.S_ISSOCK, "socket"),
    (st.S_ISCHR, "character special file"),
    (st.S_ISBLK, "block special file"),
    (st.S_ISFIFO, "fifo"),
)


def file_kind(s: os.stat_result) -> str:
    """`stat`'s %F."""
    if st.S_ISREG(s.st_mode):
        return "regular file" if s.st_size else "regular empty file"
    for test, name in _KINDS:
        if test(s.st_mode):
            return name
    return "weird file"


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return "UNKNOWN"


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return "UNKNOWN"


def stat_record(path: str, name: str) -> str:
    """One `stat --printf '%a\\t%u\\t%g\\t%U\\t%G\\t%F\\t%n\\0'` record (lstat, like stat
    without -L); raises OSError as stat would fail."""
    s = os.lstat(path)
    return (
        f"{st.S_IMODE(s.st_mode):o}\t{s.st_uid}\t{s.st_gid}\t{_user(s.st_uid)}\t{_group(s.st_gid)}"
        f"\t{file_kind(s)}\t{name}\0"
    )


def stat_existing(rootdir: str, patterns: Sequence[str]) -> str:
    """What `for f in PATTERNS; do [ -e "$f" ] && stat --printf FMT -- "$f"; done` prints."""
    out: list[str] = []
    for rel in expand(rootdir, patterns):
        full = os.path.join(rootdir, rel)
        if not os.path.exists(full):
            continue
        try:
            out.append(stat_record(full, rel))
        except OSError:
            continue
    return "".join(out)


def stat_paths(paths: Sequence[str]) -> tuple[str, str]:
    """(stdout, stderr) of `stat --printf FMT -- PATHS` (the paths as given)."""
    out: list[str] = []
    err: list[str] = []
    for p in paths:
        try:
            out.append(stat_record(p, p))
        except OSError as e:
            err.append(f"stat: cannot statx '{p}': {e.strerror or e}\n")
    return "".join(out), "".join(err)
