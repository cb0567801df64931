"""tui/malloc.py: at most two glibc malloc arenas for the console's threads (issue 16: each
worker thread's own arena kept the pages it freed, ~1.5-3 MiB of the idle console's RSS)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="malloc arenas are glibc's (this C library is not)"
)

PROGRAM = r"""
import json, sys, threading
from tui import malloc
took = malloc.fewer_arenas() if sys.argv[1] == "fewer" else None

def work(n=2000):
    keep = [bytearray(600) for _ in range(n)]  # malloc'd by this thread (larger than pymalloc's)
    del keep

threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
malloc.trim()
arenas = 0  # a thread arena is a 64 MiB reservation, mostly PROT_NONE
for line in open("/proc/self/maps"):
    parts = line.split()
    lo, hi = (int(x, 16) for x in parts[0].split("-"))
    if parts[1] == "---p" and len(parts) == 5 and hi - lo >= 32 << 20:
        arenas += 1
print(json.dumps({"took": took, "arenas": arenas}))
"""


def _run(mode: str, **env: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM, mode],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
        env={k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env,
    )
    assert out.returncode == 0, out.stderr
    got: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return got


def test_threads_share_one_arena_after_fewer_arenas() -> None:
    before = _run("default")
    after = _run("fewer")
    assert after["took"] is True
    a, b = after["arenas"], before["arenas"]
    assert isinstance(a, int) and isinstance(b, int)
    assert a <= 1 < b


def test_the_users_malloc_arena_max_wins() -> None:
    got = _run("fewer", MALLOC_ARENA_MAX="4")
    assert got["took"] is False
