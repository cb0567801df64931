"""The skip policy (tests/skip_policy.py) in a real pytest run of a throwaway test file: as
root under TENANTSCOPE_FORBID_SKIPS=1 (what `make test` sets) a skip fails the run and is
listed; without it, or with FORBID_SKIPS=0, a skip is only reported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO, needs_root, needs_tool

TESTS = """
import pytest

def test_runs():
    pass

@pytest.mark.skipif(True, reason="tsk-missing-tool")
def test_skipped():
    pass
"""


def _pytest(tmp: Path, forbid: str | None) -> subprocess.CompletedProcess[str]:
    (tmp / "test_policy_probe.py").write_text(TESTS)
    env = {k: v for k, v in os.environ.items() if k != "TENANTSCOPE_FORBID_SKIPS"}
    if forbid is not None:
        env["TENANTSCOPE_FORBID_SKIPS"] = forbid
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.skip_policy"]
        + ["--rootdir", str(tmp), str(tmp / "test_policy_probe.py")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@needs_root
def test_a_skip_as_root_under_make_test_fails_the_run(tmp_path: Path) -> None:
    r = _pytest(tmp_path, "1")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 passed, 1 skipped" in r.stdout
    assert "test_policy_probe.py::test_skipped" in r.stdout and "tsk-missing-tool" in r.stdout
    assert "the run fails" in r.stdout


def test_a_skip_outside_make_test_is_only_reported(tmp_path: Path) -> None:
    for forbid in (None, "0"):
        r = _pytest(tmp_path, forbid)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "1 passed, 1 skipped" in r.stdout and "the run fails" not in r.stdout


@needs_tool("make")
def test_make_test_turns_the_policy_on() -> None:
    """What `make test` would run (make -n): pytest under the policy, unless allowed."""

    def pytest_line(*args: str) -> str:
        r = subprocess.run(
            ["make", "-n", "test", *args], cwd=REPO, capture_output=True, text=True, timeout=30
        )
        assert r.returncode == 0, r.stderr
        return next(ln for ln in r.stdout.splitlines() if "-m pytest" in ln)

    assert pytest_line().startswith("TENANTSCOPE_FORBID_SKIPS=1 ")
    assert pytest_line("FORBID_SKIPS=0").startswith("TENANTSCOPE_FORBID_SKIPS=0 ")
