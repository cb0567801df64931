"""Skip markers shared by the tests: a test that needs root or a tool says so and why."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

IS_ROOT = os.geteuid() == 0

# Paths relative to the repository, never to this machine: tests run from any clone.
REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"


def _shared() -> Path:
    """../shared beside the checkout (read-only real-world data; tests read it in place).

    The nearest ancestor's shared/ folder: beside a clone (CI), or beside the folder that
    holds a git worktree of it."""
    for parent in REPO.parents:
        if (parent / "shared" / "corpus").is_dir():
            return parent / "shared"
    return REPO.parent / "shared"


SHARED = _shared()
CORPUS = SHARED / "corpus" / "libvirt-domains"

needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (namespaces, cgroups, daemons)")


def needs_tool(*names: str) -> pytest.MarkDecorator:
    missing = [n for n in names if shutil.which(n) is None and not os.path.exists(n)]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)} (make test installs it)")
