"""The `[logs]` table of the config file and the --journal-* options, typed.

Kept apart from the sources (probes/logs/sources.py) so that the command line can check
them before anything runs, without importing what follows logs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
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


def config_from(table: object) -> tuple[LogsConfig, list[str]]:
    """LogsConfig from a parsed `[logs]` table (a mapping or an object with attributes);
    returns the problems found, each naming the key."""
    cfg = LogsConfig()
    problems: list[str] = []
    if table is None:
        return cfg, problems

    def get(k: str) -> Any:
        if isinstance(table, dict):
            return table.get(k)
        return getattr(table, k, None)

    kw: dict[str, object] = {}
    for key, typ in (("files", tuple), ("journal_files", tuple)):
        v = get(key)
        if v is None:
            continue
        if isinstance(v, (list, tuple)) and all(isinstance(x, str) and x.startswith("/") for x in v):
            kw[key] = tuple(v)
        else:
            problems.append(f"[logs] {key}: a list of absolute paths")
    for key, t in (("journal", bool), ("libvirt_events", bool), ("native_files", bool)):
        v = get(key)
        if v is not None:
            if isinstance(v, bool):
                kw[key] = v
            else:
                problems.append(f"[logs] {key}: true or false")
    for key in ("journal_directory", "since"):
        v = get(key)
        if v is not None:
            if isinstance(v, str):
                kw[key] = v
            else:
                problems.append(f"[logs] {key}: a string")
    for key, lo in (("start_lines", 0), ("ring", 1), ("view", 0)):
        v = get(key)
        if v is not None:
            if isinstance(v, int) and not isinstance(v, bool) and v >= lo:
                kw[key] = v
            else:
                problems.append(f"[logs] {key}: a whole number >= {lo}")
    if kw:
        cfg = replace(cfg, **kw)  # type: ignore[arg-type]
    return cfg, problems


def logs_table(config: Any) -> dict[str, Any] | None:
    """The config's `[logs]` table as a plain dict (None when absent)."""
    if config is None:
        return None
    try:
        table = config.table("logs")
    except Exception:
        return None
    return dict(table) if table else None


def checked(
    config: Any, journal_files: Sequence[str], journal_dir: str | None, *, local: bool = True
) -> tuple[tuple[str, ...], str | None]:
    """For the command line: check the `[logs]` table and the --journal-* options (ValueError
    with a message naming the file or key); the journal files and directory to read."""
    _, problems = config_from(logs_table(config))
    if problems:
        where = getattr(config, "path", None) or "config"
        raise ValueError(f"{where}: {problems[0]}")
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
