"""The `[logs]` settings (LogsConfig, parsed with file:line:key errors by probes/config.py)
and the --journal-* options.

Kept apart from the sources (probes/logs/sources.py) so that the config and the command line
can use them without importing what follows logs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_FILES = (
    "/var/log/libvirt/libvirtd.log",
    "/var/log/libvirt/qemu/*.log",
    "/var/log/audit/audit.log",
    "/var/log/syslog",
    "/var/log/kern.log",
    "/var/log/messages",
)
START_LINES = 1000


@dataclass(frozen=True)
class LogsConfig:
    """The `[logs]` table of the config file."""

    files: tuple[str, ...] = DEFAULT_FILES
    journal: bool = True
    journal_files: tuple[str, ...] = ()
    journal_directory: str = ""
    since: str = ""
    libvirt_events: bool = True
    start_lines: int = START_LINES
    ring: int = 100_000
    view: int = 500  # newest entries kept in the State (snapshots, replay)
    native_files: bool = True  # follow local files natively (else `tail -F` as remotely)


def checked(
    config: Any, journal_files: Sequence[str], journal_dir: str | None, *, local: bool = True
) -> tuple[tuple[str, ...], str | None]:
    """For the command line: check the --journal-* options (ValueError with a message naming
    the option; the `[logs]` table itself was checked when the config was loaded); the journal
    files and directory to read."""
    files: list[str] = []
    for f in journal_files:
        if local and not os.path.isfile(f):
            raise ValueError(f"--journal-file {f}: no such file")
        files.append(os.path.abspath(f) if local else f)
    if journal_dir:
        if local and not os.path.isdir(journal_dir):
            raise ValueError(f"--journal-dir {journal_dir}: no such directory")
        journal_dir = os.path.abspath(journal_dir) if local else journal_dir
    return tuple(files), journal_dir or None
