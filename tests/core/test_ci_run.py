"""`.ci/run` runs `make test` in a fresh clone of the committed tree, inside a private directory
(0700: the `nobody` user cannot traverse it, as with /root or `mktemp -d`), with the
shared/ folder tests/helpers.py finds linked beside it, and removes the clone afterwards.

Stand-in: `make` is replaced by a script on PATH that reports where it ran and what it saw
(the real `make test` is the whole suite, which is this run). git, the clone and .ci/run are
real."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from tests.helpers import REPO, SHARED, needs_tool

MAKE = """#!/bin/sh
{
  echo "args=$*"
  echo "pwd=$PWD"
  echo "mode=$(stat -c %a "$(dirname "$PWD")")"
  echo "head=$(git rev-parse HEAD)"
  echo "shared=$(readlink ../shared || true)"
} > "$REPORT"
"""


@needs_tool("git")
def test_ci_run_tests_a_clone_in_a_private_directory(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    make = bin_dir / "make"
    make.write_text(MAKE)
    make.chmod(make.stat().st_mode | stat.S_IXUSR)
    report = tmp_path / "report"
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", REPORT=str(report))
    r = subprocess.run([str(REPO / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = dict(line.split("=", 1) for line in report.read_text().splitlines())
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert got["args"] == "test"
    assert got["head"] == head.stdout.strip()  # the committed tree
    clone = Path(got["pwd"])
    assert clone != REPO and not clone.is_relative_to(REPO)
    assert got["mode"] == "700"  # a directory `nobody` cannot traverse
    assert got["shared"] == (str(SHARED) if (SHARED / "corpus").is_dir() else "")
    assert not clone.parent.exists(), "the clone is removed afterwards"
