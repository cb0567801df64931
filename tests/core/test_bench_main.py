"""`make bench` runs `python -m bench`: it must know every bench module and refuse unknown names."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_every_bench_module_is_listed():
    files = sorted(p.stem for p in (REPO / "bench").glob("*.py") if not p.stem.startswith("_"))
    listed = run("--list")
    assert listed.returncode == 0 and listed.stdout.split() == files and "logs" in files


def test_an_unknown_bench_is_named():
    r = run("nosuch")
    assert r.returncode == 2 and "no benchmark named nosuch" in r.stderr and "logs" in r.stderr
