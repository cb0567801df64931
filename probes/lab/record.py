"""The state file: everything the lab created, written BEFORE each thing is created.

`down` removes what the record names and nothing else, so the record must never miss an
object: each name or PID is appended and the file rewritten (write + rename, atomic) before the
create call. A crash between the write and the create leaves a name that does not exist, which
`down` skips. Processes are recorded with their start time (/proc/PID/stat field 22), so a
PID the kernel has since reused for someone else's process is never signalled.

Location: $TENANTSCOPE_LAB_DIR, else /run/tenantscope-lab (root only, tmpfs: a reboot removes
the lab and its record together).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

DEFAULT_DIR = "/run/tenantscope-lab"
VERSION = 1


class LabError(Exception):
    """A lab problem with a message complete for the user."""


def lab_dir(explicit: str | None = None) -> Path:
    return Path(explicit or os.environ.get("TENANTSCOPE_LAB_DIR") or DEFAULT_DIR)


@dataclass
class Proc:
    pid: int
    start: int  # start time in clock ticks since boot: (pid, start) names one process
    what: str = ""


@dataclass
class LabRecord:
    prefix: str = ""
    tenants: int = 0
    ovs: bool = False
    created_at: float = 0.0
    complete: bool = False  # `up` finished
    netns: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # in the root namespace: bridges, veths
    cgroups: list[str] = field(default_factory=list)  # absolute directories, parents first
    procs: list[Proc] = field(default_factory=list)
    ovs_dir: str = ""
    ovs_daemons: list[Proc] = field(default_factory=list)
    ovs_bridges: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    vms: list[list[str]] = field(default_factory=list)  # [domain name, uuid]
    faults: list[str] = field(default_factory=list)  # active faults
    notes: list[list[str]] = field(default_factory=list)  # [key, value]: what faults must restore
    version: int = VERSION

    def note(self, key: str) -> str | None:
        return next((v for k, v in self.notes if k == key), None)

    def set_note(self, key: str, value: str | None) -> None:
        self.notes = [[k, v] for k, v in self.notes if k != key]
        if value is not None:
            self.notes.append([key, value])


class Store:
    """The lab directory: state.json, the generated config, the lab's log, OVS's run dir."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.dir = lab_dir(str(directory) if directory else None)
        self.path = self.dir / "state.json"
        self.config = self.dir / "config.toml"
        self.log = self.dir / "lab.log"
        self.ovs = self.dir / "ovs"

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> LabRecord | None:
        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise LabError(f"{self.path}: unreadable lab state ({e}); remove what it lists by hand") from None
        if not isinstance(doc, dict) or doc.get("version") != VERSION:
            raise LabError(f"{self.path}: not a tenantscope lab state file (version {doc.get('version')!r})")
        names = {f.name for f in fields(LabRecord)}
        rec = LabRecord(**{k: v for k, v in doc.items() if k in names})
        rec.procs = [Proc(**p) for p in doc.get("procs", [])]
        rec.ovs_daemons = [Proc(**p) for p in doc.get("ovs_daemons", [])]
        return rec

    def save(self, rec: LabRecord) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(rec), indent=1) + "\n")
        os.replace(tmp, self.path)

    def forget(self) -> None:
        for p in (self.path, self.path.with_suffix(".tmp")):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One lab command at a time (a second `up` while the first runs would collide)."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LabError(f"another `tenantscope lab` command is running ({self.dir}/.lock)") from None
            yield
        finally:
            os.close(fd)
