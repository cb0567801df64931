"""`tenantscope check` on a saved journal (a copy from a broken host), and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.fixtures.journal import journal_remote, write_journal
from tests.helpers import REPO

ROOT = REPO


def tenantscope(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        timeout=120,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(cwd), "LANG": "C.UTF-8"},
    )


@journal_remote
def test_check_reads_a_saved_journal(tmp_path):
    j = tmp_path / "broken-host.journal"
    write_journal(
        j,
        [
            {
                "MESSAGE": "Out of memory: Killed process 4242 (qemu-system-x86) total-vm:1kB",
                "PRIORITY": "3",
                "SYSLOG_IDENTIFIER": "kernel",
                "_TRANSPORT": "kernel",
            },
            {"MESSAGE": "hello", "SYSLOG_IDENTIFIER": "app"},
        ],
    )
    r = tenantscope(
        "check",
        "--libvirt",
        "test:///default",
        "--journal-file",
        str(j),
        "--check",
        "LOG-03",
        "--format",
        "json",
        cwd=tmp_path,
    )
    assert r.returncode in (0, 1), r.stderr
    out = json.loads(r.stdout)
    text = json.dumps(out)
    assert "LOG-03" in text and "OOM kill(s) of qemu-system-x86" in text


def test_bad_logs_input_is_one_clear_line(tmp_path):
    r = tenantscope("check", "--journal-dir", str(tmp_path / "nope"), cwd=tmp_path)
    assert (
        r.returncode == 2
        and r.stderr.strip() == f"tenantscope: --journal-dir {tmp_path / 'nope'}: no such directory"
    )
    cfg = tmp_path / "c.toml"
    cfg.write_text("[logs]\nstart_lines = -3\n")
    r = tenantscope("check", "--config", str(cfg), cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == f"tenantscope: {cfg}:2: logs.start_lines: expected a whole number >= 0"
